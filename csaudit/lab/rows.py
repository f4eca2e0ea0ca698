"""One API response item per record, with the field names and JSON types of the
real responses (cloudstack-go testdata, @SerializedName) and only the fields the
served release has (each command's @Parameter/@SerializedName `since` in CloudStack's
api/ module).

Values that a real cloud measures (capacity, uptime) are fixed plausible numbers:
the audit must not depend on them, and fixed values keep responses reproducible.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from datetime import UTC, datetime

from csaudit.lab import ids, schema
from csaudit.lab import resolved as inv
from csaudit.lab.settings_catalogue import info
from csaudit.lab.versions import Version, gate

CREATED = "2024-01-15T09:00:00+0000"
LAST_PINGED = "1970-01-20T10:11:12+0000"  # real servers report this odd epoch-ish value too
HOST_EVENTS = ("AgentConnected; PingTimeout; ManagementServerDown; AgentDisconnected; "
               "ShutdownRequested; HostDown; Ping; StartAgentRebalance; Remove")
HYPERVISOR_VERSION = {"KVM": "6.2.0", "XenServer": "8.2.1", "VMware": "7.0.3"}
TEMPLATE_NAME = {"KVM": "SystemVM Template (KVM)", "XenServer": "SystemVM Template (XenServer)",
                 "VMware": "SystemVM Template (vSphere)"}
LINK_LOCAL_NETMASK = "255.255.0.0"
MEMORY_TOTAL = 270582939648
CPU_NUMBER, CPU_SPEED = 32, 2400


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


_HOST_SINCE = {
    "cpuallocatedpercentage": "4.15", "cpuallocatedvalue": "4.15",
    "cpuallocatedwithoverprovisioning": "4.15", "memoryallocatedbytes": "4.15",
    "memoryallocatedpercentage": "4.15", "cpuloadaverage": "4.15", "ueficapability": "4.15",
    "hasannotations": "4.16", "encryptionsupported": "4.18", "istagarule": "4.19", "arch": "4.20",
    "explicithosttags": "4.20", "implicithosttags": "4.20", "instanceconversionsupported": "4.20",
    "managementservername": "4.21"}


def host_row(record: inv.HostRec | inv.SystemVmRec, version: Version) -> dict:
    if isinstance(record, inv.SystemVmRec):
        return _agent_row(record, version)
    host, cluster = record.host, record.cluster
    pod, zone = cluster.pod, cluster.pod.zone
    hypervisor = cluster.cluster.hypervisor
    new_ms_id = version >= (4, 15)
    row = {
        "id": record.id, "name": host.name, "type": "Routing", "state": host.state,
        "resourcestate": "Enabled", "ipaddress": host.address,
        "hypervisor": hypervisor, "hypervisorversion": HYPERVISOR_VERSION[hypervisor],
        "version": _release(version), "capabilities": "hvm",
        "zoneid": zone.id, "zonename": zone.zone.name, "podid": pod.id, "podname": pod.pod.name,
        "clusterid": cluster.id, "clustername": cluster.cluster.name, "clustertype": "CloudManaged",
        # a long msid before 4.15, the management server uuid after
        "managementserverid": record.ms.id if new_ms_id else record.ms.msid,
        "managementservername": record.ms.ms.name,
        "created": CREATED, "lastpinged": LAST_PINGED, "events": HOST_EVENTS,
        "cpunumber": CPU_NUMBER, "cpuspeed": CPU_SPEED, "cpuallocated": "0%",
        "cpuallocatedpercentage": "0%", "cpuallocatedvalue": 0,
        "cpuallocatedwithoverprovisioning": "0%",
        "cpuwithoverprovisioning": str(CPU_NUMBER * CPU_SPEED), "cpuused": "2.5%",
        "cpuloadaverage" if new_ms_id else "averageload": 0.12,
        "memorytotal": MEMORY_TOTAL, "memoryallocated": 0, "memoryallocatedbytes": 0,
        "memoryallocatedpercentage": "0%", "memorywithoverprovisioning": str(MEMORY_TOTAL),
        "memoryused": 8589934592, "networkkbsread": 0, "networkkbswrite": 0,
        "hahost": False, "islocalstorageactive": False, "hasannotations": False,
        "hostha": {"haenable": False, "hastate": "Disabled"},
        "outofbandmanagement": _out_of_band(host),
        "ueficapability": hypervisor == "KVM", "encryptionsupported": hypervisor == "KVM",
        "istagarule": False, "arch": "x86_64", "instanceconversionsupported": False,
    }
    return gate(row, _HOST_SINCE, version)


def _agent_row(record: inv.SystemVmRec, version: Version) -> dict:
    vm, pod = record.vm, record.host.cluster.pod
    row = {
        "id": inv.host_row_id(record), "name": vm.name, "type": inv.host_type(record),
        "state": vm.agentstate, "resourcestate": "Enabled", "ipaddress": vm.private,
        "version": _release(version), "zoneid": pod.zone.id, "zonename": pod.zone.zone.name,
        "podid": pod.id, "podname": pod.pod.name, "created": CREATED, "lastpinged": LAST_PINGED,
        "events": HOST_EVENTS, "managementserverid": record.host.ms.id if version >= (4, 15)
        else record.host.ms.msid,
        "hahost": False, "islocalstorageactive": False, "hasannotations": False,
        "hostha": {"haenable": False, "hastate": "Disabled"},
        "outofbandmanagement": {"enabled": False, "powerstate": "Disabled"},
    }
    return gate(row, _HOST_SINCE, version)


def _release(version: Version) -> str:
    return ".".join(str(part) for part in version)


_SYSTEMVM_SINCE = {
    "agentstate": "4.14", "version": "4.14", "podname": "4.15", "templateid": "4.15",
    "templatename": "4.15", "isdynamicallyscalable": "4.16", "hasannotations": "4.16",
    "hostcontrolstate": "4.18", "serviceofferingid": "4.19", "serviceofferingname": "4.19",
    "arch": "4.20.1"}


def system_vm_row(record: inv.SystemVmRec, version: Version) -> dict:
    vm, host = record.vm, record.host
    pod, zone = host.cluster.pod, host.cluster.pod.zone
    hypervisor = host.cluster.cluster.hypervisor
    kind = "secondarystoragevm" if vm.type == "ssvm" else "consoleproxy"
    row = {
        "id": record.id, "name": vm.name, "systemvmtype": kind, "state": vm.state,
        "agentstate": vm.agentstate, "version": _release(version),
        "hostid": host.id, "hostname": host.host.name, "hypervisor": hypervisor,
        "hostcontrolstate": "Enabled",
        "zoneid": zone.id, "zonename": zone.zone.name, "podid": pod.id, "podname": pod.pod.name,
        "templateid": ids.uuid_for("template", TEMPLATE_NAME[hypervisor]),
        "templatename": TEMPLATE_NAME[hypervisor], "created": CREATED,
        "dns1": zone.zone.dns1, "dns2": zone.zone.dns2,
        "privateip": vm.private, "privatemacaddress": ids.mac_for("vm", vm.name, "private"),
        "privatenetmask": pod.pod.netmask,
        "publicip": vm.public, "publicmacaddress": ids.mac_for("vm", vm.name, "public"),
        "publicnetmask": _public_netmask(zone.zone, vm.public),
        "gateway": _public_gateway(zone.zone, vm.public),
        "activeviewersessions": 0 if vm.type == "cpvm" else None,
        "isdynamicallyscalable": False, "hasannotations": False,
        "serviceofferingid": ids.uuid_for("offering", f"system-{vm.type}"),
        "serviceofferingname": "System Offering For Secondary Storage VM" if vm.type == "ssvm"
        else "System Offering For Console Proxy",
        "arch": "x86_64",
    }
    if vm.linklocal:  # VMware system VMs have no control NIC: the field is absent
        row.update(linklocalip=vm.linklocal, linklocalnetmask=LINK_LOCAL_NETMASK,
                   linklocalmacaddress=ids.mac_for("vm", vm.name, "control"))
    return gate(row, _SYSTEMVM_SINCE, version)


@functools.lru_cache(maxsize=1024)
def _range_bounds(ranges: tuple[schema.PublicRange, ...]) -> tuple[tuple[int, int, schema.PublicRange], ...]:
    return tuple((_as_int(r.startip), _as_int(r.endip), r) for r in ranges)


def _as_int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def _public_range(zone: schema.Zone, address: str) -> schema.PublicRange | None:
    target = _as_int(address)
    for low, high, rng in _range_bounds(zone.public_ranges):
        if low <= target <= high:
            return rng
    return zone.public_ranges[0] if zone.public_ranges else None


def _public_netmask(zone: schema.Zone, address: str) -> str:
    rng = _public_range(zone, address)
    return rng.netmask if rng else "255.255.255.0"


def _public_gateway(zone: schema.Zone, address: str) -> str | None:
    rng = _public_range(zone, address)
    return rng.gateway if rng else None


_ROUTER_SINCE = {"podname": "4.15", "hasannotations": "4.16", "healthchecksfailed": "4.16",
                 "softwareversion": "4.17", "hostcontrolstate": "4.18",
                 "serviceofferingid": "4.19", "serviceofferingname": "4.19", "arch": "4.20.1",
                 "domainpath": "4.20"}


def _redundant_state(state: str | None, version: Version) -> str:
    """The release's name for the state: 4.16 renamed MASTER to PRIMARY (schema-41520to41600.sql)."""
    if state in ("MASTER", "PRIMARY"):
        return "PRIMARY" if version >= (4, 16) else "MASTER"
    return state or "UNKNOWN"


