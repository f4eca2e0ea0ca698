"""The audit pipeline wired together: api -> inventory -> derive -> vantages -> verdict -> report."""

from __future__ import annotations

import dataclasses
import datetime
import io
import threading
import time
from collections import Counter
from typing import TextIO

from csaudit.collect.config import ApiConfig, load_api_config
from csaudit.collect.parse import ROW_FIELDS, ROW_TRIMS, parse_inventory
from csaudit.collect.saved import load_inventory
from csaudit.collector import collector_paused
from csaudit.interrupts import Interrupts
from csaudit.judge.crosscheck import cross_check
from csaudit.judge.verdict import judge_all
from csaudit.judge.waivers import waive, warn_expired
from csaudit.model.environment import PIPED_COLUMNS, Environment
from csaudit.model.exitcodes import ExitStatus
from csaudit.model.inventory import Database, Inventory
from csaudit.model.probes import ProbeOptions, Unverifiable, VantageState
from csaudit.model.results import STATUSES, Finding, Waiver
from csaudit.model.vocabulary import Gap, Role, Status
from csaudit.plan.catalogue import load_catalogue
from csaudit.plan.derive import audit_units, derive_flows, derive_unit_flows, select_zones
from csaudit.report.document import report_head, write_json, write_table
from csaudit.report.formats import render_report
from csaudit.report.htmlpage import write_html
from csaudit.report.progress import ProgressBar
from csaudit.report.resultlog import ResultLog
from csaudit.report.terminal import write_report
from csaudit.vantage import merge_states, run_vantages
from csaudit.vantage.local import LocalVantage
from csaudit.vantage.ssh_settings import RemoteSettings


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
    deadline: float | None = None  # seconds the whole run may take
    waivers: tuple[Waiver, ...] = ()
    remote: RemoteSettings = RemoteSettings(enabled=False)  # SSH vantages; `run` turns them on (--no-remote: off)
    collect_firewall: bool = False  # read the rulesets of failed flows' machines over SSH and name the rule that drops them


def collect_inventory(request: AuditRequest, env: Environment, deadline: float | None = None) -> Inventory:
    if request.inventory_file:
        inventory = load_inventory(request.inventory_file)
        if request.db_host:
            inventory = dataclasses.replace(inventory, database=Database("database", request.db_host, "--db-host"))
        return inventory
    from csaudit.collect.api import CloudStackApi, fetch_raw_cloud

    config = request.api_config or load_api_config(request.endpoint, request.region)
    env.log(f"csaudit: reading {config.public_endpoint} ({config.api_mode} API)")
    api = CloudStackApi(config, deadline=deadline)
    raw = fetch_raw_cloud(api, progress=lambda m: env.log(f"csaudit: {m}"), fields=ROW_FIELDS, trims=ROW_TRIMS)
    env.log(f"csaudit: {api.requests_sent} API requests")
    return parse_inventory(raw, endpoint=config.public_endpoint, api_mode=config.api_mode, db_host=request.db_host)


def _plan_inputs(request: AuditRequest, env: Environment, deadline: float | None = None):
    """The catalogue's rules, the inventory, and the zones asked for (None: all)."""
    rules = load_catalogue(request.catalogue_file)
    inventory = collect_inventory(request, env, deadline)
    return rules, inventory, select_zones(inventory, request.zones)


def plan_flows(request: AuditRequest, env: Environment, deadline: float | None = None):
    rules, inventory, zone_ids = _plan_inputs(request, env, deadline)
    return derive_flows(rules, inventory, zone_ids, dict(request.port_options)), inventory, zone_ids


