"""Cross-check: what the API says about hosts and system VMs against what the probes saw, and
CloudStack's own evidence of what a connect cannot probe.

A host the API calls Up that csaudit cannot reach, or a system VM the API calls Stopped whose ports
answer, is a finding: the API's view of the cloud and the network disagree. So is an agent the API
calls Up whose connection to every management server failed from its own machine. And the routers'
own health checks that fail, or a redundant router pair with two MASTERs or none, are findings too:
VRRP (IP protocol 112) and conntrackd multicast between the pair (F54) cannot be probed with a
connect, and this is how csaudit covers them. Pure functions.
"""

from __future__ import annotations

import dataclasses

from csaudit.model.inventory import HealthCheck, Inventory, Router
from csaudit.model.probes import VantageState
from csaudit.model.results import Finding, FlowResult
from csaudit.model.vocabulary import VantageStatus

HOST_UP = frozenset({"up"})
HOST_DOWN = frozenset({"down", "disconnected", "alert", "error", "removed"})
VM_UP = frozenset({"running"})
VM_DOWN = frozenset({"stopped", "stopping", "error", "destroyed", "expunging"})
AGENT_DOWN = frozenset({"disconnected", "down", "alert", "error"})
# VirtualRouter.RedundantState; 4.16 renamed MASTER to PRIMARY (schema-41520to41600.sql).
REDUNDANT_MASTER = frozenset({"master", "primary"})
REDUNDANT_BACKUP = frozenset({"backup"})
DEFAULT_AGENT_PORT = 8250  # the setting "port" (agent.properties port=)


@dataclasses.dataclass(frozen=True)
class _Subject:
    zone_id: str | None
    role: str
    name: str
    api_state: str
    up: bool
    down: bool
    addresses: frozenset[str]
    agent: bool = False  # runs a CloudStack agent that dials the MS (a host, an SSVM, a CPVM)


def _subjects(inventory: Inventory) -> list[_Subject]:
    subjects = []
    for host in inventory.hosts:
        state = (host.state or "").lower()
        subjects.append(_Subject(host.zone_id, "host", host.name, host.state or "unknown", state in HOST_UP, state in HOST_DOWN,
                                 frozenset(a for a in (host.address,) if a), agent=True))
    for vm in inventory.system_vms:
        state, agent = (vm.state or "").lower(), (vm.agent_state or "").lower()
        text = f"{vm.state or 'unknown'}" + (f" (agent {vm.agent_state})" if vm.agent_state else "")
        subjects.append(_Subject(vm.zone_id, vm.role, vm.name, text, state in VM_UP and agent not in AGENT_DOWN,
                                 state in VM_DOWN or agent in AGENT_DOWN,
                                 frozenset(a for a in (vm.private_ip, vm.linklocal_ip, vm.public_ip) if a), agent=True))
    for router in inventory.routers:
        state = (router.state or "").lower()
        subjects.append(_Subject(router.zone_id, "vr", router.name, router.state or "unknown", state in VM_UP, state in VM_DOWN,
                                 frozenset(a for a in (router.linklocal_ip, router.guest_ip, router.public_ip) if a)))
    return subjects


def _agent_port(inventory: Inventory, zone_id: str | None) -> int:
    value = inventory.setting("port", zone_id)
    return int(value) if value and value.isdigit() else DEFAULT_AGENT_PORT


