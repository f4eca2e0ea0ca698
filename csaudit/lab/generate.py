"""Large synthetic topologies (for scale tests and benchmarks) and TOML output.

A generated cloud is API-only (`listeners = false`): tens of thousands of
objects, each zone in its own 127.N.0.0/16 so every address stays unique.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from csaudit.lab import schema
from csaudit.model.errors import UsageError

BASE_OCTET = 43  # the demo uses 127.42: generated clouds can run next to it
HOSTS_PER_CLUSTER = 20
HYPERVISOR_CYCLE = ("KVM", "KVM", "XenServer", "VMware")
_ADDRESSES_PER_ZONE = 254 * 253  # 127.Z.1.1 .. 127.Z.254.254, minus a little headroom

GENERATED_SETTINGS = {
    "port": "8250", "integration.api.port": "0", "consoleproxy.sslEnabled": "false",
    "secstorage.ssl.cert.domain": "", "secstorage.encrypt.copy": "false", "ntp.server.list": "",
    "control.cidr": "169.254.0.0/16",
}


class _Addresses:
    """Sequential unique addresses in one zone's /16, skipping .0 and .255."""

    def __init__(self, octet: int):
        self._octet = octet
        self._next = 0

    def take(self) -> str:
        third, fourth = divmod(self._next, 254)
        self._next += 1
        return f"127.{self._octet}.{third + 1}.{fourth + 1}"


