"""Which ports every object of a topology serves, and how the planted faults change that.

This is pure data (no sockets): the listeners bind what it returns, and tests
compare it with what csaudit reports. Ports follow the CloudStack roles:
agents on 8250, cluster traffic on 9090, system VM control on 3922, etc.
"""

from __future__ import annotations

import dataclasses
import re

from csaudit.lab import schema

API_PORT = 8080  # the signed API servlet (Jetty) on every management server

# kind -> what the listener does. "api"/"integration" are served by the API server.
KINDS = ("api", "integration", "tls", "https", "http", "ssh", "mysql", "rfb", "dns",
         "rpcbind", "nfs", "ntp", "smtp", "ldap", "rmcp", "vxlan", "prometheus", "filtered")


@dataclasses.dataclass(frozen=True)
class Service:
    object_name: str
    role: str
    address: str
    port: int
    protocol: str  # "tcp" | "udp"
    kind: str
    # The firewall in front of a TCP port, as between the segments of a real cloud: the kernel drops
    # the SYNs of every other source (listeners.py), so a probe from there times out. Empty: everyone.
    only_from: tuple[str, ...] = ()
    # prometheus only: the addresses the exporter serves (prometheus.exporter.allowed.ips); others get 403
    allowed: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Fault:
    """One probe-able consequence of a [[fault]] entry (one per object and address)."""

    fault_id: int  # 1-based index of the [[fault]] entry it comes from
    kind: str
    object_name: str
    address: str
    port: int | None  # None: every port of the object (api-state-mismatch)
    protocol: str | None
    description: str
    # A fault of what the API says (schema.API_FAULT_KINDS): no probe lands on it, a cross-check finding shows it.
    api_only: bool = False


def _hypervisor_role(hypervisor: str) -> str:
    return {"KVM": "kvm-host", "XenServer": "xenserver-host", "VMware": "esxi-host"}[hypervisor]


# (port, protocol, kind) served by each host role.
_HOST_PORTS = {
    "kvm-host": ((22, "tcp", "ssh"), (16514, "tcp", "tls"), (5900, "tcp", "rfb")),
    "xenserver-host": ((22, "tcp", "ssh"), (80, "tcp", "http"), (443, "tcp", "tls")),
    "esxi-host": ((443, "tcp", "tls"),),  # plus the legacy VNC range's first port (_vnc_range_start)
}
_NFS_PORTS = ((111, "tcp", "rpcbind"), (111, "udp", "rpcbind"), (2049, "tcp", "nfs"))
_DNS_PORTS = ((53, "tcp", "dns"), (53, "udp", "dns"))


