"""A packet filter's ruleset in one vocabulary for nftables and iptables, and how each match tests a
packet. The parsers (nftables.py, iptables.py) build it; evaluate.py walks it.

A packet's fields that are not known exactly are sets (Intervals): the ephemeral source port, the
ports of a range flow, any address. A match that holds for part of such a set splits the packet in
two; a match the evaluator does not model (a rate limit, a mark, a socket lookup) forks it without
narrowing anything, so the outcome is known only where both branches agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from csaudit.judge.packetfilter.intervals import IPV4, IPV6, PORTS, PROTOCOLS, Intervals

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
PORT_PROTOCOLS = frozenset({TCP, UDP, 33, 132, 136})  # tcp, udp, dccp, sctp, udplite: they have ports
PROTOCOL_NUMBERS = {"tcp": TCP, "udp": UDP, "icmp": ICMP, "icmpv6": ICMPV6, "ipv6-icmp": ICMPV6, "dccp": 33, "sctp": 132,
                    "udplite": 136, "gre": 47, "esp": 50, "ah": 51, "igmp": 2, "ipip": 4, "ospf": 89, "vrrp": 112}
PROTOCOL_NAMES = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPV6: "icmpv6"}
CT_STATES = ("new", "established", "related", "invalid", "untracked")
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
              "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
              "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
              "address-mask-request": 17, "address-mask-reply": 18}
ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
                "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
                "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134,
                "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138,
                "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142, "mld2-listener-report": 143}
# the answer a reject sends: ICMP (type 3) and ICMPv6 (type 1) codes, by the name of the reject's type
UNREACHABLE = {4: (3, {"net-unreachable": 0, "host-unreachable": 1, "prot-unreachable": 2, "port-unreachable": 3,
                       "net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13, "no-route": 0, "addr-unreachable": 1}),
               6: (1, {"no-route": 0, "admin-prohibited": 1, "addr-unreachable": 3, "port-unreachable": 4, "host-unreachable": 3,
                       "policy-fail": 5, "reject-route": 6})}
TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80}
CONNTRACK_PRIORITY = -200  # chains before it see packets conntrack has not looked at yet
HOOK_PATHS = {"in": ("prerouting", "input"), "out": ("output", "postrouting")}


# ---------------------------------------------------------------- packets
@dataclasses.dataclass(frozen=True, slots=True)
class Packet:
    family: int  # 4 or 6
    l4proto: int
    saddr: Intervals
    daddr: Intervals
    sport: Intervals | None  # None: the protocol has no ports (ICMP)
    dport: Intervals | None
    iif: str | None  # "" on the output path (no input interface); None: not known
    oif: str | None
    ct_state: str  # new, established, related: what conntrack says of it
    tcp_flags: int | None = None
    icmp_type: int | None = None  # an ICMP packet (a reject's answer): its type and code
    icmp_code: int | None = None


# The copies a walk makes of every packet, written out: dataclasses.replace costs several times as much.
def crossing(packet: Packet, iif: str | None, oif: str | None) -> Packet:
    """The packet on one machine's interfaces."""
    return Packet(packet.family, packet.l4proto, packet.saddr, packet.daddr, packet.sport, packet.dport, iif, oif,
                  packet.ct_state, packet.tcp_flags, packet.icmp_type, packet.icmp_code)


def reversed_packet(packet: Packet) -> Packet:
    """The same connection the other way: addresses and ports swapped; interfaces not known yet."""
    return Packet(packet.family, packet.l4proto, packet.daddr, packet.saddr, packet.dport, packet.sport, None, None,
                  packet.ct_state, packet.tcp_flags, packet.icmp_type, packet.icmp_code)


def in_state(packet: Packet, ct_state: str, tcp_flags: int | None) -> Packet:
    """Another packet of the connection: conntrack's state and the TCP flags change."""
    return Packet(packet.family, packet.l4proto, packet.saddr, packet.daddr, packet.sport, packet.dport, packet.iif, packet.oif,
                  ct_state, tcp_flags, packet.icmp_type, packet.icmp_code)


