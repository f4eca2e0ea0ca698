"""The command line in one place: every command and option of csaudit, with its default (read from
the stage that owns it), and the translation of the parsed arguments into the stages' requests.
The stages never see argparse or its namespace."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys

from csaudit import __version__
from csaudit.cli.serve import DEFAULT_INTERVAL, DEFAULT_LISTEN, split_listen
from csaudit.judge.waivers import load_waivers
from csaudit.model.errors import ConfigError, UsageError
from csaudit.model.exitcodes import EXIT_CODE_HELP, ExitStatus
from csaudit.model.probes import DEFAULT_CONCURRENCY, DEFAULT_PER_TARGET, DEFAULT_TIMEOUT, DEMO_TIMEOUT, ProbeOptions
from csaudit.pipeline import AuditRequest, FirewallRequest
from csaudit.report.formats import FILE_FORMATS, PLAN_FORMATS, REPORT_FORMATS
from csaudit.vantage.remote import DEFAULT_SYSTEMVM_KEY_ON_HOST
from csaudit.vantage.ssh_settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REMOTE_CONCURRENCY,
    MS_SYSTEMVM_KEYS,
    RemoteSettings,
    load_settings_file,
    split_host_port,
)

DIFF_EXIT_CODES = """exit codes:
  0    nothing changed
  1    something changed (a new failure, a fixed flow, another change, a flow added or removed)
  2    bad input (unreadable file, not a csaudit/report/v1 document)"""
SERVE_EXIT_CODES = """exit codes:
  0    stopped by SIGTERM or Ctrl-C (an audit that fails is a metric and a log line, not an exit)
  2    usage or configuration error, or the --listen address cannot be bound (in use, not local, no permission)"""
FIREWALL_CHECK_EXIT_CODES = """exit codes:
  0    no flow fails against the ruleset
  1    a required flow would be dropped or rejected, or a deny rule accepted (with --strict, also any unknown verdict)
  2    usage error: bad option, unreadable or unrecognised ruleset or interface file, unknown --as, bad inventory
  3    CloudStack API unreachable or bad answer"""
FIREWALL_DIFF_EXIT_CODES = """exit codes:
  0    the new ruleset breaks no required flow and exposes no deny rule that the old one did not
  1    the new ruleset breaks a required flow or exposes a deny rule
  2    usage error: bad option, unreadable or unrecognised ruleset or interface file, unknown --as, bad inventory
  3    CloudStack API unreachable or bad answer"""
DESCRIPTION = "Audit the network flows an Apache CloudStack cloud needs, and the ones it must not have."
PORT_OPTIONS = ("api-port", "db-port", "cluster-port")  # ports the API cannot tell, given by the operator


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors keep exit code 2, documented below
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"csaudit: error: {message}\n")


# ---------------------------------------------------------------- option types
# A bad value is argparse's own usage error, naming the option: "argument --timeout: must be ...", exit 2.
def positive_seconds(text: str) -> float:
    """--timeout, --deadline, --ssh-timeout."""
    value = _number(text, float)
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return value


def zero_or_more_seconds(text: str) -> float:
    """lab serve --duration."""
    value = _number(text, float)
    if value is None or not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, not {text!r}")
    return value


def at_least_one(text: str) -> int:
    """--concurrency, --per-target, --ssh-concurrency, lab generate --zones and --hosts."""
    value = _number(text, int)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def zero_or_more(text: str) -> int:
    """lab generate --routers."""
    value = _number(text, int)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of 0 or more, not {text!r}")
    return value


def port_number(text: str) -> int:
    """--api-port, --db-port, --cluster-port, --ssh-port."""
    value = _number(text, int)
    if value is None or not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, not {text!r}")
    return value


def ssh_destination(text: str) -> str:
    """--jump-host, --outside-host [USER@]HOST[:PORT]; RemoteSettings splits it again when it connects."""
    try:
        host, port = split_host_port(text.rpartition("@")[2])
    except ConfigError:
        host, port = "", None
    if not host or (port is not None and not 0 < port < 65536):
        raise argparse.ArgumentTypeError(f"must be [USER@]HOST[:PORT] with a port from 1 to 65535, not {text!r}")
    return text


def release_number(text: str) -> str:
    """role --cloudstack-version: 4.16, 4.19.1.0."""
    if not re.fullmatch(r"\d+(\.\d+){1,3}", text):
        raise argparse.ArgumentTypeError(f"must be a CloudStack release such as 4.19 or 4.19.1.0, not {text!r}")
    return text


def listen_address(text: str) -> tuple[str, int]:
    """serve --listen ADDR:PORT."""
    try:
        return split_listen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}, not {text!r}") from None


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        return kind(text)
    except ValueError:
        return None


def build_parser() -> argparse.ArgumentParser:
    """`args.command` names the command; `args.lab_command` the sub-command of `lab`."""
    parser = _Parser(
        prog="csaudit",
        description=DESCRIPTION,
        epilog=EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"csaudit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more progress detail on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="audit the cloud: inventory, expected flows, live probes, report",
                         epilog=EXIT_CODE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_audit_arguments(run, formats=REPORT_FORMATS)
    _add_probe_arguments(run)
    _add_report_arguments(run)
    _add_remote_arguments(run)

    inventory = sub.add_parser("inventory", help="print what the CloudStack API says about the cloud")
    _add_audit_arguments(inventory, formats=("table", "json"))

    flows = sub.add_parser("flows", help="print the flows csaudit would check, without probing (also as nft/iptables rules)")
    _add_audit_arguments(flows, formats=PLAN_FORMATS)

    demo = sub.add_parser("demo", help="start the embedded demo cloud and audit it",
                          epilog=EXIT_CODE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--topology", metavar="FILE", help="a topology TOML instead of the bundled demo cloud")
    demo.add_argument("--format", choices=REPORT_FORMATS, default="table")
    demo.add_argument("--timeout", type=positive_seconds, default=DEMO_TIMEOUT, help=f"seconds a probe waits (default {DEMO_TIMEOUT:g})")
    _add_report_arguments(demo)
    demo.add_argument("--no-remote", action="store_true", help="no SSH vantages (by default, as root, real sshds play some hosts and system VMs)")

    diff = sub.add_parser("diff", help="compare two JSON reports: new failures, fixed flows, changes",
                          epilog=DIFF_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    diff.add_argument("old", metavar="OLD.json", help="the earlier report (csaudit run --json FILE)")
    diff.add_argument("new", metavar="NEW.json", help="the later report")
    diff.add_argument("--format", choices=("text", "json"), default="text")

    _add_role_command(sub)
    _add_serve_command(sub)
    _add_lab_commands(sub)
    _add_firewall_commands(sub)
    return parser


def _add_role_command(subparsers) -> None:
    """`role`: the least-privilege API role csaudit needs (csaudit/collect/role.py)."""
    from csaudit.collect.role import FORMATS, ROLE_NAME

    role = subparsers.add_parser(
        "role", help="print the read-only API role csaudit needs: the list commands it sends allowed, the rest denied",
        description="Print the API rules of a role that lets csaudit do its job and nothing else: every command\n"
                    "csaudit sends, allowed, then * denied. --format cmk: one `cmk import role` call (4.15 on);\n"
                    "cmk-permissions: createRole + createRolePermission calls (4.9 on); csv: the file the UI's\n"
                    "Import Role takes; json: importRole's name, type, description and rules.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    role.add_argument("--format", choices=FORMATS, default="cmk")
    role.add_argument("--name", default=ROLE_NAME, help=f"the role's name (default {ROLE_NAME})")
    role.add_argument("--cloudstack-version", type=release_number, metavar="VERSION",
                      help="the release the role is for, e.g. 4.16: the commands it does not have yet are left out, "
                           "as importRole refuses an API name the server lacks (default: every command)")
    role.add_argument("--output", metavar="FILE", help="write the role to FILE instead of stdout")


def _add_serve_command(subparsers) -> None:
    """`serve`: the options of `run` that shape an audit, and where and how often to serve it."""
    serve = subparsers.add_parser(
        "serve", help="audit on a schedule and serve the results: /metrics (Prometheus), /report.json, /healthz",
        description="Audit the cloud every --interval seconds, as `run` does, and serve the last completed audit\n"
                    "over HTTP: /metrics (Prometheus exposition), /report.json (the JSON report) and /healthz.",
        epilog=SERVE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--listen", type=listen_address, default=split_listen(DEFAULT_LISTEN), metavar="ADDR:PORT",
                       help=f"where to serve (default {DEFAULT_LISTEN}; [ADDR]:PORT for IPv6; port 0: any free port)")
    serve.add_argument("--interval", type=zero_or_more_seconds, default=DEFAULT_INTERVAL, metavar="SECONDS",
                       help=f"seconds between the starts of two audits (default {DEFAULT_INTERVAL:g}; never two at once)")
    _add_audit_arguments(serve, formats=None)
    _add_probe_arguments(serve, one_shot=False)
    _add_waivers_argument(serve)
    _add_remote_arguments(serve)


def _add_audit_arguments(parser: argparse.ArgumentParser, formats) -> None:
    """`run`, `inventory`, `flows`, `serve`: which cloud, which zones, and where the output goes
    (`formats` None: `serve`, which prints no report)."""
    parser.add_argument("--zone", action="append", default=[], metavar="ZONE",
                        help="zone name or id to audit (repeatable; default: all). Management-tier flows stay in.")
    parser.add_argument("--endpoint", help="API URL, e.g. http://ms:8080/client/api (key/secret from env or cloudstack.ini; "
                                           "none means the unauthenticated integration port)")
    parser.add_argument("--region", help="section of cloudstack.ini to use (like cs --region)")
    parser.add_argument("--inventory", dest="inventory_file", metavar="FILE",
                        help="work offline from an inventory saved with `csaudit inventory --format json`")
    parser.add_argument("--db-host", help="MySQL address (the API only tells it from 4.17 on, via listDbMetrics)")
    parser.add_argument("--db-port", type=port_number, metavar="PORT", help="MySQL port, if not 3306 (db.properties db.cloud.port)")
    parser.add_argument("--cluster-port", type=port_number, metavar="PORT", help="MS cluster servlet port, if not 9090 (db.properties)")
    parser.add_argument("--api-port", type=port_number, metavar="PORT", help="MS UI/API port, if not 8080 (server.properties http.port)")
    parser.add_argument("--catalogue", dest="catalogue_file", metavar="FILE", help="a flow catalogue TOML instead of the built-in one")
    if formats is not None:
        parser.add_argument("--format", choices=formats, default="table")
        parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout")


def _add_probe_arguments(parser: argparse.ArgumentParser, one_shot: bool = True) -> None:
    """`run` and `serve`: how the probes go; `run` also has --dry-run and --strict (one_shot)."""
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT,
                        help=f"seconds a probe waits for an answer (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--concurrency", type=at_least_one, default=DEFAULT_CONCURRENCY,
                        help=f"probes in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--per-target", type=at_least_one, default=DEFAULT_PER_TARGET,
                        help=f"probes in flight to one address at once (default {DEFAULT_PER_TARGET}), so an audit does not look like a port scan")
    parser.add_argument("--deadline", type=positive_seconds, metavar="SECONDS",
                        help="bound the whole run; probes not done by then stay unverified and the report is still written")
    if one_shot:
        parser.add_argument("--dry-run", action="store_true", help="print the planned probes (vantage, target, port) and send nothing")
    parser.add_argument("--outside", action="store_true",
                        help="this machine is outside the management network: also check the deny rules meant for it")
    if one_shot:
        parser.add_argument("--strict", action="store_true", help="exit 1 also when a flow is unverified or in error")


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`, `demo`: report files beside stdout (`--json FILE --junit FILE ...` in one run), and `--waivers`."""
    for fmt in FILE_FORMATS:
        parser.add_argument(f"--{fmt}", dest=f"{fmt}_file", metavar="FILE",
                            help=f"also write the {fmt} report to FILE (any number of these in one run)")
    parser.add_argument("--all", dest="every_flow", action="store_true",
                        help="the table: every flow, one table per zone and source role (by default: what failed, grouped, and what to do)")
    _add_waivers_argument(parser)


