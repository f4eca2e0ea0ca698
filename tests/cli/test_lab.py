"""`csaudit lab serve` and `csaudit lab generate`, plus serving a generated cloud at scale."""

import configparser
import contextlib
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from cs import CloudStack

from csaudit.cli.arguments import build_parser
from csaudit.cli.main import dispatch
from csaudit.lab import Lab, load_topology
from csaudit.model.environment import Environment
from csaudit.model.exitcodes import ExitStatus


def _run(tmp_path, *argv):
    """The lab sub-commands through csaudit's parser, with an injected environment; errors raise."""
    args = build_parser().parse_args(argv)
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdout=stdout, stderr=stderr, env={}, cwd=str(tmp_path))
    code = dispatch(args, env)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.mark.root
def test_serve_prints_endpoints_writes_a_private_ini_and_never_the_secret(tmp_path):
    started = time.monotonic()
    code, out, err = _run(tmp_path, "lab", "serve", "--duration", "1")
    assert code == ExitStatus.OK and time.monotonic() - started < 5
    ini_path = tmp_path / "cloudstack.ini"
    assert stat.S_IMODE(ini_path.stat().st_mode) == 0o600
    ini = configparser.ConfigParser()
    ini.read(ini_path)
    section = ini["cloudstack"]
    assert f"endpoint: {section['endpoint']}" in out.splitlines()
    assert "integration endpoint: http://" in out and f"ini: {ini_path}" in out
    assert section["secret"] not in out + err and section["key"] not in out + err
    assert "planted fault 3 [filtered] xen01" in err


@contextlib.contextmanager
def lab_serve(tmp_path, *options: str):
    """`csaudit lab serve OPTIONS` in a child process with its cwd in tmp_path; stopped (killed if it must be) after."""
    script = textwrap.dedent(f"""
        import sys
        from csaudit.model.environment import Environment
        from csaudit.cli.arguments import build_parser
        from csaudit.cli.main import dispatch
        args = build_parser().parse_args(["lab", "serve", *{list(options)!r}])
        sys.exit(dispatch(args, Environment()))
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    server = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def cs_cli(tmp_path, ini: str, *argv: str) -> subprocess.CompletedProcess:
    """The `cs` client's command line with only the given ini (none of this machine's CLOUDSTACK_ settings)."""
    return subprocess.run(
        [sys.executable, "-m", "cs", *argv], cwd=tmp_path, timeout=30, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("CLOUDSTACK_")},
             "HOME": str(tmp_path), "CLOUDSTACK_CONFIG": str(tmp_path / ini)})


@pytest.mark.root
def test_serve_writes_an_ini_the_cs_client_can_use_and_stops_on_sigterm(tmp_path):
    with lab_serve(tmp_path, "--ini", "lab.ini") as server:
        lines = [server.stdout.readline() for _ in range(3)]
        assert lines[2].startswith("ini: "), lines
        client = cs_cli(tmp_path, "lab.ini", "listCapabilities")
        assert client.returncode == 0, client.stderr
        assert '"cloudstackversion": "4.19.1.0"' in client.stdout
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


@pytest.mark.root
def test_serve_writes_a_role_ini_whose_key_has_exactly_the_csaudit_role(tmp_path):
    with lab_serve(tmp_path, "--ini", "lab.ini", "--role-ini", "role.ini") as server:
        lines = [server.stdout.readline() for _ in range(4)]
        assert lines[3].startswith("role ini: "), lines
        assert stat.S_IMODE((tmp_path / "role.ini").stat().st_mode) == 0o600
        assert cs_cli(tmp_path, "role.ini", "listZones").returncode == 0
        for refused in ("listApis", "deleteZone"):  # not in the role: CloudStack's role error
            answer = cs_cli(tmp_path, "role.ini", refused)
            assert answer.returncode != 0 and "HTTP 432" in answer.stderr
            assert f"The API [{refused}] does not exist or is not available for the account csaudit." in answer.stdout
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


def test_serve_rejects_a_bad_topology_with_a_config_error(tmp_path):
    from csaudit.model.errors import ConfigError
    (tmp_path / "bad.toml").write_text("[cloud]\nversion = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: cloud: 'version' = 'x'"):
        _run(tmp_path, "lab", "serve", "--topology", "bad.toml", "--duration", "0")


@pytest.mark.root
def test_serve_reports_an_unwritable_ini_as_a_usage_error(tmp_path):
    from csaudit.model.errors import UsageError
    with pytest.raises(UsageError, match=r"no/such/dir/x\.ini: cannot write the ini file"):
        _run(tmp_path, "lab", "serve", "--ini", "no/such/dir/x.ini", "--duration", "0")


def test_generate_to_stdout_and_file_loads_and_serves(tmp_path):
    code, out, _ = _run(tmp_path, "lab", "generate", "--zones", "2", "--hosts", "30", "--routers", "50")
    assert code == ExitStatus.OK and out.startswith("# Generated by `csaudit lab generate")
    code, _, err = _run(tmp_path, "lab", "generate", "--zones", "2", "--hosts", "30", "--routers",
                        "50", "--output", "big.toml")
    assert code == ExitStatus.OK and "wrote" in err
    assert (tmp_path / "big.toml").read_text() == out
    topology = load_topology(tmp_path / "big.toml")
    assert not topology.listeners
    with Lab(topology) as lab:
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
        own = api.listRouters(fetch_list=True, listall=True)
        projects = api.listRouters(fetch_list=True, listall=True, projectid=-1)
        assert (len(own), len(projects)) == (90, 10)
        assert len(api.listHosts(fetch_list=True, type="Routing")) == 60
        assert lab.write_attempts == 0


def test_ten_zones_of_seven_thousand_objects_page_in_pages_of_500(tmp_path):
    """10 zones x (2,000 hosts + 5,000 routers): generate, load, serve, page 500 rows at a time."""
    timings = {}
    started = time.monotonic()
    code, _, _ = _run(tmp_path, "lab", "generate", "--zones", "10", "--hosts", "2000",
                      "--routers", "5000", "--output", "scale.toml")
    timings["generate"] = time.monotonic() - started
    assert code == ExitStatus.OK

    started = time.monotonic()
    topology = load_topology(tmp_path / "scale.toml")
    timings["load"] = time.monotonic() - started
    started = time.monotonic()
    with Lab(topology) as lab:
        timings["start"] = time.monotonic() - started
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, timeout=30)
        started = time.monotonic()
        hosts = api.listHosts(fetch_list=True, type="Routing")
        routers = api.listRouters(fetch_list=True, listall=True) + \
            api.listRouters(fetch_list=True, listall=True, projectid=-1)
        timings["page 70,000"] = time.monotonic() - started
        assert len(hosts) == 20_000 and len({r["id"] for r in routers}) == 50_000
        pages = lab.requests
        assert pages["listHosts"] == 40 and pages["listRouters"] == 100  # 500 rows a page
    print("scale timings (s):", {k: round(v, 2) for k, v in timings.items()})  # measured, not asserted (bench/)
