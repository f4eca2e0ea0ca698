"""What a run concluded: a status per flow (FlowResult), the waivers that accept a failure, and the API cross-check's findings."""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch

from csaudit.model.flows import Flow
from csaudit.model.vocabulary import Failure, Gap, State, Status

STATUSES = tuple(Status)
# Finding.kind, written by judge/crosscheck.py, and what it means: the API and the network disagree (the first
# four), or CloudStack's own evidence shows a fault a connect cannot probe (the routers' health checks, VRRP pairs).
FINDING_KINDS = {
    "api-up-unreachable": "the API says they are up, but their vantage cannot be reached",
    "api-down-answers": "the API says they are down, but they answer",
    "api-up-silent": "the API says they are up, but no connection to them was accepted",
    "agent-up-unconnected": "the API says their agent is up, but from their machine no MS accepts the agent port",
    "vr-health-check-failed": "the router's own health checks fail",
    "vr-pair-split-brain": "both routers of a redundant pair are MASTER",
    "vr-pair-no-master": "no router of a redundant pair is MASTER",
}


@dataclasses.dataclass(frozen=True, slots=True)
class FlowResult:
    flow: Flow
    status: Status
    observed: str | None
    reason: str
    vantage: str | None = None
    latency_ms: float | None = None
    service: str | None = None  # what answered, when a protocol probe ran
    detail: str | None = None
    warnings: tuple[str, ...] = ()
    waiver: Waiver | None = None  # set only when status is "waived"
    ports: tuple[tuple[int, State], ...] = ()  # a port range: each sampled port and what it gave
    gap: Gap | None = None  # why it stays unverified (status unverified only)
    failure: Failure | None = None  # what went wrong (status fail and error, and the failure a waiver accepts)
    firewall: str | None = None  # a failed flow: what the rulesets read on its machines say (run --collect-firewall)


@dataclasses.dataclass(frozen=True)
class Waiver:
    reason: str
    expires: datetime.date
    rule: str | None = None  # glob on the rule id
    flow: str | None = None  # glob on the flow id
    where: str = ""  # file:line, for messages

    def matches(self, result: FlowResult) -> bool:
        return ((self.rule is None or fnmatch.fnmatchcase(result.flow.rule, self.rule))
                and (self.flow is None or fnmatch.fnmatchcase(result.flow.id, self.flow)))

    def expired(self, today: datetime.date) -> bool:
        return today > self.expires

    def describe(self) -> str:
        return " and ".join(f"{key} {value}" for key, value in (("rule", self.rule), ("flow", self.flow)) if value)


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str  # one of FINDING_KINDS
    role: str
    name: str
    api_state: str
    message: str
    members: tuple[str, ...] = ()  # a finding on a group (a redundant router pair): the objects in it
