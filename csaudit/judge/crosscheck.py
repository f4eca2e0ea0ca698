"""Cross-check: what the API says about hosts and system VMs against what the probes saw.

A host the API calls Up that csaudit cannot reach, or a system VM the API calls Stopped whose ports
answer, is a finding: the API's view of the cloud and the network disagree. Pure function.
"""

from __future__ import annotations

import dataclasses

from csaudit.model.inventory import Inventory
from csaudit.model.probes import VantageState
from csaudit.model.results import Finding, FlowResult
from csaudit.model.vocabulary import VantageStatus

HOST_UP = frozenset({"up"})
HOST_DOWN = frozenset({"down", "disconnected", "alert", "error", "removed"})
VM_UP = frozenset({"running"})
VM_DOWN = frozenset({"stopped", "stopping", "error", "destroyed", "expunging"})
AGENT_DOWN = frozenset({"disconnected", "down", "alert", "error"})




@dataclasses.dataclass(frozen=True)
class _Subject:
    zone_id: str | None
    role: str
    name: str
    api_state: str
    up: bool
    down: bool
    addresses: frozenset[str]


def _subjects(inventory: Inventory) -> list[_Subject]:
    subjects = []
    for host in inventory.hosts:
        state = (host.state or "").lower()
        subjects.append(_Subject(host.zone_id, "host", host.name, host.state or "unknown", state in HOST_UP, state in HOST_DOWN,
                                 frozenset(a for a in (host.address,) if a)))
    for vm in inventory.system_vms:
        state, agent = (vm.state or "").lower(), (vm.agent_state or "").lower()
        text = f"{vm.state or 'unknown'}" + (f" (agent {vm.agent_state})" if vm.agent_state else "")
        subjects.append(_Subject(vm.zone_id, vm.role, vm.name, text, state in VM_UP and agent not in AGENT_DOWN,
                                 state in VM_DOWN or agent in AGENT_DOWN,
                                 frozenset(a for a in (vm.private_ip, vm.linklocal_ip, vm.public_ip) if a)))
    for router in inventory.routers:
        state = (router.state or "").lower()
        subjects.append(_Subject(router.zone_id, "vr", router.name, router.state or "unknown", state in VM_UP, state in VM_DOWN,
                                 frozenset(a for a in (router.linklocal_ip, router.guest_ip, router.public_ip) if a)))
    return subjects


def cross_check(inventory: Inventory, results: tuple[FlowResult, ...], vantages: tuple[VantageState, ...],
                zone_id: str | None = None) -> tuple[Finding, ...]:
    """`zone_id`: check only that zone's objects (a run checks zone by zone); None: all."""
    by_object = {(v.role, v.object_name): v for v in vantages if v.role}
    by_address: dict[str, list[FlowResult]] = {}  # one pass over the results, not one per object
    for result in results:
        if result.observed is not None:
            by_address.setdefault(result.flow.target.address, []).append(result)
    findings = []
    for subject in _subjects(inventory):
        if zone_id is not None and subject.zone_id != zone_id:
            continue
        vantage = by_object.get((subject.role, subject.name))
        aimed = [r for address in sorted(subject.addresses) for r in by_address.get(address, ())]
        answered = sorted({f"{r.flow.target.address}:{r.flow.port}" for r in aimed if r.observed == "open"})
        what = f"the API says {subject.role} {subject.name} is {subject.api_state}"
        if subject.up and vantage is not None and vantage.state == VantageStatus.UNREACHABLE:
            findings.append(Finding("api-up-unreachable", subject.role, subject.name, subject.api_state,
                                    f"{what}, but its vantage {vantage.name} cannot be reached: {vantage.reason}"))
        elif subject.down and (answered or (vantage is not None and vantage.state == VantageStatus.OK)):
            evidence = []
            if vantage is not None and vantage.state == VantageStatus.OK:
                evidence.append(f"csaudit logged in to it ({vantage.name})")
            if answered:
                evidence.append("its ports answer: " + ", ".join(answered))
            findings.append(Finding("api-down-answers", subject.role, subject.name, subject.api_state,
                                    f"{what}, but " + " and ".join(evidence)))
        elif subject.up and (vantage is None or vantage.state != VantageStatus.OK):
            needed = [r for r in aimed if r.flow.expect == "open"]
            if needed and not answered:
                findings.append(Finding("api-up-silent", subject.role, subject.name, subject.api_state,
                                        f"{what}, but no connection to it was accepted "
                                        f"({len(needed)} probed that must be open)"))
    return tuple(findings)
