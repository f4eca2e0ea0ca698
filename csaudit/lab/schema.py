"""The simulated cloud as plain, immutable data.

These dataclasses mirror the TOML schema documented at the top of demo.toml.
They hold only what a CloudStack operator would configure; everything the API
derives (uuids, MACs, pod of a host...) is computed later by the inventory, so
a topology stays small and easy to compare.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

HYPERVISORS = ("KVM", "XenServer", "VMware")
SYSTEM_VM_TYPES = ("ssvm", "cpvm")
# The last two change only what the API says (listRouters), no listener: a cross-check finding shows them.
API_FAULT_KINDS = ("redundant-state", "health-check-failed")
FAULT_KINDS = ("exposed", "missing-listener", "filtered", "api-state-mismatch", "wrong-service", *API_FAULT_KINDS)
# VirtualRouter.RedundantState; 4.16 renamed MASTER to PRIMARY (the lab serves each release's name).
REDUNDANT_STATES = ("MASTER", "PRIMARY", "BACKUP", "FAULT", "UNKNOWN")
# The router health checks the lab reports (systemvm/debian/root/health_checks/), name -> type.
ROUTER_HEALTH_CHECKS = {"dns_check.py": "basic", "gateways_check.py": "basic"}
# what a "wrong-service" port speaks instead of its own protocol (listener kinds, services.py)
WRONG_SERVICES = ("http", "ssh", "mysql", "rfb", "tls")
# Host.Status and VirtualMachine.State values, as the API reports them.
HOST_STATES = ("Creating", "Connecting", "Up", "Down", "Disconnected", "Alert",
               "Removed", "Error", "Rebalancing", "Unknown")
VM_STATES = ("Starting", "Running", "Stopping", "Stopped", "Destroyed", "Expunging",
             "Migrating", "Error", "Unknown", "Shutdown", "Restoring")
NETWORK_TYPES = ("Basic", "Advanced")


@dataclasses.dataclass(frozen=True)
class ManagementServer:
    name: str
    address: str
    state: str = "Up"


@dataclasses.dataclass(frozen=True)
class Database:
    name: str
    address: str
    version: str = "8.0.36"


BMC_DRIVERS = ("ipmitool", "redfish")  # out-of-band management drivers the lab's BMCs speak


@dataclasses.dataclass(frozen=True)
class Host:
    name: str
    address: str
    state: str = "Up"
    bmc: str | None = None  # out-of-band management address (listHosts outofbandmanagement)
    bmc_port: int = 623
    bmc_driver: str = "ipmitool"


@dataclasses.dataclass(frozen=True)
class Cluster:
    name: str
    pod: str
    hypervisor: str
    hosts: tuple[Host, ...] = ()
    vcenter: str | None = None  # VMware only: the vCenter that manages the cluster
    vmware_dc: str | None = None  # VMware only: vSphere datacenter name


@dataclasses.dataclass(frozen=True)
class Pod:
    name: str
    gateway: str
    netmask: str
    startip: str
    endip: str


@dataclasses.dataclass(frozen=True)
class SystemVm:
    type: str  # "ssvm" | "cpvm"
    name: str
    host: str
    private: str
    public: str
    linklocal: str | None = None  # absent on VMware (control traffic uses private)
    state: str = "Running"
    agentstate: str = "Up"

    @property
    def control_address(self) -> str:
        return self.linklocal or self.private


@dataclasses.dataclass(frozen=True)
class Router:
    name: str
    host: str
    linklocal: str  # control IP; on VMware CloudStack reports a pod private IP here
    guest: str
    public: str
    state: str = "Running"
    account: str = "admin"
    project: str | None = None  # project routers need listRouters projectid=-1
    network: str | None = None  # guest network name; the routers of a redundant pair share it
    vpc: str | None = None  # a VPC's redundant routers share the VPC
    redundantstate: str | None = None  # None: not a redundant router (REDUNDANT_STATES otherwise)


@dataclasses.dataclass(frozen=True)
class SecondaryStorage:
    name: str
    url: str  # nfs://<address>/<path>

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]


@dataclasses.dataclass(frozen=True)
class PrimaryStorage:
    name: str
    address: str
    path: str
    type: str = "NetworkFilesystem"
    cluster: str | None = None  # None = zone-wide pool


@dataclasses.dataclass(frozen=True)
class PublicRange:
    gateway: str
    netmask: str
    startip: str
    endip: str
    vlan: str = "untagged"


@dataclasses.dataclass(frozen=True)
class Zone:
    name: str
    networktype: str
    dns1: str
    internaldns1: str
    dns2: str | None = None
    internaldns2: str | None = None
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    pods: tuple[Pod, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    system_vms: tuple[SystemVm, ...] = ()
    routers: tuple[Router, ...] = ()
    secondary_storage: tuple[SecondaryStorage, ...] = ()
    primary_storage: tuple[PrimaryStorage, ...] = ()
    public_ranges: tuple[PublicRange, ...] = ()
    isolation: str = "VLAN"  # the isolation methods of the zone's guest physical network, comma-separated

    @property
    def isolation_methods(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.isolation.split(",") if m.strip())

    @property
    def dns_servers(self) -> tuple[str, ...]:
        """The zone's DNS servers that system VMs query (dns2/internaldns2 optional)."""
        found = []
        for address in (self.internaldns1, self.internaldns2, self.dns1, self.dns2):
            if address and address not in found:
                found.append(address)
        return tuple(found)


@dataclasses.dataclass(frozen=True)
class Template:
    """A registered template or ISO: listTemplates / listIsos show its URL (4.15 and later)."""

    name: str
    url: str  # http(s)://<address>[:port]/<path>
    zone: str | None = None  # None: cross-zone
    iso: bool = False

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        netloc = self.url.split("://", 1)[1].split("/", 1)[0]
        return int(netloc.rsplit(":", 1)[1]) if ":" in netloc else (443 if self.url.startswith("https") else 80)


@dataclasses.dataclass(frozen=True)
class LdapServer:
    hostname: str
    port: int = 389


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """A deliberate defect, as declared in the topology file."""

    kind: str
    objects: tuple[str, ...]
    description: str
    port: int | None = None
    protocol: str = "tcp"
    address: str | None = None  # restricts the fault to one address of the object
    speaks: str = "http"  # wrong-service only: the protocol that answers instead
    state: str | None = None  # redundant-state only: the redundantstate the API reports
    check: str | None = None  # health-check-failed only: the check that fails (ROUTER_HEALTH_CHECKS)


@dataclasses.dataclass(frozen=True)
class Topology:
    version: str
    management_servers: tuple[ManagementServer, ...]
    database: Database
    zones: tuple[Zone, ...] = ()
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    faults: tuple[FaultSpec, ...] = ()
    templates: tuple[Template, ...] = ()
    ldap_servers: tuple[LdapServer, ...] = ()
    usage_server: str | None = None  # the management server the usage server runs on
    default_page_size: int = 500
    listeners: bool = True
    api_key: str | None = None
    # Never shown in a repr: tracebacks and logs must not leak it.
    secret_key: str | None = dataclasses.field(default=None, repr=False)

    @property
    def integration_port(self) -> int:
        """integration.api.port; "0" or negative (the real default) disables it."""
        try:
            return int(self.settings.get("integration.api.port", "0"))
        except ValueError:
            return 0
