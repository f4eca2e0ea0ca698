"""The local vantage: probes from this machine, in two phases. The connect engine finds the open ports
fast (connect.py), then only those (and UDP targets) get the short protocol exchange that tells which
service answers (exchange.py, udp.py). classify.py turns what they saw into observations."""

from __future__ import annotations

import ipaddress
import socket

from csaudit.model.flows import Flow
from csaudit.model.probes import Observation, ProbeOptions, ProbeTarget, Unverifiable
from csaudit.model.vocabulary import UDP_KINDS, Gap
from csaudit.vantage.classify import observe
from csaudit.vantage.connect import family_of, tcp_connect_many
from csaudit.vantage.exchange import exchange_many
from csaudit.vantage.facts import CONNECTED
from csaudit.vantage.listening import read_local


def _loopback(address: str) -> bool:
    """A loopback target means the cloud itself runs on this machine (the embedded lab), where this machine
    stands for a client apart from it; a real MS is never on a loopback address."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class LocalVantage:
    """This machine stands for the `user` role, and for any source whose address it owns."""

    name = "local"

    def __init__(self):
        self._owned: dict[str, bool] = {}

    def plan(self, flow: Flow, options: ProbeOptions) -> ProbeTarget | Unverifiable:
        if flow.probe == "none":
            return Unverifiable(next((n for n in flow.notes), "a connect cannot judge this flow"), Gap.NOT_JUDGEABLE)
        if flow.protocol == "udp" and flow.probe not in UDP_KINDS:
            return Unverifiable(f"UDP cannot be judged by a connect; give the flow a UDP probe kind "
                                f"({', '.join(sorted(UDP_KINDS))})", Gap.NOT_JUDGEABLE)
        if not flow.target.address:
            return Unverifiable(f"no address known for {flow.target.role} {flow.target.name}", Gap.NO_ADDRESS)
        if flow.outside and not options.outside:
            return Unverifiable("needs an outside vantage: give --outside-host [USER@]HOST, a machine outside the "
                                "management network, or run csaudit there with --outside", Gap.NEEDS_OUTSIDE)
        if flow.source.role in ("user", "outside"):
            if flow.self_allowed and self.owns(flow.target.address) and not _loopback(flow.target.address):
                return Unverifiable(f"this machine is {flow.target.role} {flow.target.name} ({flow.target.address}), whose own "
                                    "tools the rule allows: it is judged from the other vantages", Gap.NOT_JUDGEABLE)
            return ProbeTarget(flow.target.address, flow.port, flow.protocol, kind=flow.probe)
        if not flow.source.address:
            return Unverifiable(f"no address known for {flow.source.role} {flow.source.name}", Gap.NO_ADDRESS)
        if not self.owns(flow.source.address):
            return Unverifiable(f"no vantage for {flow.source.role} {flow.source.name} ({flow.source.address})", Gap.NO_VANTAGE)
        return ProbeTarget(flow.target.address, flow.port, flow.protocol, source=flow.source.address, kind=flow.probe)

    def close(self) -> None:
        """Nothing is kept between calls of probe."""

    def listening(self, addresses: set[str], options: ProbeOptions) -> dict[str, frozenset[tuple[str, int]]]:
        """The listening TCP sockets of this machine, for the addresses it owns (a range's target is here)."""
        mine = [address for address in addresses if self.owns(address)]
        if not mine:
            return {}
        sockets = read_local()
        return dict.fromkeys(mine, sockets)

    def owns(self, address: str) -> bool:
        """Can this machine send from that address? bind() succeeds only for its own."""
        if address not in self._owned:
            try:
                with socket.socket(family_of(address), socket.SOCK_STREAM) as sock:
                    sock.bind((address, 0))
                self._owned[address] = True
            except (OSError, ValueError):
                self._owned[address] = False
        return self._owned[address]

    def probe(self, targets: list[ProbeTarget], options: ProbeOptions) -> dict[ProbeTarget, Observation]:
        """Every target gets an observation, except those the stop flag or the deadline left out."""
        tcp = [t for t in targets if t.protocol == "tcp"]
        udp = [t for t in targets if t.protocol == "udp"]
        # Flows of different kinds on one address and port share a single connect.
        connect_target = {t: t if t.kind == "tcp" else ProbeTarget(t.address, t.port, "tcp", t.source) for t in tcp}
        connects = tcp_connect_many(list(dict.fromkeys(connect_target.values())), options.timeout, options.concurrency,
                                    options.per_target, stop=options.stop, deadline=options.deadline, progress=options.progress)
        results: dict[ProbeTarget, Observation] = {}
        talk: list[ProbeTarget] = []
        for target in tcp:
            facts = connects.get(connect_target[target])
            if facts is None:
                continue  # not probed (interrupted, deadline)
            if target.kind == "tcp" or facts.code != CONNECTED or facts.failure is not None:
                results[target] = observe(target, facts, None, options.timeout)
            else:
                talk.append(target)
        exchanged = exchange_many(talk + udp, options.timeout, options.concurrency, stop=options.stop, deadline=options.deadline)
        for target, (facts, conversation) in exchanged.items():
            first = connects.get(connect_target.get(target))
            if first is not None and facts.code == CONNECTED:  # the connect phase measured the SYN: its latency wins
                facts = first
            results[target] = observe(target, facts, conversation, options.timeout)
        return results
