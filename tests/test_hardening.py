"""Issue 9: partial results, deadline, real signals, dry run, secrets, the read-only guarantee on the wire."""

import configparser
import fnmatch
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from csaudit.collect.api import CloudStackApi
from csaudit.collect.config import ApiConfig
from csaudit.collect.parse import parse_inventory
from csaudit.collect.saved import inventory_to_dict
from csaudit.lab import Lab, default_topology
from csaudit.model.errors import ApiError
from csaudit.model.probes import ProbeTarget
from csaudit.vantage.connect import SPARE_FDS, fd_budget
from tests.conftest import connect_observations
from tests.faultserver import FaultServer, cloudstack_error, ok

REPO = pathlib.Path(__file__).resolve().parents[1]


def slow_inventory(tmp_path, filtered_port, listener):
    """One MS whose UI port drops SYNs: F01 then needs the whole probe timeout."""
    ms = "127.14.0.1"
    port = filtered_port(ms)
    inventory = parse_inventory({"managementservers": [{"id": "m", "name": "ms1", "serviceip": ms}]},
                                endpoint=f"http://{ms}:8080/client/api", api_mode="signed")
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    return str(path), port


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_real_signal_writes_the_partial_report_and_exits_130(tmp_path, filtered_port, listener, signum):
    path, port = slow_inventory(tmp_path, filtered_port, listener)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "csaudit", "run", "--inventory", path, "--api-port", str(port),
                                "--timeout", "60", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # wait until probing has started (stderr says so), then interrupt
    deadline = time.monotonic() + 20
    seen = ""
    while "probing" not in seen and time.monotonic() < deadline:
        seen += process.stderr.readline()
    assert "probing" in seen
    time.sleep(0.3)
    process.send_signal(signum)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    report = json.loads(out)
    by_rule = {f["rule"]: f for f in report["flows"]}
    assert by_rule["F01"]["status"] == "unverified" and by_rule["F01"]["reason"] == "interrupted before this probe ran"
    assert by_rule["D01"]["status"] == "pass"  # measured before the signal: kept
    assert "interrupted" in err and "Traceback" not in err


def test_deadline_bounds_the_run_and_still_reports(cli, tmp_path, filtered_port, listener):
    path, port = slow_inventory(tmp_path, filtered_port, listener)
    result = cli("run", "--inventory", path, "--api-port", str(port), "--timeout", "60", "--deadline", "1", "--format", "json")
    assert result.exit_code == 0
    by_rule = {f["rule"]: f for f in result.json()["flows"]}
    assert by_rule["F01"]["reason"] == "the --deadline passed before this probe ran"
    assert by_rule["D01"]["status"] == "pass"
    assert "--deadline passed" in result.stderr


def test_deadline_during_the_api_phase_is_one_clear_error():
    with FaultServer(lambda command, n: ("sleep", 0.4)) as server:
        api = CloudStackApi(ApiConfig(server.endpoint, timeout=1), deadline=time.monotonic() - 1)
        with pytest.raises(ApiError, match="the --deadline passed while reading the API"):
            api.call("listZones")
    assert server.seen == []


def test_one_zone_failing_leaves_the_others_audited(cli, listener):
    def script(command, n):
        if command == "listCapabilities":
            return ok(command, {"capability": {"cloudstackversion": "4.19.0.0"}})
        if command == "listZones":
            return ok(command, {"count": 2, "zone": [{"id": "z1", "name": "good"}, {"id": "z2", "name": "bad"}]})
        if command == "listHosts":
            return ok(command, {"count": 2, "host": [
                {"id": "h1", "name": "kvm-good", "type": "Routing", "zoneid": "z1", "hypervisor": "KVM", "ipaddress": "127.14.1.1", "clusterid": "c1"},
                {"id": "h2", "name": "kvm-bad", "type": "Routing", "zoneid": "z2", "hypervisor": "KVM", "ipaddress": "127.14.2.1", "clusterid": "c2"}]})
        if command == "listManagementServers":
            return ok(command, {"count": 1, "managementserver": [{"id": "m", "name": "ms1", "serviceip": "127.14.0.9"}]})
        if command == "listConfigurations" and n == 3:  # global, zone z1, then zone z2
            return cloudstack_error(command, 530, "Internal error executing command", 4250)
        return ok(command, {})

    with FaultServer(script) as server:
        result = cli("run", "--endpoint", server.endpoint, "--format", "json", "--timeout", "0.5")
    assert result.exit_code == 1  # the good zone was audited; its hosts do not answer
    report = result.json()
    zones = {z["name"]: z for z in report["zones"]}
    assert zones["good"]["state"] == "ok"
    assert zones["bad"]["state"] == "error" and "HTTP 530" in zones["bad"]["error"]
    bad = [f for f in report["flows"] if f["zone"] == "bad"]
    good = [f for f in report["flows"] if f["zone"] == "good"]
    assert bad and all(f["status"] == "unverified" and f["reason"].startswith("zone listing failed: listConfigurations") for f in bad)
    assert good and any(f["status"] in ("pass", "fail") for f in good)
    assert "zone bad:" in result.stderr


