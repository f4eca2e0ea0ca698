"""The operator's workflow against the embedded cloud (real API server, real listeners on 127.x):
report files in one run, the firewall plan checked by nft and iptables-restore, and the walk a new
user takes: run with --junit and --json, fix the fault, run again, and diff."""

import dataclasses
import json
import os
import re
import subprocess

import junitparser
import pytest

from csaudit.lab import Lab, default_topology
from csaudit.report.formats import FILE_FORMATS, render_report
from tests.report.test_formats import nft_check, tool

# The flows the missing NFS listener of sec-nfs-west breaks (names only: the lab may relocate addresses).
NFS_FAULT_FLOWS = {
    "F23:s-5-VM->sec-nfs-west:2049/tcp", "F48:esxi01->sec-nfs-west:2049/tcp", "F48:esxi02->sec-nfs-west:2049/tcp",
    "F49:ms1->sec-nfs-west:2049/tcp", "F49:ms2->sec-nfs-west:2049/tcp",
}


@pytest.fixture(scope="module")
def lab():
    with Lab(default_topology()) as running:
        yield running


def statuses(path):
    return {f["id"]: f["status"] for f in json.loads(path.read_text())["flows"]}


@pytest.mark.root
def test_new_user_walkthrough_run_fix_run_again_diff(cli, tmp_path):
    topology = default_topology()
    with Lab(topology) as faulty:
        faulty.write_ini(tmp_path / "cloudstack.ini")
        first = cli("run", "--junit", "r.xml", "--json", "a.json", "--timeout", "1")
    assert first.exit_code == 1, first.stderr
    assert "summary: " in first.stdout  # the table still goes to stdout
    before = statuses(tmp_path / "a.json")
    assert {fid for fid, s in before.items() if s == "fail"} >= NFS_FAULT_FLOWS
    junit = junitparser.JUnitXml.fromfile(str(tmp_path / "r.xml"))
    failed_cases = {case.name.split(" (")[0] for suite in junit for case in suite
                    if any(isinstance(r, junitparser.Failure) for r in case.result)}
    assert failed_cases == {fid for fid, s in before.items() if s == "fail"}

    # The operator starts the NFS server on sec-nfs-west: the topology loses that fault. The cloud
    # keeps the addresses it was served on (the lab moves when 127.42.x is busy): the vCenter is
    # named by its address, so a move would rename its flows.
    served = faulty.topology
    nfs_fault = next(f for f in served.faults if f.kind == "missing-listener" and f.objects == ("sec-nfs-west",))
    fixed = dataclasses.replace(served, faults=tuple(f for f in served.faults if f is not nfs_fault))
    with Lab(fixed, max_relocations=0) as repaired:
        repaired.write_ini(tmp_path / "cloudstack.ini")
        second = cli("run", "--json", "b.json", "--timeout", "1")
    assert second.exit_code == 1  # the other planted faults are still there

    as_json = cli("diff", "a.json", "b.json", "--format", "json")
    assert as_json.exit_code == 1, as_json.stderr
    diff = as_json.json()
    assert {c["id"] for c in diff["fixed"]} == NFS_FAULT_FLOWS
    assert all((c["old"]["status"], c["new"]["status"]) == ("fail", "pass") for c in diff["fixed"])
    assert diff["new_failures"] == diff["changed"] == diff["added"] == diff["removed"] == []
    text = cli("diff", "a.json", "b.json")
    assert text.exit_code == 1
    assert "fixed (5):" in text.stdout and "0 new failures, 5 fixed, 0 changed, 0 added, 0 removed" in text.stdout
    again = cli("diff", "b.json", "b.json")
    assert again.exit_code == 0 and "no change" in again.stdout


