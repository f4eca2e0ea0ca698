"""A flow through the rulesets of the machines at its ends, and what that means for the flow.

A probe is a new connection: its first packet leaves the source (output, postrouting) and enters
the target (prerouting, input) with conntrack state new, from an ephemeral source port. If the
target accepts it, the reply (state established) must leave the target and enter the source, and
then the connection's later packets must pass too (over TCP the handshake's ACK, without which the
target never accepts, and the target's first data; over UDP the source's next datagram). If a rule
rejects a packet from the source, the reject's answer (a TCP reset or an ICMP error, state related
where it is made) must make the way back, or the source sees nothing, as for a drop. Each machine
takes part only where its ruleset is known. The verdict holds per destination port: a range flow
(VNC 5900-6100) may be accepted on some of its ports and dropped on others.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from csaudit.judge.packetfilter.evaluate import Outcome, evaluate
from csaudit.judge.packetfilter.interfaces import Interfaces
from csaudit.judge.packetfilter.intervals import EPHEMERAL, IPV4, IPV6, Intervals
from csaudit.judge.packetfilter.ruleset import (
    ICMP,
    ICMPV6,
    TCP,
    TCP_FLAGS,
    UDP,
    UNREACHABLE,
    Packet,
    RuleRef,
    Ruleset,
    crossing,
    in_state,
    reversed_packet,
)
from csaudit.model.flows import Flow

SYN, ACK = TCP_FLAGS["syn"], TCP_FLAGS["ack"]
SYN_ACK, RST_ACK, PSH_ACK = SYN | ACK, TCP_FLAGS["rst"] | ACK, TCP_FLAGS["psh"] | ACK
VERDICT_WORDS = {"accept": "accepted", "drop": "dropped", "reject": "rejected", "unknown": "unknown"}
WHAT_WORDS = {"request": "", "reply": "the reply ", "answer": "the reject's answer ", "later": "the source's next packet ",
              "later-reply": "the target's data "}


@dataclasses.dataclass(frozen=True)
class Side:
    """A machine on the flow's path whose ruleset is known."""

    name: str
    ruleset: Ruleset
    interfaces: Interfaces = Interfaces()


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one machine's ruleset did to one packet of the flow."""

    machine: str
    role: str  # source, target
    direction: str  # in, out
    what: str  # request (the connection's first packet), reply, answer (a reject's)
    verdict: str  # accept, drop, reject
    ref: RuleRef | None
    reject: str | None = None
    interface: str = ""  # the interface it crossed, and why that one

    def text(self) -> str:
        by = f" by {self.ref.describe()}" if self.ref is not None else " (no base chain on its path)"
        where = f"on {self.machine} ({self.role}, {'input' if self.direction == 'in' else 'output'}"
        where += f", {self.interface})" if self.interface else ")"
        how = f" with {self.reject}" if self.verdict == "reject" and self.reject else ""
        return f"{WHAT_WORDS[self.what]}{VERDICT_WORDS[self.verdict]}{how}{by} {where}"


@dataclasses.dataclass(frozen=True)
class Part:
    """The verdict for some of the flow's destination ports."""

    ports: Intervals
    verdict: str  # accepted, dropped, rejected, unknown
    decision: Decision | None = None  # what decided (accepted: the most telling accept)
    reason: str = ""  # unknown: why; dropped by way of a reply or an answer: what happened first
    accepted_by: tuple[Decision, ...] = ()


@dataclasses.dataclass(frozen=True)
class Trace:
    parts: tuple[Part, ...] = ()
    problem: str = ""  # why the flow cannot be evaluated at all (an address that is not known)


@dataclasses.dataclass(frozen=True, slots=True)
class _Final:
    verdict: str
    decision: Decision | None
    accepted: tuple[Decision, ...]
    ports: Intervals
    sports: Intervals
    saddrs: Intervals
    reason: str = ""
    forks: tuple[str, ...] = ()