def _unfaulted(topology: schema.Topology) -> list[Service]:
    services: list[Service] = []

    def add(name: str, role: str, address: str, ports, **firewall) -> None:
        services.extend(Service(name, role, address, port, protocol, kind, **firewall)
                        for port, protocol, kind in ports)

    # What the firewalls between a real cloud's segments allow: the cluster servlet and MySQL only
    # to the MSs (deny rules D04 and D03, probed from the hosts too).
    ms_only = {"only_from": tuple(server.address for server in topology.management_servers)}
    integration = topology.integration_port
    for server in topology.management_servers:
        add(server.name, "management-server", server.address, ((API_PORT, "tcp", "api"), (8250, "tcp", "tls")))
        add(server.name, "management-server", server.address, ((9090, "tcp", "tls"),), **ms_only)
        if integration > 0:
            add(server.name, "management-server", server.address,
                ((integration, "tcp", "integration"),))
    add(topology.database.name, "database", topology.database.address, ((3306, "tcp", "mysql"),), **ms_only)
    for address in ntp_servers(topology):
        add(f"ntp@{address}", "ntp-server", address, ((123, "udp", "ntp"),))

    for zone in topology.zones:
        for address in zone.dns_servers:
            add(f"dns@{address}", "dns-server", address, _DNS_PORTS)
        vcenters = []
        for cluster in zone.clusters:
            role = _hypervisor_role(cluster.hypervisor)
            for host in cluster.hosts:
                add(host.name, role, host.address, _HOST_PORTS[role])
                if role == "kvm-host" and "VXLAN" in zone.isolation_methods:  # the VXLAN endpoint (flow F42)
                    add(host.name, role, host.address, ((8472, "udp", "vxlan"),))
                if role == "esxi-host":  # the ESXi firewall opens the legacy VNC range to the CPVM (flow F37)
                    add(host.name, role, host.address, ((_vnc_range_start(topology), "tcp", "rfb"),))
                if host.bmc and host.bmc.startswith("127."):
                    bmc = (host.bmc_port, "udp", "rmcp") if host.bmc_driver == "ipmitool" else (host.bmc_port, "tcp", "https")
                    add(f"{host.name}-bmc", "bmc", host.bmc, (bmc,))
            if cluster.vcenter and cluster.vcenter not in vcenters:
                vcenters.append(cluster.vcenter)
        for address in vcenters:
            add(f"vcenter@{address}", "vcenter", address, ((443, "tcp", "tls"),))
        for vm in zone.system_vms:
            add(vm.name, vm.type, vm.control_address, ((3922, "tcp", "ssh"),))
            if vm.type == "ssvm":
                add(vm.name, vm.type, vm.public, ((80, "tcp", "http"), (443, "tcp", "https")))
            else:
                add(vm.name, vm.type, vm.public,
                    ((80, "tcp", "http"), (443, "tcp", "https"), (8080, "tcp", "http")))
                add(vm.name, vm.type, vm.private, ((8001, "tcp", "http"),))
        for router in zone.routers:
            add(router.name, "router", router.linklocal, ((3922, "tcp", "ssh"),))
            add(router.name, "router", router.guest,
                ((53, "tcp", "dns"), (80, "tcp", "http"), (8080, "tcp", "http")))
        for store in zone.secondary_storage:
            add(store.name, "nfs-server", store.address, _NFS_PORTS)
        for store in zone.primary_storage:
            if store.type == "NetworkFilesystem":
                add(store.name, "nfs-server", store.address, _NFS_PORTS)
    _named_services(topology, add)
    return services


def _vnc_range_start(topology: schema.Topology) -> int:
    start = topology.settings.get("vmware.additional.vnc.portrange.start", "50000")
    return int(start) if start.isdigit() and 0 < int(start) < 65536 else 50000


def _named_services(topology: schema.Topology, add) -> None:
    """The services the API or a setting names by address (template hosts, proxy, SMTP, LDAP, the
    Prometheus exporter): served where they are on loopback."""
    # one server per URL host:port, named after the first template it serves (a name that stays when the lab moves)
    servers: dict[tuple[str, int, bool], str] = {}
    for template in topology.templates:
        servers.setdefault((template.address, template.port, template.url.startswith("https")), template.name)
    for (host, port, https), name in servers.items():
        add(f"templates:{name}", "template-host", host, ((port, "tcp", "https" if https else "http"),))
    settings = topology.settings
    proxy = re.fullmatch(r"https?://(?:[^@/]*@)?(127\.[\d.]+):(\d+)/?", settings.get("secstorage.proxy", ""))
    if proxy:
        add(f"proxy@{proxy.group(1)}", "http-proxy", proxy.group(1), ((int(proxy.group(2)), "tcp", "http"),))
    smtp_host, smtp_port = settings.get("alert.smtp.host", ""), settings.get("alert.smtp.port", "465")
    if smtp_host.startswith("127.") and smtp_port.isdigit():
        kind = "tls" if smtp_port == "465" else "smtp"
        add(f"smtp@{smtp_host}", "smtp-server", smtp_host, ((int(smtp_port), "tcp", kind),))
    for server in topology.ldap_servers:
        if server.hostname.startswith("127."):
            add(f"ldap@{server.hostname}", "ldap-server", server.hostname,
                ((server.port, "tcp", "tls" if server.port == 636 else "ldap"),))
    if settings.get("prometheus.exporter.enable", "false").lower() == "true":
        port = settings.get("prometheus.exporter.port", "9595")
        allowed = tuple(a.strip() for a in settings.get("prometheus.exporter.allowed.ips", "").split(",") if a.strip())
        for server in topology.management_servers:
            services_port = int(port) if port.isdigit() else 9595
            add(server.name, "management-server", server.address, ((services_port, "tcp", "prometheus"),),
                allowed=allowed)


