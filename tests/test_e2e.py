"""End to end: csaudit against the embedded cloud, a real HTTP server speaking the CloudStack API
and real listeners on 127.x addresses, through the signed port and the integration port."""

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from csaudit.lab import Lab, default_topology
from csaudit.lab.relocate import second_octet

pytestmark = pytest.mark.root  # the embedded cloud (and the demo's) listens on 127.x ports below 1024


@pytest.fixture(scope="module")
def faulty_lab():
    with Lab(default_topology()) as lab:
        yield lab


@pytest.fixture(scope="module")
def healthy_lab():
    topology = default_topology()
    settings = {**topology.settings, "integration.api.port": "0"}
    with Lab(dataclasses.replace(topology, faults=(), settings=settings)) as lab:
        yield lab


def lab_address(lab, demo_address):
    """The demo address where the lab really runs (it moves to another 127.N/16 when 127.42 is taken)."""
    return demo_address.replace("127.42.", f"127.{second_octet(lab.topology.management_servers[0].address)}.", 1)


def statuses(report):
    return {f["id"]: f["status"] for f in report["flows"]}


def failed(report):
    return {f["id"] for f in report["flows"] if f["status"] == "fail"}


# The wrong-service fault: the database's 3306 answers HTTP. Management tier: in every zone's run.
DB_FAILURES = {"F04:ms1->database:3306/tcp", "F04:ms2->database:3306/tcp", "F05:usage server ms1->database:3306/tcp"}
# The filtered template host of zone-west (fault 6): its flow id holds its address, which moves with the lab.
TEMPLATE_FAILURE = re.compile(r"^F25:s-5-VM->127\.\d+\.0\.81:8000/tcp$")


def without_template_failure(ids: set[str]) -> set[str]:
    """The failed flows but the one of the unreachable template host, which must be among them."""
    found = {i for i in ids if TEMPLATE_FAILURE.match(i)}
    assert len(found) == 1, sorted(i for i in ids if i.startswith("F25"))
    return ids - found


def exposed_8096(*sources):
    """The exposed integration API (a planted fault) fails D01 from every place that probes it."""
    return {f"D01:{source}->{ms}:8096/tcp" for source in sources for ms in ("ms1", "ms2") if source != ms}


# Management tier (in every zone's run): D01 from this machine and from each peer MS.
EAST_FAILURES = DB_FAILURES | exposed_8096("this machine", "ms1", "ms2", "kvm01", "kvm02", "xen01") | {
    "F12:ms1->xen01:443/tcp", "F12:ms2->xen01:443/tcp", "F35:v-2-VM->xen01:443/tcp",
    "F11:ms1->kvm02:22/tcp", "F11:ms2->kvm02:22/tcp", "F34:v-2-VM->kvm02:5900-6100/tcp", "F40:kvm01->kvm02:16514/tcp",
    "F42:kvm01->kvm02:8472/udp",  # kvm02 listens on nothing: its VXLAN port refuses too
}
WEST_FAILURES = exposed_8096("esxi01", "esxi02") | {
    "F23:s-5-VM->sec-nfs-west:2049/tcp", "F48:esxi01->sec-nfs-west:2049/tcp", "F48:esxi02->sec-nfs-west:2049/tcp",
    "F49:ms1->sec-nfs-west:2049/tcp", "F49:ms2->sec-nfs-west:2049/tcp",
}


def test_signed_api_one_zone_reports_planted_faults(cli, tmp_path, faulty_lab):
    faulty_lab.write_ini(tmp_path / "cloudstack.ini")  # ./cloudstack.ini, as a user would have it
    before = sum(faulty_lab.requests.values())
    before_capabilities = faulty_lab.requests["listCapabilities"]
    result = cli("run", "--zone", "zone-east", "--format", "json", "--timeout", "1")
    assert result.exit_code == 1, result.stderr
    report = result.json()
    assert report["cloud"]["api_mode"] == "signed" and report["cloud"]["version"] == "4.19.1.0"
    assert [z["name"] for z in report["zones"]] == ["zone-east"]
    assert failed(report) == EAST_FAILURES
    assert {f["zone"] for f in report["flows"]} == {None, "zone-east"}  # other zones left out
    by_id = {f["id"]: f for f in report["flows"]}
    assert by_id["F12:ms1->xen01:443/tcp"]["observed"] == "timeout"
    assert by_id["F11:ms1->kvm02:22/tcp"]["observed"] == "refused"
    assert by_id["F08:kvm01->ms1:8250/tcp"]["status"] == "pass"
    assert by_id["F08:kvm01->ms1:8250/tcp"]["vantage"] == "local"
    assert by_id["F08:kvm01->ms1:8250/tcp"]["source"]["address"] == lab_address(faulty_lab, "127.42.1.21")
    # request economy: paginated lists only, no per-object calls, and never a write; the http-api
    # probes (F01, F03, D01 from here, from the peer MS and from the zone's hosts; F60 shares F01's) send one
    # unsigned listCapabilities each
    sent = faulty_lab.requests
    probes = len({(f["vantage"], f["source"]["address"], f["target"]["address"], f["port"]) for f in report["flows"]
                  if f["probe"] == "http-api" and f["vantage"] is not None})
    assert sum(sent.values()) - before - probes <= 25  # 20, and the 5 reads of the named services (templates, ISOs, ...)
    # (csaudit's own signed call may be sent twice: the API client retries a call the busy lab answered late)
    assert 1 + probes <= sent["listCapabilities"] - before_capabilities <= 2 + probes
    assert faulty_lab.write_attempts == 0
    assert faulty_lab.secret not in result.stdout + result.stderr
    assert faulty_lab.key not in result.stdout + result.stderr


