"""The CLI through its injected environment: exit codes, stdout for the report only, stderr for the rest."""

import collections
import json
import os
import pathlib
import subprocess
import sys

import pytest

from csaudit.cli.arguments import audit_request, build_parser, demo_request, run_request
from csaudit.collect.parse import parse_inventory
from csaudit.collect.saved import inventory_to_dict
from csaudit.model.probes import DEMO_TIMEOUT, ProbeOptions
from csaudit.pipeline import AuditRequest
from csaudit.vantage.ssh_settings import RemoteSettings
from tests.conftest import free_port, golden_flow_lines
from tests.faultserver import FaultServer, integration_api, signed_api

REPO = pathlib.Path(__file__).resolve().parents[2]
MS = f"127.12.{os.getpid() % 250}.1"  # per process: parallel test runs never clash on 8080


def write_inventory(tmp_path, raw, name="inv.json"):
    inventory = parse_inventory(raw, endpoint=f"http://{MS}:8080/client/api", api_mode="signed")
    path = tmp_path / name
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    return str(path)


def summary_of(flows):
    """The summary a report must carry, counted here from its flows: statuses, then the coverage."""
    counts = collections.Counter(f["status"] for f in flows)
    gaps = collections.Counter(f["gap"] for f in flows if f["status"] == "unverified")
    assert None not in gaps  # every unverified flow says what keeps it so
    return {**{status: counts[status] for status in ("pass", "fail", "unverified", "error", "waived")},
            "coverage": {"verified": counts["pass"] + counts["fail"] + counts["waived"], "flows": len(flows),
                         "unverified": dict(gaps)}}


def one_ms_cloud():
    return {"managementservers": [{"id": "m1", "name": "ms1", "serviceip": MS}]}


def test_offline_run_all_verified_flows_pass_exits_0(cli, tmp_path):
    with FaultServer(signed_api, MS, port=8080):
        offline_run_all_verified_flows_pass_exits_0(cli, tmp_path)


def offline_run_all_verified_flows_pass_exits_0(cli, tmp_path):
    path = write_inventory(tmp_path, one_ms_cloud())
    result = cli("run", "--inventory", path, "--timeout", "0.5")
    assert result.exit_code == 0, result.stderr
    assert "FAIL" not in result.stdout and "2 flows passed (--all lists every flow)" in result.stdout
    every = cli("run", "--inventory", path, "--timeout", "0.5", "--all")
    assert "F01 UI and API" in every.stdout and "pass" in every.stdout
    report = cli("run", "--inventory", path, "--timeout", "0.5", "--format", "json").json()
    statuses = {f["rule"]: f["status"] for f in report["flows"]}
    assert statuses["F01"] == statuses["D01"] == "pass"  # 8080 answers, 8096 is closed
    assert report["summary"] == summary_of(report["flows"]) and report["summary"]["fail"] == 0
    assert f"summary: {report['summary']['pass']} pass, 0 fail" in result.stdout
    assert "flows to check" in result.stderr and "flows to check" not in result.stdout
    strict = cli("run", "--inventory", path, "--timeout", "0.5", "--strict")
    assert strict.exit_code == 1  # D02/D04 and F04 stay unverified


def test_offline_run_with_a_failure_exits_1_and_json_is_the_contract(cli, tmp_path):
    # the unauthenticated integration port is open: D01 must fail
    with FaultServer(signed_api, MS, port=8080), FaultServer(integration_api, MS, port=8096):
        offline_run_with_a_failure_exits_1(cli, tmp_path)