# ---------------------------------------------------------------- where a rule came from
@dataclasses.dataclass(frozen=True, slots=True)
class RuleRef:
    origin: str  # the file, or the machine and the command it was read with
    family: str  # nft family (ip, ip6, inet); iptables: ip or ip6
    table: str
    chain: str
    position: str  # "handle 12", "line 34", "policy"
    text: str  # the rule as written, or "policy drop"

    @property
    def is_policy(self) -> bool:
        return self.text.startswith("policy ")

    def describe(self) -> str:
        if self.is_policy:
            where = f", {self.position}" if self.position != "policy" else ""
            return f"the {self.text} of chain {self.chain} (table {self.family} {self.table}{where})"
        return f"`{self.text}` (table {self.family} {self.table}, chain {self.chain}, {self.position})"


# ---------------------------------------------------------------- keys: what a match reads of a packet
ABSENT = object()  # the packet lacks the header the key reads (`tcp dport` of a UDP packet): no match, whatever the operator


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    """A numeric field: an address (of one family), a port (of some protocols), the protocol, the family."""

    field: str  # saddr, daddr, sport, dport, l4proto, family, icmp_type, icmp_code
    family: int | None = None  # addresses (and `ip protocol`): only packets of this family have it
    protocols: frozenset[int] | None = None  # ports, ICMP types: only these protocols (ports: None is any with ports, `th`)
    label: str = ""

    @property
    def domain(self) -> tuple[int, int]:
        if self.field in ("saddr", "daddr"):
            return IPV4 if self.family == 4 else IPV6
        if self.field in ("sport", "dport"):
            return PORTS
        return PROTOCOLS

    def read(self, packet: Packet):
        """Intervals, ABSENT, or None when the value is there but its bytes are not modelled (`th` of ICMP)."""
        if self.family is not None and packet.family != self.family:
            return ABSENT
        if self.field in ("sport", "dport"):
            if self.protocols is not None:
                return getattr(packet, self.field) if packet.l4proto in self.protocols else ABSENT
            return getattr(packet, self.field) if packet.l4proto in PORT_PROTOCOLS else None
        if self.field in ("icmp_type", "icmp_code"):
            value = getattr(packet, self.field)
            return ABSENT if packet.l4proto not in self.protocols else None if value is None else Intervals.of(value)
        if self.field == "l4proto":
            return Intervals.of(packet.l4proto)
        if self.field == "family":
            return Intervals.of(packet.family)
        return getattr(packet, self.field)

    def narrow(self, packet: Packet, values: Intervals) -> Packet:
        if self.field in ("l4proto", "family", "icmp_type", "icmp_code"):
            return packet
        return dataclasses.replace(packet, **{self.field: values})


@dataclasses.dataclass(frozen=True, slots=True)
class InterfaceKey:
    field: str  # iif, oif

    def read(self, packet: Packet):
        return getattr(packet, self.field)


def interface_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """`eth*` (nft) and `eth+` (iptables, stored as `eth*`) match every name that starts with eth."""
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


# ---------------------------------------------------------------- matches
Split = tuple[Packet | None, Packet | None, str | None]  # (the packet where it matches, where not, a fork's reason)


@dataclasses.dataclass(frozen=True, slots=True)
class InSet:
    """key in values (negate: not in). Splits the packet's set of values in two."""

    key: Key
    values: Intervals
    negate: bool = False
    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        have = self.key.read(packet)
        if have is ABSENT:
            return None, packet, None
        if have is None:
            return packet, packet, f"{self.text}: the {self.key.field} of a {PROTOCOL_NAMES.get(packet.l4proto, packet.l4proto)} packet"
        value = have.single()
        if value is not None:  # the common case: one address, one port
            return (packet, None, None) if (value in self.values) != self.negate else (None, packet, None)
        inside = have.intersection(self.values)
        if not inside:
            return (packet, None, None) if self.negate else (None, packet, None)
        outside = have.difference(self.values)
        if not outside:
            return (None, packet, None) if self.negate else (packet, None, None)
        if self.negate:
            inside, outside = outside, inside
        return self.key.narrow(packet, inside), self.key.narrow(packet, outside), None


