"""Diagrams of objects and flows: Mermaid and Graphviz DOT.

Objects are grouped by zone (the management servers, database, NTP and this machine form the
management tier), then by role. Flows between the same two objects with the same status share
one edge labelled with their ports; its colour is the status, and a dashed edge is a deny rule
(must be closed).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from csaudit.report.common import MANAGEMENT_TIER, STATUS_COLOURS, order_zones, port_label, printable, status_of, zone_label

NEWLINE = "\n"  # f-string expressions take no backslash before Python 3.12
MANAGEMENT_ROLES = frozenset({"user", "ms", "db", "ntp"})


@dataclasses.dataclass(frozen=True)
class Node:
    id: str
    name: str
    role: str
    addresses: tuple[str, ...]  # every address its flows use (a system VM has private, public, link-local)
    group: str  # zone name or the management tier
    members: int = 1  # more than one: the objects of one role in one group drawn as one node ("vr × 620")

    @property
    def lines(self) -> tuple[str, ...]:
        return (self.name, *(a for a in self.addresses if a != self.name))


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    ports: tuple[str, ...]
    status: str
    deny: bool
    flows: int = 1
    collapsed: bool = False  # an end is a collapsed node: the label counts the flows it stands for

    @property
    def label(self) -> str:
        count = f" ({self.flows:,} flows)" if self.collapsed and self.flows > 1 else ""
        return ("deny " if self.deny else "") + ", ".join(self.ports) + count


@dataclasses.dataclass(frozen=True)
class Diagram:
    groups: tuple[str, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def legend(self) -> str:
        used = Counter(e.status for e in self.edges)
        parts = [f"{status} {name}" for status, (_, name) in STATUS_COLOURS.items() if used[status]]
        collapsed = "; role × N: N objects drawn as one" if any(n.members > 1 for n in self.nodes) else ""
        return "edges: " + ", ".join(parts) + "; dashed: must be closed" + collapsed


# Objects of one role in one zone beyond this many are drawn as one node, "vr × 620", and their
# flows as one edge per target, status and direction with the count of flows. Why: graphviz lays a
# drawing out in time that grows much faster than its edges (3,839 flows of 2 zones with 620 routers
# drawn object by object took 31 s with newrank and gave a 2 MB SVG nobody can read), and Mermaid
# refuses a diagram over 50,000 characters or 500 edges (its maxTextSize and maxEdges defaults).
# Drawn per role, the same cloud is a few dozen nodes; the objects themselves are in the reports' tables.
COLLAPSE_ABOVE = 12


class ObjectIndex:
    """The diagram's first pass over the flows: every object with its addresses and zones, and the
    zones the flows name. Streaming: memory holds the objects, not the flows."""

    def __init__(self) -> None:
        self._addresses: dict[tuple[str, str], set[str]] = {}
        self._zones: dict[tuple[str, str], Counter] = {}
        self._zone_labels: set[str] = set()

    def add(self, flow: dict) -> None:
        self._zone_labels.add(zone_label(flow))
        for side in ("source", "target"):
            endpoint = flow[side]
            key = (endpoint["role"], endpoint["name"])
            known = self._addresses.get(key)
            if known is None:
                known = self._addresses[key] = set()
                self._zones[key] = Counter()
            if endpoint.get("address"):
                known.add(endpoint["address"])
            self._zones[key][flow.get("zone")] += 1

    def layout(self, document: dict, collapse_above: int = COLLAPSE_ABOVE) -> EdgeCollector:
        """The nodes (a role with more than `collapse_above` objects in a group becomes one), ready for the edges' pass."""
        group_of = {key: _group(key[0], self._zones[key]) for key in self._addresses}
        sizes = Counter((group_of[key], key[0]) for key in group_of)
        node_of: dict[tuple[str, str], tuple] = {}
        for key, group in group_of.items():
            members = sizes[(group, key[0])]
            node_of[key] = ("role", group, key[0], members) if members > collapse_above else ("object", group, *key)
        # ids in the order of (role, name), a collapsed role first among its own
        ordered = sorted(set(node_of.values()), key=lambda node: (node[2], node[3] if node[0] == "object" else "", node[1]))
        ids = {node: f"n{n}" for n, node in enumerate(ordered)}
        nodes = []
        for node, node_id in ids.items():
            if node[0] == "role":
                _, group, role, members = node
                nodes.append(Node(node_id, f"{role} × {members:,}", role, (), group, members))
            else:
                _, group, role, name = node
                nodes.append(Node(node_id, name, role, tuple(sorted(self._addresses[(role, name)])), group))
        groups = order_zones(document, self._zone_labels)
        groups += sorted({n.group for n in nodes} - set(groups))
        return EdgeCollector(tuple(groups), tuple(nodes), {key: ids[node] for key, node in node_of.items()})


