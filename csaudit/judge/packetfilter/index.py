"""Which rules of a chain a packet can match at all, so the walk skips the others: for a host's
1,000-rule input chain, a packet to port 22 from one address meets the handful of rules that name
that port or that address (or neither), not the thousand.

Each rule's plain matches on the protocol, the family, the ports and the addresses are what it
requires of a packet (a negated one: everything else). Per field, the chain keeps the points where
some rule's requirement starts or ends, and for each stretch between them the rules it admits, as
one integer with a bit per rule; a packet's candidates are the AND of its fields' masks. A rule
that requires nothing of a field is in every stretch of it. Only ever a superset of the rules that
match: the walk still tests every candidate in full.
"""

from __future__ import annotations

import bisect

from csaudit.judge.packetfilter.intervals import IPV4, IPV6, PORTS, PROTOCOLS, Intervals
from csaudit.judge.packetfilter.ruleset import InSet, Key, Packet, Rule, Unsupported, Verdict, VerdictMap

INDEXED_FIELDS = ("l4proto", "family", "sport", "dport", "saddr4", "saddr6", "daddr4", "daddr6")
DOMAINS = {"l4proto": PROTOCOLS, "family": (4, 6), "sport": PORTS, "dport": PORTS,
           "saddr4": IPV4, "saddr6": IPV6, "daddr4": IPV4, "daddr6": IPV6}
MIN_RULES = 8  # a shorter chain is walked whole
WIDE = 32  # stretches a packet's set may span before its field is left to the walk


class _Field:
    """One field's stretches: `starts[i]` opens the stretch whose admitted rules are `masks[i]`."""

    __slots__ = ("base", "starts", "masks")

    def __init__(self, requirements: list[tuple[int, Intervals]], everyone: int):
        required = 0
        toggles: dict[int, int] = {}
        for bit, allowed in requirements:
            required |= bit
            for first, last in allowed.spans:  # a rule's spans never touch: on at the start, off after the end
                toggles[first] = toggles.get(first, 0) ^ bit
                toggles[last + 1] = toggles.get(last + 1, 0) ^ bit
        self.base = everyone & ~required  # the rules that require nothing of this field
        self.starts, self.masks = [], []
        current = 0
        for point in sorted(toggles):
            current ^= toggles[point]
            self.starts.append(point)
            self.masks.append(self.base | current)

    def mask(self, values: Intervals, everyone: int) -> int:
        """The rules admitted anywhere in `values`; a set that spans many stretches (any client's
        address) gets every rule, a superset that costs nothing to make."""
        starts, masks, base = self.starts, self.masks, self.base
        spans = values.spans
        if len(spans) > 1 and bisect.bisect_right(starts, spans[-1][1]) - bisect.bisect_right(starts, spans[0][0]) > WIDE:
            return everyone
        union = 0
        for first, last in spans:
            index = bisect.bisect_right(starts, first) - 1
            end = bisect.bisect_right(starts, last)
            if end - index > WIDE:
                return everyone
            union |= masks[index] if index >= 0 else base
            for mask in masks[index + 1:end]:
                union |= mask
        return union


class ChainIndex:
    __slots__ = ("everyone", "fields")

    def __init__(self, rules: tuple[Rule, ...]):
        self.everyone = (1 << len(rules)) - 1
        requirements: dict[str, dict[int, Intervals]] = {name: {} for name in INDEXED_FIELDS}
        for position, rule in enumerate(rules):
            bit = 1 << position
            for field, allowed in _requirements(rule):
                known = requirements[field].get(bit)
                requirements[field][bit] = allowed if known is None else known.intersection(allowed)
        self.fields = {name: _Field(list(wanted.items()), self.everyone) for name, wanted in requirements.items() if wanted}

    def candidates(self, packet: Packet) -> int:
        mask = self.everyone
        fields = self.fields
        for name, values in (("l4proto", Intervals.of(packet.l4proto)), ("family", Intervals.of(packet.family)),
                             ("sport", packet.sport), ("dport", packet.dport),
                             (f"saddr{packet.family}", packet.saddr), (f"daddr{packet.family}", packet.daddr)):
            field = fields.get(name)
            if field is not None and values is not None:  # a packet without ports (ICMP) leaves the port rules to the walk
                mask &= field.mask(values, self.everyone)
                if not mask:
                    return 0
        return mask


def _requirements(rule: Rule):
    """(field, allowed values) for each plain match of the rule before its verdict."""
    for step in rule.steps:
        if isinstance(step, (Verdict, VerdictMap, Unsupported)):
            return
        if not isinstance(step, InSet):
            continue
        key: Key = step.key
        allowed = step.values.complement(key.domain) if step.negate else step.values
        if key.family is not None:  # an address (or `ip protocol`): that family only
            yield "family", Intervals.of(key.family)
        if key.field in ("sport", "dport"):
            if key.protocols is None:
                continue  # `th`: an ICMP packet's bytes there are not modelled; the walk decides
            yield "l4proto", Intervals((p, p) for p in key.protocols)
            yield key.field, allowed
        elif key.field in ("saddr", "daddr"):
            yield f"{key.field}{key.family}", allowed
        elif key.field in ("l4proto", "family"):
            yield key.field, allowed
