"""The cloud as plain data: a pure parser from raw API rows to frozen dataclasses.

The parser tolerates what real servers send: fields missing in older versions, numeric ids,
and the string "null" where a value is absent.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from csaudit.model.errors import UsageError
from csaudit.model.inventory import (
    Cluster,
    Database,
    HealthCheck,
    Host,
    ImageStore,
    Inventory,
    ManagementServer,
    NamedService,
    Pod,
    Router,
    StoragePool,
    SystemVm,
    VCenter,
    Zone,
)

# Settings that change which flows exist or which ports they use (each is a ConfigKey in CloudStack's source; the catalogue cites where).
RELEVANT_SETTINGS = frozenset(
    {
        "host",
        "port",
        "integration.api.port",
        "endpoint.url",
        "consoleproxy.sslEnabled",
        "consoleproxy.url.domain",
        "consoleproxy.cmd.port",
        "secstorage.ssl.cert.domain",
        "secstorage.encrypt.copy",
        "secstorage.allowed.internal.sites",
        "secstorage.proxy",
        "ntp.server.list",
        "management.network.cidr",
        "control.cidr",
        "default.page.size",
        "ca.plugin.root.auth.strictness",
        "expose.dns.externally",
        "use.external.dns",
        "indirect.agent.lb.algorithm",
        "alert.smtp.host",
        "alert.smtp.port",
        "prometheus.exporter.enable",
        "prometheus.exporter.port",
        "prometheus.exporter.allowed.ips",
        "vmware.additional.vnc.portrange.start",
        "vmware.additional.vnc.portrange.size",
        "api.allowed.source.cidr.list",
        "api.source.cidr.checks.enabled",
    }
)

# The fields parse_inventory reads from the big listings: the API client keeps only these as pages
# arrive (api.fetch_raw_cloud), so a cloud's raw rows do not fill memory. A test checks that the
# parser gets the same inventory from rows cut down this way.
ROW_FIELDS = {
    "zones": frozenset({"id", "name", "networktype", "dns1", "dns2", "internaldns1", "internaldns2"}),
    "pods": frozenset({"id", "name", "zoneid", "gateway", "netmask"}),
    "clusters": frozenset({"id", "name", "zoneid", "podid", "hypervisortype"}),
    "hosts": frozenset({"id", "name", "type", "zoneid", "podid", "clusterid", "hypervisor", "ipaddress", "state", "resourcestate",
                        "outofbandmanagement"}),
    "systemvms": frozenset({"id", "name", "systemvmtype", "zoneid", "hostid", "hypervisor", "privateip", "linklocalip",
                            "publicip", "state", "agentstate"}),
    "routers": frozenset({"id", "name", "zoneid", "hostid", "hypervisor", "linklocalip", "guestipaddress", "publicip",
                          "state", "redundantstate", "isredundantrouter", "guestnetworkid", "guestnetworkname", "vpcid",
                          "vpcname", "healthcheckresults"}),
    # the URLs the SSVM downloads from (flow F25): a cloud has thousands of templates of ~50 fields each
    "templates": frozenset({"id", "name", "url", "zoneid"}),
    "isos": frozenset({"id", "name", "url", "zoneid"}),
}

# A passed health check, as the parser reads it (only the failed ones' names and details are read).
_PASSED_CHECK = {"success": True}
# Read for redundant routers only: their state and what ties a pair.
_REDUNDANCY = ("isredundantrouter", "redundantstate", "guestnetworkid", "guestnetworkname", "vpcid", "vpcname")


def _failed(check: dict) -> bool:
    return str(check.get("success")).strip().lower() == "false"  # a check without its result proves nothing


@functools.lru_cache(maxsize=64)
def _all_passed(count: int) -> tuple[dict, ...]:
    return (_PASSED_CHECK,) * count


def compact_router(row: dict) -> dict:
    """A router row as small as the parser allows: 50,000 routers run about ten health checks each, and
    the inventory reads only how many ran and the failed ones; passed checks become one shared object
    (a router whose checks all passed, one shared tuple). The redundancy fields are kept only for
    redundant routers, the one thing they are read for. (A row of at most ten keys also stays in
    CPython's smaller dict size: twelve would double it.)"""
    results = row.get("healthcheckresults")
    if isinstance(results, list):
        if any(isinstance(c, dict) and _failed(c) for c in results):
            row["healthcheckresults"] = [_PASSED_CHECK if isinstance(c, dict) and not _failed(c) else c for c in results]
        else:
            row["healthcheckresults"] = _all_passed(sum(isinstance(c, dict) for c in results))
    if not flag(row, "isredundantrouter"):  # a new dict: one that keys were popped from keeps its size
        row = {key: value for key, value in row.items() if key not in _REDUNDANCY}
    return row


# What makes the kept rows smaller still as pages arrive (api.fetch_raw_cloud `trims`); the same tests
# as ROW_FIELDS check the parser gets the same inventory from them.
ROW_TRIMS = {"routers": compact_router}

_URL_DEFAULT_PORTS = {"nfs": 2049, "smb": 445, "cifs": 445, "http": 80, "https": 443, "s3": 443, "swift": 443}
_POOL_PROTOCOLS = {
    "networkfilesystem": "nfs",
    "managednfs": "nfs",
    "iscsi": "iscsi",
    "iscsilun": "iscsi",
    "rbd": "rbd",
    "smb": "smb",
    "gluster": "gluster",
}

# Services a setting names by URL or host (role, setting, port setting or None, default port, default scheme).
# A URL's user and password (secstorage.proxy may hold them) are never kept: only its host and port.
SETTING_SERVICES = (
    ("http-proxy", "secstorage.proxy", None, 3128, "http"),
    ("smtp", "alert.smtp.host", "alert.smtp.port", 465, None),
    ("api-endpoint", "endpoint.url", None, 8080, "http"),
)
_NOT_AN_ADDRESS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})  # a default that names no other machine
_IMPLICIT_TLS = {"smtp": (465, "smtps"), "ldap": (636, "ldaps")}  # the port where the protocol starts with TLS
_OOBM_PROTOCOLS = {"ipmitool": "ipmi", "redfish": "redfish"}
_OOBM_PORTS = {"ipmi": 623, "redfish": 443}


