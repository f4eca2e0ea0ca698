"""The read-only API commands: parameters, filters, pagination and envelopes.

Transport-free: `execute()` takes the parameters of one request and returns the
HTTP status and the response document, so the HTTP layer only has to deal with
sockets, authentication and serialisation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from csaudit.lab import resolved as inv
from csaudit.lab import rows
from csaudit.lab.roles import Role
from csaudit.lab.versions import Version, at_least, parse_version

UNLIMITED = -1
PARAM_ERROR, UNSUPPORTED_ACTION, ACCOUNT_ERROR = 431, 432, 531
CS_INVALID_PARAMETER = 4350  # InvalidParameterValueException
CS_PERMISSION_DENIED = 4365  # PermissionDeniedException
CS_SERVER_API = 9999  # a bare ServerApiException
LIST_APIS = "listApis"  # the API discovery plugin's command (4.1 on), answered by csaudit/lab/discovery.py


class ApiFailure(Exception):
    """An error answer: HTTP status = errorcode, body under <cmd>response or errorresponse."""

    def __init__(self, status: int, text: str, cserrorcode: int | None = None,
                 generic_envelope: bool = False):
        super().__init__(text)
        self.status, self.text, self.cserrorcode = status, text, cserrorcode
        self.generic_envelope = generic_envelope  # True -> "errorresponse"

    def body(self, command: str | None) -> dict:
        error: dict[str, Any] = {"uuidList": [], "errorcode": self.status}
        if self.cserrorcode is not None:
            error["cserrorcode"] = self.cserrorcode
        error["errortext"] = self.text
        envelope = "errorresponse" if self.generic_envelope or not command \
            else f"{command.lower()}response"
        return {envelope: error}


@dataclasses.dataclass(frozen=True)
class Caller:
    account: str  # "admin" for the lab's own API key, "system" on the integration port
    role: Role | None = None  # None: the Root Admin role, which may call everything

    def may_call(self, command: str) -> bool:
        return self.role is None or self.role.allows(command)


@dataclasses.dataclass(frozen=True)
class Request:
    command: str
    params: dict[str, str]  # names lower-cased, first value of each
    caller: Caller

    @property
    def short_name(self) -> str:
        return self.command.lower()


def is_read_only(command: str) -> bool:
    return command.startswith(("list", "get", "query"))


def is_api_name(command: str) -> bool:
    """Shaped like a CloudStack command (verb + Noun: deleteZone, updateConfiguration). The lab takes every such
    write as one CloudStack has; it serves none of them."""
    return re.fullmatch(r"[a-z]+[A-Z][A-Za-z0-9]*", command) is not None


# ---------------------------------------------------------------- parameters

def _int_param(request: Request, name: str) -> int | None:
    value = request.params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiFailure(PARAM_ERROR, f"Unable to execute API command {request.short_name} due to "
                         f"invalid value. Invalid parameter {name} value={value} due to incorrect "
                         "long value format, or entity does not exist or due to incorrect "
                         "parameter annotation for the field in api cmd class.",
                         CS_SERVER_API) from None


def _check_uuids(request: Request, lab: CommandContext, uuid_params: dict[str, str]) -> None:
    """Unknown uuids are rejected before the command runs, like ParamProcessWorker does."""
    for name, entity in uuid_params.items():
        value = request.params.get(name)
        if not value or (name == "projectid" and value == "-1"):
            continue
        if value not in lab.inventory.entities[entity]:
            raise ApiFailure(PARAM_ERROR, f"Unable to execute API command {request.short_name} due "
                             f"to invalid value. Invalid parameter {name} value={value} due to "
                             "incorrect long value format, or entity does not exist or due to "
                             "incorrect parameter annotation for the field in api cmd class.",
                             CS_SERVER_API)


def page_window(request: Request, max_page_size: int) -> tuple[int, int | None]:
    """(start index, page size or None = all), with BaseListCmd's checks and messages."""
    page, page_size = _int_param(request, "page"), _int_param(request, "pagesize")
    # ParamProcessWorker: page and pagesize go together (pagesize=-1 alone is fine).
    if page is None and page_size is not None and page_size != UNLIMITED:
        raise ApiFailure(PARAM_ERROR, '"page" parameter is required when "pagesize" is specified',
                         CS_SERVER_API)
    if page_size is None and page is not None:
        raise ApiFailure(PARAM_ERROR, '"pagesize" parameter is required when "page" is specified',
                         CS_SERVER_API)
    # BaseListCmd.getPageSize
    if page_size is not None and max_page_size != UNLIMITED and page_size > max_page_size:
        raise ApiFailure(PARAM_ERROR, "Page size can't exceed max allowed page size value: "
                         f"{max_page_size}", CS_INVALID_PARAMETER)
    if page_size == UNLIMITED and page is not None:
        raise ApiFailure(PARAM_ERROR, "Can't specify page parameter when pagesize is -1 (Unlimited)",
                         CS_INVALID_PARAMETER)
    size = max_page_size if page_size is None else page_size
    if size == UNLIMITED:
        return 0, None
    start = size * (page - 1) if page is not None and page > 0 else 0
    return start, max(size, 0)


