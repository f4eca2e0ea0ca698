"""The terminal report: what is wrong first, grouped, each group with what to do about it; then the
vantages, the API cross-check findings, the coverage and the summary line last.

Built from the groups (csaudit/report/groups.py), never from every flow, so its length depends on
the catalogue's rules and a run's causes, not on the size of the cloud. Every line is cut to the
width with "…" (never wrapped). `--all` prints the per-flow table instead (document.write_table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from csaudit.model.results import STATUSES
from csaudit.report.common import printable
from csaudit.report.document import COLOURS
from csaudit.report.groups import UNVERIFIED_ADVICE, FlowGroup, headline, objects_lead

LISTED_VANTAGES = 12  # more vantages than this are shown grouped by state and reason
LISTED_FINDINGS = 8  # more findings than this are shown grouped by kind
PROBLEM_LINES = 200  # the failure groups' share of the report: past it, groups show without their remedy
_FINDING_KINDS = {
    "api-up-unreachable": "the API says they are up, but their vantage cannot be reached",
    "api-down-answers": "the API says they are down, but they answer",
    "api-up-silent": "the API says they are up, but no connection to them was accepted",
}
_TAGS = {"fail": "FAIL", "error": "ERROR", "unverified": "UNVERIFIED", "waived": "WAIVED"}


class _Lines:
    """The report's lines, each cut to the width; colour (a status tag at the start) after the cut."""

    def __init__(self, out: TextIO, width: int, colour: bool) -> None:
        self.out, self.width, self.colour = out, max(width, 40), colour
        self.count = 0

    def write(self, text: str = "", status: str | None = None) -> None:
        text = printable(text)
        if len(text) > self.width:
            text = text[:self.width - 1] + "…"
        if status and self.colour:
            tag = _TAGS.get(status, status)
            if text.startswith(tag):
                text = f"\x1b[{COLOURS[status]}m{tag}\x1b[0m{text[len(tag):]}"
        self.out.write(text + "\n")
        self.count += 1

    def names(self, lead: str, names: Sequence[str], more: int) -> None:
        """`lead: a, b, c, … +N more` with as many names as fit the width."""
        shown = list(names)
        while True:
            rest = more + len(names) - len(shown)
            text = lead + ": " + ", ".join(shown) + (f", … +{rest:,} more" if rest and shown else f" … +{rest:,} more" if rest else "")
            if len(text) <= self.width or len(shown) <= 1:
                self.write(text)
                return
            shown.pop()


def write_report(groups: Sequence[FlowGroup], out: TextIO, summary: dict, colour: bool = False, width: int = 120,
                 vantages=(), findings=()) -> int:
    """The report; returns its number of lines."""
    lines = _Lines(out, width, colour)
    problems = [g for g in groups if g.status in ("fail", "error")]
    unverified = [g for g in groups if g.status == "unverified"]
    waived = [g for g in groups if g.status == "waived"]
    if problems:
        failing = sum(g.count for g in problems)
        errors = sum(g.count for g in problems if g.status == "error")
        lines.write(f"== {_flows(failing)} failed" + (f" ({errors:,} could not be probed)" if errors else "")
                    + f", in {len(problems)} group{'s' if len(problems) != 1 else ''} by rule and cause (what to do under each)")
        _problem_groups(lines, problems)
    if unverified:
        lines.write(f"== {_flows(sum(g.count for g in unverified))} unverified, by what keeps them so")
        _unverified_groups(lines, unverified)
    if waived:
        lines.write(f"== {_flows(sum(g.count for g in waived))} waived (failed, accepted until their waiver expires)")
        for group in waived:
            lines.write(f"{_TAGS['waived']} {headline(group)}", "waived")
            lines.names(f"    {objects_lead(group)}", group.objects, group.more)
        lines.write()
    if summary.get("pass"):
        lines.write(f"{_flows(summary['pass'])} passed (--all lists every flow)")
        lines.write()
    _vantages(lines, vantages)
    _findings(lines, findings)
    coverage = summary.get("coverage") or {}
    if coverage.get("flows"):
        share = 100 * coverage["verified"] / coverage["flows"]
        lines.write(f"coverage: {coverage['verified']:,} of {coverage['flows']:,} flows verified ({share:.0f} %)")
    lines.write("summary: " + ", ".join(f"{summary.get(status, 0)} {status}" for status in STATUSES))
    return lines.count