def _health_check_results(record: inv.RouterRec, gateway: str | None) -> list[dict]:
    """What the router's own checks said last (listRouters fetchhealthcheckresults=true)."""
    passed = {"dns_check.py": "All checks passed", "gateways_check.py": "All 1 gateways are reachable."}
    failed = {"dns_check.py": "Missing entries in /etc/hosts", "gateways_check.py": f"Unreachable gateways are: {gateway}"}
    return [{"checkname": name, "checktype": kind, "success": name not in record.failing_checks,
             "lastupdated": CREATED, "details": failed[name] if name in record.failing_checks else passed[name]}
            for name, kind in schema.ROUTER_HEALTH_CHECKS.items()]


def router_row(record: inv.RouterRec, version: Version, health: bool = False) -> dict:
    router, host = record.router, record.host
    pod, zone = host.cluster.pod, host.cluster.pod.zone
    hypervisor = host.cluster.cluster.hypervisor
    network = router.project or router.account
    vmware = hypervisor == "VMware"
    release = _release(version)
    row = {
        "id": record.id, "name": router.name, "state": router.state, "role": "VIRTUAL_ROUTER",
        "hostid": host.id, "hostname": host.host.name, "hypervisor": hypervisor,
        "hostcontrolstate": "Enabled",
        "zoneid": zone.id, "zonename": zone.zone.name, "podid": pod.id, "podname": pod.pod.name,
        # On VMware the control NIC sits on the pod management network.
        "linklocalip": router.linklocal,
        "linklocalnetmask": pod.pod.netmask if vmware else LINK_LOCAL_NETMASK,
        "linklocalmacaddress": ids.mac_for("vm", router.name, "control"),
        "linklocalnetworkid": ids.uuid_for("network", f"{zone.zone.name}/control"),
        "guestipaddress": router.guest, "guestnetmask": "255.255.255.0",
        "guestmacaddress": ids.mac_for("vm", router.name, "guest"),
        # A redundant pair shares its guest network (or its VPC): that is what ties the two.
        "guestnetworkid": ids.uuid_for("network", router.network or f"{router.name}/guest"),
        "guestnetworkname": router.network or f"{network}-network",
        "vpcid": ids.uuid_for("vpc", router.vpc) if router.vpc else None, "vpcname": router.vpc,
        "publicip": router.public, "publicnetmask": _public_netmask(zone.zone, router.public),
        "publicmacaddress": ids.mac_for("vm", router.name, "public"),
        "publicnetworkid": ids.uuid_for("network", f"{zone.zone.name}/public"),
        "gateway": _public_gateway(zone.zone, router.public),
        "dns1": zone.zone.dns1, "dns2": zone.zone.dns2,
        "version": ".".join(release.split(".")[:3]), "softwareversion": release,
        "requiresupgrade": False, "isredundantrouter": record.redundant_state is not None,
        "redundantstate": _redundant_state(record.redundant_state, version),
        "templateid": ids.uuid_for("template", TEMPLATE_NAME[hypervisor]),
        "templatename": TEMPLATE_NAME[hypervisor], "created": CREATED,
        "domain": "ROOT", "domainid": ids.uuid_for("domain", "ROOT"), "domainpath": "ROOT",
        "serviceofferingid": ids.uuid_for("offering", "system-router"),
        "serviceofferingname": "System Offering For Software Router",
        "hasannotations": False, "healthchecksfailed": bool(record.failing_checks), "arch": "x86_64",
    }
    if router.project:  # project resources show the project, not its hidden account
        row.update(project=router.project, projectid=inv.project_id(router.project))
    else:
        row["account"] = router.account
    if health and version >= (4, 14):
        row["healthcheckresults"] = _health_check_results(record, row["gateway"])
    return gate(row, _ROUTER_SINCE, version)