def _with_tls(protocol: str, port: int) -> str:
    tls_port, tls_name = _IMPLICIT_TLS.get(protocol, (None, protocol))
    return tls_name if port == tls_port else protocol


def _url_service(role: str, url: str | None, default_port: int, default_scheme: str | None, origin: str,
                 zone_id: str | None = None) -> NamedService | None:
    """The host:port a URL names ("host" or "host:port" alone too); None for no URL or a local default."""
    if not url:
        return None
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or host in _NOT_AN_ADDRESS:
        return None
    scheme = (parts.scheme or default_scheme or "").lower() or None
    port = port or _URL_DEFAULT_PORTS.get(scheme or "") or default_port
    return NamedService(role, host, host, port, scheme, origin, zone_id)  # the flow id adds the port


def _setting_services(settings: dict[str, str]) -> list[NamedService]:
    found = []
    for role, name, port_setting, default_port, scheme in SETTING_SERVICES:
        port_text = (settings.get(port_setting) or "").strip() if port_setting else ""
        port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else default_port
        value = (settings.get(name) or "").strip()
        service = _url_service(role, value if "://" in value or not port_setting else f"{value}:{port}", port, scheme,
                               f"setting {name}")
        if service is not None:
            protocol = service.protocol or _with_tls(role, service.port)
            found.append(NamedService(role, service.name, service.address, service.port, protocol, service.origin))
    return found


def _internal_sites(settings: dict[str, str]) -> list:
    sites = []
    for cidr in (settings.get("secstorage.allowed.internal.sites") or "").split(","):
        try:
            sites.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            continue
    return sites


