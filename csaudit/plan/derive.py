"""Derivation: a pure, deterministic function (catalogue, inventory, zones) -> flows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from csaudit.model.errors import UsageError
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.inventory import Inventory
from csaudit.model.vocabulary import ANY_HYPERVISOR, LINK_LOCAL_CONTROL, Hypervisor, Role
from csaudit.plan.catalogue import PORT_OPTIONS, PortSpec, Rule

ALL_ZONES = None
# whose system VMs have a link-local control IP (the simulator reports one too; on VMware and Hyper-V it is private)
CONTROL_BY_LINKLOCAL = LINK_LOCAL_CONTROL | {Hypervisor.SIMULATOR}


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """Any object a flow can start or end at, with its addresses by kind."""

    role: str
    name: str
    id: str
    zone_id: str | None = None
    cluster_id: str | None = None
    host_id: str | None = None
    hypervisor: str | None = None
    protocol: str | None = None  # storage protocol
    addresses: tuple[tuple[str, str | None], ...] = ()
    address_note: str | None = None  # how the default address was found, when not obvious
    port: int | None = None  # a named service's own port (a URL's, an LDAP server's): port_from = "target"

    def address(self, kind: str) -> str | None:
        return next((address for name, address in self.addresses if name == kind), None)






def build_nodes(inventory: Inventory) -> dict[str, list[Node]]:
    nodes: dict[str, list[Node]] = {role: [] for role in Role}
    nodes["user"].append(Node("user", "this machine", "user"))
    nodes["outside"].append(Node("outside", "outside", "outside"))
    for ms in inventory.management_servers:
        note = None if ms.address_source in ("serviceip", "ipaddress") else f"MS address from {ms.address_source}"
        nodes["ms"].append(Node("ms", ms.name, ms.id, addresses=(("default", ms.address),), address_note=note))
    if inventory.database is not None:
        db = inventory.database
        note = None if db.address_source == "listDbMetrics" else f"database address: {db.address_source}"
        nodes["db"].append(Node("db", db.name, "db", addresses=(("default", db.address),), address_note=note))
    for host in inventory.hosts:
        nodes["host"].append(Node("host", host.name, host.id, host.zone_id, host.cluster_id, None, host.hypervisor,
                                  addresses=(("default", host.address),)))
    for vm in inventory.system_vms:
        control = vm.linklocal_ip if (vm.hypervisor or "").lower() in CONTROL_BY_LINKLOCAL else vm.private_ip
        nodes[vm.role].append(Node(vm.role, vm.name, vm.id, vm.zone_id, None, vm.host_id, vm.hypervisor, addresses=(
            ("default", vm.private_ip), ("private", vm.private_ip), ("public", vm.public_ip),
            ("linklocal", vm.linklocal_ip), ("control", control or vm.private_ip))))
    for router in inventory.routers:
        # On VMware/Hyper-V the router's control NIC holds a pod private IP, reported as linklocalip.
        nodes["vr"].append(Node("vr", router.name, router.id, router.zone_id, None, router.host_id, router.hypervisor, addresses=(
            ("default", router.linklocal_ip), ("linklocal", router.linklocal_ip), ("control", router.linklocal_ip),
            ("public", router.public_ip), ("guest", router.guest_ip))))
    for store in inventory.image_stores:
        nodes["secondary-storage"].append(Node("secondary-storage", store.name, store.id, store.zone_id,
                                               protocol=store.protocol, addresses=(("default", store.address),)))
    for pool in inventory.storage_pools:
        nodes["primary-storage"].append(Node("primary-storage", pool.name, pool.id, pool.zone_id, pool.cluster_id,
                                             protocol=pool.protocol, addresses=(("default", pool.address),)))
    for vcenter in inventory.vcenters:
        nodes["vcenter"].append(Node("vcenter", vcenter.name, vcenter.address, vcenter.zone_id,
                                     addresses=(("default", vcenter.address),)))
    for zone in inventory.zones:
        for role, label, addresses in (("internal-dns", "internaldns", zone.internal_dns), ("dns", "dns", zone.dns)):
            for n, address in enumerate(addresses, 1):
                nodes[role].append(Node(role, f"{zone.name} {label}{n}", f"{zone.id}/{label}{n}", zone.id,
                                        addresses=(("default", address),)))
    for address in (a.strip() for a in (inventory.setting("ntp.server.list") or "").split(",")):
        if address:
            nodes["ntp"].append(Node("ntp", f"ntp {address}", address, addresses=(("default", address),)))
    for service in inventory.services:  # named by a setting or a listing: their own role, port and protocol
        nodes[service.role].append(Node(service.role, service.name, f"{service.role}/{service.name}", service.zone_id,
                                        protocol=service.protocol, addresses=(("default", service.address),),
                                        address_note=f"{service.role} {service.name} from {service.origin}",
                                        port=service.port))
    return nodes


def select_zones(inventory: Inventory, wanted: Iterable[str]) -> frozenset[str] | None:
    """Zone names or ids -> zone ids; an unknown zone is a usage error that lists the real ones."""
    wanted = list(wanted)
    if not wanted:
        return ALL_ZONES
    chosen = set()
    for name in wanted:
        zone = next((z for z in inventory.zones if name in (z.name, z.id)), None)
        if zone is None:
            known = ", ".join(f"{z.name} ({z.id})" for z in inventory.zones) or "none"
            raise UsageError(f"unknown zone {name!r}; the zones are: {known}")
        chosen.add(zone.id)
    return frozenset(chosen)


def derive_flows(
    rules: Iterable[Rule],
    inventory: Inventory,
    zone_ids: frozenset[str] | None = ALL_ZONES,
    port_options: dict[str, int] | None = None,
) -> tuple[Flow, ...]:
    """`port_options` holds ports the API cannot tell (api-port, db-port, cluster-port)."""
    rules = tuple(rules)
    return tuple(flow for zone_id, part in audit_units(inventory, zone_ids)
                 for flow in derive_unit_flows(rules, part, zone_id, port_options))


# Inventory fields whose objects belong to one zone (system VMs are shared by every part: see audit_units).
ZONED_FIELDS = ("pods", "clusters", "hosts", "routers", "image_stores", "storage_pools", "vcenters", "services")


def audit_units(inventory: Inventory, zone_ids: frozenset[str] | None = ALL_ZONES) -> list[tuple[str | None, Inventory]]:
    """The parts a run audits one after the other, in report order: the management tier (zone None),
    then each zone by name. A cloud of 20,000 hosts has half a million flows; done zone by zone,
    memory holds one zone's flows at a time. A part's inventory holds its zone's objects, the
    objects without a zone, and every system VM (an SSVM copies templates from other zones' SSVMs)."""
    by_zone: dict[str | None, dict[str, list]] = {}
    for field in ZONED_FIELDS:
        for item in getattr(inventory, field):
            by_zone.setdefault(item.zone_id, {}).setdefault(field, []).append(item)
    names = {z.id: z.name for z in inventory.zones}
    known = (by_zone.keys() | names.keys()) - {None}
    chosen = sorted((z for z in known if zone_ids is ALL_ZONES or z in zone_ids), key=lambda z: (names.get(z, z), z))
    shared = by_zone.get(None, {})

    def part(zone_id: str | None) -> Inventory:
        own = by_zone.get(zone_id, {}) if zone_id is not None else {}
        return dataclasses.replace(inventory, **{f: (*own.get(f, ()), *shared.get(f, ())) for f in ZONED_FIELDS})

    return [(zone_id, part(zone_id)) for zone_id in (None, *chosen)]


def derive_unit_flows(
    rules: tuple[Rule, ...],
    inventory: Inventory,
    zone_id: str | None,
    port_options: dict[str, int] | None = None,
) -> tuple[Flow, ...]:
    """The flows of one part of the cloud (audit_units): those whose zone, the source's or else the
    target's, is `zone_id` (None: the management tier, flows between objects without a zone)."""
    nodes = build_nodes(inventory)
    port_options = port_options or {}
    zone_name = {z.id: z.name for z in inventory.zones}.get(zone_id, zone_id)
    flows: dict[str, Flow] = {}
    endpoints: dict[tuple[int, str], Endpoint] = {}  # one per object (by identity) and address kind, shared by its flows

    def endpoint(node: Node, kind: str) -> Endpoint:
        key = (id(node), kind)
        if key not in endpoints:
            endpoints[key] = Endpoint(node.role, node.name, node.address(kind))
        return endpoints[key]

    shared_notes: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple for the many pairs whose notes are the same

    for rule in rules:
        condition = rule.when.describe() if rule.when is not None else None
        because = f"exists because {condition}" if condition else None
        for source, target in _pairs(rule, nodes):
            if (source.zone_id or target.zone_id) != zone_id or not _applies(rule, source, target, inventory):
                continue
            ports, port_note = _ports(rule, inventory, zone_id, port_options, target)
            notes = tuple(n for n in (source.address_note, target.address_note, port_note, because, rule.note) if n)
            notes = shared_notes.setdefault(notes, notes)
            for port in ports:
                for protocol in rule.protocols:
                    flow = Flow(
                        id=f"{rule.id}:{source.name}->{target.name}:{port}/{protocol}",
                        rule=rule.id,
                        title=rule.title,
                        zone=zone_name,
                        source=endpoint(source, rule.source_address),
                        target=endpoint(target, rule.target_address),
                        protocol=protocol,
                        port=port.first,
                        port_end=port.last,
                        expect=rule.expect,
                        probe=rule.probe,
                        citation=rule.citation,
                        notes=notes,
                        self_allowed=rule.self_allowed,
                        remedy=rule.remedy,
                        condition=condition,
                    )
                    flows.setdefault(flow.id, flow)
    return tuple(sorted(flows.values(), key=_flow_order))


def _ports(rule: Rule, inventory: Inventory, zone_id, port_options: dict[str, int],
           target: Node | None = None) -> tuple[tuple[PortSpec, ...], str | None]:
    """The rule's ports, or the real one when the cloud says (setting, the target's own port, a range
    from two settings) or the operator says (option)."""
    if rule.port_from is None:
        return rule.ports, None
    kind, _, name = rule.port_from.partition(":")
    default = rule.ports[0].first
    if kind == "target":
        if target is not None and target.port:
            return (PortSpec(target.port),), None
        return rule.ports, f"port {default} is the default; {target.name if target else 'the target'} names none"
    if kind == "range":
        return _setting_range(rule, inventory, zone_id, *name.split(":", 1))
    if kind == "option":
        if name in port_options:
            return (PortSpec(port_options[name]),), f"port {port_options[name]} from --{name}"
        return rule.ports, f"port {default} is the default {PORT_OPTIONS[name]}; the API cannot tell it (set --{name})"
    value = (inventory.setting(name, zone_id) or "").strip()
    if value.isdigit() and 0 < int(value) < 65536:
        port = int(value)
        return (PortSpec(port),), (f"port {port} from setting '{name}'" if port != default else None)
    return rule.ports, f"port {default} is the default; setting '{name}' is not known"


def _setting_range(rule: Rule, inventory: Inventory, zone_id, start_name: str, size_name: str):
    """A port range from a start setting and a size setting (vmware.additional.vnc.portrange.start/size)."""
    start = (inventory.setting(start_name, zone_id) or "").strip()
    size = (inventory.setting(size_name, zone_id) or "").strip()
    if start.isdigit() and size.isdigit() and int(size) > 1 and int(start) + int(size) - 1 < 65536 and int(start) > 0:
        first, last = int(start), int(start) + int(size) - 1
        default = rule.ports[0]
        changed = (first, last) != (default.first, default.last)
        return (PortSpec(first, last),), (f"ports {first}-{last} from settings '{start_name}' and '{size_name}'" if changed else None)
    return rule.ports, f"ports {rule.ports[0]} are the default; settings '{start_name}' / '{size_name}' are not known"


def _flow_order(flow: Flow):
    return (flow.zone or "", flow.source.role, flow.rule, flow.source.name, flow.target.name, flow.port, flow.protocol)


def _pairs(rule: Rule, nodes: dict[str, list[Node]]):
    sources = [n for role in rule.sources for n in nodes[role]]
    targets = [n for role in rule.targets for n in nodes[role]]
    if rule.pairing == "cluster-ring":
        yield from _ring(sources)
        return
    candidates = _candidates(rule.pairing, targets)
    for source in sources:
        for target in candidates(source):
            if _paired(rule.pairing, source, target):
                yield source, target


def _candidates(pairing: str, targets: list[Node]):
    """Index the targets once, so a cloud of 20,000 hosts and 50,000 routers pairs in linear time."""
    if pairing == "local":
        by_host: dict[str | None, list[Node]] = {}
        for target in targets:
            by_host.setdefault(target.host_id, []).append(target)
        return lambda source: by_host.get(source.id, [])
    if pairing == "zone":
        in_zone: dict[str | None, list[Node]] = {}  # every target of a zone
        unclustered: dict[str | None, list[Node]] = {}  # a zone's targets outside any cluster
        in_cluster: dict[tuple[str | None, str], list[Node]] = {}
        for target in targets:
            in_zone.setdefault(target.zone_id, []).append(target)
            if target.cluster_id is None:
                unclustered.setdefault(target.zone_id, []).append(target)
            else:
                in_cluster.setdefault((target.zone_id, target.cluster_id), []).append(target)
        zoneless = in_zone.get(None, [])

        def candidates(source: Node) -> list[Node]:
            if source.zone_id is None:
                return targets
            if source.cluster_id is None:
                return zoneless + in_zone.get(source.zone_id, [])
            # a host pairs with its own cluster's primary storage, not with the zone's 500 others
            return zoneless + unclustered.get(source.zone_id, []) + in_cluster.get((source.zone_id, source.cluster_id), [])
        return candidates
    return lambda source: targets


def _paired(pairing: str, source: Node, target: Node) -> bool:
    same = source.role == target.role and source.id == target.id
    if pairing == "self":
        return same
    if pairing == "peers":
        return not same
    if pairing == "local":
        return target.host_id is not None and target.host_id == source.id
    if pairing == "other-zone":
        return source.zone_id is not None and target.zone_id is not None and source.zone_id != target.zone_id
    # "zone": same zone (zone-less objects pair with all), same cluster when both have one
    if source.zone_id and target.zone_id and source.zone_id != target.zone_id:
        return False
    return not (source.cluster_id and target.cluster_id and source.cluster_id != target.cluster_id)


def _ring(hosts: list[Node]):
    by_cluster: dict[str | None, list[Node]] = {}
    for host in hosts:
        by_cluster.setdefault(host.cluster_id, []).append(host)
    for cluster_id, members in by_cluster.items():
        members = sorted(members, key=lambda n: n.name)
        if cluster_id is None or len(members) < 2:
            continue
        for i, host in enumerate(members):
            yield host, members[(i + 1) % len(members)]


def _applies(rule: Rule, source: Node, target: Node, inventory: Inventory) -> bool:
    if rule.target_protocol and (target.protocol or "") != rule.target_protocol:
        return False
    if ANY_HYPERVISOR not in rule.hypervisors:
        if rule.hypervisor_of == "both":  # e.g. a VMware SSVM to ESXi hosts only, in a zone that also has KVM
            sides = [node for node in (source, target) if node.hypervisor is not None] or [target]
        else:
            sides = [target if rule.hypervisor_of == "target" or source.hypervisor is None else source]
        if any((side.hypervisor or "").lower() not in rule.hypervisors for side in sides):
            return False
    if rule.when is not None:
        zone_id = source.zone_id or target.zone_id
        if rule.when.setting is not None:
            actual = inventory.setting(rule.when.setting, zone_id)
        else:  # a fact of the zone the API lists (zone = "isolation_methods")
            zone = inventory.zone_by_id(zone_id)
            value = getattr(zone, rule.when.zone, None) if zone is not None else None
            actual = ",".join(value) if isinstance(value, tuple) else value
        if not rule.when.holds(actual):
            return False
    return True
