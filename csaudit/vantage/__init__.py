"""Vantages: the places probes run from. Only modules in this package open connections.

A registry in the spirit of pytest-testinfra's backends: each vantage says which flows it
stands for (or why it cannot), then probes them in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from csaudit.derive import Flow
from csaudit.probe import Observation, ProbeOptions, ProbeTarget


class Vantage(Protocol):
    name: str

    def plan(self, flow: Flow, options: ProbeOptions) -> ProbeTarget | str:
        """The probe that checks this flow from here, or the reason this vantage cannot."""

    def probe(self, targets: list[ProbeTarget], options: ProbeOptions) -> dict[ProbeTarget, Observation]:
        """Run the probes; every target gets an observation."""


def plan_probes(
    flows: Iterable[Flow], vantages: list[Vantage], options: ProbeOptions
) -> tuple[dict[str, tuple[Vantage, ProbeTarget]], dict[str, str]]:
    """Each flow goes to the first vantage that can stand for its source; the others say why not."""
    assigned: dict[str, tuple[Vantage, ProbeTarget]] = {}
    unverified: dict[str, str] = {}
    for flow in flows:
        reasons = []
        for vantage in vantages:
            plan = vantage.plan(flow, options)
            if isinstance(plan, ProbeTarget):
                assigned[flow.id] = (vantage, plan)
                break
            reasons.append(plan)
        else:
            unverified[flow.id] = "; ".join(reasons) or "no vantage"
    return assigned, unverified


def run_vantages(
    flows: Iterable[Flow],
    vantages: list[Vantage],
    options: ProbeOptions,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, tuple[str, Observation]], dict[str, str]]:
    """Probe every flow from the first vantage that can stand for its source.

    Returns (flow id -> (vantage name, observation)) and (flow id -> reason it stays unverified).
    """
    assigned, unverified = plan_probes(flows, vantages, options)
    observed: dict[str, tuple[str, Observation]] = {}
    for vantage in vantages:
        mine = {fid: target for fid, (v, target) in assigned.items() if v is vantage}
        if not mine:
            continue
        unique = sorted(set(mine.values()), key=lambda t: (t.address, t.port, t.protocol, t.source or "", t.kind))
        progress(f"probing {len(unique)} targets for {len(mine)} flows from {vantage.name}")
        results = vantage.probe(unique, options)
        for fid, target in mine.items():
            if target in results:
                observed[fid] = (vantage.name, results[target])
            else:
                unverified[fid] = not_probed_reason(options)
    return observed, unverified


def not_probed_reason(options: ProbeOptions) -> str:
    if options.stop is not None and options.stop.is_set():
        return "interrupted before this probe ran"
    return "the --deadline passed before this probe ran"