_ZONE_SINCE = {"hasannotations": "4.16", "type": "4.18", "allowuserspecifyvrmtu": "4.18",
               "routerprivateinterfacemaxmtu": "4.18", "routerpublicinterfacemaxmtu": "4.18",
               "ismultiarch": "4.20", "isnsxenabled": "4.20", "routedmodeenabled": "4.20.1"}


def zone_row(record: inv.ZoneRec, version: Version) -> dict:
    zone = record.zone
    row = {
        "id": record.id, "name": zone.name, "description": zone.name, "allocationstate": "Enabled",
        "networktype": zone.networktype, "type": "Core",
        "dns1": zone.dns1, "dns2": zone.dns2, "internaldns1": zone.internaldns1,
        "internaldns2": zone.internaldns2, "securitygroupsenabled": False,
        "localstorageenabled": False, "zonetoken": ids.uuid_for("zonetoken", zone.name),
        "dhcpprovider": "VirtualRouter", "hasannotations": False,
        "allowuserspecifyvrmtu": False, "routerprivateinterfacemaxmtu": 1500,
        "routerpublicinterfacemaxmtu": 1500, "ismultiarch": False, "isnsxenabled": False,
        "routedmodeenabled": False,
    }
    return gate(row, _ZONE_SINCE, version)


