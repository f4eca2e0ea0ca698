"""Diagrams of objects and flows: Mermaid and Graphviz DOT.

Objects are grouped by zone (the management servers, database, NTP and this machine form the
management tier), then by role. Flows between the same two objects with the same status share
one edge labelled with their ports; its colour is the status, and a dashed edge is a deny rule
(must be closed).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from csaudit.report.common import MANAGEMENT_TIER, STATUS_COLOURS, port_label, printable, status_of, zone_order

NEWLINE = "\n"  # f-string expressions take no backslash before Python 3.12
MANAGEMENT_ROLES = frozenset({"user", "ms", "db", "ntp"})


@dataclasses.dataclass(frozen=True)
class Node:
    id: str
    name: str
    role: str
    addresses: tuple[str, ...]  # every address its flows use (a system VM has private, public, link-local)
    group: str  # zone name or the management tier

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

    @property
    def label(self) -> str:
        return ("deny " if self.deny else "") + ", ".join(self.ports)


@dataclasses.dataclass(frozen=True)
class Diagram:
    groups: tuple[str, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def legend(self) -> str:
        used = Counter(e.status for e in self.edges)
        parts = [f"{status} {name}" for status, (_, name) in STATUS_COLOURS.items() if used[status]]
        return "edges: " + ", ".join(parts) + "; dashed: must be closed"


def build_diagram(document: dict) -> Diagram:
    flows = document["flows"]
    addresses: dict[tuple[str, str], set[str]] = {}
    zones: dict[tuple[str, str], Counter] = {}
    for flow in flows:
        for side in ("source", "target"):
            endpoint = flow[side]
            key = (endpoint["role"], endpoint["name"])
            addresses.setdefault(key, set()).update([endpoint["address"]] if endpoint.get("address") else [])
            zones.setdefault(key, Counter())[flow.get("zone")] += 1
    ids = {key: f"n{n}" for n, key in enumerate(sorted(addresses))}
    nodes = tuple(Node(ids[key], key[1], key[0], tuple(sorted(addresses[key])), _group(key[0], zones[key]))
                  for key in sorted(addresses))
    edges: dict[tuple[str, str, str, bool], list[str]] = {}
    for flow in flows:
        source = ids[(flow["source"]["role"], flow["source"]["name"])]
        target = ids[(flow["target"]["role"], flow["target"]["name"])]
        ports = edges.setdefault((source, target, status_of(flow), flow["expect"] == "closed"), [])
        if port_label(flow) not in ports:
            ports.append(port_label(flow))
    groups = zone_order(document, flows)
    groups += sorted({n.group for n in nodes} - set(groups))
    return Diagram(tuple(groups), nodes, tuple(Edge(s, t, tuple(p), status, deny) for (s, t, status, deny), p in edges.items()))


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
        f'  graph [rankdir=LR, fontname="Helvetica", labelloc=b, label={_dot_string(diagram.legend())}];',
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
