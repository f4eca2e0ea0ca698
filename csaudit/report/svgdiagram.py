"""The topology diagram as an SVG laid out here, for the HTML report.

Why not graphviz: the HTML report is written where csaudit runs, and `dot` may not be installed
there; a report whose picture depends on an optional program would differ from machine to machine,
or need a fallback that is itself a second layout. The diagram is the collapsed one of
csaudit/report/diagram.py (a role with many objects in a zone is one node), so a fixed layout
reads well: one column per zone (the management tier first), the roles stacked in each, and
the edges as curves coloured by status. `--format dot` stays for those who want graphviz's layout.
"""

from __future__ import annotations

from html import escape

from csaudit.report.common import STATUS_COLOURS, printable
from csaudit.report.diagram import Diagram, Node

NODE_WIDTH, COLUMN_GAP, LINE_HEIGHT, MARGIN = 190, 110, 14, 16
ROLE_GAP, NODE_GAP, TITLE_HEIGHT = 22, 8, 26
# The worst status of a node's flows colours its border: what is broken shows first.
SEVERITY = ("fail", "error", "unverified", "waived", "pass", "planned")


def _text(value: str) -> str:
    return escape(printable(value), quote=True)


def render_svg(diagram: Diagram) -> str:
    columns = {group: n for n, group in enumerate(diagram.groups)}
    boxes: dict[str, tuple[float, float, float]] = {}  # node id -> x, y, height
    parts: list[str] = []
    bottom = 0.0
    for group, column in columns.items():
        x = MARGIN + column * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + TITLE_HEIGHT
        parts.append(f'<text class="zone" x="{x}" y="{MARGIN + 14}">{_text(group)}</text>')
        members = [n for n in diagram.nodes if n.group == group]
        for role in sorted({n.role for n in members}):
            parts.append(f'<text class="role" x="{x}" y="{y + 10}">{_text(role)}</text>')
            y += ROLE_GAP - 6
            for node in (n for n in members if n.role == role):
                height = LINE_HEIGHT * min(len(node.lines), 4) + 8
                boxes[node.id] = (x, y, height)
                y += height + NODE_GAP
            y += ROLE_GAP - NODE_GAP
        bottom = max(bottom, y)
    worst = _worst_status(diagram)
    names = {n.id: n.name for n in diagram.nodes}
    parts = [_edge(edge, boxes, names) for edge in diagram.edges] + parts
    parts += [_node(node, boxes[node.id], worst.get(node.id, "planned")) for node in diagram.nodes]
    width = MARGIN * 2 + len(columns) * NODE_WIDTH + max(0, len(columns) - 1) * COLUMN_GAP + COLUMN_GAP // 2
    height = bottom + MARGIN
    markers = "".join(
        f'<marker id="arrow-{status}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>' for status, (colour, _) in STATUS_COLOURS.items())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{_text(diagram.legend())}">'
            f"<defs>{markers}</defs>{''.join(parts)}</svg>")


def _worst_status(diagram: Diagram) -> dict[str, str]:
    worst: dict[str, str] = {}
    for edge in diagram.edges:
        for end in (edge.source, edge.target):
            current = worst.get(end)
            if current is None or SEVERITY.index(edge.status) < SEVERITY.index(current):
                worst[end] = edge.status
    return worst


def _node(node: Node, box: tuple[float, float, float], status: str) -> str:
    x, y, height = box
    colour = STATUS_COLOURS[status][0]
    lines = node.lines[:4] if len(node.lines) <= 4 else (*node.lines[:3], f"+{len(node.lines) - 3} addresses")
    text = "".join(f'<tspan x="{x + 8}" dy="{LINE_HEIGHT if n else 0}">{_text(line)}</tspan>' for n, line in enumerate(lines))
    title = " ".join(node.lines) + f" (worst: {status})"
    return (f'<g class="node" data-status="{status}"><title>{_text(title)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{height}" rx="5" fill="#fff" stroke="{colour}" '
            f'stroke-width="{2.5 if node.members > 1 else 1.5}"/>'
            f'<text x="{x + 8}" y="{y + LINE_HEIGHT}">{text}</text></g>')


def _edge(edge, boxes: dict, names: dict[str, str]) -> str:
    sx, sy, sh = boxes[edge.source]
    tx, ty, th = boxes[edge.target]
    start_y, end_y = sy + sh / 2, ty + th / 2
    if tx > sx:  # to a column on the right: right side to left side
        x1, x2 = sx + NODE_WIDTH, tx
        path = f"M{x1},{start_y} C{x1 + 60},{start_y} {x2 - 60},{end_y} {x2},{end_y}"
    elif tx < sx:
        x1, x2 = sx, tx + NODE_WIDTH
        path = f"M{x1},{start_y} C{x1 - 60},{start_y} {x2 + 60},{end_y} {x2},{end_y}"
    else:  # the same column: out of the right side and back, further out the further apart
        x1 = sx + NODE_WIDTH
        bulge = 30 + min(abs(end_y - start_y) / 4, COLUMN_GAP - 30)
        if edge.source == edge.target:
            start_y, end_y = sy + sh / 3, sy + 2 * sh / 3
        path = f"M{x1},{start_y} C{x1 + bulge},{start_y} {x1 + bulge},{end_y} {x1},{end_y}"
    colour = STATUS_COLOURS[edge.status][0]
    title = f"{names[edge.source]} → {names[edge.target]}: {edge.label} ({edge.status})"
    dash = ' stroke-dasharray="5,4"' if edge.deny else ""
    return (f'<path class="edge" data-status="{edge.status}" d="{path}" fill="none" stroke="{colour}" stroke-width="1.4"'
            f'{dash} marker-end="url(#arrow-{edge.status})"><title>{_text(title)}</title></path>')