def test_dry_run_sends_nothing(cli, tmp_path):
    import socket

    ms = "127.14.4.1"
    server = socket.socket()
    server.bind((ms, 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    inventory = parse_inventory({"managementservers": [{"id": "m", "name": "ms1", "serviceip": ms}]})
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    try:
        result = cli("run", "--inventory", str(path), "--api-port", str(port), "--dry-run")
        assert result.exit_code == 0
        assert f"{ms}:{port}/tcp" in result.stdout and "F01:this machine->ms1" in result.stdout
        assert "nothing was sent" in result.stdout and "probing" not in result.stderr
        with pytest.raises(BlockingIOError):
            server.accept()  # no connection ever arrived
    finally:
        server.close()


def test_per_target_cap_still_finishes_every_target(listener):
    port = listener("127.14.3.1", backlog=256)
    targets = [ProbeTarget("127.14.3.1", port)] + [ProbeTarget("127.14.3.1", p) for p in range(20001, 20101)]
    results = connect_observations(targets, timeout=1.0, concurrency=64, per_target=2)
    assert set(results) == set(targets)


def test_fd_budget_raises_the_soft_limit_and_never_plans_past_it():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert fd_budget(10) == 10
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 256  # enough already: left alone
        if unlimited or hard >= 300 + SPARE_FDS:
            assert fd_budget(300) == 300
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 300 + SPARE_FDS  # raised just enough
        huge = fd_budget(10_000_000)  # past the hard limit (or the kernel's nr_open): capped, never EMFILE
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert huge == now - SPARE_FDS and huge < 10_000_000
        assert unlimited or now <= hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


NON_READ_COMMANDS = ["deployVirtualMachine", "destroyRouter", "updateConfiguration", "deleteZone", "startSystemVm",
                     "stopSystemVm", "rebootRouter", "addHost", "createNetwork", "getUserKeys", "registerUserKeys",
                     "restartNetwork", "migrateSystemVm", "queryAsyncJobResult", "listUsers", "listApis"]


@pytest.mark.root
def test_read_only_guarantee_on_the_wire():
    with Lab(default_topology()) as lab:
        api = CloudStackApi(ApiConfig(lab.endpoint, key=lab.key, secret=lab.secret))
        before = sum(lab.requests.values())
        for command in NON_READ_COMMANDS:
            with pytest.raises(ApiError, match="refusing to send"):
                api.call(command)
        assert sum(lab.requests.values()) == before
        assert lab.write_attempts == 0
        api.call("listZones")  # the same client does reach the server
        assert sum(lab.requests.values()) == before + 1


@pytest.mark.root
def test_secrets_appear_in_no_output(cli, tmp_path):
    with Lab(default_topology()) as lab:
        lab.write_ini(tmp_path / "cloudstack.ini")
        (tmp_path / "cloudstack.ini").chmod(0o600)
        outputs = []
        for argv in (["-v", "run", "--format", "json", "--output", str(tmp_path / "r.json"), "--timeout", "0.5"],
                     ["-v", "run", "--timeout", "0.5"], ["-v", "inventory", "--format", "json"], ["-v", "flows"],
                     ["-v", "run", "--dry-run"]):
            result = cli(*argv)
            outputs += [result.stdout, result.stderr]
        outputs.append((tmp_path / "r.json").read_text())
        secret, key, ms_address = lab.secret, lab.key, lab.topology.management_servers[0].address
    everything = "\n".join(outputs)
    assert "F01" in everything and ms_address in everything
    assert secret not in everything and key not in everything
    assert "signature=" not in everything.lower() and "apikey=" not in everything.lower()


def test_per_target_cap_holds_on_the_wire(filtered_port):
    """Sample the kernel's SYN-SENT sockets while probing ten dropped ports of one address."""
    import threading

    address = f"127.14.{os.getpid() % 250}.9"
    ports = [filtered_port(address) for _ in range(10)]
    source = f"127.14.{os.getpid() % 250}.77"  # the probes' own source: the fixture's fillers do not use it

    def hexed(ip: str) -> str:
        return "".join(f"{int(part):02X}" for part in reversed(ip.split(".")))

    peak, done = 0, threading.Event()

    def syn_sent() -> int:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table][1:]
        return sum(1 for row in rows if row[1].startswith(hexed(source) + ":") and row[2].startswith(hexed(address) + ":") and row[3] == "02")

    def sample():
        # /proc/net/tcp is not read atomically: a socket closed and its successor opened during one
        # read can both be counted. Two reads in a row that agree on a count are a real reading.
        nonlocal peak
        while not done.is_set():
            peak = max(peak, min(syn_sent(), syn_sent()))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results = connect_observations([ProbeTarget(address, p, source=source) for p in ports], timeout=0.4, concurrency=64, per_target=3)
    finally:
        done.set()
        sampler.join()
    assert {r.state for r in results.values()} == {"timeout"} and len(results) == 10
    assert 1 <= peak <= 3


def test_the_package_ships_no_private_key():
    """The lab makes its TLS key when it starts (csaudit/lab/tls.py): no file of the package holds one."""
    files = [path for path in (REPO / "csaudit").rglob("*") if path.is_file()]
    assert {"tls.py", "certificates.py", "demo.toml", "catalogue.toml"} <= {path.name for path in files}  # the scan saw the package
    holding = [str(path.relative_to(REPO)) for path in files if b"PRIVATE KEY" in path.read_bytes()]
    assert holding == []
    assert [path.name for path in files if path.suffix in (".pem", ".key", ".p12", ".pfx")] == []
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    patterns = [pattern.strip() for value in config["options.package_data"].values() for pattern in value.split(",")]
    assert "*.toml" in patterns
    assert [p for p in patterns if any(fnmatch.fnmatch(name, p) for name in ("lab-key.pem", "lab-cert.pem", "lab.key"))] == []