# ---------------------------------------------------------------- commands

@dataclasses.dataclass(frozen=True)
class ListSpec:
    object_key: str
    rowset: Callable[[inv.Inventory], inv.RowSet]
    render: Callable[..., dict]
    uuid_params: dict[str, str]
    exact: tuple[str, ...] = ()  # indexed, compared as given (uuids, exact names)
    folded: tuple[str, ...] = ()  # indexed, compared case-insensitively (MySQL collation)
    like_name: Callable[[Any], str] | None = None  # "keyword" (and "name" if in like) match this
    name_is_like: bool = False  # listHosts' name filter is SQL LIKE %name%
    since: str | None = None
    required: tuple[str, ...] = ()
    envelope: str | None = None  # the response name when it is not <command>response


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    object_key: str
    build: Callable[[CommandContext, Request], dict]
    since: str | None = None


class CommandContext:
    def __init__(self, inventory: inv.Inventory):
        self.inventory = inventory
        self.topology = inventory.topology
        self.version: Version = parse_version(inventory.topology.version)
        self.max_page_size = inventory.topology.default_page_size

    def knows(self, command: str) -> bool:
        if command == LIST_APIS:
            return True
        spec = COMMANDS.get(command)
        return spec is not None and at_least(self.version, spec.since)


def _agents_of(lab: CommandContext, record: inv.MsRec) -> list[str]:
    return lab.inventory.hosts_by_ms.get(record.id, [])


