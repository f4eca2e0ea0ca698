"""An inventory saved as JSON (`csaudit inventory --format json`) and read back: csaudit/inventory/v1."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from csaudit.collect.textfile import read_text
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

INVENTORY_SCHEMA = "csaudit/inventory/v1"


_NESTED = {
    "zones": Zone,
    "pods": Pod,
    "clusters": Cluster,
    "hosts": Host,
    "management_servers": ManagementServer,
    "system_vms": SystemVm,
    "routers": Router,
    "image_stores": ImageStore,
    "storage_pools": StoragePool,
    "vcenters": VCenter,
    "services": NamedService,
}


# The few fields that are neither text, numbers nor lists of text.
_BOOLEANS = {Router: frozenset({"redundant"})}
_INNER = {(Router, "health_checks_failed"): HealthCheck}


def inventory_to_dict(inventory: Inventory) -> dict:
    return {"schema": INVENTORY_SCHEMA, **dataclasses.asdict(inventory)}


def inventory_from_dict(data: Any, origin: str = "inventory") -> Inventory:
    if not isinstance(data, dict) or data.get("schema") != INVENTORY_SCHEMA:
        raise UsageError(f"{origin}: not a csaudit inventory (expected \"schema\": \"{INVENTORY_SCHEMA}\"; make one with `csaudit inventory --format json`)")
    try:
        fields = {}
        for field in dataclasses.fields(Inventory):
            if field.name not in data:
                continue
            value = data[field.name]
            if field.name in _NESTED:
                value = tuple(_object(_NESTED[field.name], item, field.name) for item in _list(value, field.name))
            elif field.name == "database":
                value = None if value is None else _object(Database, value, field.name)
            elif field.name in ("settings", "zone_errors"):
                value = _string_map(value, field.name)
            elif field.name == "zone_settings":
                value = {str(k): _string_map(v, f"zone_settings.{k}") for k, v in _mapping(value, field.name).items()}
            elif value is not None and not isinstance(value, str):
                raise TypeError(f"{field.name} must be a string")
            fields[field.name] = value
        return Inventory(**fields)
    except (TypeError, AttributeError, ValueError) as exc:
        raise UsageError(f"{origin}: malformed inventory: {exc}") from None


def _list(value: Any, name: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list")
    return list(value)


def _mapping(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be an object")
    return value


def _string_map(value: Any, name: str) -> dict[str, str]:
    if not all(isinstance(v, str) for v in _mapping(value, name).values()):
        raise TypeError(f"{name} values must be strings")
    return {str(k): v for k, v in value.items()}


def _object(cls, item: Any, name: str):
    """A saved object: only its own fields, each a string, a number, null or a list of strings (or the
    objects and booleans named in _INNER and _BOOLEANS)."""
    fields = {}
    for key, value in _mapping(item, name).items():
        inner = _INNER.get((cls, key))
        if inner is not None:
            value = tuple(_object(inner, v, f"{name}.{key}") for v in _list(value, f"{name}.{key}"))
        elif isinstance(value, bool) and key in _BOOLEANS.get(cls, ()):
            pass
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = tuple(value)
        elif isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
            raise TypeError(f"{name}.{key} has an unexpected type")
        fields[key] = value
    return cls(**fields)


def load_inventory(path: str) -> Inventory:
    text = read_text(path, "inventory")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return inventory_from_dict(data, path)
