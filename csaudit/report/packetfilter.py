"""The reports of `csaudit firewall check` and `csaudit firewall diff`: a table (failures first) or a
JSON document (csaudit/firewall-check/v1, csaudit/firewall-diff/v1). Not to be confused with
report/firewall.py, which writes the flow plan as firewall rules."""

from __future__ import annotations

import json

from tabulate import tabulate

from csaudit import __version__
from csaudit.judge.packetfilter.flowcheck import Part
from csaudit.judge.packetfilter.whatif import FAIL, PASS, STATUSES, UNKNOWN, Change, FlowCheck, summary
from csaudit.report.common import endpoint_label, port_label, printable

CHECK_SCHEMA = "csaudit/firewall-check/v1"
DIFF_SCHEMA = "csaudit/firewall-diff/v1"
ORDER = {FAIL: 0, UNKNOWN: 1, PASS: 2}
DIRECTIONS = {"in": "in", "out": "out", "both": "in+out"}


def render_check(fmt: str, machine: str, origins: tuple[str, ...], checks: list[FlowCheck]) -> str:
    if fmt == "json":
        document = {"schema": CHECK_SCHEMA, "tool_version": __version__, "machine": machine, "rulesets": list(origins),
                    "summary": summary(checks), "flows": [_check_json(c) for c in checks]}
        return json.dumps(document, indent=2) + "\n"
    rows = [_row(c) for c in sorted(checks, key=lambda c: ORDER[c.status])]
    table = tabulate(rows, headers=["flow", "source", "target", "port/proto", "expect", "way", "result", "detail"],
                     tablefmt="simple", disable_numparse=True) if rows else "(no flow enters or leaves it)"
    counts = summary(checks)
    return (f"== firewall check of {machine} against {', '.join(origins)}\n{table}\n\n"
            f"summary: {len(checks)} flows: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES) + "\n")


def render_diff(fmt: str, machine: str, old: tuple[str, ...], new: tuple[str, ...], changes: list[Change]) -> str:
    if fmt == "json":
        document = {"schema": DIFF_SCHEMA, "tool_version": __version__, "machine": machine, "old": list(old), "new": list(new),
                    "changes": [{"kind": c.kind, "flow": c.flow.id, "old": _check_json(c.old) if c.old else None,
                                 "new": _check_json(c.new) if c.new else None} for c in changes]}
        return json.dumps(document, indent=2) + "\n"
    rows = [[c.kind, _flow_label(c.flow), port_label({"port": c.flow.port, "port_end": c.flow.port_end, "protocol": c.flow.protocol}),
             c.flow.expect, _verdicts(c.old), _verdicts(c.new), printable((c.new or c.old).reason)] for c in changes]
    head = f"== firewall diff for {machine}: {', '.join(old)} -> {', '.join(new)}\n"
    if not rows:
        return head + "no flow's verdict changes\n"
    table = tabulate(rows, headers=["change", "flow", "port/proto", "expect", "old", "new", "detail (new)"], tablefmt="simple",
                     disable_numparse=True)
    kinds = {kind: sum(c.kind == kind for c in changes) for kind in ("breaks", "exposes", "fixes", "changes")}
    return head + table + "\n\nsummary: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + "\n"


def _row(check: FlowCheck) -> list[str]:
    flow = check.flow
    return [_flow_label(flow), endpoint_label(_endpoint(flow.source)), endpoint_label(_endpoint(flow.target)),
            port_label({"port": flow.port, "port_end": flow.port_end, "protocol": flow.protocol}), flow.expect,
            DIRECTIONS[check.direction], check.status, printable(check.reason)]


def _flow_label(flow) -> str:
    return f"{flow.rule} {flow.source.name}->{flow.target.name}"


def _endpoint(endpoint) -> dict:
    return {"name": endpoint.name, "address": endpoint.address}


def _verdicts(check: FlowCheck | None) -> str:
    if check is None:
        return "(no such flow)"
    if check.trace.problem:
        return "unknown"
    return ", ".join(p.verdict if len(check.trace.parts) == 1 else f"{p.ports.text()} {p.verdict}" for p in check.trace.parts)


def _check_json(check: FlowCheck) -> dict:
    flow = check.flow
    return {"id": flow.id, "rule": flow.rule, "title": flow.title, "zone": flow.zone,
            "source": {"role": flow.source.role, "name": flow.source.name, "address": flow.source.address},
            "target": {"role": flow.target.role, "name": flow.target.name, "address": flow.target.address},
            "protocol": flow.protocol, "port": flow.port, "port_end": flow.port_end, "expect": flow.expect,
            "direction": check.direction, "status": check.status, "reason": check.reason,
            "parts": [_part_json(p) for p in check.trace.parts]}


def _part_json(part: Part) -> dict:
    first, last = part.ports.spans[0][0], part.ports.spans[-1][1]
    decision = part.decision
    ref = decision.ref if decision else None
    return {"ports": part.ports.text(), "first": first, "last": last, "verdict": part.verdict, "reason": part.reason or None,
            "decided_by": None if decision is None else {
                "machine": decision.machine, "role": decision.role, "direction": decision.direction, "packet": decision.what,
                "verdict": decision.verdict, "reject": decision.reject, "interface": decision.interface or None,
                "rule": None if ref is None else {"origin": ref.origin, "family": ref.family, "table": ref.table, "chain": ref.chain,
                                                  "position": ref.position, "text": ref.text}}}