def _template_hosts(raw: dict, settings: dict[str, str]) -> list[NamedService]:
    """One template host per zone and URL host:port (templates and ISOs share hosts). A host on a
    private address outside secstorage.allowed.internal.sites is one the SSVM refuses to download from."""
    sites = _internal_sites(settings)
    found: dict[tuple, NamedService] = {}
    for key, what in (("templates", "listTemplates"), ("isos", "listIsos")):
        for row in _rows(raw, key):
            service = _url_service("template-host", text(row, "url"), 80, "http", f"{what} url", text(row, "zoneid"))
            if service is None or service.protocol not in ("http", "https"):
                continue  # s3://, nfs://... are not fetched by the SSVM over HTTP
            origin = f"{what} url of {text(row, 'name') or text(row, 'id') or '?'}"
            try:
                address = ipaddress.ip_address(service.address)
            except ValueError:
                address = None
            if address is not None and address.is_private and not any(address in site for site in sites):
                origin += "; its address is internal but not in secstorage.allowed.internal.sites: the SSVM refuses to download from it"
            keyed = (service.zone_id, service.address, service.port, service.protocol)
            found.setdefault(keyed, NamedService(service.role, service.name, service.address, service.port,
                                                 service.protocol, origin, service.zone_id))
    return list(found.values())


def _ldap_servers(raw: dict) -> list[NamedService]:
    found = {}
    for row in _rows(raw, "ldapconfigurations"):
        host, port_text = text(row, "hostname"), text(row, "port") or "389"
        if not host or not port_text.isdigit():
            continue
        port = int(port_text)
        found.setdefault((host, port), NamedService("ldap", host, host, port, _with_tls("ldap", port),
                                                    "listLdapConfigurations"))
    return list(found.values())


def _bmcs(host_rows: list[dict]) -> list[NamedService]:
    """The out-of-band management address of each Routing host that has it enabled."""
    found = []
    for row in host_rows:
        oobm = row.get("outofbandmanagement")
        if (text(row, "type") or "Routing") != "Routing" or not isinstance(oobm, dict) or str(oobm.get("enabled")).lower() != "true":
            continue
        address, driver = text(oobm, "address"), (text(oobm, "driver") or "").lower()
        protocol = _OOBM_PROTOCOLS.get(driver)
        if not address or protocol is None:
            continue  # nestedcloudstack and others: no BMC of a physical host
        port_text = text(oobm, "port") or ""
        port = int(port_text) if port_text.isdigit() else _OOBM_PORTS[protocol]
        found.append(NamedService("bmc", f"{text(row, 'name') or address} BMC", address, port, protocol,
                                  f"listHosts outofbandmanagement ({driver})", text(row, "zoneid")))
    return found


def _usage_server(raw: dict, servers: tuple[ManagementServer, ...]) -> list[NamedService]:
    """listUsageServerMetrics names the usage server's host; on an MS node, that MS's address."""
    metrics = raw.get("usagemetrics") if isinstance(raw.get("usagemetrics"), dict) else {}
    host = text(metrics, "hostname")
    if not host:
        return []
    ms = next((m for m in servers if host in (m.name, m.address)), None)
    address = ms.address if ms is not None else host
    origin = "listUsageServerMetrics" + (f" (on {ms.name})" if ms is not None and ms.name != host else "")
    return [NamedService("usage", f"usage server {host}", address, None, None, origin)]


def text(row: dict, key: str) -> str | None:
    """A field as a string: numbers become strings, "null"/""/None become None."""
    value = row.get(key) if isinstance(row, dict) else None
    if value is None or isinstance(value, (dict, list)):
        return None
    value = str(value).strip()
    return None if value in ("", "null", "None") else value


def flag(row: dict, key: str) -> bool:
    """A boolean field: JSON true, or the text "true" (the XML answer and some proxies)."""
    value = row.get(key) if isinstance(row, dict) else None
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _redundancy(row: dict) -> dict:
    """Router fields: redundant or not, and for a redundant router what ties it to its peer."""
    if not flag(row, "isredundantrouter"):
        return {"redundant": False}
    return {"redundant": True, "redundant_state": text(row, "redundantstate"),
            "guest_network_id": text(row, "guestnetworkid"), "guest_network_name": text(row, "guestnetworkname"),
            "vpc_id": text(row, "vpcid"), "vpc_name": text(row, "vpcname")}