# ---------------------------------------------------------------- packets of a flow
def request_packet(flow: Flow) -> Packet | str:
    """The connection's first packet, or why there is none to evaluate."""
    target = _address(flow.target.address, flow.target)
    if isinstance(target, str):
        return target
    family, daddr = target
    if flow.source.address:
        source = _address(flow.source.address, flow.source)
        if isinstance(source, str):
            return source
        if source[0] != family:
            return f"source {flow.source.address} and target {flow.target.address} are not of the same IP version"
        saddr = Intervals.of(source[1])
        first, last = LINK_LOCAL[family]
        if first <= daddr <= last and not first <= source[1] <= last:
            # A link-local address is reached only over its own link, from the sender's link-local address
            # (a KVM host's cloud0), not from the address the API lists for the sender.
            saddr = Intervals.of(first, last)
    else:
        saddr = Intervals.everything(IPV4 if family == 4 else IPV6)  # any client: this machine stands for them all
    protocol = {"tcp": TCP, "udp": UDP}.get(flow.protocol)
    if protocol is None:
        return f"protocol {flow.protocol} is not modelled"
    return Packet(family, protocol, saddr, Intervals.of(daddr), Intervals.of(*EPHEMERAL),
                  Intervals.of(flow.port, flow.port_end or flow.port), None, None, "new", SYN if protocol == TCP else None)


LINK_LOCAL = {family: (int(network.network_address), int(network.broadcast_address))
              for family, network in ((4, ipaddress.ip_network("169.254.0.0/16")), (6, ipaddress.ip_network("fe80::/10")))}


def _address(address: str | None, endpoint) -> tuple[int, int] | str:
    if not address:
        return f"the address of {endpoint.role} {endpoint.name} is not known"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"the address of {endpoint.role} {endpoint.name} is the name {address!r}, not an IP address"
    return parsed.version, int(parsed)


def _answer(packet: Packet, reject: str | None) -> Packet:
    """A reject's answer to `packet` (as it was on the wire): a TCP reset, or an ICMP error (ICMPv6
    for IPv6) without ports."""
    answer = reversed_packet(packet)
    if reject == "tcp reset" and packet.l4proto == TCP:
        return dataclasses.replace(answer, tcp_flags=RST_ACK)
    icmp_type, codes = UNREACHABLE[packet.family]
    name = (reject or "icmp port-unreachable").removeprefix("icmp ")
    return dataclasses.replace(answer, l4proto=ICMP if packet.family == 4 else ICMPV6, sport=None, dport=None, tcp_flags=None,
                               icmp_type=icmp_type, icmp_code=codes.get(name, codes["port-unreachable"]))


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """One packet of the connection: `what` it is, which way it goes, conntrack's state, TCP flags."""

    what: str  # request, reply, later (the source's next packet), later-reply (the target's data)
    forward: bool  # from the source to the target
    ct_state: str
    tcp_flags: int | None


# A TCP connection: the SYN; the SYN-ACK; the handshake's ACK (without it the target never accepts);
# the target's first data. UDP: the datagram, the answer, and the source's next datagram.
TCP_STEPS = (_Step("request", True, "new", SYN), _Step("reply", False, "established", SYN_ACK),
             _Step("later", True, "established", ACK), _Step("later-reply", False, "established", PSH_ACK))
UDP_STEPS = (_Step("request", True, "new", None), _Step("reply", False, "established", None), _Step("later", True, "established", None))


@dataclasses.dataclass(frozen=True, slots=True)
class _Walk:
    packet: Packet  # the request as narrowed so far (source to target, whatever step it is at)
    step: int
    accepted: tuple[Decision, ...]
    forks: tuple[str, ...]


# ---------------------------------------------------------------- the walk
def trace(flow: Flow, source: Side | None, target: Side | None, request: Packet | None = None) -> Trace:
    request = request or request_packet(flow)
    if isinstance(request, str):
        return Trace(problem=request)
    steps = TCP_STEPS if request.l4proto == TCP else UDP_STEPS
    forward = ((source, "out", "source"), (target, "in", "target"))
    backward = ((target, "out", "target"), (source, "in", "source"))
    finals: list[_Final] = []
    work = [_Walk(request, 0, (), ())]
    while work:
        walk = work.pop()  # depth first: one case through every step, then the next
        if _settled(finals, walk.packet.dport):
            continue  # its ports already have two verdicts: unknown, whatever this case gives
        if walk.step == len(steps):
            target_accept = next((d for d in walk.accepted if d.role == "target" and d.what == "request"), None)
            finals.append(_final("accept", target_accept or (walk.accepted[0] if walk.accepted else None), walk, walk.packet))
            continue
        step = steps[walk.step]
        wire = in_state(walk.packet if step.forward else reversed_packet(walk.packet), step.ct_state, step.tcp_flags)
        for verdict, packet, decision, hop, forks, reason in _hops(forward if step.forward else backward, wire, step.what):
            narrowed = packet if step.forward else reversed_packet(packet)  # back to the request's point of view
            forks = walk.forks + forks
            if verdict == "accept":
                work.append(_Walk(narrowed, walk.step + 1, walk.accepted + decision, forks))
            elif verdict == "unknown":
                finals.append(_final("unknown", None, walk, narrowed, reason=reason, forks=forks))
            elif verdict == "drop" or not step.forward:  # a packet to the source lost, or refused by it: the source sees nothing
                finals.append(_final("drop", decision, walk, narrowed, forks=forks,
                                     reason="the source sees nothing" if verdict == "reject" else ""))
            else:  # rejected on its way from the source: the answer must come back
                finals += _answered(source, target, packet, narrowed, decision, hop, walk, forks, step)
    return Trace(_parts(finals, request.dport, request.family))