def _problem_groups(lines: _Lines, groups: Sequence[FlowGroup]) -> None:
    """Each group: its rule and count and the objects it hits; then one flow's reason (unless the
    cause says it all: refused, timeout) and what to do, once per remedy (a rule failing with two
    causes, or its tables failing alike, share one). Those details stop where PROBLEM_LINES would be
    passed: the largest groups keep them, and a last line says where the others' remedies are."""
    spare = PROBLEM_LINES - 2 * len(groups)
    shown: dict[str, str] = {}  # a remedy already written (as text) -> the rule it was written for
    cut = 0
    for group in groups:
        lines.write(f"{_TAGS[group.status]} {headline(group)}", group.status)
        lines.names(f"    {objects_lead(group)}", group.objects, group.more)
        details, remedy = _details(group, shown, lines.width)
        if len(details) > spare:
            cut += 1
            continue
        spare -= len(details)
        shown.setdefault(remedy, group.rule)
        for text in details:
            lines.write(text)
    if cut:
        lines.write(f"({cut} group{'s' if cut != 1 else ''} above without what to do, to keep this short: "
                    "the Markdown report (--markdown FILE) and the JSON (each flow's remedy) have it)")
    lines.write()


def _details(group: FlowGroup, shown: dict[str, str], width: int) -> tuple[list[str], str]:
    """The lines under a group's headline, and its remedy as a key of `shown`."""
    details = [] if group.cause in ("refused", "timeout") else [f"    e.g. {group.example.get('reason') or group.cause}"]
    if group.example.get("firewall"):  # run --collect-firewall: the rule that drops one flow of the group
        details.append(f"    firewall ({group.example['source']['name']} → {group.example['target']['name']}): {group.example['firewall']}")
    remedy = group.remedy
    if remedy is None:
        return details, ""
    key = repr(sorted(remedy.items()))
    if key in shown:
        return [*details, f"    what to do: as for {shown[key]} above"], key
    where = f"    on {remedy['on']}: {remedy['check']}"
    if len(where) > width:  # the check on a line of its own rather than cut
        details += [f"    on {remedy['on']}:", f"      {remedy['check']}"]
    else:
        details.append(where)
    return [*details, *(f"      $ {command}" for command in remedy.get("commands", ()))], key


def _unverified_groups(lines: _Lines, groups: Sequence[FlowGroup]) -> None:
    by_gap: dict[str, list[FlowGroup]] = {}
    for group in groups:
        by_gap.setdefault(group.cause, []).append(group)
    for gap, members in sorted(by_gap.items(), key=lambda item: -sum(g.count for g in item[1])):
        lines.write(f"{_TAGS['unverified']} {sum(g.count for g in members):,} {gap}: {UNVERIFIED_ADVICE.get(gap, gap)}", "unverified")
        for group in members:
            lines.write(f"    {headline(group)}")
            lines.names(f"      {objects_lead(group)}", group.objects, group.more)
    lines.write()


def _vantages(lines: _Lines, vantages) -> None:
    if not vantages:
        return
    lines.write("== vantages (where the probes ran)")
    if len(vantages) <= LISTED_VANTAGES:
        for vantage in vantages:
            detail = vantage.reason or (f"ran with {vantage.engine}" if vantage.engine else "")
            lines.write(f"  {vantage.name}: {vantage.state}, {vantage.probes:,} probes" + (f"; {detail}" if detail else ""))
    else:
        by_state: dict[tuple[str, str], list] = {}
        for vantage in vantages:
            by_state.setdefault((vantage.state, vantage.reason or ""), []).append(vantage)
        for (state, reason), members in sorted(by_state.items(), key=lambda item: (item[0][0] != "ok", -len(item[1]))):
            probes = sum(v.probes for v in members)
            lead = f"  {len(members):,} {state}, {probes:,} probes" + (f" ({reason})" if reason else "")
            lines.names(lead, [v.name for v in members[:8]], max(0, len(members) - 8))
    lines.write()


def _findings(lines: _Lines, findings) -> None:
    if not findings:
        return
    lines.write(f"== {len(findings):,} finding{'s' if len(findings) != 1 else ''} (the API and the network disagree)")
    if len(findings) <= LISTED_FINDINGS:
        for finding in findings:
            lines.write(f"  - {finding.message}")
    else:
        by_kind: dict[str, list] = {}
        for finding in findings:
            by_kind.setdefault(finding.kind, []).append(finding)
        for kind, members in by_kind.items():
            lines.names(f"  {len(members):,} {kind}: {_FINDING_KINDS.get(kind, kind)}", [f.name for f in members[:8]],
                        max(0, len(members) - 8))
            lines.write(f"    e.g. {members[0].message}")
    lines.write()


def _flows(count: int) -> str:
    return f"{count:,} flow{'s' if count != 1 else ''}"