COMMANDS: dict[str, ListSpec | ObjectSpec] = {
    "listCapabilities": ObjectSpec("capability", lambda lab, _r: rows.capability(lab.version)),
    "listDbMetrics": ObjectSpec("dbMetrics", lambda lab, _r: rows.db_metrics(lab.topology.database),
                                since="4.17"),
    "listZones": ListSpec("zone", lambda i: i.zones, rows.zone_row, {"id": "zone"},
                          exact=("id", "name"), like_name=lambda r: r.zone.name),
    "listPods": ListSpec("pod", lambda i: i.pods, rows.pod_row,
                         {"id": "pod", "zoneid": "zone"}, exact=("id", "zoneid", "name"),
                         like_name=lambda r: r.pod.name),
    "listClusters": ListSpec("cluster", lambda i: i.clusters, rows.cluster_row,
                             {"id": "cluster", "zoneid": "zone", "podid": "pod"},
                             exact=("id", "zoneid", "podid", "name"), folded=("hypervisor",),
                             like_name=lambda r: r.cluster.name),
    "listHosts": ListSpec("host", lambda i: i.hosts, rows.host_row,
                          {"id": "host", "zoneid": "zone", "podid": "pod", "clusterid": "cluster"},
                          exact=("id", "zoneid", "podid", "clusterid"),
                          folded=("type", "state", "hypervisor"),
                          like_name=lambda r: r.vm.name if isinstance(r, inv.SystemVmRec)
                          else r.host.name, name_is_like=True),
    "listSystemVms": ListSpec("systemvm", lambda i: i.system_vms, rows.system_vm_row,
                              {"id": "vm", "zoneid": "zone", "podid": "pod", "hostid": "host"},
                              exact=("id", "zoneid", "podid", "hostid", "name"),
                              folded=("systemvmtype", "state"), like_name=lambda r: r.vm.name),
    "listRouters": ListSpec("router", lambda i: i.routers, rows.router_row,
                            {"id": "vm", "zoneid": "zone", "podid": "pod", "clusterid": "cluster",
                             "hostid": "host", "projectid": "project"},
                            exact=("id", "zoneid", "podid", "clusterid", "hostid", "name"),
                            folded=("state",), like_name=lambda r: r.router.name),
    "listManagementServers": ListSpec("managementserver", lambda i: i.ms_rows,
                                      rows.management_server_row, {"id": "mshost"},
                                      exact=("id", "name"), like_name=lambda r: r.ms.name,
                                      since="4.15"),  # added in 4.12-4.15 (see the reference)
    "listManagementServersMetrics": ListSpec(
        "managementserver", lambda i: i.ms_rows, rows.management_server_metrics_row,
        {"id": "mshost"}, exact=("id", "name"), like_name=lambda r: r.ms.name, since="4.17"),
    "listImageStores": ListSpec("imagestore", lambda i: i.image_stores, rows.image_store_row,
                                {"id": "imagestore", "zoneid": "zone"},
                                exact=("id", "zoneid", "name"), like_name=lambda r: r.store.name,
                                since="4.2"),
    "listStoragePools": ListSpec("storagepool", lambda i: i.storage_pools, rows.storage_pool_row,
                                 {"id": "storagepool", "zoneid": "zone", "podid": "pod",
                                  "clusterid": "cluster"},
                                 exact=("id", "zoneid", "podid", "clusterid", "name", "ipaddress",
                                        "path"), like_name=lambda r: r.store.name),
    "listVlanIpRanges": ListSpec("vlaniprange", lambda i: i.vlan_ranges, rows.vlan_range_row,
                                 {"id": "vlan", "zoneid": "zone"}, exact=("id", "zoneid")),
    "listVmwareDcs": ListSpec("VMwareDC", lambda i: None, rows.vmware_dc_row, {"zoneid": "zone"},
                              required=("zoneid",)),
    "listConfigurations": ListSpec("configuration", lambda i: None, rows.configuration_row,
                                   {"zoneid": "zone"}),
    "listTemplates": ListSpec("template", lambda i: i.templates, rows.template_row,
                              {"id": "template", "zoneid": "zone"}, exact=("id", "zoneid", "name"),
                              like_name=lambda r: r.template.name, required=("templatefilter",)),
    "listIsos": ListSpec("iso", lambda i: i.isos, rows.template_row, {"id": "template", "zoneid": "zone"},
                         exact=("id", "zoneid", "name"), like_name=lambda r: r.template.name),
    "listPhysicalNetworks": ListSpec("physicalnetwork", lambda i: i.physical_networks, rows.physical_network_row,
                                     {"id": "physicalnetwork", "zoneid": "zone"}, exact=("id", "zoneid")),
    # the LDAP plugin's command answers as "ldapconfigurationresponse" with "LdapConfiguration" rows
    "listLdapConfigurations": ListSpec("LdapConfiguration", lambda i: i.ldap_servers, rows.ldap_configuration_row, {},
                                       envelope="ldapconfigurationresponse"),
    "listUsageServerMetrics": ObjectSpec("usageMetrics", lambda lab, _r: rows.usage_metrics(lab.topology),
                                         since="4.17"),
}