def ntp_servers(topology: schema.Topology) -> list[str]:
    """The loopback addresses in ntp.server.list (names and other addresses are not served)."""
    listed = (a.strip() for a in topology.settings.get("ntp.server.list", "").split(","))
    return list(dict.fromkeys(a for a in listed if a.startswith("127.")))


def primary_address(topology: schema.Topology, name: str) -> str | None:
    """The address an "exposed" extra port opens on: the object's most public one."""
    for server in topology.management_servers:
        if server.name == name:
            return server.address
    if topology.database.name == name:
        return topology.database.address
    for zone in topology.zones:
        for cluster in zone.clusters:
            for host in cluster.hosts:
                if host.name == name:
                    return host.address
        for vm in (*zone.system_vms, *zone.routers):
            if vm.name == name:
                return vm.public
        for store in (*zone.secondary_storage, *zone.primary_storage):
            if store.name == name:
                return store.address
    return None


def _matches(service: Service, fault: schema.FaultSpec, name: str) -> bool:
    return (service.object_name == name
            and (fault.port is None or (service.port, service.protocol) == (fault.port, fault.protocol))
            and (fault.address is None or service.address == fault.address))


def planned_services(topology: schema.Topology, apply_faults: bool = True) -> list[Service]:
    """Every (object, address, port) the lab serves; with faults applied by default."""
    services = _unfaulted(topology)
    if not apply_faults:
        return services
    for fault in topology.faults:
        for name in fault.objects:
            if fault.kind == "exposed":
                already = any(_matches(s, fault, name) for s in services)
                address = fault.address or primary_address(topology, name)
                if not already and address:
                    role = next((s.role for s in services if s.object_name == name), "unknown")
                    services.append(Service(name, role, address, fault.port, fault.protocol, "http"))
            elif fault.kind == "missing-listener":
                services = [s for s in services if not _matches(s, fault, name)]
            elif fault.kind == "filtered":
                services = [dataclasses.replace(s, kind="filtered") if _matches(s, fault, name) else s
                            for s in services]
            elif fault.kind == "api-state-mismatch":
                services = [s for s in services if s.object_name != name]
            elif fault.kind == "wrong-service":
                services = [dataclasses.replace(s, kind=fault.speaks) if _matches(s, fault, name) else s
                            for s in services]
    return services


def planted_faults(topology: schema.Topology) -> tuple[Fault, ...]:
    """The faults expanded to concrete (object, address, port) targets a probe can check."""
    unfaulted = _unfaulted(topology)
    faults: list[Fault] = []
    for fault_id, fault in enumerate(topology.faults, start=1):
        for name in fault.objects:
            if fault.kind in schema.API_FAULT_KINDS:
                faults.append(Fault(fault_id, fault.kind, name, primary_address(topology, name), None, None,
                                    fault.description, api_only=True))
                continue
            if fault.kind == "api-state-mismatch":
                addresses = dict.fromkeys(s.address for s in unfaulted if s.object_name == name)
                faults.extend(Fault(fault_id, fault.kind, name, address, None, None, fault.description)
                              for address in addresses)
                continue
            addresses = dict.fromkeys(s.address for s in unfaulted if _matches(s, fault, name))
            if fault.kind == "exposed" and not addresses:
                addresses = {fault.address or primary_address(topology, name): None}
            faults.extend(Fault(fault_id, fault.kind, name, address, fault.port, fault.protocol,
                                fault.description)
                          for address in addresses if address)
    return tuple(faults)