def pod_row(record: inv.PodRec, version: Version) -> dict:
    pod = record.pod
    row = {
        "id": record.id, "name": pod.name, "zoneid": record.zone.id,
        "zonename": record.zone.zone.name, "gateway": pod.gateway, "netmask": pod.netmask,
        "startip": [pod.startip], "endip": [pod.endip], "forsystemvms": ["0"],
        "ipranges": [{"startip": pod.startip, "endip": pod.endip, "gateway": pod.gateway,
                      "forsystemvms": "0"}],
        "allocationstate": "Enabled",
    }
    return gate(row, {"ipranges": "4.16"}, version)


def cluster_row(record: inv.ClusterRec, version: Version) -> dict:
    cluster, pod = record.cluster, record.pod
    row = {
        "id": record.id, "name": cluster.name, "podid": pod.id, "podname": pod.pod.name,
        "zoneid": pod.zone.id, "zonename": pod.zone.zone.name,
        "hypervisortype": cluster.hypervisor, "clustertype": "CloudManaged"
        if cluster.hypervisor != "VMware" else "ExternalManaged",
        "allocationstate": "Enabled", "managedstate": "Managed",
        "cpuovercommitratio": "1.0", "memoryovercommitratio": "1.0",
        "resourcedetails": {"cpuOvercommitRatio": "1.0", "memoryOvercommitRatio": "1.0"},
        "arch": "x86_64",
    }
    return gate(row, {"arch": "4.20"}, version)


def image_store_row(record: inv.ImageStoreRec, version: Version) -> dict:
    store = record.store
    row = {
        "id": record.id, "name": store.name, "url": store.url,
        "protocol": store.url.split("://", 1)[0], "providername": "NFS", "scope": "ZONE",
        "zoneid": record.zone.id, "zonename": record.zone.zone.name, "readonly": False,
        "disksizetotal": 4398046511104, "disksizeused": 214748364800,
    }
    return gate(row, {"readonly": "4.15", "disksizetotal": "4.15", "disksizeused": "4.15"}, version)


