"""Markdown: the report for a merge request, a wiki page or a ticket (GitHub-flavoured tables)."""

from __future__ import annotations

from csaudit.report.common import detail, endpoint_label, port_label, printable, zone_label, zone_order

_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "&lt;", "*": "\\*", "_": "\\_", "`": "\\`", "[": "\\[", "]": "\\]"})
_COLUMNS = ("flow", "source", "target", "port", "expect", "status", "detail")


def render_markdown(document: dict) -> str:
    flows = document["flows"]
    cloud = document.get("cloud", {})
    summary = document.get("summary", {})
    lines = [
        "# csaudit report",
        "",
        f"Cloud {_text(cloud.get('endpoint') or '(offline)')}, version {_text(cloud.get('version') or 'unknown')}"
        f" ({_text(cloud.get('api_mode') or 'offline')} API), generated {_text(document.get('generated_at', ''))}"
        f" by csaudit {_text(document.get('tool_version', ''))}.",
        "",
        "| " + " | ".join(summary) + " |",
        "| " + " | ".join("---:" for _ in summary) + " |",
        "| " + " | ".join(str(n) for n in summary.values()) + " |",
    ]
    problems = [f for f in flows if f.get("status") in ("fail", "error")]
    if problems:
        lines += ["", "## Failures", "", *_table(problems)]
    for zone in zone_order(document, flows):
        lines += ["", f"## {_text(zone)}", "", *_table([f for f in flows if zone_label(f) == zone])]
    return "\n".join(lines) + "\n"


def _table(flows: list[dict]) -> list[str]:
    rows = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for flow in flows:
        status = flow.get("status") or ""
        cells = [
            f"{_code(flow['id'])} {_text(flow['title'])}",
            _text(endpoint_label(flow["source"])),
            _text(endpoint_label(flow["target"])),
            port_label(flow),
            flow["expect"],
            f"**{status}**" if status in ("fail", "error") else status,
            _text(detail(flow)),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _text(value) -> str:
    return " ".join(printable(value).split()).translate(_ESCAPES)


def _code(value: str) -> str:
    """A code span needs no escaping but `|` (GFM tables) and a longer fence around backticks."""
    value = " ".join(printable(value).split()).replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    return f"{fence} {value} {fence}" if fence == "``" else f"`{value}`"