def generate_topology(zones: int, hosts: int, routers: int, *, version: str = "4.19.1.0",
                      base_octet: int = BASE_OCTET) -> schema.Topology:
    """`hosts` and `routers` are per zone; every zone also gets one SSVM and one CPVM."""
    if zones < 1 or hosts < 1 or routers < 0:
        raise UsageError("generate needs --zones >= 1, --hosts >= 1 and --routers >= 0")
    if base_octet + zones > 254:
        raise UsageError(f"at most {254 - base_octet} zones (one 127.N.0.0/16 each)")
    clusters_per_zone = -(-hosts // HOSTS_PER_CLUSTER)
    needed = hosts + 3 * routers + 4 + clusters_per_zone
    if needed > _ADDRESSES_PER_ZONE:
        raise UsageError(f"{hosts} hosts and {routers} routers need {needed} addresses per zone; "
                         f"a zone has {_ADDRESSES_PER_ZONE}")
    home = f"127.{base_octet}.0"
    servers = (schema.ManagementServer("ms1", f"{home}.11"), schema.ManagementServer("ms2", f"{home}.12"))
    settings = {"host": ",".join(s.address for s in servers), **GENERATED_SETTINGS}
    vm_number = iter(range(1, 10 ** 9))
    zone_list = tuple(_zone(index, base_octet + 1 + index, hosts, routers, vm_number)
                      for index in range(zones))
    return schema.Topology(
        version=version, management_servers=servers,
        database=schema.Database("db1", f"{home}.20"), zones=zone_list,
        settings={**settings, "default.page.size": "500"}, listeners=False)


def _zone(index: int, octet: int, host_count: int, router_count: int,
          vm_number: Iterator[int]) -> schema.Zone:
    name = f"zone-{index + 1:02d}"
    prefix = f"127.{octet}.0"
    addresses = _Addresses(octet)
    pod = schema.Pod(f"{name}-pod-1", f"{prefix}.1", "255.255.0.0", f"{prefix}.100", f"{prefix}.200")
    clusters, all_hosts, hypervisor_of = [], [], {}
    for start in range(0, host_count, HOSTS_PER_CLUSTER):
        number = start // HOSTS_PER_CLUSTER
        hypervisor = HYPERVISOR_CYCLE[number % len(HYPERVISOR_CYCLE)]
        hosts = tuple(schema.Host(f"{name}-host-{i + 1:05d}", addresses.take())
                      for i in range(start, min(start + HOSTS_PER_CLUSTER, host_count)))
        all_hosts.extend(hosts)
        hypervisor_of.update((host.name, hypervisor) for host in hosts)
        vmware = hypervisor == "VMware"
        clusters.append(schema.Cluster(
            f"{name}-cluster-{number + 1:03d}", pod.name, hypervisor, hosts,
            vcenter=f"{prefix}.10" if vmware else None, vmware_dc=f"{name}-dc" if vmware else None))

    first_host = all_hosts[0]  # in the first cluster, always KVM: system VMs get a linklocal
    system_vms = (
        schema.SystemVm("ssvm", f"s-{next(vm_number)}-VM", first_host.name, f"{prefix}.101",
                       addresses.take(), linklocal=addresses.take()),
        schema.SystemVm("cpvm", f"v-{next(vm_number)}-VM", first_host.name, f"{prefix}.102",
                       addresses.take(), linklocal=addresses.take()))
    routers = []
    for r in range(router_count):
        host = all_hosts[r % len(all_hosts)]
        number = next(vm_number)
        routers.append(schema.Router(
            f"r-{number}-VM", host.name, linklocal=addresses.take(), guest=addresses.take(),
            public=addresses.take(), account=f"tenant-{number % 997:03d}",
            # every tenth router belongs to a project: listRouters projectid=-1 finds it
            project=f"project-{index + 1:02d}" if r % 10 == 9 else None))
    primaries = tuple(schema.PrimaryStorage(f"{cluster.name}-primary", addresses.take(),
                                           "/export/primary", cluster=cluster.name)
                      for cluster in clusters)
    last = addresses.take()
    return schema.Zone(
        name=name, networktype="Advanced", dns1=f"{prefix}.54", internaldns1=f"{prefix}.53",
        pods=(pod,), clusters=tuple(clusters), system_vms=system_vms, routers=tuple(routers),
        secondary_storage=(schema.SecondaryStorage(f"{name}-secondary",
                                                  f"nfs://{prefix}.40/export/secondary"),),
        primary_storage=primaries,
        public_ranges=(schema.PublicRange(f"{prefix}.254", "255.255.0.0", f"127.{octet}.1.1", last),))


# ---------------------------------------------------------------------- TOML output

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _pairs(obj: Any, skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Fields that differ from their defaults (the loader restores the defaults)."""
    pairs = []
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if field.name in skip or value is None:
            continue
        if field.default is not dataclasses.MISSING and value == field.default:
            continue
        pairs.append((field.name, value))
    return pairs


def _inline(obj: Any) -> str:
    return "{" + ", ".join(f"{key} = {_toml_value(value)}" for key, value in _pairs(obj)) + "}"


def _table(header: str, pairs: list[tuple[str, Any]], out: list[str]) -> None:
    out.append(f"\n{header}\n")
    out.extend(f"{key} = {_toml_value(value)}\n" for key, value in pairs)


def _inline_array(key: str, items: tuple, out: list[str]) -> None:
    if items:
        out.append(f"{key} = [\n")
        out.extend(f"  {_inline(item)},\n" for item in items)
        out.append("]\n")


def topology_to_toml(topology: schema.Topology, comment: str = "") -> str:
    """TOML that load_topology() reads back into an equal Topology.

    Hosts, system VMs and routers are written as one inline table per line:
    compact, greppable, and faster to parse than one [[table]] per object.
    """
    out = [f"# {line}\n" for line in comment.splitlines()]
    _table("[cloud]", [("version", topology.version),
                       ("default_page_size", topology.default_page_size),
                       ("listeners", topology.listeners)]
           + [(k, v) for k, v in (("api_key", topology.api_key),
                                  ("secret_key", topology.secret_key)) if v], out)
    for server in topology.management_servers:
        _table("[[management_server]]", _pairs(server), out)
    _table("[database]", _pairs(topology.database), out)
    _table("[settings]", [(json.dumps(k), v) for k, v in topology.settings.items()], out)
    for zone in topology.zones:
        _table("[[zone]]", _pairs(zone, skip=("settings", "pods", "clusters", "system_vms",
                                                "routers", "secondary_storage", "primary_storage",
                                                "public_ranges")), out)
        _inline_array("systemvm", zone.system_vms, out)
        _inline_array("router", zone.routers, out)
        if zone.settings:
            _table("[zone.settings]", [(json.dumps(k), v) for k, v in zone.settings.items()], out)
        for pod in zone.pods:
            _table("[[zone.pod]]", _pairs(pod), out)
        for rng in zone.public_ranges:
            _table("[[zone.public_range]]", _pairs(rng), out)
        for cluster in zone.clusters:
            _table("[[zone.cluster]]", _pairs(cluster, skip=("hosts",)), out)
            _inline_array("host", cluster.hosts, out)
        for store in zone.secondary_storage:
            _table("[[zone.secondary_storage]]", _pairs(store), out)
        for store in zone.primary_storage:
            _table("[[zone.primary_storage]]", _pairs(store), out)
    for template in topology.templates:
        _table("[[template]]", _pairs(template), out)
    for server in topology.ldap_servers:
        _table("[[ldap]]", _pairs(server), out)
    if topology.usage_server:
        _table("[usage_server]", [("management_server", topology.usage_server)], out)
    for fault in topology.faults:
        _table("[[fault]]", _pairs(fault), out)
    return "".join(out)