def storage_pool_row(record: inv.PoolRec, version: Version) -> dict:
    store, cluster = record.store, record.cluster
    row = {
        "id": record.id, "name": store.name, "ipaddress": store.address, "path": store.path,
        "type": store.type, "scope": "CLUSTER" if cluster else "ZONE", "state": "Up",
        "provider": "DefaultPrimary",
        "hypervisor": cluster.cluster.hypervisor if cluster else None,
        "zoneid": record.zone.id, "zonename": record.zone.zone.name,
        "podid": cluster.pod.id if cluster else None,
        "podname": cluster.pod.pod.name if cluster else None,
        "clusterid": cluster.id if cluster else None,
        "clustername": cluster.cluster.name if cluster else None,
        "created": CREATED, "disksizetotal": 1099511627776, "disksizeused": 322122547200,
        "disksizeallocated": 0, "overprovisionfactor": "2.0",
        "storagecapabilities": {"VOLUME_SNAPSHOT_QUIESCEVM": "false"},
        "istagarule": False, "managed": False,
    }
    return gate(row, {"istagarule": "4.19", "managed": "4.20"}, version)


def vlan_range_row(record: inv.VlanRangeRec, version: Version) -> dict:
    rng = record.range
    network = ipaddress.IPv4Network(f"{rng.gateway}/{rng.netmask}", strict=False)
    return {
        "id": record.id, "forvirtualnetwork": True, "zoneid": record.zone.id,
        "vlan": f"vlan://{rng.vlan}", "gateway": rng.gateway, "netmask": rng.netmask,
        "cidr": str(network), "startip": rng.startip, "endip": rng.endip,
        "networkid": ids.uuid_for("network", f"{record.zone.zone.name}/public"),
        "physicalnetworkid": ids.uuid_for("physicalnetwork", record.zone.zone.name),
        "domain": "ROOT", "domainid": ids.uuid_for("domain", "ROOT"), "forsystemvms": False,
    }


_MS_SINCE = {"javadistribution": "4.17", "javaversion": "4.17", "osdistribution": "4.17",
             "kernelversion": "4.17", "lastboottime": "4.17", "lastserverstart": "4.17",
             "lastserverstop": "4.17", "serviceip": "4.19", "ipaddress": "4.20.1",
             "agents": "4.21", "lastagents": "4.21", "agentscount": "4.21",
             "pendingjobscount": "4.21"}


def management_server_row(record: inv.MsRec, version: Version, agents: list[str]) -> dict:
    ms = record.ms
    row = {
        "id": record.id, "name": ms.name, "state": ms.state, "version": _release(version),
        "javadistribution": "Debian", "javaversion": "17.0.11", "osdistribution":
        "Debian GNU/Linux 12 (bookworm)", "kernelversion": "6.1.0-21-amd64",
        "lastboottime": "2024-05-01T08:00:00+0000", "lastserverstart": "2024-05-01T08:03:10+0000",
        "lastserverstop": "2024-04-30T23:58:02+0000",
        "serviceip": ms.address, "ipaddress": ms.address,
        "agents": agents, "lastagents": agents, "agentscount": len(agents), "pendingjobscount": 0,
    }
    return gate(row, _MS_SINCE, version)


def management_server_metrics_row(record: inv.MsRec, version: Version, agents: list[str]) -> dict:
    row = management_server_row(record, version, agents)
    row.update(availableprocessors=8, agentcount=len(agents), sessions=1,
               heapmemoryused=812345678, heapmemorytotal=2147483648, threadsblockedcount=0,
               threadsdaemoncount=52, threadsrunnablecount=14, threadsteminatedcount=0,
               threadstotalcount=230, threadswaitingcount=160, dbislocal=False,
               usageislocal=False, cpuload="3.25 %", systemloadaverages=[0.42, 0.37, 0.30],
               collectiontime=now_stamp())
    return row


_CONFIG_SINCE = {"isdynamic": "4.15", "defaultvalue": "4.18", "component": "4.18",
                 "type": "4.18", "group": "4.18", "subgroup": "4.18", "displaytext": "4.18"}


def configuration_row(name: str, value: str, version: Version, scope: str | None) -> dict:
    meta = info(name)
    row = {
        "name": name, "value": value, "category": meta.category, "description": meta.description,
        "isdynamic": meta.dynamic, "defaultvalue": meta.default, "component": meta.component,
        "type": meta.type, "group": "Miscellaneous", "subgroup": "Others", "displaytext": name,
        "scope": scope,
    }
    return gate(row, _CONFIG_SINCE, version)