def _add_waivers_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--waivers", metavar="FILE",
                        help="accepted failures (TOML [[waiver]]: rule or flow glob, reason, expires); they show as waived")


def _add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`: the SSH vantages (csaudit/vantage/ssh_settings.py says how these combine with --ssh-settings)."""
    group = parser.add_argument_group(
        "remote vantages", "probe flows from their true source: hosts over SSH, system VMs over port 3922 (see README)")
    group.add_argument("--no-remote", action="store_true", help="no SSH: probe only from this machine")
    group.add_argument("--ssh-user", metavar="USER", help="user on the hosts (default: ~/.ssh/config, else your user name)")
    group.add_argument("--ssh-key", metavar="FILE", help="private key for the hosts and the jump host (default: ~/.ssh/id_* and ssh-agent)")
    group.add_argument("--ssh-port", type=port_number, metavar="PORT", help="SSH port of the hosts (default: ~/.ssh/config, else 22)")
    group.add_argument("--jump-host", type=ssh_destination, metavar="[USER@]HOST[:PORT]", help="reach hosts and VMware system VMs through this SSH host, e.g. a management server")
    group.add_argument("--ssh-known-hosts", metavar="FILE", help="known_hosts for the hosts and the jump host (default: ~/.ssh/known_hosts); unknown keys are refused")
    group.add_argument("--systemvm-key", metavar="PATH_ON_HOST",
                       help=f"on KVM/XenServer hosts, the key that opens their system VMs on 3922 (default {DEFAULT_SYSTEMVM_KEY_ON_HOST})")
    group.add_argument("--vmware-systemvm-key", metavar="FILE",
                       help="on this machine, the management server's key for VMware/Hyper-V system VMs "
                            f"(default: the first of {', '.join(MS_SYSTEMVM_KEYS)} that exists)")
    group.add_argument("--systemvm-known-hosts", metavar="FILE", help="check VMware system VMs' host keys against FILE (default: not checked, as CloudStack)")
    group.add_argument("--outside-host", type=ssh_destination, metavar="[USER@]HOST[:PORT]",
                       help="an SSH host outside the management network: the deny rules meant for outside are probed "
                            "from there (the --ssh-key and --ssh-known-hosts options and [outside] of --ssh-settings apply)")
    group.add_argument("--ssh-settings", metavar="FILE", help="TOML with SSH access per hypervisor, per host and per management server (see README)")
    group.add_argument("--ssh-timeout", type=positive_seconds, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                       help=f"seconds to set up one SSH connection (default {DEFAULT_CONNECT_TIMEOUT:g})")
    group.add_argument("--ssh-concurrency", type=at_least_one, default=DEFAULT_REMOTE_CONCURRENCY, metavar="N",
                       help=f"remote vantages worked on at once (default {DEFAULT_REMOTE_CONCURRENCY})")
    group.add_argument("--collect-firewall", action="store_true",
                       help="for each failed flow, read (read-only) the nftables/iptables ruleset of its source and target "
                            "over their SSH vantages and name the rule that drops it")


def _add_lab_commands(subparsers) -> None:
    """`lab serve|generate`: csaudit/cli/lab_commands.py runs them; csaudit.lab is imported only then."""
    lab = subparsers.add_parser("lab", help="run the embedded simulated CloudStack cloud")
    lab_commands = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", parser_class=_Parser)
    lab_commands.required = True

    serve = lab_commands.add_parser(
        "serve", help="serve the simulated cloud until Ctrl-C/SIGTERM (or --duration)",
        description="Serve the simulated cloud on 127.x addresses and write a cloudstack.ini "
        "(endpoint, key, secret; mode 0600) for it. The secret is never printed.")
    serve.add_argument("--topology", metavar="FILE", help="topology TOML (default: the bundled demo)")
    serve.add_argument("--ini", metavar="PATH", default="cloudstack.ini",
                       help="where to write the cloudstack.ini (default: ./cloudstack.ini)")
    serve.add_argument("--role-ini", metavar="PATH",
                       help="also write a cloudstack.ini for an API key whose role has exactly the rules of `csaudit role`")
    serve.add_argument("--duration", metavar="SECONDS", type=zero_or_more_seconds,
                       help="stop after this many seconds (default: run until interrupted)")

    generate = lab_commands.add_parser(
        "generate", help="write a large synthetic topology (API only, listeners = false)")
    generate.add_argument("--zones", type=at_least_one, required=True, metavar="N")
    generate.add_argument("--hosts", type=at_least_one, required=True, metavar="N", help="hosts per zone")
    generate.add_argument("--routers", type=zero_or_more, required=True, metavar="N",
                          help="virtual routers per zone")
    generate.add_argument("--version", help="CloudStack version to simulate (default: the generator's own, csaudit/lab/generate.py)")
    generate.add_argument("--output", metavar="FILE", help="write here instead of stdout")


def _add_firewall_commands(subparsers) -> None:
    """`firewall check|diff`: a machine's ruleset against its flows, offline (csaudit/judge/packetfilter)."""
    firewall = subparsers.add_parser("firewall", help="check a machine's nftables or iptables ruleset against the flows it carries")
    commands = firewall.add_subparsers(dest="firewall_command", metavar="FIREWALL_COMMAND", parser_class=_Parser)
    commands.required = True
    check = commands.add_parser(
        "check", help="every flow that enters or leaves a machine, through its ruleset: accepted, dropped, rejected or unknown",
        description="Evaluate, offline, every flow that enters or leaves the machine --as NAME against its ruleset, "
        "e.g. one not yet applied (what-if).", epilog=FIREWALL_CHECK_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--ruleset", action="append", required=True, metavar="FILE",
                       help="`nft -j list ruleset` JSON or iptables-save/ip6tables-save text (repeatable: all of one machine)")
    _add_machine_arguments(check)
    check.add_argument("--strict", action="store_true", help="exit 1 also when a flow's verdict is unknown")
    diff = commands.add_parser(
        "diff", help="the flows whose verdict changes from one ruleset to another",
        epilog=FIREWALL_DIFF_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    diff.add_argument("old", metavar="OLD", help="the ruleset in force (nft -j JSON or iptables-save text)")
    diff.add_argument("new", metavar="NEW", help="the ruleset to be applied")
    _add_machine_arguments(diff)


def _add_machine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="machine", required=True, metavar="NAME",
                        help="the object whose ruleset it is (a host, system VM, router, MS...): its flows come from the API or --inventory")
    parser.add_argument("--addresses", metavar="FILE", help="the machine's `ip -j addr` output, for rules on interface names")
    parser.add_argument("--iface", action="append", default=[], metavar="NAME=ADDRESS[/LEN]",
                        help="an interface and an address it holds, e.g. eth2=198.51.100.7/24 (repeatable)")
    _add_audit_arguments(parser, formats=("table", "json"))


# ---------------------------------------------------------------- parsed arguments -> requests
def audit_request(args: argparse.Namespace) -> AuditRequest:
    """`inventory`, `flows`: which cloud and zones; the probe options keep their defaults."""
    return AuditRequest(
        zones=tuple(args.zone),
        endpoint=args.endpoint,
        region=args.region,
        inventory_file=args.inventory_file,
        db_host=args.db_host,
        catalogue_file=args.catalogue_file,
        port_options=_port_options(args),
    )


def run_request(args: argparse.Namespace) -> AuditRequest:
    """`run`, `serve`: the audit request with its probe options, waivers and remote vantages."""
    return dataclasses.replace(
        audit_request(args),
        probe=ProbeOptions(timeout=args.timeout, concurrency=args.concurrency, per_target=args.per_target, outside=args.outside),
        deadline=args.deadline,
        waivers=load_waivers(args.waivers) if args.waivers else (),
        remote=remote_settings(args),
        collect_firewall=_collect_firewall(args),
    )


def _collect_firewall(args: argparse.Namespace) -> bool:
    if args.collect_firewall and args.no_remote:
        raise ConfigError("--collect-firewall reads rulesets over the SSH vantages; it cannot go with --no-remote")
    return args.collect_firewall


def firewall_request(args: argparse.Namespace) -> FirewallRequest:
    """`firewall check|diff`: the machine, its interfaces, and which cloud its flows come from."""
    return FirewallRequest(audit_request(args), args.machine, args.addresses, tuple(args.iface))


def demo_request(args: argparse.Namespace) -> AuditRequest:
    """`demo`: its probe timeout and waivers; the demo adds the embedded cloud's API and sshds."""
    return AuditRequest(probe=ProbeOptions(timeout=args.timeout), waivers=load_waivers(args.waivers) if args.waivers else ())


def _port_options(args: argparse.Namespace) -> tuple[tuple[str, int], ...]:
    return tuple((name, getattr(args, name.replace("-", "_"))) for name in PORT_OPTIONS if getattr(args, name.replace("-", "_")))


def remote_settings(args: argparse.Namespace) -> RemoteSettings:
    """`run`: the SSH vantages, off with --no-remote. RemoteSettings expands ~ in the paths it uses."""
    if args.no_remote:
        if args.outside_host:
            raise UsageError("--outside-host is an SSH vantage: leave out --no-remote")
        return RemoteSettings(enabled=False)
    return RemoteSettings(
        enabled=True, user=args.ssh_user, key=args.ssh_key, port=args.ssh_port, jump_host=args.jump_host,
        known_hosts=args.ssh_known_hosts, systemvm_key=args.systemvm_key,
        vmware_systemvm_key=args.vmware_systemvm_key, systemvm_known_hosts=args.systemvm_known_hosts,
        outside_host=args.outside_host, connect_timeout=args.ssh_timeout, concurrency=args.ssh_concurrency,
        file=load_settings_file(args.ssh_settings) if args.ssh_settings else (),
    )


def report_files(args: argparse.Namespace) -> dict[str, str]:
    """format -> path, for the --FORMAT FILE options given (`run`, `demo`)."""
    return {fmt: getattr(args, f"{fmt}_file") for fmt in FILE_FORMATS if getattr(args, f"{fmt}_file")}