def _health_checks(results) -> dict:
    """A router's healthcheckresults as Router fields: how many ran, and the failed ones (the passed
    ones say nothing an audit uses, and a cloud's routers run about ten checks each)."""
    if not isinstance(results, (list, tuple)):  # a tuple: compact_router's checks that all passed
        return {"health_checks_run": None, "health_checks_failed": ()}
    checks = [c for c in results if isinstance(c, dict)]
    failed = tuple(
        HealthCheck(name=text(c, "checkname") or "unnamed check", type=text(c, "checktype"),
                    last_updated=text(c, "lastupdated"), details=text(c, "details"))
        for c in checks
        if _failed(c)
    )
    return {"health_checks_run": len(checks), "health_checks_failed": failed}


def _rows(raw: dict, key: str) -> list[dict]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError(f"inventory: {key!r} must be a list of objects")
    return [row for row in value if isinstance(row, dict)]


def _ident(row: dict, fallback: str) -> str:
    return text(row, "id") or fallback


def _hostport(url: str | None) -> tuple[str | None, int | None, str | None, str | None]:
    if not url:
        return None, None, None, None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None, None, None
    scheme = parts.scheme.lower() or None
    return parts.hostname, port or _URL_DEFAULT_PORTS.get(scheme or ""), parts.path or None, scheme


# Settings whose URL may carry a user and password (http://user:pass@proxy:3128): kept without them, so
# no saved inventory, report or log ever holds them.
URL_SETTINGS_WITH_CREDENTIALS = frozenset({"secstorage.proxy"})


def _without_credentials(value: str) -> str:
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return ""  # not a URL we can read: keep nothing of it rather than risk a password
    if "@" not in parts.netloc:
        return value
    netloc = (f"[{host}]" if host and ":" in host else host or "") + (f":{port}" if port else "")
    return parts._replace(netloc=netloc).geturl()


def parse_settings(rows: list[dict]) -> dict[str, str]:
    settings = {}
    for row in rows:
        name = text(row, "name")
        if name in RELEVANT_SETTINGS:
            value = text(row, "value") or ""
            settings[name] = _without_credentials(value) if name in URL_SETTINGS_WITH_CREDENTIALS and value else value
    return settings