_CAPABILITY_SINCE = {"allowuserexpungerecovervolume": "4.14", "kubernetesserviceenabled": "4.15",
                     "kubernetesclusterexperimentalfeaturesenabled": "4.15",
                     "allowuserviewalldomainaccounts": "4.15", "defaultuipagesize": "4.16"}


def capability(version: Version) -> dict:
    row = {
        "cloudstackversion": _release(version), "apilimitinterval": 1, "apilimitmax": 50,
        "securitygroupsenabled": False, "dynamicrolesenabled": True,
        "userpublictemplateenabled": True, "supportELB": "false", "projectinviterequired": False,
        "allowusercreateprojects": True, "customdiskofferingminsize": 1,
        "customdiskofferingmaxsize": 1024, "regionsecondaryenabled": False,
        "kvmsnapshotenabled": False, "allowuserviewdestroyedvm": False,
        "allowuserexpungerecovervm": False, "allowuserexpungerecovervolume": True,
        "allowuserviewalldomainaccounts": False, "kubernetesserviceenabled": False,
        "kubernetesclusterexperimentalfeaturesenabled": False, "defaultuipagesize": 20,
    }
    return gate(row, _CAPABILITY_SINCE, version)


def db_metrics(database: schema.Database) -> dict:
    return {
        "hostname": database.address, "replicas": [""], "connections": 57,
        "tlsversions": "TLSv1.2,TLSv1.3", "version": database.version,
        "versioncomment": "MySQL Community Server - GPL", "queries": 98765432,
        "uptime": 1234567, "dbloadaverages": [12.5, 10.1, 9.8], "collectiontime": now_stamp(),
    }


def vmware_dc_row(record: inv.VmwareDcRec) -> dict:
    # zoneid is the internal long id here, unlike every other response.
    return {"id": record.id, "name": record.name, "vcenter": record.vcenter,
            "zoneid": record.zone.db_id}


def _out_of_band(host: schema.Host) -> dict:
    """OutOfBandManagementResponse as listHosts nests it (its port is a string there)."""
    if host.bmc is None:
        return {"enabled": False, "powerstate": "Disabled"}
    return {"enabled": True, "powerstate": "On", "driver": host.bmc_driver, "address": host.bmc,
            "port": str(host.bmc_port), "username": "ADMIN"}


_TEMPLATE_SINCE = {"url": "4.15", "directdownload": "4.11", "deployasis": "4.15", "userdataid": "4.18"}


def template_row(record: inv.TemplateRec, version: Version) -> dict:
    """TemplateResponse (listTemplates and listIsos share it); `url` is there from 4.15."""
    template = record.template
    row = {
        "id": record.id, "name": template.name, "displaytext": template.name, "ispublic": True, "isready": True,
        "isfeatured": False, "crossZones": record.zone is None, "status": "Download Complete",
        "format": "ISO" if template.iso else "QCOW2", "templatetype": "USER", "hypervisor": None if template.iso else "KVM",
        "account": "admin", "domain": "ROOT", "created": CREATED, "url": template.url, "directdownload": False,
        "deployasis": False, "bootable": True if template.iso else None,
        "zoneid": record.zone.id if record.zone else None, "zonename": record.zone.zone.name if record.zone else None,
    }
    return gate(row, _TEMPLATE_SINCE, version)


def physical_network_row(record: inv.PhysicalNetworkRec, version: Version) -> dict:
    zone = record.zone.zone
    return {"id": record.id, "name": record.name, "zoneid": record.zone.id, "zonename": zone.name, "state": "Enabled",
            "isolationmethods": ",".join(zone.isolation_methods), "broadcastdomainrange": "ZONE", "vlan": "100-199"}


def ldap_configuration_row(record: schema.LdapServer, version: Version) -> dict:
    return {"hostname": record.hostname, "port": record.port}


def usage_metrics(topology: schema.Topology) -> dict | None:
    """listUsageServerMetrics (4.17): the host the usage server runs on."""
    server = next((s for s in topology.management_servers if s.name == topology.usage_server), None)
    if server is None:
        return {"hostname": "", "state": "Down", "collectiontime": now_stamp()}
    return {"hostname": server.name, "state": "Up", "lastheartbeat": now_stamp(), "lastsuccessfuljob": now_stamp(),
            "collectiontime": now_stamp()}