def _settled(finals: list[_Final], ports: Intervals) -> bool:
    """Do outcomes already found give these ports more than one verdict (or an unknown one)?"""
    seen = {f.verdict for f in finals if ports.issubset(f.ports)}
    return len(seen) > 1 or "unknown" in seen


def _answered(source, target, packet: Packet, narrowed: Packet, reject: Decision, hop: int, walk: _Walk, forks, step: _Step) -> list[_Final]:
    """A packet from the source was rejected (hop 0: on its way out of the source; 1: into the target):
    its answer (related where it is made; at the source a TCP reset belongs to the connection) must
    reach the source, or the source sees nothing."""
    answer = _answer(packet, reject.reject)
    if hop == 0:  # the source answers itself, over lo
        if answer.sport is None:  # an ICMP error to a local address leaves from that address (a reset: from the target's)
            answer = dataclasses.replace(answer, saddr=packet.saddr)
        hops = ((source, "out", "source"), (source, "in", "source"))
        states, interface = ("related", "related"), "lo"
    else:
        hops = ((target, "out", "target"), (source, "in", "source"))
        states, interface = ("related", "established" if answer.l4proto == TCP else "related"), None
    finals = []
    for verdict, _, decision, _, more, reason in _hops(hops, answer, "answer", states, interface):
        if verdict == "accept":
            finals.append(_final("reject", reject, walk, narrowed, forks=forks + more))
        elif verdict == "unknown":
            finals.append(_final("unknown", None, walk, narrowed, reason=reason, forks=forks + more))
        else:
            finals.append(_final("drop", decision, walk, narrowed, forks=forks + more, reason=f"after it was {reject.text()}"))
    return finals


def _hops(hops, packet: Packet, what: str, states: tuple[str, ...] | None = None, interface: str | None = None):
    """The packet across each machine in turn: (verdict, packet as narrowed, decisions, the hop where it
    ended, forks, reason). Accepted: every machine's accepting decision (a tuple); else the one that decided."""
    results = []
    pending = [(0, packet, (), ())]
    while pending:
        index, current, decisions, forks = pending.pop()
        if index == len(hops):
            results.append(("accept", current, decisions, index, forks, ""))
            continue
        side, direction, role = hops[index]
        if states is not None:
            current = in_state(current, states[index], current.tcp_flags)
        for outcome, narrowed, decision in _leg(side, current, direction, role, what, interface):
            more = forks + outcome.forks
            if outcome.verdict == "accept":
                pending.append((index + 1, narrowed, decisions + ((decision,) if decision else ()), more))
            else:
                results.append((outcome.verdict, narrowed, decision, index, more, outcome.reason))
    return results


def _final(verdict: str, decision: Decision | None, walk: _Walk, packet: Packet, reason: str = "", forks=()) -> _Final:
    return _Final(verdict, decision, walk.accepted, packet.dport, packet.sport, packet.saddr, reason, tuple(forks) or walk.forks)


def _leg(side: Side | None, packet: Packet, direction: str, role: str, what: str, interface: str | None = None):
    """(outcome, packet as narrowed, decision) for each outcome of one machine on one direction; a
    machine whose ruleset is not known lets everything through, and says nothing."""
    if side is None:
        return [(Outcome("accept", packet), packet, None)]
    if interface is not None:
        name, basis = interface, "to itself"
    elif direction == "in":
        name, basis = side.interfaces.incoming(packet.family, packet.saddr, packet.daddr)
    else:
        name, basis = side.interfaces.outgoing(packet.family, packet.saddr, packet.daddr)
    packet = crossing(packet, name, "") if direction == "in" else crossing(packet, "", name)
    shown = f"{'arrives on' if direction == 'in' else 'leaves by'} {name}: {basis}" if name and basis else ""
    legs = []
    for outcome in evaluate(side.ruleset, packet, direction):
        ref = outcome.ref if outcome.verdict != "accept" else _telling(outcome.accepted_by)
        decision = Decision(side.name, role, direction, what, outcome.verdict, ref, outcome.reject, shown) \
            if outcome.verdict != "unknown" else None
        legs.append((outcome, outcome.packet, decision))
    return legs


