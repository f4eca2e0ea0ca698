"""What a machine's ruleset means for the flows it carries: every flow that enters or leaves it,
judged against what the catalogue says (must be open, must be closed), and what changes between
two rulesets (`firewall diff`): the flows a change would break, expose or fix.

A required flow any of whose ports would be dropped or rejected fails; so does a deny rule any of
whose ports this machine, its target, would accept (one that only leaves it is decided elsewhere).
Where the verdict is unknown, the status says so, never a guess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from csaudit.judge.packetfilter.flowcheck import Part, Side, Trace, trace
from csaudit.model.flows import Flow

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
STATUSES = (PASS, FAIL, UNKNOWN)
BAD = {"open": ("dropped", "rejected"), "closed": ("accepted",)}


@dataclasses.dataclass(frozen=True)
class FlowCheck:
    flow: Flow
    direction: str  # in (the machine is the flow's target), out (its source), both
    trace: Trace
    status: str  # pass, fail, unknown
    reason: str


@dataclasses.dataclass(frozen=True)
class Change:
    flow: Flow
    kind: str  # breaks (a required flow would fail), exposes (a deny rule would fail), fixes, changes
    old: FlowCheck | None
    new: FlowCheck | None


def flows_of(flows: Iterable[Flow], machine: str) -> list[tuple[Flow, str]]:
    """The flows that enter or leave the machine named so, and which way."""
    chosen = []
    for flow in flows:
        leaves, enters = flow.source.name == machine, flow.target.name == machine
        if leaves or enters:
            chosen.append((flow, "both" if leaves and enters else "out" if leaves else "in"))
    return chosen


def check_machine(flows: Iterable[Flow], machine: Side) -> list[FlowCheck]:
    checks = []
    for flow, direction in flows_of(flows, machine.name):
        source = machine if direction in ("out", "both") else None
        target = machine if direction in ("in", "both") else None
        checks.append(judge_trace(flow, direction, trace(flow, source, target)))
    return checks


def judge_trace(flow: Flow, direction: str, result: Trace) -> FlowCheck:
    if result.problem:
        return FlowCheck(flow, direction, result, UNKNOWN, f"cannot tell: {result.problem}")
    bad = [p for p in result.parts if p.verdict in BAD[flow.expect]]
    unknown = [p for p in result.parts if p.verdict == "unknown"]
    expected = "must be open" if flow.expect == "open" else "must be closed"
    if bad and flow.expect == "closed" and direction == "out":
        # A deny rule that leaves this machine (D01 from a host to the MS) is the target's or the network's to
        # close: this machine letting it out decides nothing, and blocking it here would pass.
        return FlowCheck(flow, direction, result, UNKNOWN, "decided elsewhere: it leaves this machine, its source "
                         "(" + describe_parts(flow, bad) + "); the target or a firewall on the way must close it")
    if bad:
        return FlowCheck(flow, direction, result, FAIL, f"{expected}, but " + describe_parts(flow, bad))
    if unknown:
        return FlowCheck(flow, direction, result, UNKNOWN, "cannot tell: " + describe_parts(flow, unknown, reasons_only=True))
    return FlowCheck(flow, direction, result, PASS, describe_parts(flow, list(result.parts)))


def describe_parts(flow: Flow, parts: list[Part], reasons_only: bool = False) -> str:
    whole = len(parts) == 1 and parts[0].ports.size() == (flow.port_end or flow.port) - flow.port + 1
    return "; ".join(("" if whole else f"ports {p.ports.text()}: ") + (p.reason if reasons_only else describe_part(p)) for p in parts)


def describe_part(part: Part) -> str:
    if part.verdict == "unknown":
        return f"unknown: {part.reason}"
    text = part.decision.text() if part.decision else part.verdict
    return f"{text} ({part.reason})" if part.reason else text


def summary(checks: Iterable[FlowCheck]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for check in checks:
        counts[check.status] += 1
    return counts


def diff_checks(old: list[FlowCheck], new: list[FlowCheck]) -> list[Change]:
    """The flows whose verdict differs between two rulesets, in the new plan's order."""
    before = {c.flow.id: c for c in old}
    after = {c.flow.id: c for c in new}
    changes = []
    for flow_id in [*after, *(f for f in before if f not in after)]:
        a, b = before.get(flow_id), after.get(flow_id)
        if a is not None and b is not None and [(p.ports.spans, p.verdict) for p in a.trace.parts] == \
                [(p.ports.spans, p.verdict) for p in b.trace.parts] and a.trace.problem == b.trace.problem:
            continue
        flow = (b or a).flow
        if b is not None and b.status == FAIL and (a is None or a.status != FAIL):
            kind = "breaks" if flow.expect == "open" else "exposes"
        elif a is not None and a.status == FAIL and (b is None or b.status == PASS):
            kind = "fixes"
        else:
            kind = "changes"
        changes.append(Change(flow, kind, a, b))
    return changes

