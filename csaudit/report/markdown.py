"""Markdown: the report for a merge request, a wiki page or a ticket (GitHub-flavoured tables)."""

from __future__ import annotations

from csaudit.model.results import STATUSES
from csaudit.report.common import detail, endpoint_label, port_label, printable, zone_label, zone_order
from csaudit.report.groups import UNVERIFIED_ADVICE, FlowGroup, group_flows, headline, objects_lead

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
        "| " + " | ".join(STATUSES) + " |",
        "| " + " | ".join("---:" for _ in STATUSES) + " |",
        "| " + " | ".join(str(summary.get(status, 0)) for status in STATUSES) + " |",
        *_coverage(summary.get("coverage")),
    ]
    groups = group_flows(flows)
    problems = [g for g in groups if g.status in ("fail", "error")]
    if problems:
        lines += ["", "## Failures, grouped by rule and cause", *(line for g in problems for line in _problem(g))]
    unverified = [g for g in groups if g.status == "unverified"]
    if unverified:
        lines += ["", "## Unverified, by what keeps them so", *_unverified(unverified)]
    failed = [f for f in flows if f.get("status") in ("fail", "error")]
    if failed:
        lines += ["", "## Failed flows", "", *_table(failed)]
    for zone in zone_order(document, flows):
        lines += ["", f"## {_text(zone)}", "", *_table([f for f in flows if zone_label(f) == zone])]
    return "\n".join(lines) + "\n"


def _coverage(coverage: dict | None) -> list[str]:
    if not coverage or not coverage.get("flows"):
        return []
    share = 100 * coverage["verified"] / coverage["flows"]
    return ["", f"Coverage: {coverage['verified']} of {coverage['flows']} flows verified ({share:.0f} %).",
            *(f"- {count} {_text(gap)}: {_text(UNVERIFIED_ADVICE.get(gap, gap))}" for gap, count in coverage.get("unverified", {}).items())]


def _problem(group: FlowGroup) -> list[str]:
    """A failure group: its headline, the objects it hits, one reason, and the remedy when the rule has one."""
    more = f", … +{group.more:,} more" if group.more else ""
    lines = ["", f"### {_text(headline(group))}", "",
             f"{_text(objects_lead(group)).capitalize()}: {', '.join(_text(name) for name in group.objects)}{more}.",
             "", f"Example: {_text(group.example.get('reason') or group.cause)}"]
    remedy = group.remedy
    if remedy:
        lines += ["", f"**What to do** on {_text(remedy['on'])}: {_text(remedy['check'])}.", "",
                  *(f"    {command}" for command in remedy.get("commands", ())), "", f"Source: {_text(remedy['citation'])}"]
    return lines


def _unverified(groups: list[FlowGroup]) -> list[str]:
    by_gap: dict[str, list[FlowGroup]] = {}
    for group in groups:
        by_gap.setdefault(group.cause, []).append(group)
    lines = []
    for gap, members in by_gap.items():
        lines += ["", f"**{sum(g.count for g in members):,} {_text(gap)}**: {_text(UNVERIFIED_ADVICE.get(gap, gap))}", ""]
        lines += [f"- {_text(headline(g))}; {_text(objects_lead(g))}: {', '.join(_text(n) for n in g.objects)}"
                  + (f", … +{g.more:,} more" if g.more else "") for g in members]
    return lines


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
