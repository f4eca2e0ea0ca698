"""`csaudit diff OLD.json NEW.json`: what changed between two reports, flow by flow.

Flows are matched by id (built from names, never from addresses, so a cloud whose addresses
moved still compares). A flow present in both reports is a new failure (now fail, before not),
fixed (before fail or error, now pass), or changed (any other change of status or of what the
probe observed). Exit 0: nothing changed; 1: something did; 2: bad input.
"""

from __future__ import annotations

import dataclasses
import json

from csaudit.collect.textfile import read_text
from csaudit.model.errors import UsageError
from csaudit.report.document import REPORT_SCHEMA, render_json

DIFF_SCHEMA = "csaudit/diff/v1"
EXIT_CHANGED = 1  # `diff` only: something changed (0: nothing did; 2: bad input, as everywhere)
SECTIONS = ("new_failures", "fixed", "changed", "added", "removed")
_HEADINGS = {"new_failures": "new failures", "fixed": "fixed", "changed": "changed", "added": "added", "removed": "removed"}


@dataclasses.dataclass(frozen=True)
class Change:
    id: str
    old: dict | None  # {"status", "observed", "reason"}; None when the flow is new
    new: dict | None  # None when the flow is gone


@dataclasses.dataclass(frozen=True)
class ReportDiff:
    old_path: str
    new_path: str
    old: dict
    new: dict
    new_failures: tuple[Change, ...]
    fixed: tuple[Change, ...]
    changed: tuple[Change, ...]
    added: tuple[Change, ...]
    removed: tuple[Change, ...]

    @property
    def something_changed(self) -> bool:
        return any(getattr(self, section) for section in SECTIONS)


def load_report(path: str) -> dict:
    """A csaudit/report/v1 document, or one UsageError that says what is wrong with the file."""
    text = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not a csaudit report (not JSON: {exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else None
        raise UsageError(f"{path}: not a csaudit report (schema {found!r}, expected {REPORT_SCHEMA!r}; "
                         "write one with `csaudit run --json FILE`)")
    flows = document.get("flows")
    if not isinstance(flows, list) or not all(isinstance(f, dict) and isinstance(f.get("id"), str)
                                              and isinstance(f.get("status"), str) for f in flows):
        raise UsageError(f"{path}: a {REPORT_SCHEMA} document needs 'flows': a list of objects with an 'id' and a 'status'")
    return document


def diff_reports(old: dict, new: dict, old_path: str = "OLD", new_path: str = "NEW") -> ReportDiff:
    before = {f["id"]: f for f in old["flows"]}
    after = {f["id"]: f for f in new["flows"]}
    sections: dict[str, list[Change]] = {name: [] for name in SECTIONS}
    for fid in sorted(before.keys() | after.keys()):
        was, now = before.get(fid), after.get(fid)
        change = Change(fid, _state(was), _state(now))
        if was is None:
            sections["added"].append(change)
        elif now is None:
            sections["removed"].append(change)
        elif now["status"] == "fail" and was["status"] != "fail":
            sections["new_failures"].append(change)
        elif was["status"] in ("fail", "error") and now["status"] == "pass":
            sections["fixed"].append(change)
        elif (was["status"], was.get("observed")) != (now["status"], now.get("observed")):
            sections["changed"].append(change)
    return ReportDiff(old_path, new_path, old, new, **{name: tuple(changes) for name, changes in sections.items()})


def _state(flow: dict | None) -> dict | None:
    if flow is None:
        return None
    return {"status": flow["status"], "observed": flow.get("observed"), "reason": flow.get("reason")}


def render_diff_text(diff: ReportDiff) -> str:
    lines = [f"old: {diff.old_path} ({_about(diff.old)})", f"new: {diff.new_path} ({_about(diff.new)})"]
    for section in SECTIONS:
        changes = getattr(diff, section)
        if not changes:
            continue
        lines += ["", f"{_HEADINGS[section]} ({len(changes)}):"]
        for change in changes:
            lines.append(f"  {change.id}  {_shown(change.old)} -> {_shown(change.new)}")
            if change.new and change.new["status"] in ("fail", "error") and change.new.get("reason"):
                lines.append(f"      {change.new['reason']}")
    counts = ", ".join(f"{len(getattr(diff, s))} {_HEADINGS[s]}" for s in SECTIONS)
    lines += ["", counts if diff.something_changed else f"no change: {len(diff.new['flows'])} flows, same statuses"]
    return "\n".join(lines) + "\n"


def _about(document: dict) -> str:
    return f"generated {document.get('generated_at', '?')}, {len(document['flows'])} flows"


def _shown(state: dict | None) -> str:
    if state is None:
        return "(none)"
    return f"{state['status']} ({state['observed']})" if state.get("observed") else state["status"]


def render_diff_json(diff: ReportDiff) -> str:
    return render_json({
        "schema": DIFF_SCHEMA,
        "old": {"path": diff.old_path, "generated_at": diff.old.get("generated_at"), "summary": diff.old.get("summary")},
        "new": {"path": diff.new_path, "generated_at": diff.new.get("generated_at"), "summary": diff.new.get("summary")},
        "changed_anything": diff.something_changed,
        **{section: [dataclasses.asdict(c) for c in getattr(diff, section)] for section in SECTIONS},
    })
