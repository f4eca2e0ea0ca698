"""What is wrong, grouped: the failed, errored, unverified and waived flows of a report by rule and
cause, each group with the objects it hits and what to do about it.

Pure and streaming: flows are report-document dicts (the `flows` of a csaudit/report/v1 document),
read once; memory holds one accumulator per group (and per rule a counter), never the flows, and
of the many zone-scoped objects only the current zone's names (_Names), so 730,000 flows group in
a few megabytes. Old saved documents (no `failure`, `gap` or `remedy` keys) group too: their cause
falls back to the observed state or the status.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

from csaudit.model.vocabulary import Gap
from csaudit.report.common import port_label

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
    role: str  # the role of the objects named ("host", "ssvm", ...); "" when they have several
    roles: tuple[str, str]  # the source and the target roles: "host", or "vr/ssvm/cpvm" when a rule names several
    ports: tuple[str, ...]  # the ports of its flows, "8250/tcp" or "5900-6100/tcp", sorted
    remedy: dict | None  # fail/error/waived: the rule's remedy {on, check, commands, citation}, when the flows carry one
    advice: str | None  # unverified: what would verify them
    example: dict  # the group's first flow (its port and protocol, target, reason)

    @property
    def distinct(self) -> int:
        """How many distinct objects the group hits on its `side`."""
        return len(self.objects) + self.more


# The roles with thousands of objects, each in one zone: their names are told apart per zone, and a
# zone's set is let go when the flows move on to the next one (reports list their flows zone by zone).
ZONE_SCOPED_ROLES = frozenset({"host", "ssvm", "cpvm", "vr"})


class _Names:
    """The distinct objects at one end of a group, in memory for one zone at a time: the few objects
    without a zone (MSs, the database, storage, this machine) in one set, the many zone-scoped ones
    in a set for the current zone, counted and dropped when the next zone begins. Two objects of the
    same name in two zones count twice (they are two objects); a zone that comes back after another
    counts its objects again (csaudit's own reports never do that)."""

    __slots__ = ("first", "unzoned", "zone", "zoned", "counted")

    def __init__(self) -> None:
        self.first: list[str] = []
        self.unzoned: set[str] = set()
        self.zone: str | None = None
        self.zoned: set[str] = set()
        self.counted = 0

    def add(self, endpoint: dict, zone: str | None, sample: int) -> None:
        name = endpoint["name"]
        if endpoint.get("role") in ZONE_SCOPED_ROLES:
            if zone != self.zone:
                self.counted += len(self.zoned)
                self.zoned, self.zone = set(), zone
            seen = self.zoned
        else:
            seen = self.unzoned
        if name not in seen:
            seen.add(name)
            if len(self.first) < sample:
                self.first.append(name)

    def __len__(self) -> int:
        return self.counted + len(self.zoned) + len(self.unzoned)


class _Accumulator:
    """One group while the flows stream past: counts, the first names of each end, the distinct objects."""

    __slots__ = ("example", "count", "sources", "targets", "ports", "roles")

    def __init__(self, example: dict) -> None:
        self.example = example
        self.count = 0
        self.sources = _Names()
        self.targets = _Names()
        self.ports: set[str] = set()  # a rule's few ports ("8250/tcp"), more than one when it lists several
        self.roles: tuple[set[str], set[str]] = (set(), set())  # the source and the target roles (a rule names a few)

    def add(self, flow: dict, sample: int) -> None:
        self.count += 1
        zone = flow.get("zone")
        self.sources.add(flow["source"], zone, sample)
        self.targets.add(flow["target"], zone, sample)
        self.ports.add(port_label(flow))
        self.roles[0].add(flow["source"].get("role") or "")
        self.roles[1].add(flow["target"].get("role") or "")


def cause_of(flow: dict) -> str:
    """The one word a group is made of: the failure (fail, error), the gap (unverified), the waiver's reason."""
    status = flow.get("status")
    if status == "waived":
        waiver = flow.get("waiver") or {}
        return waiver.get("reason") or flow.get("failure") or "waived"
    if status == "unverified":
        return flow.get("gap") or "unverified"
    return flow.get("failure") or flow.get("observed") or status or "unknown"


class FlowGrouper:
    """group_flows, one flow at a time: the result log feeds it as a run appends its results, so the
    terminal report needs no second pass over a large run's flows."""

    def __init__(self, sample: int = 8) -> None:
        self.sample = sample
        self._per_rule: Counter[str] = Counter()
        self._groups: dict[tuple[str, str, str, str], _Accumulator] = {}

    def add(self, flow: dict) -> None:
        rule = flow["rule"]
        self._per_rule[rule] += 1
        status = flow.get("status")
        if status not in GROUPED_STATUSES:
            return
        key = (status, rule, flow.get("title") or "", cause_of(flow))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Accumulator(flow)
        group.add(flow, self.sample)

    def groups(self) -> list[FlowGroup]:
        """Ordered fail, error, unverified, waived; within a status by count (largest first), then rule."""
        ordered = sorted(self._groups.items(),
                         key=lambda item: (GROUPED_STATUSES.index(item[0][0]), -item[1].count, item[0][1], item[0][3]))
        return [_group(key, group, self._per_rule[key[1]]) for key, group in ordered]


def group_flows(flows: Iterable[dict], sample: int = 8) -> list[FlowGroup]:
    """The groups of the flows that did not pass, ordered fail, error, unverified, waived; within a
    status by count (largest first), then rule. Passing flows only count towards their rule's `of`."""
    grouper = FlowGrouper(sample)
    for flow in flows:
        grouper.add(flow)
    return grouper.groups()


def _group(key: tuple[str, str, str, str], group: _Accumulator, of: int) -> FlowGroup:
    status, rule, title, cause = key
    # Name the end that varies: the sources, unless one source reaches many targets (the MS to every host).
    by_target = len(group.sources) == 1 and len(group.targets) > 1
    names = group.targets if by_target else group.sources
    first = names.first
    side = "target" if by_target else "source"
    return FlowGroup(
        status=status, rule=rule, title=title, cause=cause, count=group.count, of=of,
        objects=tuple(first), more=len(names) - len(first), side=side, role=_roles(group.roles[by_target]) if len(group.roles[by_target]) == 1 else "",
        roles=(_roles(group.roles[0]), _roles(group.roles[1])),
        ports=tuple(sorted(group.ports, key=_port_order)),
        remedy=group.example.get("remedy") if status != "unverified" else None,
        advice=UNVERIFIED_ADVICE.get(cause, cause) if status == "unverified" else None,
        example=group.example,
    )


def _roles(roles: set[str]) -> str:
    return "/".join(sorted(roles))


def _port_order(label: str) -> tuple[int, str]:
    return int(label.split("-")[0].split("/")[0]), label


# A group's cause as a verb phrase: (one flow, several).
_CAUSE_WORDS = {
    "timeout": ("times out", "time out"),
    "refused": ("is refused", "are refused"),
    "exposed": ("is open (must be closed)", "are open (must be closed)"),
    "wrong-service": ("is answered by another service, or none", "are answered by another service, or none"),
    "service-problem": ("reaches a service that is unusable", "reach a service that is unusable"),
    "probe-error": ("could not be probed", "could not be probed"),
}


def headline(group: FlowGroup) -> str:
    """'F08 host → ms 8250/tcp: 37 of 2,000 time out — KVM agent connects to the MS' (without the objects):
    the counts before the title, which a narrow terminal cuts first."""
    route = f"{group.roles[0]} → {group.roles[1]} {', '.join(group.ports)}"
    if group.status in ("fail", "error"):
        single, plural = _CAUSE_WORDS.get(group.cause, (f"failed: {group.cause}", f"failed: {group.cause}"))
        what = single if group.count == 1 else plural
    elif group.status == "waived":
        expires = (group.example.get("waiver") or {}).get("expires")
        what = f"waived until {expires}: {group.cause}" if expires else f"waived: {group.cause}"
    else:
        what = "unverified"
    return f"{group.rule} {route}: {group.count:,} of {group.of:,} {what} — {group.title}"


def objects_lead(group: FlowGroup) -> str:
    """What the object names that follow are: 'from 37 hosts' or 'from ms1 to 12 hosts'."""
    noun = _plural(group.role, group.distinct)
    if group.side == "target":
        return f"from {group.example['source']['name']} to {group.distinct:,} {noun}"
    return f"from {group.distinct:,} {noun}"


def _plural(role: str, count: int) -> str:
    if not role:
        return "object" if count == 1 else "objects"
    return role if count == 1 or role.endswith("s") or role.endswith("storage") else role + "s"