@dataclasses.dataclass(frozen=True, slots=True)
class AnyPort:
    """iptables `-m multiport --ports`: the source or the destination port is in values."""

    protocols: frozenset[int]
    values: Intervals
    negate: bool = False
    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        if packet.l4proto not in self.protocols:
            return None, packet, None
        dport_in = packet.dport.intersection(self.values)
        sport_in = packet.sport.intersection(self.values)
        if dport_in == packet.dport:  # every packet matches through its destination port
            return (None, packet, None) if self.negate else (packet, None, None)
        if dport_in:  # part of the destination ports match whatever the source port: not representable as one packet
            return packet, packet, f"{self.text}: source or destination port"
        # no destination port matches: it comes down to the source port
        sport_out = packet.sport.difference(self.values)
        inside = dataclasses.replace(packet, sport=sport_in) if sport_in else None
        outside = dataclasses.replace(packet, sport=sport_out) if sport_out else None
        return (outside, inside, None) if self.negate else (inside, outside, None)


@dataclasses.dataclass(frozen=True, slots=True)
class InNames:
    key: InterfaceKey
    names: tuple[str, ...]
    negate: bool = False
    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        name = self.key.read(packet)
        if name is None:
            return packet, packet, f"{self.text}: the {'input' if self.key.field == 'iif' else 'output'} interface is not known " \
                                   "(give the machine's interfaces: --addresses or --iface)"
        hit = interface_matches(name, self.names) != self.negate
        return (packet, None, None) if hit else (None, packet, None)


@dataclasses.dataclass(frozen=True, slots=True)
class CtState:
    states: frozenset[str]
    negate: bool = False
    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        if context.before_conntrack:
            return packet, packet, f"{self.text}: the chain runs before conntrack (priority below {CONNTRACK_PRIORITY})"
        hit = (packet.ct_state in self.states) != self.negate
        return (packet, None, None) if hit else (None, packet, None)


@dataclasses.dataclass(frozen=True, slots=True)
class TcpFlags:
    test: Callable[[int], bool]
    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        if packet.l4proto != TCP:
            return None, packet, None
        return (packet, None, None) if self.test(packet.tcp_flags or 0) else (None, packet, None)


@dataclasses.dataclass(frozen=True, slots=True)
class Concat:
    """nft `ip saddr . tcp dport @pairs`: each element gives each key its set of values."""

    keys: tuple[Key | InterfaceKey, ...]
    elements: tuple[tuple[Intervals | tuple[str, ...], ...], ...]
    negate: bool = False
    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        values = []
        for key in self.keys:
            have = key.read(packet)
            if have is ABSENT:
                return None, packet, None
            if have is None:
                return packet, packet, f"{self.text}: {getattr(key, 'field', '?')} not known"
            values.append(have)
        inside = any(all(_element_covers(part, have) for part, have in zip(element, values, strict=True)) for element in self.elements)
        outside = all(any(_element_misses(part, have) for part, have in zip(element, values, strict=True)) for element in self.elements)
        if inside == outside:  # the packet's values straddle an element: match for some of them only
            return packet, packet, f"{self.text}: matches only part of the packet's possible values"
        hit = inside != self.negate
        return (packet, None, None) if hit else (None, packet, None)


def _element_covers(part, have) -> bool:
    return interface_matches(have, part) if isinstance(have, str) else have.issubset(part)


def _element_misses(part, have) -> bool:
    return not interface_matches(have, part) if isinstance(have, str) else have.isdisjoint(part)


