"""Load and validate a topology TOML file (schema: comment block in demo.toml).

Every problem becomes one ConfigError naming the file and the place, never a
traceback: the file is user input.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Any

from csaudit.lab import schema
from csaudit.model.errors import ConfigError

DEMO_RESOURCE = "demo.toml"
_VERSION_RE = re.compile(r"^\d+(\.\d+){1,3}$")
_REQUIRED = object()


class _Table:
    """One TOML table, read key by key so unknown keys (typos) can be reported."""

    def __init__(self, data: Any, where: str, source: str):
        self.where = where
        self.source = source
        if not isinstance(data, dict):
            self.fail(f"must be a table, not {type(data).__name__}")
        self.data = data
        self.used: set[str] = set()

    def fail(self, what: str) -> None:
        raise ConfigError(f"{self.source}: {self.where}: {what}")

    def _get(self, key: str, default: Any, kinds: tuple[type, ...], kind_name: str) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.fail(f"missing required key '{key}'")
            return default
        value = self.data[key]
        # bool is an int subclass in Python; TOML keeps them apart, so do we.
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            self.fail(f"'{key}' must be {kind_name}, not {_toml_type(value)}")
        return value

    def string(self, key: str, default: Any = _REQUIRED, choices: tuple[str, ...] = ()) -> Any:
        value = self._get(key, default, (str,), "a string")
        if choices and value is not None and value not in choices:
            self.fail(f"'{key}' = {value!r} is not one of {', '.join(choices)}")
        if default is _REQUIRED and value == "":
            self.fail(f"'{key}' must not be empty")
        return value

    def integer(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._get(key, default, (int,), "an integer")

    def boolean(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._get(key, default, (bool,), "true or false")

    def address(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self.string(key, default)
        if value is not None:
            check_loopback(value, lambda what: self.fail(f"'{key}': {what}"))
        return value

    def tables(self, key: str) -> list[_Table]:
        items = self._get(key, [], (list,), "an array of tables")
        return [_Table(item, f"{self.where_prefix}{key}[{i + 1}]", self.source)
                for i, item in enumerate(items)]

    def table(self, key: str, required: bool = True) -> _Table | None:
        self.used.add(key)
        if key not in self.data:
            if required:
                self.fail(f"missing required table [{key}]")
            return None
        return _Table(self.data[key], f"{self.where_prefix}{key}", self.source)

    def string_map(self, key: str) -> dict[str, str]:
        self.used.add(key)
        table = self.data.get(key, {})
        if not isinstance(table, dict):
            self.fail(f"[{key}] must be a table of name = \"value\"")
        for name, value in table.items():
            if not isinstance(value, str):
                # listConfigurations always returns strings; keep the file honest.
                self.fail(f"{key}.{name!r} must be a string (as the API returns it), "
                          f"not {_toml_type(value)}")
        return dict(table)

    @property
    def where_prefix(self) -> str:
        return "" if self.where == "top level" else f"{self.where}."

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(f"unknown key(s): {', '.join(unknown)}")


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


_LOOPBACK_RE = re.compile(r"127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


def check_loopback(value: str, fail: Callable[[str], None]) -> None:
    """The lab binds and is probed: any address outside 127/8 would leave the machine."""
    match = _LOOPBACK_RE.fullmatch(value)
    # fast path (generated clouds have ~200,000 addresses); the slow one explains errors
    if match and all(int(octet) <= 255 and (octet == "0" or octet[0] != "0")
                     for octet in match.groups()):
        return
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        fail(f"{value!r} is not an IPv4 address")
        return
    if not address.is_loopback:
        fail(f"{value} is outside 127.0.0.0/8 (the lab only uses loopback addresses)")


# Faults name their target, so these kinds share one namespace (no ambiguity).
_FAULT_TARGET_KINDS = ("management server", "database", "host", "system VM", "router", "storage")


def _name_registry(source: str) -> Callable[[str, str, str], None]:
    seen: dict[tuple[str, str], str] = {}

    def register(kind: str, name: str, where: str) -> None:
        namespace = "object" if kind in _FAULT_TARGET_KINDS else kind
        if (namespace, name) in seen:
            raise ConfigError(f"{source}: {where}: duplicate name {name!r} "
                              f"(already used at {seen[namespace, name]})")
        seen[namespace, name] = where
    return register


def parse_topology(text: str, source: str = "<topology>") -> schema.Topology:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: invalid TOML: {error}") from None
    return _topology(_Table(data, "top level", source))


def load_topology(path: str | os.PathLike) -> schema.Topology:
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ConfigError(f"{source}: cannot read topology: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    return parse_topology(text, source)


def default_topology() -> schema.Topology:
    """The bundled demo cloud (demo.toml)."""
    text = resources.files("csaudit.lab").joinpath(DEMO_RESOURCE).read_text("utf-8")
    return parse_topology(text, DEMO_RESOURCE)


def _topology(top: _Table) -> schema.Topology:
    register = _name_registry(top.source)
    cloud = top.table("cloud")
    version = cloud.string("version")
    if not _VERSION_RE.match(version):
        cloud.fail(f"'version' = {version!r} is not like 4.19.1.0")
    page_size = cloud.integer("default_page_size", 500)
    if page_size == 0 or page_size < -1:
        cloud.fail("'default_page_size' must be positive, or -1 for unlimited")
    listeners = cloud.boolean("listeners", True)
    api_key = cloud.string("api_key", None)
    secret_key = cloud.string("secret_key", None)
    if (api_key is None) != (secret_key is None):
        cloud.fail("give both api_key and secret_key, or neither")
    cloud.done()

    servers = []
    for table in top.tables("management_server"):
        server = schema.ManagementServer(
            name=table.string("name"), address=table.address("address"),
            state=table.string("state", "Up"))
        register("management server", server.name, table.where)
        table.done()
        servers.append(server)
    if not servers:
        top.fail("at least one [[management_server]] is required")

    db_table = top.table("database")
    database = schema.Database(name=db_table.string("name"), address=db_table.address("address"),
                              version=db_table.string("version", "8.0.36"))
    register("database", database.name, db_table.where)
    db_table.done()

    settings = top.string_map("settings")
    declared = settings.get("default.page.size")
    if declared is not None and declared != str(page_size):
        top.fail(f"settings 'default.page.size' = {declared!r} contradicts "
                 f"cloud.default_page_size = {page_size}")
    settings.setdefault("default.page.size", str(page_size))
    port_value = settings.get("integration.api.port", "0")
    if not re.fullmatch(r"-?\d+", port_value) or int(port_value) > 65535:
        top.fail(f"settings 'integration.api.port' = {port_value!r} is not a port number")

    zones = tuple(_zone(table, register) for table in top.tables("zone"))
    templates = tuple(_template(table, {zone.name for zone in zones}) for table in top.tables("template"))
    ldap_servers = []
    for table in top.tables("ldap"):
        ldap_servers.append(schema.LdapServer(table.address("hostname"), table.integer("port", 389)))
        table.done()
    usage_server = None
    usage = top.table("usage_server", required=False)
    if usage is not None:
        usage_server = usage.string("management_server")
        if usage_server not in {server.name for server in servers}:
            usage.fail(f"management_server {usage_server!r} is not a [[management_server]]")
        usage.done()
    faults = tuple(_fault(table) for table in top.tables("fault"))
    top.done()

    topology = schema.Topology(
        version=version, management_servers=tuple(servers), database=database, zones=zones,
        settings=settings, faults=faults, templates=templates, ldap_servers=tuple(ldap_servers),
        usage_server=usage_server, default_page_size=page_size, listeners=listeners,
        api_key=api_key, secret_key=secret_key)
    _check_faults(topology, top)
    return topology


def _template(table: _Table, zone_names: set[str]) -> schema.Template:
    template = schema.Template(name=table.string("name"), url=table.string("url"), zone=table.string("zone", None),
                               iso=table.boolean("iso", False))
    match = re.fullmatch(r"https?://([^/:]+)(:\d+)?(/.*)?", template.url)
    if not match:
        table.fail(f"'url' = {template.url!r} is not like http://127.42.9.80/templates/debian.qcow2")
    check_loopback(match.group(1), lambda what: table.fail(f"'url': {what}"))
    if template.zone is not None and template.zone not in zone_names:
        table.fail(f"zone {template.zone!r} is not a [[zone]]")
    table.done()
    return template


def _zone(table: _Table, register: Callable[[str, str, str], None]) -> schema.Zone:
    name = table.string("name")
    register("zone", name, table.where)
    table.where = f"zone {name!r}"
    pods = []
    for pod_table in table.tables("pod"):
        pod = schema.Pod(name=pod_table.string("name"), gateway=pod_table.address("gateway"),
                        netmask=pod_table.string("netmask"), startip=pod_table.address("startip"),
                        endip=pod_table.address("endip"))
        register("pod", pod.name, pod_table.where)
        pod_table.done()
        pods.append(pod)
    pod_names = {pod.name for pod in pods}

    clusters, hypervisor_of_host = [], {}
    for cluster_table in table.tables("cluster"):
        clusters.append(_cluster(cluster_table, pod_names, register, hypervisor_of_host))

    system_vms = []
    for vm_table in table.tables("systemvm"):
        vm = schema.SystemVm(
            type=vm_table.string("type", choices=schema.SYSTEM_VM_TYPES),
            name=vm_table.string("name"), host=vm_table.string("host"),
            private=vm_table.address("private"), public=vm_table.address("public"),
            linklocal=vm_table.address("linklocal", None),
            state=vm_table.string("state", "Running", choices=schema.VM_STATES),
            agentstate=vm_table.string("agentstate", "Up", choices=schema.HOST_STATES))
        register("system VM", vm.name, vm_table.where)
        hypervisor = _host_hypervisor(vm_table, vm.host, hypervisor_of_host)
        if hypervisor == "VMware" and vm.linklocal:
            vm_table.fail("system VMs on VMware have no linklocal IP (control uses private)")
        if hypervisor != "VMware" and not vm.linklocal:
            vm_table.fail(f"system VMs on {hypervisor} need 'linklocal'")
        vm_table.done()
        system_vms.append(vm)

    routers = []
    for router_table in table.tables("router"):
        router = schema.Router(
            name=router_table.string("name"), host=router_table.string("host"),
            linklocal=router_table.address("linklocal"), guest=router_table.address("guest"),
            public=router_table.address("public"),
            state=router_table.string("state", "Running", choices=schema.VM_STATES),
            account=router_table.string("account", "admin"),
            project=router_table.string("project", None),
            network=router_table.string("network", None), vpc=router_table.string("vpc", None),
            redundantstate=router_table.string("redundantstate", None, choices=schema.REDUNDANT_STATES))
        if router.redundantstate and not (router.network or router.vpc):
            router_table.fail("a redundant router needs 'network' or 'vpc': the routers sharing it are a pair")
        register("router", router.name, router_table.where)
        _host_hypervisor(router_table, router.host, hypervisor_of_host)
        router_table.done()
        routers.append(router)

    secondaries = []
    for store_table in table.tables("secondary_storage"):
        store = schema.SecondaryStorage(name=store_table.string("name"),
                                       url=store_table.string("url"))
        match = re.fullmatch(r"nfs://([^/]+)(/.*)", store.url)
        if not match:
            store_table.fail(f"'url' = {store.url!r} is not like nfs://127.42.1.40/export/secondary")
        check_loopback(match.group(1), lambda what, t=store_table: t.fail(f"'url': {what}"))
        register("storage", store.name, store_table.where)
        store_table.done()
        secondaries.append(store)

    cluster_names = {cluster.name for cluster in clusters}
    primaries = []
    for store_table in table.tables("primary_storage"):
        store = schema.PrimaryStorage(
            name=store_table.string("name"), address=store_table.address("address"),
            path=store_table.string("path"), type=store_table.string("type", "NetworkFilesystem"),
            cluster=store_table.string("cluster", None))
        if store.cluster is not None and store.cluster not in cluster_names:
            store_table.fail(f"cluster {store.cluster!r} is not a cluster of this zone")
        register("storage", store.name, store_table.where)
        store_table.done()
        primaries.append(store)

    ranges = []
    for range_table in table.tables("public_range"):
        ranges.append(schema.PublicRange(
            gateway=range_table.address("gateway"), netmask=range_table.string("netmask"),
            startip=range_table.address("startip"), endip=range_table.address("endip"),
            vlan=range_table.string("vlan", "untagged")))
        range_table.done()

    zone = schema.Zone(
        name=name, networktype=table.string("networktype", "Advanced", choices=schema.NETWORK_TYPES),
        dns1=table.address("dns1"), internaldns1=table.address("internaldns1"),
        dns2=table.address("dns2", None), internaldns2=table.address("internaldns2", None),
        settings=table.string_map("settings"), pods=tuple(pods), clusters=tuple(clusters),
        system_vms=tuple(system_vms), routers=tuple(routers),
        secondary_storage=tuple(secondaries), primary_storage=tuple(primaries),
        public_ranges=tuple(ranges),
        isolation=table.string("isolation", "VLAN"))
    table.done()
    return zone


def _cluster(table: _Table, pod_names: set[str], register, hypervisor_of_host: dict) -> schema.Cluster:
    name = table.string("name")
    register("cluster", name, table.where)
    pod = table.string("pod")
    if pod not in pod_names:
        table.fail(f"pod {pod!r} is not a pod of this zone")
    hypervisor = table.string("hypervisor", choices=schema.HYPERVISORS)
    vcenter = table.address("vcenter", None)
    vmware_dc = table.string("vmware_dc", None)
    if hypervisor == "VMware" and vcenter is None:
        table.fail("VMware clusters need 'vcenter' (the vCenter address)")
    if hypervisor != "VMware" and (vcenter or vmware_dc):
        table.fail("'vcenter'/'vmware_dc' only apply to VMware clusters")
    hosts = []
    for host_table in table.tables("host"):
        host = schema.Host(name=host_table.string("name"), address=host_table.address("address"),
                          state=host_table.string("state", "Up", choices=schema.HOST_STATES),
                          bmc=host_table.address("bmc", None), bmc_port=host_table.integer("bmc_port", 623),
                          bmc_driver=host_table.string("bmc_driver", "ipmitool", choices=schema.BMC_DRIVERS))
        register("host", host.name, host_table.where)
        hypervisor_of_host[host.name] = hypervisor
        host_table.done()
        hosts.append(host)
    table.done()
    return schema.Cluster(name=name, pod=pod, hypervisor=hypervisor, hosts=tuple(hosts),
                         vcenter=vcenter, vmware_dc=vmware_dc)


def _host_hypervisor(table: _Table, host: str, hypervisor_of_host: dict) -> str:
    if host not in hypervisor_of_host:
        table.fail(f"host {host!r} is not a host of this zone")
    return hypervisor_of_host[host]


def _fault(table: _Table) -> schema.FaultSpec:
    kind = table.string("kind", choices=schema.FAULT_KINDS)
    single = table.string("object", None)
    several = table._get("objects", None, (list,), "an array of names")
    if (single is None) == (several is None):
        table.fail("give exactly one of 'object' or 'objects'")
    objects = (single,) if single is not None else tuple(several)
    if not objects or not all(isinstance(name, str) and name for name in objects):
        table.fail("'objects' must be a non-empty array of names")
    port = table.integer("port", None)
    if port is not None and not 0 < port < 65536:
        table.fail(f"'port' = {port} is not a port number")
    portless = ("api-state-mismatch", *schema.API_FAULT_KINDS)
    if kind in portless and port is not None:
        table.fail(f"{kind} faults name no port: give no 'port'")
    if kind not in portless and port is None:
        table.fail(f"{kind} faults need a 'port'")
    fault = schema.FaultSpec(
        kind=kind, objects=objects, port=port,
        protocol=table.string("protocol", "tcp", choices=("tcp", "udp")),
        address=table.address("address", None), description=table.string("description"),
        speaks=table.string("speaks", "http", choices=schema.WRONG_SERVICES),
        state=table.string("state", None, choices=schema.REDUNDANT_STATES),
        check=table.string("check", "gateways_check.py" if kind == "health-check-failed" else None,
                           choices=tuple(schema.ROUTER_HEALTH_CHECKS)))
    if fault.speaks != "http" and kind != "wrong-service":
        table.fail("'speaks' only applies to wrong-service faults")
    if (fault.state is not None) != (kind == "redundant-state"):
        table.fail("redundant-state faults, and only they, need a 'state'")
    if fault.check is not None and kind != "health-check-failed":
        table.fail("'check' only applies to health-check-failed faults")
    table.done()
    return fault


def _check_faults(topology: schema.Topology, top: _Table) -> None:
    """Faults must name real objects and ports they really serve (else they'd be no-ops)."""
    if not topology.faults:
        return
    from csaudit.lab.services import planned_services  # services depends on this module's output

    by_object: dict[str, list] = {}
    for service in planned_services(topology, apply_faults=False):
        by_object.setdefault(service.object_name, []).append(service)
    for index, fault in enumerate(topology.faults, start=1):
        where = f"fault[{index}]"
        for name in fault.objects:
            if name not in by_object:
                top.where = where
                top.fail(f"object {name!r} is not a management server, database, host, "
                         "system VM, router or storage of this topology")
            if fault.kind in schema.API_FAULT_KINDS:
                top.where = where
                _check_router_fault(topology, fault, name, top.fail)
                continue
            served = [s for s in by_object[name]
                      if (fault.port is None or (s.port, s.protocol) == (fault.port, fault.protocol))
                      and (fault.address is None or s.address == fault.address)]
            if fault.kind in ("missing-listener", "filtered", "wrong-service") and not served:
                top.where = where
                top.fail(f"{name} does not serve {fault.port}/{fault.protocol}"
                         + (f" on {fault.address}" if fault.address else ""))
            if fault.kind in ("filtered", "wrong-service") and fault.protocol != "tcp":
                top.where = where
                top.fail(f"only tcp ports can be {fault.kind}")
            if fault.kind == "wrong-service" and any(s.kind == fault.speaks for s in served):
                top.where = where
                top.fail(f"{name} already speaks {fault.speaks} on {fault.port}/tcp: choose another 'speaks'")


def _check_router_fault(topology: schema.Topology, fault: schema.FaultSpec, name: str, fail) -> None:
    router = next((r for zone in topology.zones for r in zone.routers if r.name == name), None)
    if router is None:
        fail(f"{fault.kind} faults apply to routers: {name!r} is not a router")
    elif fault.kind == "redundant-state" and router.redundantstate is None:
        fail(f"router {name} is not redundant (no 'redundantstate'): it has no redundant state to report")