def execute(lab: CommandContext, request: Request) -> tuple[int, dict]:
    """Run one known, authorised read command; errors come back as ApiFailure."""
    spec = COMMANDS[request.command]
    envelope = getattr(spec, "envelope", None) or f"{request.short_name}response"
    if isinstance(spec, ObjectSpec):
        return 200, {envelope: {spec.object_key: spec.build(lab, request)}}
    for name in spec.required:
        if not request.params.get(name):
            raise ApiFailure(PARAM_ERROR, f"Unable to execute API command {request.short_name} "
                             f"due to missing parameter {name}", CS_SERVER_API,
                             generic_envelope=True)
    _check_uuids(request, lab, spec.uuid_params)
    start, size = page_window(request, lab.max_page_size)
    render, matches = _select(lab, request, spec)
    total = len(matches)
    if total == 0:
        return 200, {envelope: {}}
    page = matches[start:] if size is None else matches[start:start + size]
    if not page:  # past the end: the real server keeps the count, drops the list key
        return 200, {envelope: {"count": total}}
    return 200, {envelope: {"count": total, spec.object_key: [render(item) for item in page]}}


def _select(lab: CommandContext, request: Request, spec: ListSpec) -> tuple[Callable, list]:
    params, version = request.params, lab.version
    if request.command == "listConfigurations":
        return ((lambda item: rows.configuration_row(item[0], item[1], version, item[2])),
                _configurations(lab, request))
    if request.command == "listVmwareDcs":
        zone_id = params["zoneid"]
        return rows.vmware_dc_row, [dc for dc in lab.inventory.vmware_dcs if dc.zone.id == zone_id]

    equal = {name: params[name] for name in spec.exact if params.get(name)
             and not (name == "name" and spec.name_is_like)}
    equal.update({name: params[name].lower() for name in spec.folded if params.get(name)})
    rowset = spec.rowset(lab.inventory)
    if request.command == "listRouters":
        equal.update(_router_ownership(request))
        if params.get("healthchecksfailed") and version >= (4, 16):  # the filter came in 4.16
            equal["healthchecksfailed"] = params["healthchecksfailed"].lower()
    matches = rowset.select(equal)
    for name in ("keyword", "name") if spec.name_is_like else ("keyword",):
        needle = params.get(name, "").lower()
        if needle and spec.like_name:
            matches = [record for record in matches if needle in spec.like_name(record).lower()]

    if request.command == "listRouters":
        health = params.get("fetchhealthcheckresults", "").lower() == "true"
        return (lambda record: rows.router_row(record, version, health)), matches
    if request.command.startswith("listManagementServers"):
        return (lambda record: spec.render(record, version,
                                           _agents_of(lab, record))), matches
    return (lambda record: spec.render(record, version)), matches


def _router_ownership(request: Request) -> dict[str, Any]:
    """Which routers a root admin sees (AccountManagerImpl.buildACLSearchParameters).

    Routers belong to tenant accounts: without listall only the caller's own are
    listed; project routers only appear with projectid (-1 = every project).
    """
    params = request.params
    project = params.get("projectid")
    if project == "-1":
        return {"inproject": True}
    if project:
        return {"projectid": project}
    selection: dict[str, Any] = {"inproject": False}
    if params.get("account"):
        selection["account"] = params["account"]
    elif params.get("listall", "").lower() != "true":
        selection["account"] = request.caller.account
    return selection


def _configurations(lab: CommandContext, request: Request) -> list[tuple[str, str, str | None]]:
    """(name, value, scope) rows; `name` and `keyword` are SQL LIKE %x% filters."""
    from csaudit.lab.settings_catalogue import info

    params = request.params
    settings = dict(lab.topology.settings)
    scope = None
    if params.get("zoneid"):
        # Zone scope lists the zone-scoped keys, with the zone's value where it has one.
        zone = next(r.zone for r in lab.inventory.zones.records if r.id == params["zoneid"])
        names = [name for name in settings if info(name).scope == "zone"]
        names += [name for name in zone.settings if name not in names]
        settings = {name: zone.settings.get(name, settings.get(name, info(name).default or ""))
                    for name in names}
        scope = "zone"
    needle = params.get("name", "").lower()
    keyword = params.get("keyword", "").lower()
    category = params.get("category", "").lower()
    return [(name, value, scope) for name, value in settings.items()
            if needle in name.lower() and keyword in name.lower()
            and (not category or info(name).category.lower() == category)]

