"""Command line: parse arguments, run the pipeline, map every outcome to a documented exit code."""

from __future__ import annotations

import argparse
import logging
import sys

from csaudit import __version__
from csaudit.cli.lab import add_lab_commands
from csaudit.model.environment import Environment
from csaudit.model.errors import CsauditError
from csaudit.model.exitcodes import EXIT_CODE_HELP, ExitStatus
from csaudit.model.probes import DEMO_TIMEOUT
from csaudit.pipeline import add_audit_arguments, audit_request_from_args, collect_inventory, run_audit
from csaudit.report.files import add_report_arguments, check_writable, report_files, write_content, write_file, write_report_files
from csaudit.report.formats import PLAN_FORMATS, REPORT_FORMATS

DIFF_EXIT_CODES = """exit codes:
  0    nothing changed
  1    something changed (a new failure, a fixed flow, another change, a flow added or removed)
  2    bad input (unreadable file, not a csaudit/report/v1 document)"""
DESCRIPTION = "Audit the network flows an Apache CloudStack cloud needs, and the ones it must not have."


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors keep exit code 2, documented below
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"csaudit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
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
    add_audit_arguments(run, formats=REPORT_FORMATS)
    add_report_arguments(run)
    run.set_defaults(func=cmd_run)

    inventory = sub.add_parser("inventory", help="print what the CloudStack API says about the cloud")
    add_audit_arguments(inventory, probes=False)
    inventory.set_defaults(func=cmd_inventory)

    flows = sub.add_parser("flows", help="print the flows csaudit would check, without probing (also as nft/iptables rules)")
    add_audit_arguments(flows, probes=False, formats=PLAN_FORMATS)
    flows.set_defaults(func=cmd_flows)

    demo = sub.add_parser("demo", help="start the embedded demo cloud and audit it",
                          epilog=EXIT_CODE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--topology", metavar="FILE", help="a topology TOML instead of the bundled demo cloud")
    demo.add_argument("--format", choices=REPORT_FORMATS, default="table")
    demo.add_argument("--timeout", type=float, default=DEMO_TIMEOUT, help=f"seconds a probe waits (default {DEMO_TIMEOUT:g})")
    add_report_arguments(demo)
    demo.add_argument("--no-remote", action="store_true", help="no SSH vantages (by default, as root, real sshds play some hosts and system VMs)")
    demo.set_defaults(func=cmd_demo)

    diff = sub.add_parser("diff", help="compare two JSON reports: new failures, fixed flows, changes",
                          epilog=DIFF_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    diff.add_argument("old", metavar="OLD.json", help="the earlier report (csaudit run --json FILE)")
    diff.add_argument("new", metavar="NEW.json", help="the later report")
    diff.add_argument("--format", choices=("text", "json"), default="text")
    diff.set_defaults(func=cmd_diff)

    add_lab_commands(sub)
    return parser


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    env = env or Environment()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return int(exc.code or 0)
    _setup_logging(env, args.verbose)
    try:
        return int(args.func(args, env))
    except CsauditError as exc:
        env.log(f"csaudit: {exc.message}")
        return int(exc.exit_status)
    except KeyboardInterrupt:
        env.log("csaudit: interrupted")
        return int(ExitStatus.INTERRUPTED)


def _setup_logging(env: Environment, verbose: bool) -> None:
    logger = logging.getLogger("csaudit")
    logger.handlers[:] = [logging.StreamHandler(env.stderr)]
    logger.handlers[0].setFormatter(logging.Formatter("csaudit: %(message)s"))
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _emit(content, args, env: Environment) -> None:
    """stdout carries only the report; --output sends it to a file instead. `content`: the text, or
    a function that writes it to a file object."""
    path = getattr(args, "output", None)
    if path:
        write_file(path, content, env)
    else:
        write_content(env.stdout, content)
        env.stdout.flush()


def cmd_run(args, env: Environment) -> int:
    request = audit_request_from_args(args)
    if args.dry_run:
        from csaudit.pipeline import dry_run

        _emit(dry_run(request, env), args, env)
        return int(ExitStatus.OK)
    check_writable([*report_files(args).values(), *([args.output] if args.output else [])])
    outcome = run_audit(request, env)
    write_report_files(outcome, args, env)
    _emit(lambda out: outcome.write(args.format, out, env.colour and not args.output), args, env)
    return int(outcome.exit_status(args.strict))


def cmd_inventory(args, env: Environment) -> int:
    from csaudit.collect.saved import inventory_to_dict
    from csaudit.report.document import render_inventory_table, render_json

    inventory = collect_inventory(audit_request_from_args(args), env)
    text = render_json(inventory_to_dict(inventory)) if args.format == "json" else render_inventory_table(inventory)
    _emit(text, args, env)
    return int(ExitStatus.OK)


def cmd_flows(args, env: Environment) -> int:
    import dataclasses

    from csaudit.pipeline import plan_flows
    from csaudit.report.document import render_flows_table
    from csaudit.report.formats import render_plan

    request = audit_request_from_args(args)
    flows, _, _ = plan_flows(request, env)
    if args.format == "table":
        text = render_flows_table(flows)
    else:
        text = render_plan(args.format, [dataclasses.asdict(f) for f in flows])
    _emit(text, args, env)
    return int(ExitStatus.OK)


def cmd_diff(args, env: Environment) -> int:
    from csaudit.report.diff import EXIT_CHANGED, diff_reports, load_report, render_diff_json, render_diff_text

    diff = diff_reports(load_report(args.old), load_report(args.new), args.old, args.new)
    env.stdout.write(render_diff_json(diff) if args.format == "json" else render_diff_text(diff))
    env.stdout.flush()
    return EXIT_CHANGED if diff.something_changed else int(ExitStatus.OK)


def cmd_demo(args, env: Environment) -> int:
    from csaudit.cli.demo import run_demo

    return int(run_demo(args, env))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