def test_integration_port_unsigned(cli, faulty_lab):
    result = cli("run", "--endpoint", faulty_lab.integration_endpoint, "--format", "json", "--timeout", "1")
    assert result.exit_code == 1, result.stderr
    report = result.json()
    assert report["cloud"]["api_mode"] == "integration"
    assert without_template_failure(failed(report)) == EAST_FAILURES | WEST_FAILURES
    assert report["summary"]["error"] == 0


def test_table_output_and_stream_separation(cli, tmp_path, faulty_lab):
    faulty_lab.write_ini(tmp_path / "cloudstack.ini")
    result = cli("run", "--zone", "zone-west", "--timeout", "1")
    assert result.exit_code == 1
    refused = f"must be open, but {lab_address(faulty_lab, '127.42.2.40')}:2049 refused the connection"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("== ") and "failed" in lines[0]  # what is wrong comes first, grouped
    assert any(line.startswith("FAIL F23 ssvm → secondary-storage 2049/tcp: 1 of ") and "SSVM mounts NFS" in line for line in lines)
    assert "    on the SSVM, then the NFS server:\n      the export allows the SSVM, nfsd" in result.stdout
    assert "summary: " in lines[-1] and max(map(len, lines)) <= 120
    every = cli("run", "--zone", "zone-west", "--timeout", "1", "--all")  # the per-flow tables
    assert "== zone-west / from ssvm" in every.stdout and "zone-east" not in every.stdout
    assert refused in every.stdout and "summary: " in every.stdout.splitlines()[-1]
    assert "API requests" in result.stderr and "API requests" not in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


def test_healthy_cloud_exits_0(cli, tmp_path, healthy_lab):
    healthy_lab.write_ini(tmp_path / "cloudstack.ini")
    result = cli("run", "--format", "json", "--timeout", "1")
    assert result.exit_code == 0, result.stdout
    report = result.json()
    assert report["summary"]["fail"] == 0 and report["summary"]["error"] == 0
    assert report["summary"]["pass"] > 90
    assert not any(f["rule"] == "F03" for f in report["flows"])  # integration port disabled


def test_offline_inventory_gives_the_same_verdicts(cli, tmp_path, faulty_lab):
    faulty_lab.write_ini(tmp_path / "cloudstack.ini")
    saved = cli("inventory", "--format", "json", "--output", str(tmp_path / "inv.json"))
    assert saved.exit_code == 0
    online = cli("run", "--format", "json", "--timeout", "1").json()
    offline = cli("run", "--inventory", str(tmp_path / "inv.json"), "--format", "json", "--timeout", "1").json()
    assert statuses(online) == statuses(offline)