def offline_run_with_a_failure_exits_1(cli, tmp_path):
    path = write_inventory(tmp_path, one_ms_cloud())
    result = cli("run", "--inventory", path, "--timeout", "0.5", "--format", "json")
    assert result.exit_code == 1
    report = result.json()
    assert report["schema"] == "csaudit/report/v1"
    assert set(report) >= {"tool_version", "generated_at", "cloud", "zones", "flows", "summary"}
    flows = {f["rule"]: f for f in report["flows"]}
    d01 = flows["D01"]
    assert (d01["status"], d01["observed"], d01["expect"], d01["vantage"]) == ("fail", "open", "closed", "local")
    assert d01["reason"].startswith("critical: must be closed") and d01["service"] == "CloudStack integration API"
    assert "4.19.1.0" in d01["detail"] and d01["probe"] == "http-api"
    assert flows["F01"]["service"] == "CloudStack API" and flows["F01"]["status"] == "pass"
    assert d01["target"] == {"role": "ms", "name": "ms1", "address": MS}
    assert flows["F04"]["status"] == "unverified" and flows["F04"]["observed"] is None
    assert set(d01) >= {"id", "rule", "title", "zone", "source", "target", "protocol", "port", "port_end", "expect",
                        "vantage", "status", "observed", "reason", "latency_ms"}
    assert report["summary"] == summary_of(report["flows"])
    assert (report["summary"]["fail"], report["summary"]["error"]) == (1, 0)  # D01 alone


def test_output_file(cli, tmp_path):
    path = write_inventory(tmp_path, one_ms_cloud())
    with FaultServer(signed_api, MS, port=8080):
        result = cli("run", "--inventory", path, "--format", "json", "--output", str(tmp_path / "r.json"), "--timeout", "0.5")
    assert result.exit_code == 0 and result.stdout == ""
    written = json.loads((tmp_path / "r.json").read_text())
    assert {f["rule"] for f in written["flows"] if f["status"] == "pass"} >= {"F01", "D01"}
    assert written["summary"] == summary_of(written["flows"])


def test_flows_and_inventory_commands_offline(cli, tmp_path, raw_small_cloud):
    path = write_inventory(tmp_path, raw_small_cloud)
    flows = cli("flows", "--inventory", path, "--zone", "west")
    assert flows.exit_code == 0
    assert "F20 MS controls VMware routers" in flows.stdout and "kvm01" not in flows.stdout
    as_json = cli("flows", "--inventory", path, "--format", "json")
    assert [f["id"] for f in as_json.json()["flows"]] == [line.split("\t")[1] for line in golden_flow_lines()]
    inventory = cli("inventory", "--inventory", path)
    assert inventory.exit_code == 0 and "esxi01" in inventory.stdout


def test_unknown_zone_is_a_usage_error(cli, tmp_path, raw_small_cloud):
    result = cli("run", "--inventory", write_inventory(tmp_path, raw_small_cloud), "--zone", "north")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "unknown zone 'north'; the zones are: east (z1), west (z2)" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_configuration_exit_2(cli):
    result = cli("run")
    assert result.exit_code == 2 and result.stdout == ""
    assert "no CloudStack configuration found" in result.stderr and "cloudstack.ini" in result.stderr