def cross_check(inventory: Inventory, results: tuple[FlowResult, ...], vantages: tuple[VantageState, ...],
                zone_id: str | None = None) -> tuple[Finding, ...]:
    """`zone_id`: check only that zone's objects (a run checks zone by zone); None: all."""
    by_object = {(v.role, v.object_name): v for v in vantages if v.role}
    by_address: dict[str, list[FlowResult]] = {}  # one pass over the results, not one per object
    agent_flows: dict[tuple[str, str], list[FlowResult]] = {}  # (role, name) -> its agent's probed flows to the MSs
    agent_port = _agent_port(inventory, zone_id)
    for result in results:
        if result.observed is not None:
            by_address.setdefault(result.flow.target.address, []).append(result)
            flow = result.flow
            if flow.target.role == "ms" and flow.port == agent_port and flow.expect == "open":
                agent_flows.setdefault((flow.source.role, flow.source.name), []).append(result)
    findings = []
    for subject in _subjects(inventory):
        if zone_id is not None and subject.zone_id != zone_id:
            continue
        vantage = by_object.get((subject.role, subject.name))
        aimed = [r for address in sorted(subject.addresses) for r in by_address.get(address, ())]
        answered = sorted({f"{r.flow.target.address}:{r.flow.port}" for r in aimed if r.observed == "open"})
        dialled = agent_flows.get((subject.role, subject.name), []) if subject.agent else []
        connected = sorted({f"{r.flow.rule} to {r.flow.target.name}" for r in dialled if r.observed == "open"})
        what = f"the API says {subject.role} {subject.name} is {subject.api_state}"
        if subject.up and vantage is not None and vantage.state == VantageStatus.UNREACHABLE:
            findings.append(Finding("api-up-unreachable", subject.role, subject.name, subject.api_state,
                                    f"{what}, but its vantage {vantage.name} cannot be reached: {vantage.reason}"))
        elif subject.down and (answered or connected or (vantage is not None and vantage.state == VantageStatus.OK)):
            evidence = []
            if vantage is not None and vantage.state == VantageStatus.OK:
                evidence.append(f"csaudit logged in to it ({vantage.name})")
            if answered:
                evidence.append("its ports answer: " + ", ".join(answered))
            if connected:
                evidence.append(f"from it the agent's port {agent_port} on the MS answers: " + ", ".join(connected))
            findings.append(Finding("api-down-answers", subject.role, subject.name, subject.api_state,
                                    f"{what}, but " + " and ".join(evidence)))
        elif subject.up and (vantage is None or vantage.state != VantageStatus.OK):
            needed = [r for r in aimed if r.flow.expect == "open"]
            if needed and not answered:
                findings.append(Finding("api-up-silent", subject.role, subject.name, subject.api_state,
                                        f"{what}, but no connection to it was accepted "
                                        f"({len(needed)} probed that must be open)"))
        if subject.up and dialled and not connected:
            # Measured from the agent's own address (its SSH vantage, or this machine when it holds that
            # address): the API's Up is stale, or the agent reaches the MS by a path the catalogue does not know.
            refused = ", ".join(sorted({f"{r.flow.rule} to {r.flow.target.name} {r.observed}" for r in dialled}))
            findings.append(Finding("agent-up-unconnected", subject.role, subject.name, subject.api_state,
                                    f"{what}, but from it the agent's port {agent_port} on no management server "
                                    f"answers ({refused})"))
    findings.extend(router_evidence(inventory, zone_id))
    return tuple(findings)


def _running(router: Router) -> bool:
    return (router.state or "").lower() in VM_UP


def router_evidence(inventory: Inventory, zone_id: str | None = None) -> tuple[Finding, ...]:
    """What CloudStack itself says about its routers: their failed health checks (listRouters
    fetchhealthcheckresults, 4.14+) and redundant pairs with two MASTERs (a split brain) or none.
    A stopped router's results are from before it stopped and say nothing of now."""
    routers = [r for r in inventory.routers if zone_id is None or r.zone_id == zone_id]
    findings = []
    for router in routers:
        if router.health_checks_failed and _running(router):
            failed = "; ".join(_describe_check(check) for check in router.health_checks_failed)
            findings.append(Finding(
                "vr-health-check-failed", "vr", router.name, router.state or "unknown",
                f"CloudStack's own health checks of vr {router.name} fail ({len(router.health_checks_failed)} of "
                f"{router.health_checks_run}): {failed}"))
    pairs: dict[tuple[str, str], list[Router]] = {}
    for router in routers:
        if router.redundant and (router.vpc_id or router.guest_network_id):
            # A VPC's routers share its id; their guest network is whichever tier's NIC the API shows.
            key = ("vpc", router.vpc_id) if router.vpc_id else ("guest network", router.guest_network_id)
            pairs.setdefault(key, []).append(router)
    for (role, ident), members in pairs.items():
        if len(members) < 2:
            continue
        running = [r for r in members if _running(r)]
        states = [(r.redundant_state or "UNKNOWN").lower() for r in running]
        masters = [state for state in states if state in REDUNDANT_MASTER]
        names = tuple(r.name for r in members)
        first = members[0]
        label = (first.vpc_name if role == "vpc" else first.guest_network_name) or ident
        api_state = ", ".join(f"{r.name} {r.redundant_state or 'UNKNOWN'}" + ("" if _running(r) else f" ({r.state})")
                              for r in members)
        unprobed = ("VRRP (IP protocol 112) and conntrackd multicast between the pair (F54) cannot be probed with a "
                    "connect: this is CloudStack's own view of it")
        if len(masters) >= 2:
            findings.append(Finding(
                "vr-pair-split-brain", role, label, api_state,
                f"the API says {len(masters)} redundant routers of {role} {label} are MASTER ({api_state}): a split "
                f"brain, both answer for the gateway, most often because their VRRP adverts do not reach each other. "
                f"{unprobed}", names))
        elif running and all(state in REDUNDANT_BACKUP for state in states):
            findings.append(Finding(
                "vr-pair-no-master", role, label, api_state,
                f"the API says no redundant router of {role} {label} is MASTER ({api_state}): none forwards for "
                f"the gateway. {unprobed}", names))
    return tuple(findings)


def _describe_check(check: HealthCheck) -> str:
    where = ", ".join(part for part in (check.type, f"at {check.last_updated}" if check.last_updated else None) if part)
    return f"{check.name}" + (f" ({where})" if where else "") + (f": {check.details}" if check.details else "")