def parse_inventory(raw: dict, endpoint: str | None = None, api_mode: str | None = None, db_host: str | None = None) -> Inventory:
    """A pure function: raw API rows (see api.fetch_raw_cloud) in, Inventory out."""
    if not isinstance(raw, dict):
        raise UsageError("inventory: the raw cloud data must be a JSON object")
    capability = raw.get("capabilities") if isinstance(raw.get("capabilities"), dict) else {}
    settings = parse_settings(_rows(raw, "configurations"))
    zone_cfg = raw.get("zoneconfigurations") if isinstance(raw.get("zoneconfigurations"), dict) else {}
    zone_settings = {}
    for zone_id, rows in zone_cfg.items():
        own = {k: v for k, v in parse_settings(rows if isinstance(rows, list) else []).items() if settings.get(k) != v}
        if own:
            zone_settings[str(zone_id)] = own

    zones = tuple(
        Zone(
            id=_ident(z, f"zone-{i}"),
            name=text(z, "name") or _ident(z, f"zone-{i}"),
            network_type=text(z, "networktype"),
            dns=tuple(a for a in (text(z, "dns1"), text(z, "dns2")) if a),
            internal_dns=tuple(a for a in (text(z, "internaldns1"), text(z, "internaldns2")) if a),
            isolation_methods=_isolation_methods(raw, _ident(z, f"zone-{i}")),
        )
        for i, z in enumerate(_rows(raw, "zones"))
    )
    pods = tuple(
        Pod(_ident(p, f"pod-{i}"), text(p, "name") or f"pod-{i}", text(p, "zoneid"), text(p, "gateway"), text(p, "netmask"))
        for i, p in enumerate(_rows(raw, "pods"))
    )
    clusters = tuple(
        Cluster(_ident(c, f"cluster-{i}"), text(c, "name") or f"cluster-{i}", text(c, "zoneid"), text(c, "podid"), text(c, "hypervisortype"))
        for i, c in enumerate(_rows(raw, "clusters"))
    )
    host_rows = _rows(raw, "hosts")
    hosts = tuple(
        Host(
            id=_ident(h, f"host-{i}"),
            name=text(h, "name") or f"host-{i}",
            zone_id=text(h, "zoneid"),
            pod_id=text(h, "podid"),
            cluster_id=text(h, "clusterid"),
            hypervisor=text(h, "hypervisor"),
            address=text(h, "ipaddress"),
            state=text(h, "state"),
            resource_state=text(h, "resourcestate"),
        )
        for i, h in enumerate(host_rows)
        if (text(h, "type") or "Routing") == "Routing"
    )
    # Older servers lack listSystemVms.agentstate; the agent's own host row carries it.
    agent_rows = {text(h, "name"): text(h, "state") for h in host_rows if text(h, "type") in ("SecondaryStorageVM", "ConsoleProxy")}
    system_vms = tuple(
        SystemVm(
            id=_ident(v, f"systemvm-{i}"),
            name=text(v, "name") or f"systemvm-{i}",
            role="cpvm" if (text(v, "systemvmtype") or "").lower() == "consoleproxy" else "ssvm",
            zone_id=text(v, "zoneid"),
            host_id=text(v, "hostid"),
            hypervisor=text(v, "hypervisor"),
            private_ip=text(v, "privateip"),
            linklocal_ip=text(v, "linklocalip"),
            public_ip=text(v, "publicip"),
            state=text(v, "state"),
            agent_state=text(v, "agentstate") or agent_rows.get(text(v, "name")),
        )
        for i, v in enumerate(_rows(raw, "systemvms"))
    )
    routers = tuple(
        Router(
            id=_ident(r, f"router-{i}"),
            name=text(r, "name") or f"router-{i}",
            zone_id=text(r, "zoneid"),
            host_id=text(r, "hostid"),
            hypervisor=text(r, "hypervisor"),
            linklocal_ip=text(r, "linklocalip"),
            guest_ip=text(r, "guestipaddress"),
            public_ip=text(r, "publicip"),
            state=text(r, "state"),
            **_redundancy(r),
            **_health_checks(r.get("healthcheckresults")),
        )
        for i, r in enumerate(_rows(raw, "routers"))
    )
    image_stores = []
    for i, s in enumerate(_rows(raw, "imagestores")):
        address, port, path, scheme = _hostport(text(s, "url"))
        image_stores.append(
            ImageStore(
                id=_ident(s, f"imagestore-{i}"),
                name=text(s, "name") or f"imagestore-{i}",
                zone_id=text(s, "zoneid"),
                protocol=(text(s, "protocol") or scheme or "").lower() or None,
                address=address,
                port=port,
                path=path,
                url=text(s, "url"),
            )
        )
    storage_pools = tuple(
        StoragePool(
            id=_ident(p, f"storagepool-{i}"),
            name=text(p, "name") or f"storagepool-{i}",
            zone_id=text(p, "zoneid"),
            cluster_id=text(p, "clusterid") if (text(p, "scope") or "CLUSTER").upper() == "CLUSTER" else None,
            scope=text(p, "scope"),
            type=text(p, "type"),
            protocol=_POOL_PROTOCOLS.get((text(p, "type") or "").lower(), (text(p, "type") or "").lower() or None),
            address=text(p, "ipaddress"),
            path=text(p, "path"),
            state=text(p, "state"),
        )
        for i, p in enumerate(_rows(raw, "storagepools"))
    )
    vcenters = []
    dcs = raw.get("vmwaredcs") if isinstance(raw.get("vmwaredcs"), dict) else {}
    for zone_id, rows in dcs.items():
        for dc in rows if isinstance(rows, list) else []:
            address = text(dc, "vcenter")
            if address and not any(v.address == address and v.zone_id == str(zone_id) for v in vcenters):
                vcenters.append(VCenter(name=address, address=address, zone_id=str(zone_id)))

    management_servers = _management_servers(raw, settings, endpoint)
    services = (*_setting_services(settings), *_template_hosts(raw, settings), *_ldap_servers(raw), *_bmcs(host_rows),
                *_usage_server(raw, management_servers))
    return Inventory(
        endpoint=endpoint,
        api_mode=api_mode,
        version=text(capability, "cloudstackversion"),
        zones=zones,
        pods=pods,
        clusters=clusters,
        hosts=hosts,
        management_servers=management_servers,
        database=_database(raw, db_host),
        system_vms=system_vms,
        routers=routers,
        image_stores=tuple(image_stores),
        storage_pools=storage_pools,
        vcenters=tuple(vcenters),
        services=services,
        settings=settings,
        zone_settings=zone_settings,
        zone_errors={str(k): str(v) for k, v in (raw.get("zone_errors") or {}).items()} if isinstance(raw.get("zone_errors"), dict) else {},
    )


