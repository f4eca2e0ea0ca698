"""listApis (the API discovery plugin): the commands the simulated cloud serves that the caller's role allows, in
the shape of ApiDiscoveryResponse, so clients that learn the API from the server work: cloudmonkey's `sync` reads
`api[].name`, `isasync`, `description`, and `params[]` with `name`, `type`, `required`, `description` and
`related` (cloudstack-cloudmonkey config/cache.go); `cs listApis` prints the answer.

Field names are CloudStack's: ApiDiscoveryResponse has name, description, since, isasync, related, params,
response (and a type that is null, so absent, for a command); ApiParameterResponse has name, description, type,
length, required, since, related; ApiResponseResponse has name, description, type. Gson omits nulls (a command
with no related commands has no `related`), as a real answer shows (cloudstack-cloudmonkey config/apis.json).
"""

from __future__ import annotations

from typing import Any

from csaudit.lab.commands import COMMANDS, LIST_APIS, ApiFailure, Caller, CommandContext, ListSpec, Request, execute

# The command that lists each kind of object a uuid parameter names (the "related" of the parameter).
_LISTED_BY = {"zone": "listZones", "pod": "listPods", "cluster": "listClusters", "host": "listHosts",
              "vm": "listSystemVms,listRouters", "storagepool": "listStoragePools", "imagestore": "listImageStores",
              "mshost": "listManagementServers", "project": "listProjects", "vlan": "listVlanIpRanges"}
_DESCRIPTIONS = {
    "listApis": "lists all available apis on the server, provided by the Api Discovery plugin",
    "listCapabilities": "Lists capabilities",
    "listDbMetrics": "list the db hosts and statistics",
    "listZones": "Lists zones",
    "listPods": "Lists all Pods.",
    "listClusters": "Lists clusters.",
    "listHosts": "Lists hosts.",
    "listSystemVms": "List system virtual machines.",
    "listRouters": "List routers.",
    "listManagementServers": "Lists management servers.",
    "listManagementServersMetrics": "Lists Management Server metrics",
    "listImageStores": "Lists image stores.",
    "listStoragePools": "Lists storage pools.",
    "listVlanIpRanges": "Lists all VLAN IP ranges.",
    "listVmwareDcs": "Retrieves VMware DC(s) associated with a zone.",
    "listConfigurations": "Lists all configurations.",
}
_EXTRA_PARAMS = {  # beyond what a ListSpec filters on: (name, type, description)
    "listApis": (("name", "string", "API name"),),
    "listRouters": (("listall", "boolean", "If set to false, list only resources belonging to the command's caller"),
                    ("account", "string", "list resources by account"),
                    ("fetchhealthcheckresults", "boolean", "if true is passed for this parameter, also fetch last "
                     "executed health check results for the router")),
    "listConfigurations": (("name", "string", "lists configuration by name"),
                           ("category", "string", "lists configurations by category"),
                           ("keyword", "string", "List by keyword")),
}
_LIST_PARAMS = (("keyword", "string", "List by keyword"), ("page", "integer", ""), ("pagesize", "integer", ""))
_DISCOVERY_FIELDS = ("name", "description", "since", "isasync", "related", "params", "response", "type")


def list_apis(lab: CommandContext, request: Request) -> dict:
    """The content of listapisresponse; an unknown or forbidden `name` is ListApisCmd's 530."""
    wanted = request.params.get("name")
    names = [name for name in (LIST_APIS, *COMMANDS) if lab.knows(name) and request.caller.may_call(name)
             and (not wanted or name == wanted)]
    if wanted and not names:
        raise ApiFailure(530, "Api Discovery plugin was unable to find an api by that name or process any apis", 9999)
    return {"count": len(names), "api": [_describe(lab, name) for name in names]}


def _describe(lab: CommandContext, name: str) -> dict:
    spec = COMMANDS.get(name)  # None for listApis itself
    since = spec.since if spec is not None else "4.1.0"
    api: dict[str, Any] = {"name": name, "description": _DESCRIPTIONS.get(name, name), "isasync": False}
    if since:
        api["since"] = since
    api["params"] = [_param(*entry) for entry in _params(name, spec)]
    api["response"] = _response_fields(lab, name, spec)
    return api


def _params(name: str, spec) -> list[tuple[str, str, str, bool, str | None]]:
    """(name, type, description, required, related) of each parameter the lab reads for the command."""
    found: dict[str, tuple[str, str, str, bool, str | None]] = {}
    if isinstance(spec, ListSpec):
        for param, entity in spec.uuid_params.items():
            found[param] = (param, "uuid", f"the ID of the {entity}", param in spec.required, _LISTED_BY.get(entity))
        for param in (*spec.exact, *spec.folded):
            found.setdefault(param, (param, "string", f"the {param}", param in spec.required, None))
        for param, kind, text in _LIST_PARAMS:
            found.setdefault(param, (param, kind, text, False, None))
    for param, kind, text in _EXTRA_PARAMS.get(name, ()):
        found.setdefault(param, (param, kind, text, False, None))
    return sorted(found.values())


def _param(name: str, kind: str, description: str, required: bool, related: str | None) -> dict:
    param: dict[str, Any] = {"name": name, "description": description, "type": kind, "length": 255, "required": required}
    if related:
        param["related"] = related
    return param


def _response_fields(lab: CommandContext, name: str, spec) -> list[dict]:
    """The fields of one answer row: what the lab really renders for the command."""
    if spec is None:
        return [{"name": field, "description": field, "type": "string"} for field in _DISCOVERY_FIELDS]
    params = {"page": "1", "pagesize": "1"} if isinstance(spec, ListSpec) else {}
    try:
        _, document = execute(lab, Request(name, params, Caller("system")))
    except ApiFailure:  # a command that needs a parameter (listVmwareDcs zoneid=)
        return []
    (content,) = document.values()
    row = content.get(spec.object_key)
    row = row[0] if isinstance(row, list) and row else row
    if not isinstance(row, dict):
        return []
    return [{"name": field, "description": field, "type": _type(value)} for field, value in sorted(row.items())]


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "string"
