"""Command line: parse the arguments (csaudit/cli/arguments.py), run the command, map every
outcome to a documented exit code."""

from __future__ import annotations

import contextlib
import logging
import sys

from csaudit.cli import lab_commands
from csaudit.cli.arguments import audit_request, build_parser, firewall_request, report_files, run_request
from csaudit.model.environment import PIPED_COLUMNS, Environment
from csaudit.model.errors import CsauditError
from csaudit.model.exitcodes import ExitStatus
from csaudit.pipeline import collect_inventory, run_audit
from csaudit.report.files import check_writable, write_content, write_file, write_report_files


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    env = env or Environment()
    parser = build_parser()
    try:  # argparse prints --help and --version to stdout, its usage errors to stderr: the injected ones
        with contextlib.redirect_stdout(env.stdout), contextlib.redirect_stderr(env.stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return int(exc.code or 0)
    _setup_logging(env, args.verbose)
    try:
        return dispatch(args, env)
    except CsauditError as exc:
        env.log(f"csaudit: {exc.message}")
        return int(exc.exit_status)
    except KeyboardInterrupt:
        env.log("csaudit: interrupted")
        return int(ExitStatus.INTERRUPTED)


def dispatch(args, env: Environment) -> int:
    """Run the command the parsed arguments name; its CsauditError is left to the caller."""
    sub_command = {"lab": "lab_command", "firewall": "firewall_command"}.get(args.command)
    name = f"{args.command} {getattr(args, sub_command)}" if sub_command else args.command
    return int(COMMANDS[name](args, env))


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
    request = run_request(args)
    if args.dry_run:
        from csaudit.pipeline import dry_run

        _emit(dry_run(request, env), args, env)
        return int(ExitStatus.OK)
    files = report_files(args)
    check_writable([*files.values(), *([args.output] if args.output else [])])
    outcome = run_audit(request, env)
    write_report_files(outcome, files, env)
    width = env.columns if not args.output else PIPED_COLUMNS
    _emit(lambda out: outcome.write(args.format, out, env.colour and not args.output, width, args.every_flow), args, env)
    return int(outcome.exit_status(args.strict))


def cmd_inventory(args, env: Environment) -> int:
    from csaudit.collect.saved import inventory_to_dict
    from csaudit.report.document import render_inventory_table, render_json

    inventory = collect_inventory(audit_request(args), env)
    text = render_json(inventory_to_dict(inventory)) if args.format == "json" else render_inventory_table(inventory)
    _emit(text, args, env)
    return int(ExitStatus.OK)


def cmd_flows(args, env: Environment) -> int:
    import dataclasses

    from csaudit.pipeline import plan_flows
    from csaudit.report.document import render_flows_table
    from csaudit.report.formats import render_plan

    flows, _, _ = plan_flows(audit_request(args), env)
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


def cmd_role(args, env: Environment) -> int:
    from csaudit.collect.role import render_role

    _emit(render_role(args.format, args.name, args.cloudstack_version), args, env)
    return int(ExitStatus.OK)


def cmd_serve(args, env: Environment) -> int:
    from csaudit.cli.serve import serve

    return int(serve(run_request(args), args.listen, args.interval, env))


def cmd_demo(args, env: Environment) -> int:
    from csaudit.cli.demo import run_demo

    return int(run_demo(args, env))


def cmd_firewall_check(args, env: Environment) -> int:
    from csaudit.judge.packetfilter.whatif import summary
    from csaudit.pipeline import check_firewall
    from csaudit.report.packetfilter import render_check

    origins, checks = check_firewall(firewall_request(args), tuple(args.ruleset), env)
    _emit(render_check(args.format, args.machine, origins, checks), args, env)
    counts = summary(checks)
    return int(ExitStatus.FLOWS_FAILED if counts["fail"] or (args.strict and counts["unknown"]) else ExitStatus.OK)


def cmd_firewall_diff(args, env: Environment) -> int:
    from csaudit.pipeline import diff_firewall
    from csaudit.report.packetfilter import render_diff

    old, new, changes = diff_firewall(firewall_request(args), (args.old,), (args.new,), env)
    _emit(render_diff(args.format, args.machine, old, new, changes), args, env)
    worse = any(change.kind in ("breaks", "exposes") for change in changes)
    return int(ExitStatus.FLOWS_FAILED if worse else ExitStatus.OK)


COMMANDS = {"run": cmd_run, "inventory": cmd_inventory, "flows": cmd_flows, "diff": cmd_diff, "demo": cmd_demo,
            "role": cmd_role, "serve": cmd_serve, "lab serve": lab_commands.cmd_serve, "lab generate": lab_commands.cmd_generate,
            "firewall check": cmd_firewall_check, "firewall diff": cmd_firewall_diff}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
