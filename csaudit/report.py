"""Reports: the versioned JSON document and the grouped table. Pure functions to text."""

from __future__ import annotations

import datetime
import json
from itertools import groupby

from tabulate import tabulate

from csaudit import __version__
from csaudit.inventory import Inventory
from csaudit.verdict import FlowResult, summarize
from csaudit.waivers import waived_detail

REPORT_SCHEMA = "csaudit/report/v1"
_COLOURS = {"pass": "32", "fail": "31;1", "error": "35", "unverified": "33", "waived": "36"}


def report_document(results: tuple[FlowResult, ...], inventory: Inventory, zone_ids=None, now=None,
                    vantages=(), findings=()) -> dict:
    """`vantages` (VantageState) and `findings` (crosscheck.Finding) are extra keys of v1."""
    now = now or datetime.datetime.now(datetime.UTC)
    zones = [z for z in inventory.zones if zone_ids is None or z.id in zone_ids]
    return {
        "schema": REPORT_SCHEMA,
        "tool_version": __version__,
        "generated_at": now.isoformat(timespec="seconds"),
        "cloud": {"endpoint": inventory.endpoint, "version": inventory.version, "api_mode": inventory.api_mode},
        "zones": [_zone_json(z, inventory) for z in zones],
        "flows": [_flow_json(r) for r in results],
        "summary": summarize(results),
        "vantages": [{"name": v.name, "state": v.state, "probes": v.probes, "reason": v.reason,
                      "object": {"role": v.role, "name": v.object_name} if v.role else None, "engine": v.engine}
                     for v in vantages],
        "findings": [{"kind": f.kind, "object": {"role": f.role, "name": f.name}, "api_state": f.api_state,
                      "message": f.message} for f in findings],
    }


def _zone_json(zone, inventory: Inventory) -> dict:
    error = inventory.zone_errors.get(zone.id)
    return {"id": zone.id, "name": zone.name, "state": "error" if error else "ok", **({"error": error} if error else {})}


def _flow_json(result: FlowResult) -> dict:
    flow = result.flow
    return {
        "id": flow.id,
        "rule": flow.rule,
        "title": flow.title,
        "zone": flow.zone,
        "source": {"role": flow.source.role, "name": flow.source.name, "address": flow.source.address},
        "target": {"role": flow.target.role, "name": flow.target.name, "address": flow.target.address},
        "protocol": flow.protocol,
        "port": flow.port,
        "port_end": flow.port_end,
        "expect": flow.expect,
        "vantage": result.vantage,
        "status": result.status,
        "observed": result.observed,
        "reason": result.reason,
        "latency_ms": result.latency_ms,
        "probe": flow.probe,
        "service": result.service,
        "detail": result.detail,
        "warnings": list(result.warnings),
        "notes": list(flow.notes),
        "citation": flow.citation,
        "waiver": _waiver_json(result.waiver),
    }


def _waiver_json(waiver) -> dict | None:
    if waiver is None:
        return None
    return {"reason": waiver.reason, "expires": waiver.expires.isoformat(), "rule": waiver.rule, "flow": waiver.flow}


def render_json(document: dict) -> str:
    """Indented at the top, one line per flow: readable, diffable, and fast for 500,000 flows
    (json's C encoder only runs without indent)."""
    if not isinstance(document.get("flows"), list):
        return json.dumps(document, indent=2) + "\n"
    head = {k: v for k, v in document.items() if k != "flows"}
    opening = json.dumps(head, indent=2)[:-2] + ",\n" if head else "{\n"  # without the closing "\n}"
    flows = ",\n".join("    " + json.dumps(flow) for flow in document["flows"])
    body = f"[\n{flows}\n  ]" if flows else "[]"
    return f'{opening}  "flows": {body}\n}}\n'



def render_table(results: tuple[FlowResult, ...], colour: bool = False, vantages=(), findings=()) -> str:
    """One table per zone and source role, the vantages and the findings, then a summary line."""
    blocks = []
    ordered = sorted(results, key=lambda r: (r.flow.zone or "", r.flow.source.role))
    for (zone, role), group in groupby(ordered, key=lambda r: (r.flow.zone or "", r.flow.source.role)):
        rows = [_row(r, colour) for r in group]
        heading = f"{zone or 'management tier'} / from {role}"
        table = tabulate(rows, headers=["flow", "source", "target", "port/proto", "expect", "vantage", "result", "detail"],
                         tablefmt="simple")
        blocks.append(f"== {heading}\n{table}")
    if vantages:
        rows = [[v.name, v.state, v.probes, v.reason or (f"ran with {v.engine}" if v.engine else "")] for v in vantages]
        blocks.append("== vantages\n" + tabulate(rows, headers=["vantage", "state", "probes", "detail"], tablefmt="simple"))
    if findings:
        blocks.append("== findings (the API and the network disagree)\n" + "\n".join(f"- {f.message}" for f in findings))
    summary = summarize(results)
    blocks.append("summary: " + ", ".join(f"{count} {status}" for status, count in summary.items()))
    return "\n\n".join(blocks) + "\n"