@dataclasses.dataclass(frozen=True)
class AuditOutcome:
    results: ResultLog  # the judged flows as report lines, on disk: a large cloud's do not fit in memory
    inventory: Inventory
    zone_ids: frozenset[str] | None
    interrupted: bool = False
    vantages: tuple[VantageState, ...] = ()
    findings: tuple[Finding, ...] = ()
    # one time for every format written by one run, so its files describe the same report
    generated_at: datetime.datetime = dataclasses.field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    duration_seconds: float | None = None  # how long the run took, API to verdicts

    def head(self) -> dict:
        return report_head(self.inventory, self.zone_ids, now=self.generated_at, summary=self.results.summary,
                           vantages=self.vantages, findings=self.findings, duration=self.duration_seconds)

    def document(self) -> dict:
        return {**self.head(), "flows": list(self.results)}

    def write(self, fmt: str, out: TextIO, colour: bool = False, width: int = PIPED_COLUMNS, every_flow: bool = False) -> None:
        """The JSON and HTML reports, the diagrams, the table and the Prometheus metrics stream from the result log; the
        other formats are built from the whole document in memory. The table: the grouped report
        (csaudit/report/terminal.py), its lines cut to `width`; `every_flow` (--all): every flow."""
        if fmt == "json":
            write_json(self.head(), self.results.lines(), out)
        elif fmt == "prometheus":
            from csaudit.report.prometheus import write_prometheus

            write_prometheus(self.head(), iter(self.results), out)
        elif fmt in ("dot", "mermaid"):  # the diagram reads the flows twice from the log (diagram.build_diagram)
            out.write(render_report(fmt, {**self.head(), "flows": self.results}))
        elif fmt == "html":
            write_html(self.head(), lambda: iter(self.results), out, groups=self.results.groups())
        elif fmt == "table" and not every_flow:
            write_report(self.results.groups(), out, self.results.summary, colour, width, vantages=self.vantages, findings=self.findings)
        elif fmt == "table":
            write_table(iter(self.results), out, self.results.summary, colour, vantages=self.vantages, findings=self.findings)
        else:
            out.write(render_report(fmt, self.document()))

    def render(self, fmt: str, colour: bool = False, width: int = PIPED_COLUMNS, every_flow: bool = False) -> str:
        buffer = io.StringIO()
        self.write(fmt, buffer, colour, width, every_flow)
        return buffer.getvalue()

    def exit_status(self, strict: bool = False) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        summary = self.results.summary
        if summary["fail"] or (strict and (summary["unverified"] or summary["error"])):
            return ExitStatus.FLOWS_FAILED
        return ExitStatus.OK


