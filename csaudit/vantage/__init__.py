"""Vantages: the places probes run from. Only modules in this package open connections.

A registry in the spirit of pytest-testinfra's backends: each vantage says which flows it
stands for (or why it cannot), then probes them in one batch.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from csaudit.model.flows import Flow
from csaudit.model.probes import Observation, ProbeOptions, ProbeTarget, Unverifiable, VantageState
from csaudit.model.vocabulary import Gap, VantageStatus
from csaudit.vantage.listening import ports_in_range, ports_on


class Vantage(Protocol):
    name: str

    def plan(self, flow: Flow, options: ProbeOptions) -> ProbeTarget | Unverifiable | str:
        """The probe that checks this flow from here, or the reason this vantage cannot ("": not mine, no comment)."""

    def probe(self, targets: list[ProbeTarget], options: ProbeOptions) -> dict[ProbeTarget, Observation | str]:
        """Run the probes: an observation per target, or the reason it could not run (its flows
        stay unverified). A target left out was not reached before a stop or the deadline."""

    def close(self) -> None:
        """The run is over (it probed zone by zone): release what was kept between calls of probe."""

    # Optional: listening(addresses, options) -> {address: frozenset((address, port))}, the TCP sockets that
    # listen on the machines of these addresses where this vantage stands (listening.py); read before probe.


RANGE_SAMPLE = 5  # ports probed of a port range: the first, the last and evenly spaced ones between


@dataclasses.dataclass(frozen=True)
class ProbeRun:
    observed: dict[str, tuple[str, Observation]]  # flow id -> (vantage name, observation of its first port)
    unverified: dict[str, Unverifiable]  # flow id -> why it stays unverified
    vantages: tuple[VantageState, ...] = ()
    ranges: dict[str, tuple[tuple[int, Observation], ...]] = dataclasses.field(default_factory=dict)  # every sampled port


def sample_ports(first: int, last: int | None, count: int = RANGE_SAMPLE) -> tuple[int, ...]:
    """The ports of a range that get a probe: all of a short range, else `count` spread from first to last
    (a firewall that opens only the start of a range, 5900-5910 of 5900-6100, shows on the others)."""
    if last is None or last <= first:
        return (first,)
    if last - first < count:
        return tuple(range(first, last + 1))
    return tuple(dict.fromkeys(first + round(i * (last - first) / (count - 1)) for i in range(count)))


def range_ports(flows: list[Flow], vantages: list[Vantage], options: ProbeOptions) -> dict[str, tuple[int, ...]]:
    """The ports each flow is probed on: its port; for a TCP range, the spread sample plus the ports that
    listen in the range on the target, where a vantage stands on the target and can read them."""
    ranged = [flow for flow in flows if flow.port_end and flow.protocol == "tcp" and flow.target.address]
    known: dict[str, frozenset[tuple[str, int]]] = {}
    for vantage in vantages:
        wanted = {flow.target.address for flow in ranged} - known.keys()
        reader = getattr(vantage, "listening", None)
        if wanted and reader is not None:
            known.update(reader(wanted, options))
    ports = {flow.id: sample_ports(flow.port, flow.port_end) for flow in flows}
    on_target = {address: ports_on(sockets, address) for address, sockets in known.items()}
    for flow in ranged:
        if on_target.get(flow.target.address):
            listening = ports_in_range(on_target[flow.target.address], flow.port, flow.port_end)
            ports[flow.id] = tuple(sorted({*ports[flow.id], *listening}))  # the first port stays first
    return ports


def plan_probes(
    flows: Iterable[Flow], vantages: list[Vantage], options: ProbeOptions
) -> tuple[dict[str, tuple[Vantage, ProbeTarget]], dict[str, Unverifiable]]:
    """Each flow goes to the first vantage that can stand for its source; the others say why not
    (the gap is the first vantage's that had something to say)."""
    assigned: dict[str, tuple[Vantage, ProbeTarget]] = {}
    unverified: dict[str, Unverifiable] = {}
    shared: dict[tuple[str, Gap], Unverifiable] = {}  # one reason for the thousands of flows that share its words
    for flow in flows:
        reasons = []
        for vantage in vantages:
            plan = vantage.plan(flow, options)
            if isinstance(plan, ProbeTarget):
                assigned[flow.id] = (vantage, plan)
                break
            reasons.append(plan)
        else:
            said = [r for r in reasons if r]
            gap = next((r.gap for r in said if isinstance(r, Unverifiable)), Gap.NO_VANTAGE)
            key = ("; ".join(said) or "no vantage", gap)
            if key not in shared:
                shared[key] = Unverifiable(*key)
            unverified[flow.id] = shared[key]
    return assigned, unverified


def run_vantages(
    flows: Iterable[Flow],
    vantages: list[Vantage],
    options: ProbeOptions,
    progress: Callable[[str], None] = lambda _: None,
) -> ProbeRun:
    """Probe every flow from the first vantage that can stand for its source; a port range on a sample
    of its ports (sample_ports), from the same vantage."""
    flows = list(flows)
    assigned, unverified = plan_probes(flows, vantages, options)
    ports = range_ports([flow for flow in flows if flow.id in assigned], vantages, options)
    observed: dict[str, tuple[str, Observation]] = {}
    ranges: dict[str, tuple[tuple[int, Observation], ...]] = {}
    states: list[VantageState] = []
    for vantage in vantages:
        mine = {fid: [dataclasses.replace(target, port=port) if port != target.port else target for port in ports[fid]]
                for fid, (v, target) in assigned.items() if v is vantage}
        if not mine:
            continue
        unique = sorted({t for targets in mine.values() for t in targets},
                        key=lambda t: (t.via or "", t.address, t.port, t.protocol, t.source or "", t.kind))
        progress(f"probing {len(unique)} targets for {len(mine)} flows from {vantage.name}")
        results = vantage.probe(unique, options)
        for fid, targets in mine.items():
            result = results.get(targets[0])
            if isinstance(result, Observation):
                observed[fid] = (targets[0].via or vantage.name, result)
                if len(targets) > 1:
                    ranges[fid] = tuple((t.port, results[t]) for t in targets if isinstance(results.get(t), Observation))
            elif result:  # the vantage could not run it (SSH refused, no python3 there for UDP, ...)
                unverified[fid] = result if isinstance(result, Unverifiable) else Unverifiable(result, Gap.VANTAGE_UNAVAILABLE)
            else:
                unverified[fid] = Unverifiable(not_probed_reason(options), Gap.NOT_PROBED)
        own_states = getattr(vantage, "states", None)
        states.extend(own_states() if own_states else _states_of(vantage.name, unique, results))
    return ProbeRun(observed, unverified, tuple(states), ranges)


def merge_states(states: Iterable[VantageState]) -> tuple[VantageState, ...]:
    """One state per vantage over a run audited zone by zone: the local vantage works in every zone.
    Probes add up; ok wins over a failure, and a failure over not-run. SSH vantages first, by name."""
    merged: dict[str, VantageState] = {}
    rank = {VantageStatus.OK: 0, VantageStatus.NOT_RUN: 2}
    for state in states:
        old = merged.get(state.name)
        if old is None:
            merged[state.name] = state
            continue
        best = min(old, state, key=lambda s: rank.get(s.state, 1))
        merged[state.name] = dataclasses.replace(best, probes=old.probes + state.probes)
    return tuple(sorted(merged.values(), key=lambda s: (s.name == "local", s.name)))


def _states_of(name: str, targets: list[ProbeTarget], results: dict) -> list[VantageState]:
    """A vantage that keeps no state of its own: ok when it observed anything."""
    ran = sum(isinstance(results.get(t), Observation) for t in targets)
    reasons = Counter(r for r in results.values() if isinstance(r, str))
    if ran or not reasons:
        return [VantageState(name, VantageStatus.OK if ran else VantageStatus.NOT_RUN, ran)]
    return [VantageState(name, VantageStatus.ERROR, 0, reasons.most_common(1)[0][0])]


def not_probed_reason(options: ProbeOptions) -> str:
    if options.stop is not None and options.stop.is_set():
        return "interrupted before this probe ran"
    return "the --deadline passed before this probe ran"