def test_demo_finds_every_planted_fault_and_nothing_else(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # piped: the fixed width
    result = cli("demo", "--json", str(tmp_path / "report.json"))
    assert result.exit_code == 1
    out = result.stdout
    assert_the_report_leads_with_what_is_wrong(out.splitlines(), json.loads((tmp_path / "report.json").read_text()))
    assert "Planted faults in the demo cloud" in out
    for n in (1, 2, 3, 4, 5, 6):
        assert f"  {n}. [" in out
    assert "NOT FOUND" not in out
    assert "Other failures: none" in out
    assert "summary: " in out


def assert_the_report_leads_with_what_is_wrong(lines: list[str], report: dict) -> None:
    """Every line fits 120 columns; every failure group (status and rule) of the run's JSON and every
    unverified reason shows, in that order, before the passed flows, the vantages and the summary."""
    assert max(map(len, lines)) <= 120
    end = next(i for i, line in enumerate(lines) if line.startswith("summary: "))
    passed = next(i for i, line in enumerate(lines) if line.endswith("passed (--all lists every flow)"))
    problems = {(f["status"], f["rule"]) for f in report["flows"] if f["status"] in ("fail", "error")}
    gaps = {f["gap"] for f in report["flows"] if f["status"] == "unverified"}
    assert problems and gaps
    tag = {"fail": "FAIL", "error": "ERROR"}
    group_lines = [next(i for i, line in enumerate(lines) if line.startswith(f"{tag[status]} {rule} "))
                   for status, rule in sorted(problems)]
    gap_lines = [next(i for i, line in enumerate(lines) if re.match(rf"UNVERIFIED \d+ {gap}: ", line)) for gap in sorted(gaps)]
    assert max(group_lines) < min(gap_lines) and max(gap_lines) < passed < end
    assert lines.index("== vantages (where the probes ran)") > passed
    passing = {f["id"] for f in report["flows"] if f["status"] == "pass"}
    assert not any(flow_id in line for line in lines[:passed] for flow_id in passing)  # no passing flow before them


def test_demo_json_keeps_stdout_pure(cli):
    result = cli("demo", "--format", "json")
    assert result.exit_code == 1
    report = result.json()
    # The demo plays kvm01 with a real sshd and kvm02 with none: kvm02's own probes stay unverified.
    assert without_template_failure(failed(report)) == (EAST_FAILURES | WEST_FAILURES) - exposed_8096("kvm02")
    assert "Planted faults" in result.stderr


def test_lab_serve_in_one_process_and_run_from_another(tmp_path):
    ini = tmp_path / "lab.ini"
    env = {**os.environ, "HOME": str(tmp_path)}
    env = {k: v for k, v in env.items() if not k.startswith("CLOUDSTACK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pathlib.Path(__file__).parents[1]), env.get("PYTHONPATH")]))
    server = subprocess.Popen([sys.executable, "-m", "csaudit", "lab", "serve", "--ini", str(ini), "--duration", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not ini.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        assert ini.exists(), server.stderr.read() if server.poll() is not None else "no ini written"
        time.sleep(0.2)
        run = subprocess.run([sys.executable, "-m", "csaudit", "run", "--zone", "zone-west", "--format", "json", "--timeout", "1"],
                             capture_output=True, text=True, env={**env, "CLOUDSTACK_CONFIG": str(ini)}, cwd=tmp_path, timeout=120)
        assert run.returncode == 1, run.stderr
        assert without_template_failure(failed(json.loads(run.stdout))) == \
            WEST_FAILURES | DB_FAILURES | exposed_8096("this machine", "ms1", "ms2")
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "127.42." in out or "http://" in out


# CloudStack's own evidence (listRouters fetchhealthcheckresults and redundantstate): the demo plants a
# split brain in tenant-e's redundant pair and a failing gateways check on r-3-VM; kvm02's planted API
# mismatch is the one network finding.
DEMO_FINDINGS = {("api-up-silent", "host", "kvm02"), ("vr-health-check-failed", "vr", "r-3-VM"),
                 ("vr-pair-split-brain", "guest network", "tenant-e-network")}


def findings(report):
    return {(f["kind"], f["object"]["role"], f["object"]["name"]) for f in report["findings"]}


def test_cloudstack_evidence_gives_exactly_the_planted_findings_in_every_report(cli, tmp_path, faulty_lab):
    faulty_lab.write_ini(tmp_path / "cloudstack.ini")
    files = {fmt: tmp_path / f"report.{fmt}" for fmt in ("markdown", "prometheus")}
    result = cli("run", "--zone", "zone-east", "--format", "json", "--timeout", "1", "--no-remote",
                 *(arg for fmt, path in files.items() for arg in (f"--{fmt}", str(path))))
    assert result.exit_code == 1, result.stderr
    report = result.json()
    assert findings(report) == DEMO_FINDINGS
    split = next(f for f in report["findings"] if f["kind"] == "vr-pair-split-brain")
    assert split["members"] == ["r-9-VM", "r-10-VM"] and split["api_state"] == "r-9-VM PRIMARY, r-10-VM PRIMARY"
    assert "(F54) cannot be probed with a connect" in split["message"]
    health = next(f for f in report["findings"] if f["kind"] == "vr-health-check-failed")
    assert "gateways_check.py (basic" in health["message"] and "(1 of 2)" in health["message"]
    assert "## Findings" in files["markdown"].read_text() and "vr-pair-split-brain" in files["markdown"].read_text()
    prometheus = files["prometheus"].read_text()
    for kind, count in (("vr-pair-split-brain", 1), ("vr-health-check-failed", 1), ("vr-pair-no-master", 0)):
        assert f'csaudit_findings{{kind="{kind}"}} {count}.0' in prometheus
    table = cli("run", "--zone", "zone-east", "--timeout", "1", "--no-remote")
    assert "CloudStack's own health checks of vr r-3-VM fail" in table.stdout
    listed = {line.split()[1]: line for line in cli("inventory").stdout.splitlines() if line.startswith("vr ")}
    assert listed["r-9-VM"].endswith("Running/redundant PRIMARY") and listed["r-10-VM"].endswith("Running/redundant PRIMARY")
    assert listed["r-3-VM"].endswith("Running/1 of 2 health checks failed") and listed["r-4-VM"].endswith("Running")


def test_a_healthy_redundant_pair_and_passing_checks_give_no_finding(cli, tmp_path, healthy_lab):
    healthy_lab.write_ini(tmp_path / "cloudstack.ini")
    result = cli("run", "--zone", "zone-east", "--format", "json", "--timeout", "1", "--no-remote")
    assert result.exit_code == 0, result.stdout
    assert result.json()["findings"] == []