def test_unreachable_api_exit_3(cli):
    port = free_port("127.12.0.9")
    result = cli("run", "--endpoint", f"http://127.12.0.9:{port}/client/api")
    assert result.exit_code == 3 and result.stdout == ""
    assert "listCapabilities: cannot connect to http://127.12.0.9" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_inventory_file_exit_2(cli, tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2")
    result = cli("run", "--inventory", str(tmp_path / "bad.json"))
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_bad_arguments_exit_2(cli):
    xml = cli("run", "--format", "xml")
    assert xml.exit_code == 2 and "invalid choice: 'xml'" in xml.stderr
    zero = cli("run", "--timeout", "0")
    assert zero.exit_code == 2 and "argument --timeout: must be a number of seconds above 0, not '0'" in zero.stderr


SECONDS = "must be a number of seconds above 0"
COUNT = "must be a whole number of at least 1"
PORT = "must be a port from 1 to 65535"


@pytest.mark.parametrize("argv, option, message", [
    (("run", "--timeout", "0"), "--timeout", f"{SECONDS}, not '0'"),
    (("run", "--timeout", "nan"), "--timeout", f"{SECONDS}, not 'nan'"),
    (("run", "--timeout", "soon"), "--timeout", f"{SECONDS}, not 'soon'"),
    (("run", "--deadline", "-1"), "--deadline", f"{SECONDS}, not '-1'"),
    (("run", "--deadline", "inf"), "--deadline", f"{SECONDS}, not 'inf'"),
    (("run", "--ssh-timeout", "0"), "--ssh-timeout", f"{SECONDS}, not '0'"),
    (("demo", "--timeout", "0"), "--timeout", f"{SECONDS}, not '0'"),
    (("run", "--concurrency", "0"), "--concurrency", f"{COUNT}, not '0'"),
    (("run", "--per-target", "1.5"), "--per-target", f"{COUNT}, not '1.5'"),
    (("run", "--ssh-concurrency", "-3"), "--ssh-concurrency", f"{COUNT}, not '-3'"),
    (("run", "--api-port", "0"), "--api-port", f"{PORT}, not '0'"),
    (("flows", "--db-port", "65536"), "--db-port", f"{PORT}, not '65536'"),
    (("inventory", "--cluster-port", "http"), "--cluster-port", f"{PORT}, not 'http'"),
    (("run", "--ssh-port", "70000"), "--ssh-port", f"{PORT}, not '70000'"),
    (("run", "--jump-host", "root@ms1:ssh"), "--jump-host",
     "must be [USER@]HOST[:PORT] with a port from 1 to 65535, not 'root@ms1:ssh'"),
    (("run", "--jump-host", "ms1:0"), "--jump-host", "must be [USER@]HOST[:PORT] with a port from 1 to 65535, not 'ms1:0'"),
    (("run", "--outside-host", "probe@"), "--outside-host", "must be [USER@]HOST[:PORT] with a port from 1 to 65535, not 'probe@'"),
    (("lab", "serve", "--duration", "-1"), "--duration", "must be zero or more seconds, not '-1'"),
    (("lab", "generate", "--zones", "0", "--hosts", "1", "--routers", "0"), "--zones", f"{COUNT}, not '0'"),
    (("lab", "generate", "--zones", "1", "--hosts", "0", "--routers", "0"), "--hosts", f"{COUNT}, not '0'"),
    (("lab", "generate", "--zones", "1", "--hosts", "1", "--routers", "-1"), "--routers",
     "must be a whole number of 0 or more, not '-1'"),
])
def test_a_bad_option_value_is_a_usage_error_naming_the_option(cli, capsys, argv, option, message):
    """Each check is the option's argparse type: nothing runs, exit 2, the usage then one line."""
    result = cli(*argv)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"usage: csaudit {argv[0]}")
    assert result.stderr.splitlines()[-1] == f"csaudit: error: argument {option}: {message}"
    assert capsys.readouterr() == ("", "")  # all of it went to the injected environment


def test_option_defaults_are_the_stages_own():
    parse = build_parser().parse_args
    run = run_request(parse(["run"]))
    assert run.probe == ProbeOptions() and run.remote == RemoteSettings() and run.deadline is None
    assert audit_request(parse(["flows"])) == audit_request(parse(["inventory"])) == AuditRequest()
    assert demo_request(parse(["demo"])).probe == ProbeOptions(timeout=DEMO_TIMEOUT)
    assert run_request(parse(["run", "--no-remote"])).remote == RemoteSettings(enabled=False)


def test_an_outside_vantage_needs_ssh(cli):
    result = cli("run", "--no-remote", "--outside-host", "edge")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "csaudit: --outside-host is an SSH vantage: leave out --no-remote\n"