def _isolation_methods(raw: dict, zone_id: str) -> tuple[str, ...]:
    """Every isolation method of the zone's physical networks ("VLAN", "VXLAN", ...; comma-separated in the API)."""
    methods = []
    for row in _rows(raw, "physicalnetworks"):
        if text(row, "zoneid") == zone_id:
            methods.extend(m.strip() for m in (text(row, "isolationmethods") or "").split(",") if m.strip())
    return tuple(dict.fromkeys(methods))


def _host_setting(settings: dict[str, str]) -> list[str]:
    entries = [a.strip() for a in settings.get("host", "").split(",") if a.strip()]
    return [a for a in entries if a not in ("localhost", "127.0.0.1")]


def _management_servers(raw: dict, settings: dict[str, str], endpoint: str | None) -> tuple[ManagementServer, ...]:
    endpoint_host = urlsplit(endpoint).hostname if endpoint else None
    hosts_setting = _host_setting(settings)
    rows = raw.get("managementservers")
    if not isinstance(rows, list):  # an older server without listManagementServers
        addresses = hosts_setting or ([endpoint_host] if endpoint_host else [])
        source = "host setting" if hosts_setting else "endpoint host"
        return tuple(ManagementServer(id=a, name=a, address=a, address_source=source) for a in addresses)
    servers = []
    rows = [r for r in rows if isinstance(r, dict)]
    for i, row in enumerate(rows):
        address, source = None, "unknown"
        for field in ("serviceip", "ipaddress"):
            value = text(row, field)
            if value and value != "127.0.0.1":  # cluster.node.IP left at its default says nothing
                address, source = value, field
                break
        if address is None and len(rows) == 1 and hosts_setting:
            address, source = hosts_setting[0], "host setting"
        elif address is None and len(rows) == len(hosts_setting):
            address, source = hosts_setting[i], "host setting (by position)"
        elif address is None and len(rows) == 1 and endpoint_host:
            address, source = endpoint_host, "endpoint host"
        servers.append(
            ManagementServer(
                id=_ident(row, f"ms-{i}"),
                name=text(row, "name") or f"ms-{i}",
                address=address,
                address_source=source,
                state=text(row, "state"),
                version=text(row, "version"),
            )
        )
    return tuple(servers)


def _database(raw: dict, db_host: str | None) -> Database:
    if db_host:
        return Database(name="database", address=db_host, address_source="--db-host")
    metrics = raw.get("dbmetrics") if isinstance(raw.get("dbmetrics"), dict) else {}
    hostname = text(metrics, "hostname")
    if hostname and hostname not in ("localhost", "127.0.0.1"):
        return Database(name="database", address=hostname, address_source="listDbMetrics")
    return Database(name="database", address=None, address_source="unknown (pass --db-host)")

















