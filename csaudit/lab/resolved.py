"""The topology resolved the way the API sees it: uuids, parents, and lookup indexes.

Built once per lab so a request only touches the rows of its page: with 70,000
routers and hosts, listing one 500-row page must not walk the whole cloud.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any

from csaudit.lab import ids, schema


@dataclasses.dataclass(frozen=True, slots=True)
class ZoneRec:
    zone: schema.Zone
    id: str
    db_id: int  # internal long id: listVmwareDcs reports this, not the uuid


@dataclasses.dataclass(frozen=True, slots=True)
class PodRec:
    pod: schema.Pod
    id: str
    zone: ZoneRec


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterRec:
    cluster: schema.Cluster
    id: str
    pod: PodRec


@dataclasses.dataclass(frozen=True, slots=True)
class MsRec:
    ms: schema.ManagementServer
    id: str
    msid: int


@dataclasses.dataclass(frozen=True, slots=True)
class HostRec:
    host: schema.Host
    id: str
    cluster: ClusterRec
    ms: MsRec  # the management server the agent is connected to


@dataclasses.dataclass(frozen=True, slots=True)
class TemplateRec:
    template: schema.Template
    id: str
    zone: ZoneRec | None  # None: cross-zone


@dataclasses.dataclass(frozen=True, slots=True)
class PhysicalNetworkRec:
    zone: ZoneRec
    id: str
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class SystemVmRec:
    vm: schema.SystemVm
    id: str
    host: HostRec


@dataclasses.dataclass(frozen=True, slots=True)
class RouterRec:
    router: schema.Router
    id: str
    host: HostRec
    redundant_state: str | None = None  # the topology's, or a redundant-state fault's
    failing_checks: tuple[str, ...] = ()  # health-check-failed faults


@dataclasses.dataclass(frozen=True, slots=True)
class ImageStoreRec:
    store: schema.SecondaryStorage
    id: str
    zone: ZoneRec


@dataclasses.dataclass(frozen=True, slots=True)
class PoolRec:
    store: schema.PrimaryStorage
    id: str
    zone: ZoneRec
    cluster: ClusterRec | None


@dataclasses.dataclass(frozen=True, slots=True)
class VlanRangeRec:
    range: schema.PublicRange
    id: str
    zone: ZoneRec


@dataclasses.dataclass(frozen=True, slots=True)
class VmwareDcRec:
    name: str
    vcenter: str
    id: str
    zone: ZoneRec


class RowSet:
    """Records of one kind, with indexes built on first use of a filter."""

    def __init__(self, records: list, keys: dict[str, Callable[[Any], Any]]):
        self.records = records
        self.keys = keys
        self._indexes: dict[str, dict[Any, list]] = {}
        self._lock = threading.Lock()

    def index(self, key: str) -> dict[Any, list]:
        with self._lock:  # worker threads may ask for the same index at once
            if key not in self._indexes:
                index: dict[Any, list] = {}
                extract = self.keys[key]
                for record in self.records:
                    index.setdefault(extract(record), []).append(record)
                self._indexes[key] = index
            return self._indexes[key]

    def select(self, equal: dict[str, Any]) -> list:
        """Records whose keys equal the given values, in creation order."""
        if not equal:
            return self.records
        candidates = [self.index(key).get(value, []) for key, value in equal.items()]
        smallest = min(candidates, key=len)
        if len(candidates) == 1:
            return smallest
        rest = [(self.keys[key], value) for key, value in equal.items()]
        return [record for record in smallest if all(get(record) == value for get, value in rest)]


class Inventory:
    def __init__(self, topology: schema.Topology):
        self.topology = topology
        self.management_servers = [
            MsRec(ms, ids.uuid_for("mshost", ms.name), ids.long_id_for("mshost", ms.name))
            for ms in topology.management_servers]
        zones, pods, clusters, hosts, vms, routers = [], [], [], [], [], []
        states: dict[str, str] = {}  # what the API says of routers, as the faults plant it
        failing: dict[str, list[str]] = {}
        for fault in topology.faults:
            for name in fault.objects:
                if fault.kind == "redundant-state":
                    states[name] = fault.state
                elif fault.kind == "health-check-failed":
                    failing.setdefault(name, []).append(fault.check)
        stores, pools, ranges, dcs = [], [], [], []
        for number, zone in enumerate(topology.zones, start=1):
            zone_rec = ZoneRec(zone, ids.uuid_for("zone", zone.name), number)
            zones.append(zone_rec)
            pod_recs = {pod.name: PodRec(pod, ids.uuid_for("pod", pod.name), zone_rec)
                        for pod in zone.pods}
            pods.extend(pod_recs.values())
            host_recs, cluster_recs = {}, {}
            for cluster in zone.clusters:
                cluster_rec = ClusterRec(cluster, ids.uuid_for("cluster", cluster.name),
                                         pod_recs[cluster.pod])
                cluster_recs[cluster.name] = cluster_rec
                clusters.append(cluster_rec)
                for host in cluster.hosts:
                    # Agents spread over the management servers, as the MS balances them.
                    ms = self.management_servers[len(hosts) % len(self.management_servers)]
                    host_recs[host.name] = HostRec(host, ids.uuid_for("host", host.name),
                                                   cluster_rec, ms)
                    hosts.append(host_recs[host.name])
                if cluster.hypervisor == "VMware":
                    dc_name = cluster.vmware_dc or f"{zone.name}-dc"
                    if not any(dc.name == dc_name and dc.zone is zone_rec for dc in dcs):
                        dcs.append(VmwareDcRec(dc_name, cluster.vcenter,
                                               ids.uuid_for("vmwaredc", dc_name), zone_rec))
            vms.extend(SystemVmRec(vm, ids.uuid_for("vm", vm.name), host_recs[vm.host])
                       for vm in zone.system_vms)
            routers.extend(RouterRec(router, ids.uuid_for("vm", router.name), host_recs[router.host],
                                     states.get(router.name, router.redundantstate), tuple(failing.get(router.name, ())))
                           for router in zone.routers)
            stores.extend(ImageStoreRec(store, ids.uuid_for("imagestore", store.name), zone_rec)
                          for store in zone.secondary_storage)
            pools.extend(PoolRec(store, ids.uuid_for("storagepool", store.name), zone_rec,
                                 cluster_recs.get(store.cluster) if store.cluster else None)
                         for store in zone.primary_storage)
            ranges.extend(VlanRangeRec(rng, ids.uuid_for("vlan", f"{zone.name}/{index}"), zone_rec)
                          for index, rng in enumerate(zone.public_ranges))
        self.vmware_dcs = dcs
        self.zones = RowSet(zones, {"id": lambda r: r.id, "name": lambda r: r.zone.name})
        self.pods = RowSet(pods, {"id": lambda r: r.id, "zoneid": lambda r: r.zone.id,
                                  "name": lambda r: r.pod.name})
        self.clusters = RowSet(clusters, {
            "id": lambda r: r.id, "zoneid": lambda r: r.pod.zone.id, "podid": lambda r: r.pod.id,
            "name": lambda r: r.cluster.name, "hypervisor": lambda r: r.cluster.hypervisor.lower()})
        self.system_vms = RowSet(vms, {
            "id": lambda r: r.id, "zoneid": lambda r: r.host.cluster.pod.zone.id,
            "podid": lambda r: r.host.cluster.pod.id, "hostid": lambda r: r.host.id,
            "name": lambda r: r.vm.name, "systemvmtype": lambda r: _vm_type(r.vm).lower(),
            "state": lambda r: r.vm.state.lower()})
        self.routers = RowSet(routers, {
            "id": lambda r: r.id, "zoneid": lambda r: r.host.cluster.pod.zone.id,
            "podid": lambda r: r.host.cluster.pod.id, "clusterid": lambda r: r.host.cluster.id,
            "hostid": lambda r: r.host.id, "name": lambda r: r.router.name,
            "state": lambda r: r.router.state.lower(),
            "inproject": lambda r: r.router.project is not None,
            "projectid": lambda r: project_id(r.router.project),
            "account": lambda r: None if r.router.project else r.router.account,
            "healthchecksfailed": lambda r: "true" if r.failing_checks else "false"})
        # listHosts returns hypervisor hosts and, without a type filter, the agent
        # rows CloudStack keeps for each SSVM/CPVM.
        host_rows = list(hosts) + list(vms)
        self.hosts = RowSet(host_rows, {
            "id": lambda r: host_row_id(r), "zoneid": lambda r: r.host.cluster.pod.zone.id
            if isinstance(r, SystemVmRec) else r.cluster.pod.zone.id,
            "podid": lambda r: r.host.cluster.pod.id if isinstance(r, SystemVmRec) else r.cluster.pod.id,
            "clusterid": lambda r: None if isinstance(r, SystemVmRec) else r.cluster.id,
            "type": lambda r: host_type(r).lower(),
            "state": lambda r: (r.vm.agentstate if isinstance(r, SystemVmRec) else r.host.state).lower(),
            "hypervisor": lambda r: None if isinstance(r, SystemVmRec)
            else r.cluster.cluster.hypervisor.lower()})
        self.image_stores = RowSet(stores, {"id": lambda r: r.id, "zoneid": lambda r: r.zone.id,
                                            "name": lambda r: r.store.name})
        self.storage_pools = RowSet(pools, {
            "id": lambda r: r.id, "zoneid": lambda r: r.zone.id, "name": lambda r: r.store.name,
            "podid": lambda r: r.cluster.pod.id if r.cluster else None,
            "clusterid": lambda r: r.cluster.id if r.cluster else None,
            "ipaddress": lambda r: r.store.address, "path": lambda r: r.store.path})
        self.vlan_ranges = RowSet(ranges, {"id": lambda r: r.id, "zoneid": lambda r: r.zone.id})
        zone_by_name = {r.zone.name: r for r in zones}
        templates = [TemplateRec(t, ids.uuid_for("template", t.name), zone_by_name.get(t.zone)) for t in topology.templates]
        template_keys = {"id": lambda r: r.id, "name": lambda r: r.template.name,
                         "zoneid": lambda r: r.zone.id if r.zone else None}
        self.templates = RowSet([t for t in templates if not t.template.iso], template_keys)
        self.isos = RowSet([t for t in templates if t.template.iso], template_keys)
        networks = [PhysicalNetworkRec(z, ids.uuid_for("physicalnetwork", z.zone.name), f"{z.zone.name}-guest") for z in zones]
        self.physical_networks = RowSet(networks, {"id": lambda r: r.id, "zoneid": lambda r: r.zone.id})
        self.ldap_servers = RowSet(list(topology.ldap_servers), {})
        self.ms_rows = RowSet(self.management_servers, {
            "id": lambda r: r.id, "name": lambda r: r.ms.name})
        self.projects = {project_id(router.router.project) for router in routers
                         if router.router.project}
        # uuid -> record, to validate uuid parameters like the real ParamProcessWorker.
        self.entities = {
            "zone": {r.id for r in zones}, "pod": {r.id for r in pods},
            "cluster": {r.id for r in clusters}, "host": {host_row_id(r) for r in host_rows},
            "vm": {r.id for r in (*vms, *routers)}, "project": self.projects,
            "imagestore": {r.id for r in stores}, "storagepool": {r.id for r in pools},
            "vlan": {r.id for r in ranges}, "mshost": {r.id for r in self.management_servers},
            "template": {r.id for r in templates}, "physicalnetwork": {r.id for r in networks}}
        self.hosts_by_ms: dict[str, list[str]] = {}
        for host in hosts:
            self.hosts_by_ms.setdefault(host.ms.id, []).append(host.host.name)

    def all_hosts(self) -> Iterable[HostRec]:
        return (r for r in self.hosts.records if isinstance(r, HostRec))


def _vm_type(vm: schema.SystemVm) -> str:
    return "secondarystoragevm" if vm.type == "ssvm" else "consoleproxy"


def host_type(record: HostRec | SystemVmRec) -> str:
    if isinstance(record, SystemVmRec):
        return "SecondaryStorageVM" if record.vm.type == "ssvm" else "ConsoleProxy"
    return "Routing"


def host_row_id(record: HostRec | SystemVmRec) -> str:
    # The agent row of a system VM is a host row distinct from the VM itself.
    if isinstance(record, SystemVmRec):
        return ids.uuid_for("agent", record.vm.name)
    return record.id


def project_id(project: str | None) -> str | None:
    return ids.uuid_for("project", project) if project else None
