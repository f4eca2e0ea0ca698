"""Verdict: what each observation means for its flow. Never a pass without a probe."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from csaudit.derive import Flow
from csaudit.probe import Observation

if TYPE_CHECKING:
    from csaudit.waivers import Waiver

# "waived": a failure an operator accepted with a reason until a date (csaudit/waivers.py)
STATUSES = ("pass", "fail", "unverified", "error", "waived")


@dataclasses.dataclass(frozen=True)
class FlowResult:
    flow: Flow
    status: str
    observed: str | None
    reason: str
    vantage: str | None = None
    latency_ms: float | None = None
    waiver: Waiver | None = None  # set only when status is "waived"


def judge(flow: Flow, observation: Observation | None, vantage: str | None = None, unverified_reason: str = "") -> FlowResult:
    if observation is None:
        return FlowResult(flow, "unverified", None, unverified_reason or "not probed")
    state = observation.state
    if state == "error":
        status = "error"
    elif flow.expect == "open":
        status = "pass" if state == "open" else "fail"
    else:
        status = "fail" if state == "open" else "pass"
    reason = observation.reason
    if status == "fail" and flow.expect == "closed":
        reason = f"must be closed, but {reason}"
    elif status == "fail":
        reason = f"must be open, but {reason}"
    return FlowResult(flow, status, state, reason, vantage, observation.latency_ms)


def judge_all(flows, observed: dict[str, tuple[str, Observation]], unverified: dict[str, str]) -> tuple[FlowResult, ...]:
    results = []
    for flow in flows:
        if flow.id in observed:
            vantage, observation = observed[flow.id]
            results.append(judge(flow, observation, vantage))
        else:
            results.append(judge(flow, None, unverified_reason=unverified.get(flow.id, "not probed")))
    return tuple(results)


def summarize(results) -> dict[str, int]:
    summary = dict.fromkeys(STATUSES, 0)
    for result in results:
        summary[result.status] += 1
    return summary
