"""What every renderer shares: labels and colours for flows given as report-document dicts.

Renderers take flow dicts (the `flows` of a csaudit/report/v1 document, or of `csaudit flows
--format json`), so the same code serves a live run, a saved report and a plan without probes.
"""

from __future__ import annotations

import re

from csaudit.judge.waivers import waived_detail

MANAGEMENT_TIER = "management tier"
# Edge and status colours of the diagrams; "planned" is a flow of a plan (no probe, no status).
STATUS_COLOURS = {
    "pass": ("#2e7d32", "green"),
    "fail": ("#c62828", "red"),
    "error": ("#ef6c00", "orange"),
    "unverified": ("#9e9e9e", "grey"),
    "waived": ("#6a1b9a", "purple"),
    "planned": ("#37474f", "slate"),
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def zone_label(flow: dict) -> str:
    return flow.get("zone") or MANAGEMENT_TIER


def port_label(flow: dict) -> str:
    port = f"{flow['port']}-{flow['port_end']}" if flow.get("port_end") else str(flow["port"])
    return f"{port}/{flow['protocol']}"


def endpoint_label(endpoint: dict) -> str:
    address = endpoint.get("address")
    name = endpoint["name"]
    return f"{name} ({address})" if address and address != name else name


def status_of(flow: dict) -> str:
    return flow.get("status") or "planned"


def detail(flow: dict) -> str:
    """What a reader needs next to the status: the reason, and the waiver when there is one."""
    waiver = flow.get("waiver")
    reason = flow.get("reason") or ""
    if waiver:
        return waived_detail(waiver["expires"], waiver["reason"], reason)
    return reason


def printable(text: str) -> str:
    """No control characters: they break XML, CSV readers and terminals alike."""
    return _CONTROL.sub(" ", str(text))


def zone_order(document: dict, flows: list[dict]) -> list[str]:
    """The management tier first, then zones in the order the document lists them."""
    return order_zones(document, {zone_label(f) for f in flows})


def order_zones(document: dict, seen: set[str]) -> list[str]:
    """zone_order of the zone labels already collected (a streaming reader does not read the flows twice)."""
    listed = [z["name"] for z in document.get("zones", [])]
    ordered = [MANAGEMENT_TIER] if MANAGEMENT_TIER in seen else []
    ordered += [z for z in listed if z in seen]
    return ordered + sorted(seen - set(ordered))
