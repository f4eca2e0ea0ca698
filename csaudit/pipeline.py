"""The audit pipeline wired together: api -> inventory -> derive -> vantages -> verdict -> report."""

from __future__ import annotations

import argparse
import dataclasses

from csaudit.catalogue import load_catalogue
from csaudit.config import ApiConfig, load_api_config
from csaudit.derive import derive_flows, select_zones
from csaudit.environment import Environment
from csaudit.errors import UsageError
from csaudit.exitcodes import ExitStatus
from csaudit.inventory import Inventory, load_inventory, parse_inventory
from csaudit.probe import ProbeOptions
from csaudit.report import render_json, render_table, report_document
from csaudit.vantage import run_vantages
from csaudit.vantage.local import LocalVantage
from csaudit.verdict import FlowResult, judge_all, summarize


@dataclasses.dataclass(frozen=True)
class AuditRequest:
    zones: tuple[str, ...] = ()
    endpoint: str | None = None
    region: str | None = None
    inventory_file: str | None = None
    db_host: str | None = None
    catalogue_file: str | None = None
    port_options: tuple[tuple[str, int], ...] = ()  # api-port, db-port, cluster-port given by the operator
    probe: ProbeOptions = ProbeOptions()
    api_config: ApiConfig | None = None  # given directly by the demo; otherwise read from cs config


def add_audit_arguments(parser: argparse.ArgumentParser, probes: bool = True) -> None:
    parser.add_argument("--zone", action="append", default=[], metavar="ZONE",
                        help="zone name or id to audit (repeatable; default: all). Management-tier flows stay in.")
    parser.add_argument("--endpoint", help="API URL, e.g. http://ms:8080/client/api (key/secret from env or cloudstack.ini; "
                                           "none means the unauthenticated integration port)")
    parser.add_argument("--region", help="section of cloudstack.ini to use (like cs --region)")
    parser.add_argument("--inventory", dest="inventory_file", metavar="FILE",
                        help="work offline from an inventory saved with `csaudit inventory --format json`")
    parser.add_argument("--db-host", help="MySQL address (the API only tells it from 4.17 on, via listDbMetrics)")
    parser.add_argument("--db-port", type=int, metavar="PORT", help="MySQL port, if not 3306 (db.properties db.cloud.port)")
    parser.add_argument("--cluster-port", type=int, metavar="PORT", help="MS cluster servlet port, if not 9090 (db.properties)")
    parser.add_argument("--api-port", type=int, metavar="PORT", help="MS UI/API port, if not 8080 (server.properties http.port)")
    parser.add_argument("--catalogue", dest="catalogue_file", metavar="FILE", help="a flow catalogue TOML instead of the built-in one")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout")
    if probes:
        parser.add_argument("--timeout", type=float, default=2.0, help="seconds a probe waits for an answer (default 2)")
        parser.add_argument("--concurrency", type=int, default=256, help="probes in flight at once (default 256)")
        parser.add_argument("--outside", action="store_true",
                            help="this machine is outside the management network: also check the deny rules meant for it")
        parser.add_argument("--strict", action="store_true", help="exit 1 also when a flow is unverified or in error")


def audit_request_from_args(args, api_config: ApiConfig | None = None) -> AuditRequest:
    timeout = getattr(args, "timeout", 2.0)
    concurrency = getattr(args, "concurrency", 256)
    if timeout <= 0 or concurrency < 1:
        raise UsageError("--timeout must be above 0 and --concurrency at least 1")
    for name in ("api_port", "db_port", "cluster_port"):
        port = getattr(args, name, None)
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"--{name.replace('_', '-')} must be a port from 1 to 65535")
    return AuditRequest(
        zones=tuple(getattr(args, "zone", ())),
        endpoint=getattr(args, "endpoint", None),
        region=getattr(args, "region", None),
        inventory_file=getattr(args, "inventory_file", None),
        db_host=getattr(args, "db_host", None),
        catalogue_file=getattr(args, "catalogue_file", None),
        port_options=tuple((name, getattr(args, name.replace("-", "_"))) for name in ("api-port", "db-port", "cluster-port")
                           if getattr(args, name.replace("-", "_"), None)),
        probe=ProbeOptions(timeout=timeout, concurrency=concurrency, outside=getattr(args, "outside", False)),
        api_config=api_config,
    )


def collect_inventory(request: AuditRequest, env: Environment) -> Inventory:
    if request.inventory_file:
        inventory = load_inventory(request.inventory_file)
        if request.db_host:
            from csaudit.inventory import Database

            inventory = dataclasses.replace(inventory, database=Database("database", request.db_host, "--db-host"))
        return inventory
    from csaudit.api import CloudStackApi, fetch_raw_cloud

    config = request.api_config or load_api_config(request.endpoint, request.region)
    env.log(f"csaudit: reading {config.public_endpoint} ({config.api_mode} API)")
    api = CloudStackApi(config)
    raw = fetch_raw_cloud(api, progress=lambda m: env.log(f"csaudit: {m}"))
    env.log(f"csaudit: {api.requests_sent} API requests")
    return parse_inventory(raw, endpoint=config.public_endpoint, api_mode=config.api_mode, db_host=request.db_host)


def plan_flows(request: AuditRequest, env: Environment):
    rules = load_catalogue(request.catalogue_file)
    inventory = collect_inventory(request, env)
    zone_ids = select_zones(inventory, request.zones)
    return derive_flows(rules, inventory, zone_ids, dict(request.port_options)), inventory, zone_ids


@dataclasses.dataclass(frozen=True)
class AuditOutcome:
    results: tuple[FlowResult, ...]
    inventory: Inventory
    zone_ids: frozenset[str] | None

    def render(self, fmt: str, colour: bool = False) -> str:
        if fmt == "json":
            return render_json(report_document(self.results, self.inventory, self.zone_ids))
        return render_table(self.results, colour)

    def exit_status(self, strict: bool = False) -> ExitStatus:
        summary = summarize(self.results)
        if summary["fail"] or (strict and (summary["unverified"] or summary["error"])):
            return ExitStatus.FLOWS_FAILED
        return ExitStatus.OK


def run_audit(request: AuditRequest, env: Environment) -> AuditOutcome:
    flows, inventory, zone_ids = plan_flows(request, env)
    env.log(f"csaudit: {len(flows)} flows to check")
    observed, unverified = run_vantages(flows, [LocalVantage()], request.probe, progress=lambda m: env.log(f"csaudit: {m}"))
    results = judge_all(flows, observed, unverified)
    env.log("csaudit: " + ", ".join(f"{n} {s}" for s, n in summarize(results).items()))
    return AuditOutcome(results, inventory, zone_ids)