def test_option_values_at_their_limits_are_accepted():
    parse = build_parser().parse_args
    request = run_request(parse(["run", "--timeout", "0.001", "--deadline", "1e-3", "--concurrency", "1", "--per-target", "1",
                                 "--api-port", "1", "--db-port", "65535", "--cluster-port", "9091", "--ssh-port", "1",
                                 "--jump-host", "admin@[::1]:65535", "--ssh-timeout", "0.5", "--ssh-concurrency", "1",
                                 "--outside"]))
    assert request.probe == ProbeOptions(timeout=0.001, concurrency=1, per_target=1, outside=True)
    assert request.deadline == 0.001
    assert request.port_options == (("api-port", 1), ("db-port", 65535), ("cluster-port", 9091))
    remote = request.remote
    assert (remote.port, remote.jump_host, remote.connect_timeout, remote.concurrency) == (1, "admin@[::1]:65535", 0.5, 1)
    assert remote.jump_access(remote.jump_host).describe() == "admin@::1:65535"
    assert parse(["lab", "serve", "--duration", "0"]).duration == 0
    generate = parse(["lab", "generate", "--zones", "1", "--hosts", "1", "--routers", "0"])
    assert (generate.zones, generate.hosts, generate.routers, generate.version) == (1, 1, 0, None)
    assert demo_request(parse(["demo", "--timeout", "3"])).probe.timeout == 3


def test_help_documents_exit_codes(cli):
    for command in ((), ("run",), ("demo",)):
        result = cli(*command, "--help")
        assert result.exit_code == 0 and result.stderr == ""
        assert "130  interrupted" in result.stdout and "3    CloudStack API unreachable" in result.stdout
    diff = cli("diff", "--help")
    assert diff.exit_code == 0 and "1    something changed" in diff.stdout


def _python(*argv: str) -> subprocess.CompletedProcess:
    """A fresh interpreter on this checkout, so sys.modules holds only what the code imports."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)


def test_importing_the_cli_imports_no_lab_module():
    """The product does not carry the simulated cloud: `demo` and `lab` import csaudit.lab when they run."""
    lines = _python("-X", "importtime", "-c", "import csaudit.cli.main").stderr.splitlines()
    modules = [line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")]
    assert {"csaudit.cli.main", "csaudit.cli.arguments", "csaudit.pipeline"} <= set(modules)
    assert [name for name in modules if name.startswith("csaudit.lab")] == []


def test_parsing_every_command_imports_no_lab_module():
    script = """if True:
        import sys
        from csaudit.cli.arguments import build_parser
        parse = build_parser().parse_args
        for argv in (["run"], ["inventory"], ["flows"], ["demo"], ["diff", "a", "b"], ["lab", "serve"],
                     ["lab", "generate", "--zones", "1", "--hosts", "1", "--routers", "0"]):
            parse(argv)
        print(sorted(name for name in sys.modules if name.startswith("csaudit.lab")))
    """
    assert _python("-c", script).stdout == "[]\n"


def run_on_a_terminal(argv, columns: int, env: dict) -> str:
    """main() with stdout on a real pseudo-terminal `columns` wide; what the terminal received."""
    import fcntl
    import io
    import struct
    import termios

    from csaudit.cli.main import main
    from csaudit.model.environment import Environment

    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    attributes = termios.tcgetattr(terminal)
    attributes[1] &= ~termios.OPOST  # no "\n" -> "\r\n": the bytes as written
    termios.tcsetattr(terminal, termios.TCSANOW, attributes)
    received = bytearray()
    with open(terminal, "w", encoding="utf-8", closefd=True) as stdout:
        main(argv, Environment(stdout=stdout, stderr=io.StringIO(), env=env))
        stdout.flush()
        os.set_blocking(controller, False)
        while True:
            try:
                chunk = os.read(controller, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
    os.close(controller)
    return received.decode()


def test_on_a_terminal_lines_fit_its_width_and_only_the_tags_are_coloured(tmp_path):
    import re

    path = write_inventory(tmp_path, one_ms_cloud())  # nothing listens on the MS here: F01 fails, its FAIL tag coloured
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    text = run_on_a_terminal(["run", "--inventory", path, "--timeout", "0.5"], 72, env)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain.splitlines()[-1].startswith("summary: ") and "\x1b[31;1mFAIL\x1b[0m F01 " in text
    assert max(map(len, plain.splitlines())) <= 72
    assert "\x1b[" in text and "\x1b[" not in run_on_a_terminal(["run", "--inventory", path, "--timeout", "0.5"], 72,
                                                                {**env, "NO_COLOR": "1"})