def _row(result: FlowResult, colour: bool) -> list[str]:
    flow = result.flow
    status = result.status
    if colour:
        status = f"\x1b[{_COLOURS[status]}m{status}\x1b[0m"
    port = f"{flow.port}-{flow.port_end}" if flow.port_end else str(flow.port)
    return [
        f"{flow.rule} {flow.title}",
        _endpoint(flow.source),
        _endpoint(flow.target),
        f"{port}/{flow.protocol}",
        flow.expect,
        result.vantage or "-",
        status,
        _detail(result),
    ]


def _detail(result: FlowResult) -> str:
    """Compact: the reason when not a pass (with the waiver when waived); else what answered and how fast."""
    if result.waiver is not None:
        return waived_detail(result.waiver.expires, result.waiver.reason, result.reason)
    text = result.reason if result.status != "pass" else _latency(result)
    if result.status == "pass" and result.service:
        text = f"{result.service}: {_shorten(result.detail or '', 80)}, {text}"
    for warning in result.warnings:
        text += f" [warning: {_shorten(warning, 90)}]"
    return text


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _endpoint(endpoint) -> str:
    return f"{endpoint.name} ({endpoint.address})" if endpoint.address and endpoint.address != endpoint.name else endpoint.name


def _latency(result: FlowResult) -> str:
    observed = result.observed or ""
    return f"{observed} in {result.latency_ms:g} ms" if result.latency_ms is not None else observed


def render_inventory_table(inventory: Inventory) -> str:
    rows = []
    zone_name = {z.id: z.name for z in inventory.zones}
    for ms in inventory.management_servers:
        rows.append(["ms", ms.name, "", ms.address or "?", f"address from {ms.address_source}", ms.state or ""])
    if inventory.database:
        db = inventory.database
        rows.append(["db", db.name, "", db.address or "?", f"address from {db.address_source}", ""])
    for host in inventory.hosts:
        rows.append(["host", host.name, zone_name.get(host.zone_id, ""), host.address or "?", host.hypervisor or "", host.state or ""])
    for vm in inventory.system_vms:
        addresses = f"private {vm.private_ip} linklocal {vm.linklocal_ip} public {vm.public_ip}"
        rows.append([vm.role, vm.name, zone_name.get(vm.zone_id, ""), addresses, vm.hypervisor or "", f"{vm.state}/agent {vm.agent_state}"])
    for router in inventory.routers:
        addresses = f"control {router.linklocal_ip} guest {router.guest_ip} public {router.public_ip}"
        rows.append(["vr", router.name, zone_name.get(router.zone_id, ""), addresses, router.hypervisor or "", router.state or ""])
    for store in inventory.image_stores:
        rows.append(["secondary-storage", store.name, zone_name.get(store.zone_id, ""), f"{store.address}:{store.port}", store.protocol or "", ""])
    for pool in inventory.storage_pools:
        rows.append(["primary-storage", pool.name, zone_name.get(pool.zone_id, ""), pool.address or "?", pool.protocol or "", pool.state or ""])
    for vcenter in inventory.vcenters:
        rows.append(["vcenter", vcenter.name, zone_name.get(vcenter.zone_id, ""), vcenter.address, "", ""])
    head = f"cloud {inventory.endpoint or '(offline)'} version {inventory.version or 'unknown'} ({inventory.api_mode or 'offline'})\n"
    return head + tabulate(rows, headers=["role", "name", "zone", "address", "kind", "state"], tablefmt="simple") + "\n"


def render_flows_table(flows) -> str:
    rows = []
    for flow in flows:
        port = f"{flow.port}-{flow.port_end}" if flow.port_end else str(flow.port)
        rows.append([flow.zone or "", f"{flow.rule} {flow.title}", _endpoint(flow.source), _endpoint(flow.target), f"{port}/{flow.protocol}", flow.expect])
    return tabulate(rows, headers=["zone", "flow", "source", "target", "port/proto", "expect"], tablefmt="simple") + f"\n{len(rows)} flows\n"