class EdgeCollector:
    """The diagram's second pass: flows between the same two nodes with the same status and
    direction share one edge, labelled with their ports (and, at a collapsed end, their count)."""

    def __init__(self, groups: tuple[str, ...], nodes: tuple[Node, ...], node_id: dict[tuple[str, str], str]) -> None:
        self._groups, self._nodes, self._node_id = groups, nodes, node_id
        self._collapsed = {n.id for n in nodes if n.members > 1}
        self._edges: dict[tuple[str, str, str, bool], tuple[list[str], list[int]]] = {}

    def add(self, flow: dict) -> None:
        source = self._node_id[(flow["source"]["role"], flow["source"]["name"])]
        target = self._node_id[(flow["target"]["role"], flow["target"]["name"])]
        ports, count = self._edges.setdefault((source, target, status_of(flow), flow["expect"] == "closed"), ([], [0]))
        count[0] += 1
        label = port_label(flow)
        if label not in ports:
            ports.append(label)

    def diagram(self) -> Diagram:
        edges = tuple(Edge(s, t, tuple(ports), status, deny, count[0], s in self._collapsed or t in self._collapsed)
                      for (s, t, status, deny), (ports, count) in self._edges.items())
        return Diagram(self._groups, self._nodes, edges)


def build_diagram(document: dict, collapse_above: int = COLLAPSE_ABOVE) -> Diagram:
    """`document["flows"]`: a list, or anything read afresh by each `for` (a ResultLog streams them)."""
    flows = document["flows"]
    objects = ObjectIndex()
    for flow in flows:
        objects.add(flow)
    edges = objects.layout(document, collapse_above)
    for flow in flows:
        edges.add(flow)
    return edges.diagram()


def _group(role: str, zones: Counter) -> str:
    """A zone object lives in the zone most of its flows belong to (cross-zone copies are few)."""
    named = Counter({zone: n for zone, n in zones.items() if zone})
    if role in MANAGEMENT_ROLES or not named:
        return MANAGEMENT_TIER
    return min(named, key=lambda zone: (-named[zone], zone))


def _by_group_and_role(diagram: Diagram):
    for group in diagram.groups:
        members = [n for n in diagram.nodes if n.group == group]
        if members:
            yield group, [(role, [n for n in members if n.role == role]) for role in sorted({n.role for n in members})]


# Mermaid --------------------------------------------------------------------------------------

def render_mermaid(document: dict) -> str:
    diagram = build_diagram(document)
    lines = ["flowchart LR", f"  %% csaudit: {diagram.legend()}"]
    for g, (group, roles) in enumerate(_by_group_and_role(diagram)):
        lines.append(f'  subgraph g{g}["{_mermaid_text(group)}"]')
        for r, (role, members) in enumerate(roles):
            lines.append(f'    subgraph g{g}r{r}["{_mermaid_text(role)}"]')
            lines += [f'      {n.id}["{"<br/>".join(_mermaid_text(line) for line in n.lines)}"]' for n in members]
            lines.append("    end")
        lines.append("  end")
    for edge in diagram.edges:
        arrow = "-.->" if edge.deny else "-->"
        lines.append(f'  {edge.source} {arrow}|"{_mermaid_text(edge.label)}"| {edge.target}')
    for status, (colour, _) in STATUS_COLOURS.items():
        indexes = [str(i) for i, edge in enumerate(diagram.edges) if edge.status == status]
        if indexes:
            lines.append(f"  linkStyle {','.join(indexes)} stroke:{colour},color:{colour}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid entity codes: `#` starts one, quotes end a label, < and > would be HTML, | ends an edge label."""
    text = printable(text).replace("\n", " ")
    for char, code in (("#", "#35;"), ("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, code)
    return text


# Graphviz DOT ---------------------------------------------------------------------------------

def render_dot(document: dict) -> str:
    diagram = build_diagram(document)
    lines = [
        "digraph csaudit {",
        # newrank: rank every node in one pass, clusters as constraints. dot's classic ranking ranks
        # each cluster on its own, then the edges between clusters on the collapsed clusters, and that
        # pass fails ("trouble in init_rank", graphviz 2.43) once many edges cross nested clusters:
        # 2 zones with 620 routers drawn object by object did, and so can a collapsed drawing of a cloud with many roles.
        f'  graph [rankdir=LR, newrank=true, fontname="Helvetica", labelloc=b, label={_dot_string(diagram.legend())}];',
        '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for g, (group, roles) in enumerate(_by_group_and_role(diagram)):
        lines.append(f"  subgraph cluster_{g} {{")
        lines.append(f"    label={_dot_string(group)};")
        for r, (role, members) in enumerate(roles):
            lines.append(f"    subgraph cluster_{g}_{r} {{")
            lines.append(f"      label={_dot_string(role)}; style=dashed;")
            lines += [f"      {n.id} [label={_dot_string(NEWLINE.join(n.lines))}];" for n in members]
            lines.append("    }")
        lines.append("  }")
    for edge in diagram.edges:
        colour = STATUS_COLOURS[edge.status][0]
        style = ", style=dashed" if edge.deny else ""
        lines.append(f'  {edge.source} -> {edge.target} [label={_dot_string(edge.label)}, color="{colour}", fontcolor="{colour}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    escaped = printable(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
