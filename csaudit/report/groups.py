"""What is wrong, grouped: the failed, errored, unverified and waived flows of a report by rule and
cause, each group with the objects it hits and what to do about it.

Pure and streaming: flows are report-document dicts (the `flows` of a csaudit/report/v1 document),
read once; memory holds one accumulator per group (and per rule a counter), never the flows, so
730,000 flows group in the memory of a few hundred. Old saved documents (no `failure`, `gap` or
`remedy` keys) group too: their cause falls back to the observed state or the status.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

from csaudit.model.vocabulary import Gap

# The order groups are read in: what is broken, what could not be probed, what was not verified,
# what an operator accepted.
GROUPED_STATUSES = ("fail", "error", "unverified", "waived")

# What would verify the flows of each gap, in the report's words.
UNVERIFIED_ADVICE = {
    Gap.NO_VANTAGE: "nothing here stands for their source: run csaudit there, or give it SSH access to it (--ssh-settings)",
    Gap.VANTAGE_UNAVAILABLE: "their vantage could not be used (see vantages): fix the access its reason names",
    Gap.NEEDS_OUTSIDE: "deny rules for outside the management network: name an outside vantage with --outside-host "
                       "[USER@]HOST (or run csaudit out there with --outside)",
    Gap.NO_ADDRESS: "the API does not give an address they need (the MySQL server: --db-host)",
    Gap.NOT_JUDGEABLE: "a connect cannot judge them (each flow's reason says why)",
    Gap.UNCONFIRMED: "UDP without a reply: open or filtered",
    Gap.NOT_PROBED: "not probed before the stop or the --deadline",
    Gap.ZONE_LISTING_FAILED: "their zone could not be listed from the API",
}


@dataclasses.dataclass(frozen=True)
class FlowGroup:
    status: str  # "fail", "error", "unverified" or "waived"
    rule: str  # "F08"
    title: str  # the rule's title
    cause: str  # fail/error: the flows' `failure`; unverified: their `gap`; waived: the waiver's reason
    count: int  # flows in the group
    of: int  # flows of that rule in the report, whatever their status ("37 of 2,000")
    objects: tuple[str, ...]  # the first names the group hits (see `side`)
    more: int  # how many distinct objects beyond `objects`
    side: str  # "source" or "target": which end `objects` names (the target when every flow has one source)
    role: str  # the role of the objects named ("host", "ssvm", ...)
    remedy: dict | None  # fail/error/waived: the rule's remedy {on, check, commands, citation}, when the flows carry one
    advice: str | None  # unverified: what would verify them
    example: dict  # the group's first flow (its port and protocol, target, reason)

    @property
    def distinct(self) -> int:
        """How many distinct objects the group hits on its `side`."""
        return len(self.objects) + self.more


class _Accumulator:
    """One group while the flows stream past: counts, the first names of each end, the distinct names."""

    __slots__ = ("example", "count", "sources", "targets", "first_sources", "first_targets")

    def __init__(self, example: dict) -> None:
        self.example = example
        self.count = 0
        self.sources: set[str] = set()
        self.targets: set[str] = set()
        self.first_sources: list[str] = []
        self.first_targets: list[str] = []

    def add(self, flow: dict, sample: int) -> None:
        self.count += 1
        _note(flow["source"]["name"], self.sources, self.first_sources, sample)
        _note(flow["target"]["name"], self.targets, self.first_targets, sample)


def _note(name: str, seen: set[str], first: list[str], sample: int) -> None:
    if name not in seen:
        seen.add(name)
        if len(first) < sample:
            first.append(name)


def cause_of(flow: dict) -> str:
    """The one word a group is made of: the failure (fail, error), the gap (unverified), the waiver's reason."""
    status = flow.get("status")
    if status == "waived":
        waiver = flow.get("waiver") or {}
        return waiver.get("reason") or flow.get("failure") or "waived"
    if status == "unverified":
        return flow.get("gap") or "unverified"
    return flow.get("failure") or flow.get("observed") or status or "unknown"


def group_flows(flows: Iterable[dict], sample: int = 8) -> list[FlowGroup]:
    """The groups of the flows that did not pass, ordered fail, error, unverified, waived; within a
    status by count (largest first), then rule. Passing flows only count towards their rule's `of`."""
    per_rule: Counter[str] = Counter()
    groups: dict[tuple[str, str, str, str], _Accumulator] = {}
    for flow in flows:
        rule = flow["rule"]
        per_rule[rule] += 1
        status = flow.get("status")
        if status not in GROUPED_STATUSES:
            continue
        key = (status, rule, flow.get("title") or "", cause_of(flow))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Accumulator(flow)
        group.add(flow, sample)
    ordered = sorted(groups.items(), key=lambda item: (GROUPED_STATUSES.index(item[0][0]), -item[1].count, item[0][1], item[0][3]))
    return [_group(key, group, per_rule[key[1]]) for key, group in ordered]


def _group(key: tuple[str, str, str, str], group: _Accumulator, of: int) -> FlowGroup:
    status, rule, title, cause = key
    # Name the end that varies: the sources, unless one source reaches many targets (the MS to every host).
    by_target = len(group.sources) == 1 and len(group.targets) > 1
    names, first = (group.targets, group.first_targets) if by_target else (group.sources, group.first_sources)
    side = "target" if by_target else "source"
    return FlowGroup(
        status=status, rule=rule, title=title, cause=cause, count=group.count, of=of,
        objects=tuple(first), more=len(names) - len(first), side=side, role=group.example[side].get("role") or "",
        remedy=group.example.get("remedy") if status != "unverified" else None,
        advice=UNVERIFIED_ADVICE.get(cause, cause) if status == "unverified" else None,
        example=group.example,
    )
