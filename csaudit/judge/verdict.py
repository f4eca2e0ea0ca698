"""Verdict: what each observation means for its flow. Never a pass without a probe."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING

from csaudit.model.flows import Flow
from csaudit.model.probes import Observation, Unverifiable
from csaudit.model.results import STATUSES, FlowResult
from csaudit.model.vocabulary import Failure, Gap, State, Status

if TYPE_CHECKING:
    pass





def judge(flow: Flow, observation: Observation | None, vantage: str | None = None, unverified_reason: str = "") -> FlowResult:
    if observation is None:
        gap = unverified_reason.gap if isinstance(unverified_reason, Unverifiable) else Gap.NOT_PROBED
        return FlowResult(flow, Status.UNVERIFIED, None, unverified_reason or "not probed", gap=gap)
    state = observation.state
    status, reason, failure = _status(flow, observation)
    return FlowResult(flow, status, state, reason, vantage, observation.latency_ms,
                      observation.service, observation.detail, observation.warnings,
                      gap=Gap.UNCONFIRMED if status == Status.UNVERIFIED else None, failure=failure)


def _status(flow: Flow, observation: Observation) -> tuple[Status, str, Failure | None]:
    """The verdict, its reason in words, and what went wrong in one word (None when nothing did)."""
    state, reason = observation.state, observation.reason
    if state == State.ERROR:
        return Status.ERROR, reason, Failure.PROBE_ERROR
    if state == State.OPEN_FILTERED:  # UDP without a reply proves nothing either way
        return Status.UNVERIFIED, f"unconfirmed: {reason}", None
    if flow.expect == "closed":
        if state != State.OPEN:
            return Status.PASS, reason, None
        if observation.refused and not observation.mismatch:  # the application keeps this source out
            return Status.PASS, f"closed to this source by the service itself: {reason}", None
        if observation.danger:
            return Status.FAIL, f"critical: must be closed, but {reason} ({observation.danger})", Failure.EXPOSED
        return Status.FAIL, f"must be closed, but {reason}", Failure.EXPOSED
    if state != State.OPEN:
        return Status.FAIL, f"must be open, but {reason}", Failure.TIMEOUT if state == State.TIMEOUT else Failure.REFUSED
    if observation.mismatch:
        return Status.FAIL, f"port open, but {observation.mismatch}", Failure.WRONG_SERVICE
    if observation.problem:
        return Status.FAIL, f"{observation.service} answers, but {observation.problem}", Failure.SERVICE_PROBLEM
    return Status.PASS, reason, None


def judge_range(flow: Flow, ports: tuple[tuple[int, Observation], ...], vantage: str | None = None) -> FlowResult:
    """A port range probed on a sample of its ports. The first port is judged as a single flow would be.
    Where the range must be open, every other sampled port must be reached: refused is fine (the host
    answered; nothing listens there now, as for a VNC display without a VM), a timeout is not (dropped).
    Where it must be closed, no sampled port may accept."""
    (_, first), rest = ports[0], ports[1:]
    result = judge(flow, first, vantage)
    failing = next(((port, seen) for port, seen in rest if _fails_in_range(flow, seen)), None)
    if result.status == Status.PASS and failing is not None:
        port, seen = failing
        status, reason, failure = _status(flow, seen)
        result = dataclasses.replace(result, status=status, observed=seen.state, reason=f"port {port}: {reason}", failure=failure)
    sampled = ", ".join(f"{port} {seen.state}" for port, seen in ports)
    return dataclasses.replace(result, reason=f"{result.reason} (ports {flow.port}-{flow.port_end} sampled: {sampled})",
                               ports=tuple((port, seen.state) for port, seen in ports))


def _fails_in_range(flow: Flow, seen: Observation) -> bool:
    if flow.expect == "closed":
        return seen.state == State.OPEN
    return seen.state != State.REFUSED and _status(flow, seen)[0] != Status.PASS


def judge_all(flows, observed: dict[str, tuple[str, Observation]], unverified: dict[str, str],
              ranges: dict[str, tuple[tuple[int, Observation], ...]] | None = None) -> tuple[FlowResult, ...]:
    results = []
    for flow in flows:
        if flow.id in (ranges or {}):
            results.append(judge_range(flow, ranges[flow.id], observed[flow.id][0]))
        elif flow.id in observed:
            vantage, observation = observed[flow.id]
            results.append(judge(flow, observation, vantage))
        else:
            results.append(judge(flow, None, unverified_reason=unverified.get(flow.id, "not probed")))
    return tuple(results)


def summarize(results) -> dict:
    results = tuple(results)
    return summary_of(Counter(r.status for r in results), Counter(r.gap for r in results if r.status == Status.UNVERIFIED))


def summary_of(statuses: Counter, gaps: Counter) -> dict:
    """The count of each status, and the coverage: how many flows got a verdict (pass, fail, waived) out of how
    many, and the unverified ones by what keeps them so."""
    verified = statuses[Status.PASS] + statuses[Status.FAIL] + statuses[Status.WAIVED]
    return {**{status: statuses[status] for status in STATUSES},
            "coverage": {"verified": verified, "flows": sum(statuses.values()),
                         "unverified": {gap: gaps[gap] for gap in Gap if gaps[gap]}}}