@pytest.mark.root
@pytest.mark.programs("dot")
def test_one_run_writes_every_format_from_the_same_report(cli, tmp_path, lab):
    lab.write_ini(tmp_path / "cloudstack.ini")
    files = {"json": "a.json", "junit": "r.xml", "csv": "r.csv", "markdown": "r.md", "mermaid": "r.mmd", "dot": "r.dot",
             "prometheus": "r.prom", "html": "r.html"}
    options = [arg for fmt, name in files.items() for arg in (f"--{fmt}", name)]
    result = cli("run", "--zone", "zone-west", "--timeout", "1", "--format", "markdown", *options)
    assert result.exit_code == 1, result.stderr
    assert set(files) == set(FILE_FORMATS)
    document = json.loads((tmp_path / "a.json").read_text())
    for fmt, name in files.items():  # every file renders the one report (one generated_at)
        assert (tmp_path / name).read_text() == render_report(fmt, document), fmt
        assert f"report written to {tmp_path / name}" in result.stderr
    assert result.stdout == (tmp_path / "r.md").read_text()
    junit = junitparser.JUnitXml.fromfile(str(tmp_path / "r.xml"))
    assert junit.failures == document["summary"]["fail"] and junit.tests == len(document["flows"])
    svg = subprocess.run([tool("dot"), "-Tsvg", str(tmp_path / "r.dot")], capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr


@pytest.mark.root
@pytest.mark.programs("nft", "iptables-restore")
def test_flows_export_of_the_demo_cloud_loads_in_nft_and_iptables(cli, tmp_path, lab):
    lab.write_ini(tmp_path / "cloudstack.ini")
    plan = cli("flows", "--format", "json").json()["flows"]
    nft = cli("flows", "--format", "nft", "--output", "plan.nft")
    assert nft.exit_code == 0, nft.stderr
    text = (tmp_path / "plan.nft").read_text()
    # D01 from here and from outside ask for the same "drop any -> MS 8096": written once, and counted
    shared = int(re.search(r"(\d+) flows met by a rule written for another", text).group(1))
    assert text.count(" accept comment ") + text.count(" drop comment ") + shared == len(plan) and shared >= 2
    assert 'tcp dport 8096 drop comment "D01:outside->ms1:8096/tcp"' in text
    assert 'comment "D01:this machine->ms1:8096/tcp"' not in text
    check = nft_check(tmp_path / "plan.nft")
    assert check.returncode == 0, check.stderr
    ipt = cli("flows", "--format", "iptables", "--output", "plan.ipt")
    assert ipt.exit_code == 0
    restore = subprocess.run([tool("iptables-restore"), "--test", "--noflush", str(tmp_path / "plan.ipt")],
                             capture_output=True, text=True, timeout=60)
    assert restore.returncode == 0, restore.stderr
    rows = cli("flows", "--format", "csv").stdout.splitlines()
    assert len(rows) == len(plan) + 1 and rows[0].startswith("id,zone,rule,title")


@pytest.mark.root
def test_demo_prints_junit_and_keeps_the_explanation_on_stderr(cli, tmp_path):
    result = cli("demo", "--format", "junit", "--timeout", "1")
    assert result.exit_code == 1
    (tmp_path / "demo.xml").write_text(result.stdout)
    junit = junitparser.JUnitXml.fromfile(str(tmp_path / "demo.xml"))
    assert [suite.name for suite in junit] == ["management tier", "zone-east", "zone-west"]
    assert "Planted faults" in result.stderr


def test_a_report_file_that_cannot_be_written_stops_the_run_before_it_starts(cli, tmp_path):
    result = cli("run", "--inventory", "never-read.json", "--junit", str(tmp_path / "no" / "such" / "r.xml"))
    assert result.exit_code == 2
    assert result.stderr == f"csaudit: cannot write {tmp_path / 'no/such/r.xml'}: the folder {tmp_path / 'no/such'} does not exist\n"


@pytest.mark.root
def test_waived_demo_fault_still_found_and_exit_counts_the_rest(cli, tmp_path):
    waivers = tmp_path / "w.toml"
    waivers.write_text('[[waiver]]\nflow = "*->sec-nfs-west:2049/tcp"\nreason = "NFS moves to the new filer (CHG-7)"\n'
                       'expires = 2999-01-01\n')
    result = cli("demo", "--format", "json", "--timeout", "1", "--waivers", str(waivers))
    assert result.exit_code == 1  # the other faults still fail
    report = result.json()
    assert {f["id"] for f in report["flows"] if f["status"] == "waived"} == NFS_FAULT_FLOWS
    assert "NOT FOUND" not in result.stderr  # the demo's explanation still points at the waived flows
    assert os.path.exists(waivers)
