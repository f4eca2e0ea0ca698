"""The cloud as the API describes it: frozen dataclasses, one per kind of object, and the Inventory that holds them."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    network_type: str | None = None
    dns: tuple[str, ...] = ()
    internal_dns: tuple[str, ...] = ()
    isolation_methods: tuple[str, ...] = ()  # of its physical networks (listPhysicalNetworks): VLAN, VXLAN, ...


@dataclasses.dataclass(frozen=True, slots=True)
class Pod:
    id: str
    name: str
    zone_id: str | None
    gateway: str | None = None
    netmask: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    name: str
    zone_id: str | None
    pod_id: str | None
    hypervisor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Host:
    """A hypervisor host (listHosts type=Routing); `address` is its management IP."""

    id: str
    name: str
    zone_id: str | None
    pod_id: str | None
    cluster_id: str | None
    hypervisor: str | None
    address: str | None
    state: str | None = None
    resource_state: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ManagementServer:
    id: str
    name: str
    address: str | None
    address_source: str  # which API field or fallback gave the address
    state: str | None = None
    version: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Database:
    name: str
    address: str | None
    address_source: str


@dataclasses.dataclass(frozen=True, slots=True)
class SystemVm:
    """An SSVM or a CPVM (role 'ssvm' / 'cpvm')."""

    id: str
    name: str
    role: str
    zone_id: str | None
    host_id: str | None
    hypervisor: str | None
    private_ip: str | None
    linklocal_ip: str | None
    public_ip: str | None
    state: str | None = None
    agent_state: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCheck:
    """One of a router's own health checks (listRouters fetchhealthcheckresults=true, 4.14+)."""

    name: str  # checkname, e.g. gateways_check.py
    type: str | None  # checktype: basic | advanced
    last_updated: str | None
    details: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Router:
    id: str
    name: str
    zone_id: str | None
    host_id: str | None
    hypervisor: str | None
    linklocal_ip: str | None
    guest_ip: str | None
    public_ip: str | None
    state: str | None = None
    # Redundant routers only (isredundantrouter): their state and what ties them to their peer; 50,000
    # routers' worth of ids and names would be kept for nothing.
    redundant_state: str | None = None  # MASTER | BACKUP | FAULT | UNKNOWN (PRIMARY instead of MASTER from 4.16)
    redundant: bool = False  # isredundantrouter
    guest_network_id: str | None = None
    guest_network_name: str | None = None
    vpc_id: str | None = None  # a VPC's redundant routers share it (their guest network is one of its tiers)
    vpc_name: str | None = None
    # Only the failed checks are kept (a cloud's routers run about ten each); None: the server sent no
    # results (before 4.14, or the routers' checks are disabled).
    health_checks_run: int | None = None
    health_checks_failed: tuple[HealthCheck, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ImageStore:
    """Secondary storage; host and port parsed from its URL (nfs://host/path)."""

    id: str
    name: str
    zone_id: str | None
    protocol: str | None
    address: str | None
    port: int | None
    path: str | None
    url: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class StoragePool:
    """Primary storage; `protocol` is derived from the pool type (NetworkFilesystem → nfs)."""

    id: str
    name: str
    zone_id: str | None
    cluster_id: str | None
    scope: str | None
    type: str | None
    protocol: str | None
    address: str | None
    path: str | None
    state: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class VCenter:
    name: str
    address: str
    zone_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class NamedService:
    """A service the API or a setting names by address: a template URL's host, the SMTP relay, an LDAP
    server, a host's BMC, the usage server. `role` is its catalogue role, `origin` where it was named."""

    role: str
    name: str
    address: str | None
    port: int | None
    protocol: str | None  # http, https, smtp, smtps, ldap, ldaps, ipmi, redfish (None: not told)
    origin: str
    zone_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Inventory:
    endpoint: str | None
    api_mode: str | None
    version: str | None
    zones: tuple[Zone, ...] = ()
    pods: tuple[Pod, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    hosts: tuple[Host, ...] = ()
    management_servers: tuple[ManagementServer, ...] = ()
    database: Database | None = None
    system_vms: tuple[SystemVm, ...] = ()
    routers: tuple[Router, ...] = ()
    image_stores: tuple[ImageStore, ...] = ()
    storage_pools: tuple[StoragePool, ...] = ()
    vcenters: tuple[VCenter, ...] = ()
    services: tuple[NamedService, ...] = ()
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    zone_settings: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    zone_errors: dict[str, str] = dataclasses.field(default_factory=dict)  # zone id -> why its listing failed

    def setting(self, name: str, zone_id: str | None = None) -> str | None:
        """A zone's own value wins over the global one."""
        if zone_id is not None and name in self.zone_settings.get(zone_id, {}):
            return self.zone_settings[zone_id][name]
        return self.settings.get(name)

    def zone_by_id(self, zone_id: str | None) -> Zone | None:
        return next((z for z in self.zones if z.id == zone_id), None)