def run_audit(request: AuditRequest, env: Environment, stop: threading.Event | None = None) -> AuditOutcome:
    """Zone by zone (derive.audit_units): derive, probe, judge, then append to the result log, so
    memory holds one zone's flows at a time however large the cloud. `stop`: the caller's stop
    request (`serve`): Ctrl-C and SIGTERM set it during the run instead of raising KeyboardInterrupt
    (csaudit/interrupts.py), and once it is set, probing stops at once and the run is interrupted."""
    started = time.monotonic()
    deadline = started + request.deadline if request.deadline else None
    interrupts = Interrupts(stop)
    log = ResultLog()
    states: list[VantageState] = []
    findings: list[Finding] = []
    expired_hits: Counter[Waiver] = Counter()
    firewalls: dict = {}  # (role, name) -> what --collect-firewall read there, once per run
    today = datetime.date.today()
    with interrupts.installed():
        rules, inventory, zone_ids = _plan_inputs(request, env, deadline)
        registry = vantages(inventory, request.remote)
        bar = ProgressBar(env.stderr) if env.stderr_isatty else None
        options = dataclasses.replace(request.probe, stop=interrupts.stop, deadline=deadline, progress=bar.update if bar else None)
        with interrupts.probing_phase():
            try:
                for zone_id, part in audit_units(inventory, zone_ids):
                    with collector_paused():  # csaudit/collector.py
                        flows = derive_unit_flows(rules, part, zone_id, dict(request.port_options))
                        label = _zone_label(inventory, zone_id)
                        env.log(f"csaudit: {label}: {len(flows)} flows to check")
                        if bar:
                            bar.label = f"probing {label}"  # its count starts again for each zone
                        error = inventory.zone_errors.get(zone_id)
                        blocked = {f.id: Unverifiable(f"zone listing failed: {error}", Gap.ZONE_LISTING_FAILED)
                                   for f in flows} if error else {}
                        run = run_vantages([] if error else flows, registry, options, progress=lambda m: env.log(f"csaudit: {m}"))
                        results = waive(judge_all(flows, run.observed, {**run.unverified, **blocked}, run.ranges), request.waivers,
                                        today, expired_hits)
                        if request.collect_firewall and not interrupts.stop.is_set() and not (deadline and time.monotonic() >= deadline):
                            results = explain_failures(results, registry, firewalls, env)
                        if zone_id is not None:
                            findings.extend(cross_check(part, results, run.vantages, zone_id))
                        states.extend(run.vantages)
                        log.append(results)
                        # Let this zone's flows and results go now, not when the next zone's replace them: held
                        # through the next derive and probe, they made the peak two zones' worth (+80 MB at 100,000 flows).
                        del flows, blocked, run, results
            finally:
                for vantage in registry:
                    vantage.close()
                if bar:
                    bar.close()
    warn_expired(request.waivers, today, expired_hits, env.log)
    if interrupts.stop.is_set():
        env.log("csaudit: interrupted: writing what was measured; the flows not yet probed stay unverified")
    elif deadline is not None and time.monotonic() >= deadline:
        env.log("csaudit: the --deadline passed: writing what was measured; the flows not yet probed stay unverified")
    env.log(f"csaudit: {len(log)} flows: " + ", ".join(f"{log.summary[s]} {s}" for s in STATUSES))
    return AuditOutcome(log, inventory, zone_ids, interrupted=interrupts.stop.is_set(),
                        vantages=merge_states(states), findings=tuple(findings), duration_seconds=time.monotonic() - started)


def vantages(inventory: Inventory | None = None, remote: RemoteSettings | None = None) -> list:
    """The vantage registry, in order of preference. The SSH vantages come first for the hosts and
    system VMs they stand for, but leave to the local vantage a source address this machine owns
    (it is that machine) unless the --ssh-settings file names the object."""
    local = LocalVantage()
    if inventory is None or remote is None or not remote.enabled:
        return [local]
    from csaudit.vantage.ssh import SshVantages

    return [SshVantages(inventory, remote, owns=local.owns), local]


def _zone_label(inventory: Inventory, zone_id: str | None) -> str:
    if zone_id is None:
        return "management tier"
    zone = inventory.zone_by_id(zone_id)
    return f"zone {zone.name if zone else zone_id}"


def dry_run(request: AuditRequest, env: Environment) -> str:
    """The probes a run would send, from where, and the flows that would stay unverified."""
    from tabulate import tabulate

    from csaudit.vantage import plan_probes

    flows, inventory, _ = plan_flows(request, env)
    assigned, unverified = plan_probes(flows, vantages(inventory, request.remote), request.probe)
    rows = [[target.via or vantage.name, target.source or "-", f"{target.address}:{target.port}/{target.protocol}", target.kind, fid]
            for fid, (vantage, target) in sorted(assigned.items(), key=lambda item: (item[1][1].address, item[1][1].port, item[0]))]
    unique = len({target for _, target in assigned.values()})
    text = tabulate(rows, headers=["vantage", "bind", "target", "probe", "flow"], tablefmt="simple")
    return f"{text}\n\n{unique} probes planned for {len(assigned)} flows; {len(unverified)} flows would stay unverified; nothing was sent\n"


