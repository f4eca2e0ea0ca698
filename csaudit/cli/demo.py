"""`csaudit demo`: start the embedded cloud in-process and audit it through the signed API."""

from __future__ import annotations

import dataclasses
import os
import textwrap

from csaudit.cli.arguments import demo_request, report_files
from csaudit.collect.config import ApiConfig
from csaudit.model.environment import PIPED_COLUMNS, Environment
from csaudit.model.errors import ConfigError
from csaudit.pipeline import AuditOutcome, AuditRequest, run_audit
from csaudit.report.files import check_writable, write_report_files


def run_demo(args, env: Environment) -> int:
    from csaudit.lab import default_topology, load_topology

    topology = load_topology(args.topology) if args.topology else default_topology()
    request = demo_request(args)
    files = report_files(args)
    check_writable(files.values())
    no_sshd = None
    if os.geteuid() != 0:
        _enter_private_network(env)
        no_sshd = "not root: a real sshd cannot switch users inside the demo's private user namespace"
    env.log("csaudit: starting the embedded demo cloud (API, management servers, hosts, system VMs, storage on 127.x)")
    outcome, faults, remote_note = _audit_demo_cloud(topology, request, args.no_remote, env, no_sshd)
    write_report_files(outcome, files, env)
    outcome.write(args.format, env.stdout, env.colour, env.columns, args.every_flow)
    # The explanation is prose: keep it out of a JSON stdout.
    explanation_stream = env.stdout if args.format == "table" else env.stderr
    explanation_stream.write(explain_faults(list(outcome.results), faults, remote_note, outcome.findings))
    return int(outcome.exit_status())


def _enter_private_network(env: Environment) -> None:
    """A normal user cannot bind the cloud's ports below 1024 here: run it in a network of its own."""
    from csaudit.lab.private_network import enter_private_network

    problem = enter_private_network()
    if problem is not None:
        raise ConfigError(problem)
    env.log("csaudit: not root: the demo cloud and its audit run in a private user and network namespace of their own")


def _audit_demo_cloud(topology, request: AuditRequest, no_remote: bool, env: Environment, no_sshd: str | None = None,
                      ) -> tuple[AuditOutcome, tuple, list[str]]:
    """With root and OpenSSH's sshd, some hosts and system VMs are real SSH vantages; else local only.
    `request`: the demo's probe options and waivers. `no_sshd` says why real sshds cannot run here,
    when the caller knows."""
    from csaudit.lab import Lab, sshd
    from csaudit.lab.real_vantages import RemoteVantages, plan_remote

    problem = "--no-remote" if no_remote else no_sshd or sshd.available()
    plan = plan_remote(topology) if problem is None else None
    if plan is not None:
        with Lab(topology, served_elsewhere=plan.served_elsewhere) as lab, RemoteVantages(plan) as remote:
            try:
                settings = remote.start(lab.topology)
            except RuntimeError as exc:
                problem = f"sshd did not start: {exc}"
            else:
                env.log("csaudit: remote vantages: real sshd for " + "; ".join(remote.describe()))
                outcome = run_audit(_request(lab, request, settings), env)
                return outcome, lab.faults, ["Remote vantages (real OpenSSH sshd on 127.x):", *remote.describe()]
    with Lab(topology) as lab:
        outcome = run_audit(_request(lab, request), env)
        return outcome, lab.faults, [f"Remote vantages: not shown ({problem}); every probe ran from this machine."]


def _request(lab, request: AuditRequest, remote=None) -> AuditRequest:
    """The demo's request, pointed at the embedded cloud's API (and its sshds, when they run)."""
    request = dataclasses.replace(request, api_config=ApiConfig(endpoint=lab.endpoint, key=lab.key, secret=lab.secret))
    return dataclasses.replace(request, remote=remote) if remote is not None else request


def fault_findings(results: list[dict], fault) -> list[dict]:
    """The failed or errored flows (report dicts) that land on the fault's address (and port, when it names one);
    none for a fault of what the API says (a finding shows it)."""
    if fault.api_only:
        return []
    return [
        r for r in results
        if r["status"] in ("fail", "error", "waived")
        and r["target"]["address"] == fault.address
        and (fault.port is None or (r["port"] == fault.port and (fault.protocol or r["protocol"]) == r["protocol"]))
    ]


def explain_faults(results: list[dict], faults, remote_note: list[str] = (), findings=()) -> str:
    lines = [""]
    if remote_note:
        lines += [remote_note[0], *(f"  - {line}" for line in remote_note[1:]), ""]
    lines.append("Planted faults in the demo cloud, and where the report shows them:")
    explained: set[str] = set()
    by_entry: dict[int, list] = {}
    for fault in faults:
        by_entry.setdefault(fault.fault_id, []).append(fault)
    for fault_id, parts in sorted(by_entry.items()):
        found = [r for part in parts for r in fault_findings(results, part)]
        explained.update(r["id"] for r in found)
        lines.append(f"  {fault_id}. [{parts[0].kind}] {parts[0].description}")
        names = {part.object_name for part in parts}
        noticed = [f for f in findings if names & {f.name, *f.members}]
        if found or noticed:
            for result in sorted(found, key=lambda r: r["id"]):
                lines.append(f"       found: {result['id']} -> {result['status']} ({result['observed']}) from {result['vantage']}")
            for finding in noticed:
                lines.append(f"       finding: {finding.message}")
        else:
            lines.append("       NOT FOUND by this run")
    others = [r["id"] for r in results if r["status"] in ("fail", "error") and r["id"] not in explained]
    lines.append("  Other failures: " + (", ".join(others) if others else "none"))
    unverified = sum(r["status"] == "unverified" for r in results)
    if unverified:
        lines.append(f"  {unverified} flows stay unverified: UDP probes without a reply (unconfirmed), flows a connect cannot judge,"
                     " deny rules that need a vantage outside the management network (--outside-host), and flows whose"
                     " vantage could not be reached.")
    return "".join(_wrapped(line) for line in lines)


def _wrapped(line: str, width: int = PIPED_COLUMNS) -> str:
    """The explanation is prose: its long lines wrap (the report's own lines are cut instead)."""
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]) + "\n"