def _telling(accepted_by: tuple[RuleRef | None, ...]) -> RuleRef | None:
    """The accept worth naming: the last rule that accepted (the filter table's, after raw and mangle;
    a later base chain's), else the last policy."""
    rules = [ref for ref in accepted_by if ref is not None and not ref.is_policy]
    return rules[-1] if rules else (accepted_by[-1] if accepted_by else None)


# ---------------------------------------------------------------- outcomes -> parts by port
def _parts(finals: list[_Final], ports: Intervals, family: int) -> tuple[Part, ...]:
    cuts = sorted({first for f in finals for first, _ in f.ports.spans} | {last + 1 for f in finals for _, last in f.ports.spans}
                  | {a for a, _ in ports.spans} | {b + 1 for _, b in ports.spans})
    parts: list[Part] = []
    for low, high in zip(cuts, cuts[1:], strict=False):
        segment = Intervals.of(low, high - 1).intersection(ports)
        if not segment:
            continue
        covering = [f for f in finals if segment.issubset(f.ports)]
        part = _part(segment, covering, family)
        if parts and _same(parts[-1], part) and parts[-1].ports.spans[-1][1] + 1 == low:
            parts[-1] = dataclasses.replace(parts[-1], ports=parts[-1].ports.union(segment))
        else:
            parts.append(part)
    return tuple(parts)


def _part(ports: Intervals, covering: list[_Final], family: int) -> Part:
    verdicts = {f.verdict for f in covering}
    if len(verdicts) == 1 and "unknown" not in verdicts:
        chosen = min(covering, key=lambda f: len(f.forks))
        reason = chosen.reason
        other = next((f.decision for f in covering if f.decision != chosen.decision and f.decision is not None), None)
        if other is not None:  # the same verdict, reached by another rule where an unmodelled match goes the other way
            reason = f"{reason}; " if reason else ""
            reason += f"or {other.text()}, depending on what the evaluator does not model"
        return Part(ports, VERDICT_WORDS[chosen.verdict], chosen.decision, reason, chosen.accepted)
    return Part(ports, "unknown", None, _why(covering, family))


def _same(a: Part, b: Part) -> bool:
    return (a.verdict, a.decision, a.reason) == (b.verdict, b.decision, b.reason)


def _why(finals: list[_Final], family: int) -> str:
    unknown = [f for f in finals if f.verdict == "unknown"]
    if unknown:
        return unknown[0].reason + (f" (and {len(unknown) - 1} more cases)" if len(unknown) > 1 else "")
    forks = [fork for f in finals for fork in f.forks]
    if forks:
        return f"the verdict depends on what the evaluator does not model: {forks[0]}"
    by_verdict: dict[str, list[_Final]] = {}
    for f in finals:
        by_verdict.setdefault(f.verdict, []).append(f)
    sports = {v: Intervals(s for f in fs for s in f.sports.spans) for v, fs in by_verdict.items()}
    if len({s for s in sports.values()}) > 1:
        return "it depends on the connection's ephemeral source port: " + "; ".join(
            f"{VERDICT_WORDS[v]} from source ports {s.text()}" for v, s in sports.items())
    saddrs = sorted(((v, Intervals(s for f in fs for s in f.saddrs.spans)) for v, fs in by_verdict.items()), key=lambda vs: vs[1].size())
    named = [f"{VERDICT_WORDS[v]} from {_addresses(s, family)}" for v, s in saddrs[:-1]]  # the largest part: "elsewhere"
    return "it depends on the source address: " + "; ".join([*named, f"{VERDICT_WORDS[saddrs[-1][0]]} from other addresses"])


def _addresses(values: Intervals, family: int) -> str:
    make = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    networks = [str(n) for a, b in values.spans for n in ipaddress.summarize_address_range(make(a), make(b))]
    return ", ".join(networks[:4]) + (", ..." if len(networks) > 4 else "")