# ---------------------------------------------------------------- firewall checks
def explain_failures(results, registry: list, firewalls: dict, env: Environment) -> tuple:
    """`run --collect-firewall`: read the rulesets of the failed flows' sources and targets (once each,
    over their SSH vantages), and say in each failed flow which rule drops it, where and which way."""
    from csaudit.judge.packetfilter.explain import explain

    failed = [r for r in results if r.status == Status.FAIL]
    reader = next((v for v in registry if hasattr(v, "read_firewalls")), None)
    if not failed or reader is None:
        return results
    wanted = [key for r in failed for key in ((r.flow.source.role, r.flow.source.name), (r.flow.target.role, r.flow.target.name))
              if key not in firewalls and key[0] != Role.USER]  # this machine's own ruleset is not read
    if wanted:
        env.log(f"csaudit: reading the rulesets of {len(set(wanted))} machines of failed flows")
        firewalls.update(reader.read_firewalls(wanted))
    return tuple(dataclasses.replace(r, firewall=explain(r, firewalls.get((r.flow.source.role, r.flow.source.name)),
                                                         firewalls.get((r.flow.target.role, r.flow.target.name))))
                 if r.status == Status.FAIL else r for r in results)


@dataclasses.dataclass(frozen=True)
class FirewallRequest:
    """`csaudit firewall check|diff`: the flows of one machine (from the API or --inventory), its interfaces."""

    audit: AuditRequest
    machine: str
    addresses_file: str | None = None  # `ip -j addr` of the machine
    interfaces: tuple[str, ...] = ()  # --iface NAME=ADDRESS[/LEN]


def _interfaces(request: FirewallRequest):
    from csaudit.collect.rulesets import read_addresses
    from csaudit.judge.packetfilter.interfaces import Interfaces, combine_interfaces, parse_iface_options, parse_ip_addr_json

    return combine_interfaces(
        parse_ip_addr_json(read_addresses(request.addresses_file), request.addresses_file) if request.addresses_file else Interfaces(),
        parse_iface_options(list(request.interfaces)))


def _machine(request: FirewallRequest, paths: tuple[str, ...], interfaces):
    from csaudit.collect.rulesets import read_rulesets
    from csaudit.judge.packetfilter.flowcheck import Side
    from csaudit.judge.packetfilter.load import load_ruleset

    return Side(request.machine, load_ruleset(read_rulesets(paths)), interfaces)


def _machine_flows(request: FirewallRequest, env: Environment):
    """The flows (from the API or --inventory), after the files were read: a bad file fails before any API call."""
    from csaudit.judge.packetfilter.whatif import flows_of
    from csaudit.model.errors import UsageError

    flows, _, _ = plan_flows(request.audit, env)
    if not flows_of(flows, request.machine):
        names = sorted({e.name for f in flows for e in (f.source, f.target)} - {"this machine"})
        shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        raise UsageError(f"no flow enters or leaves {request.machine!r}; --as takes an object's name: {shown or 'no flows'}")
    return flows


def check_firewall(request: FirewallRequest, rulesets: tuple[str, ...], env: Environment):
    """Every flow that enters or leaves the machine, through the ruleset: (the ruleset's origins, checks)."""
    from csaudit.judge.packetfilter.whatif import check_machine

    machine = _machine(request, rulesets, _interfaces(request))
    checks = check_machine(_machine_flows(request, env), machine)
    env.log(f"csaudit: {len(checks)} flows of {request.machine} through {machine.ruleset.rule_count()} rules")
    return machine.ruleset.origins, checks


def diff_firewall(request: FirewallRequest, old: tuple[str, ...], new: tuple[str, ...], env: Environment):
    """The flows whose verdict changes from the old ruleset to the new one."""
    from csaudit.judge.packetfilter.whatif import check_machine, diff_checks

    interfaces = _interfaces(request)
    before, after = _machine(request, old, interfaces), _machine(request, new, interfaces)
    flows = _machine_flows(request, env)
    return before.ruleset.origins, after.ruleset.origins, diff_checks(check_machine(flows, before), check_machine(flows, after))