@dataclasses.dataclass(frozen=True, slots=True)
class Unmodelled:
    """A match the evaluator does not model: the packet may match or not."""

    text: str

    def split(self, packet: Packet, context: Context) -> Split:
        return packet, packet, f"`{self.text}` is not modelled"


@dataclasses.dataclass(frozen=True, slots=True)
class Always:
    """What changes nothing for the verdict (a counter, a log, a comment): it holds for every packet."""

    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        return packet, None, None


@dataclasses.dataclass(frozen=True, slots=True)
class Never:
    """A match no packet of the evaluator's can meet (iptables `-f`: a non-first fragment)."""

    text: str = ""

    def split(self, packet: Packet, context: Context) -> Split:
        return None, packet, None


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    before_conntrack: bool = False


Match = InSet | AnyPort | InNames | CtState | TcpFlags | Concat | Unmodelled | Always | Never


# ---------------------------------------------------------------- what a rule does
@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # accept, drop, reject, jump, goto, return, continue
    target: str | None = None  # jump, goto: the chain
    reject: str | None = None  # reject: "tcp reset" or "icmp <type>"


@dataclasses.dataclass(frozen=True, slots=True)
class VerdictMap:
    """nft `tcp dport vmap { 22 : accept, 80 : jump web }`: the first element holding the key decides."""

    keys: tuple[Key | InterfaceKey, ...]
    entries: tuple[tuple[tuple[Intervals | tuple[str, ...], ...], Verdict], ...]
    text: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Unsupported:
    """A statement that changes the packet or its fate in a way not modelled (NAT, marks, queues):
    where a packet reaches it, its outcome is unknown."""

    text: str


Step = Match | Verdict | VerdictMap | Unsupported


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    ref: RuleRef
    steps: tuple[Step, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Base:
    """What makes a chain a base chain: where the kernel calls it."""

    hook: str  # prerouting, input, output, postrouting (others are not on a local packet's path)
    priority: int
    type: str = "filter"  # filter, nat, route
    policy: str = "accept"
    policy_ref: RuleRef | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    family: str  # ip, ip6, inet; bridge or netdev chains become opaque (see Ruleset.opaque)
    table: str
    name: str
    rules: tuple[Rule, ...]
    base: Base | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.family, self.table, self.name)


FAMILIES = {"ip": (4,), "ip6": (6,), "inet": (4, 6)}


@dataclasses.dataclass(frozen=True)
class Ruleset:
    chains: dict[tuple[str, str, str], Chain]
    origins: tuple[str, ...] = ()
    # base chains of families not modelled (bridge, netdev) that could drop a packet: (hook side, why)
    opaque: tuple[tuple[str, str], ...] = ()
    # chain key -> its ChainIndex (index.py), made when a packet first walks a long chain
    indexes: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    _bases: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def base_chains(self, family: int, hooks: tuple[str, ...], new: bool) -> list[Chain]:
        """The base chains a packet of this family meets on these hooks, in the kernel's order: by hook,
        then by priority. NAT chains see only a connection's first packet."""
        known = self._bases.get((family, hooks, new))
        if known is not None:
            return known
        chosen = []
        for order, hook in enumerate(hooks):
            for chain in self.chains.values():
                base = chain.base
                if base is None or base.hook != hook or family not in FAMILIES.get(chain.family, ()):
                    continue
                if base.type == "nat" and not new:
                    continue
                chosen.append((order, base.priority, chain))
        chosen.sort(key=lambda item: (item[0], item[1]))
        self._bases[(family, hooks, new)] = [chain for _, _, chain in chosen]
        return self._bases[(family, hooks, new)]

    def chain(self, family: str, table: str, name: str) -> Chain | None:
        return self.chains.get((family, table, name))

    def rule_count(self) -> int:
        return sum(len(chain.rules) for chain in self.chains.values())
