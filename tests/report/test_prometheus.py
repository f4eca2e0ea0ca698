"""The Prometheus exposition of a report (csaudit/report/prometheus.py): every count is the report's own,
the reason label is a bounded word taken from each flow's structured failure or gap, the per-flow series
are capped with failures first, promtool accepts the text, and `run --format prometheus --output`
writes it as node_exporter's textfile collector wants it."""

import dataclasses
import datetime

import pytest

from bench.serve import samples, value
from csaudit.model.results import FlowResult
from csaudit.model.vocabulary import Failure, Gap, Status
from csaudit.report.document import report_document
from csaudit.report.formats import render_report
from csaudit.report.prometheus import FAILURE_REASONS, GAP_REASONS, MAX_PROBLEM_SERIES, REASONS, audit_families, render_prometheus
from tests.cli.test_main import MS, one_ms_cloud, write_inventory
from tests.conftest import find_program
from tests.faultserver import FaultServer, signed_api
from tests.golden_report import KVM01, MS1, flow, golden_document, golden_inventory


def assert_metrics_match_report(scraped: dict, report: dict) -> None:
    """Every count of the scrape is the report's own: flows by rule, zone and status; unverified by gap;
    one csaudit_flow_problem series per flow that does not pass, with its reason; the vantages."""
    flows = report["flows"]
    for rule, zone in {(f["rule"], f["zone"] or "") for f in flows}:
        for status in Status:
            expected = sum(1 for f in flows if (f["rule"], f["zone"] or "", f["status"]) == (rule, zone, status))
            assert value(scraped, "csaudit_flows", rule=rule, zone=zone, status=status) == expected, (rule, zone, status)
    assert sum(v for (name, _), v in scraped.items() if name == "csaudit_flows") == len(flows)
    for gap, count in report["summary"]["coverage"]["unverified"].items():
        assert value(scraped, "csaudit_unverified_flows", gap=gap) == count
    problems = {dict(labels)["flow"]: dict(labels) for (name, labels), v in scraped.items() if name == "csaudit_flow_problem"}
    not_passing = {f["id"]: f for f in flows if f["status"] != "pass"}
    assert set(problems) == set(not_passing) and not_passing
    for flow_id, labels in problems.items():  # an empty label is no label (samples), as in Prometheus
        flow = not_passing[flow_id]
        assert (labels["rule"], labels["status"], labels["expect"], labels.get("zone", "")) == \
            (flow["rule"], flow["status"], flow["expect"], flow["zone"] or "")
        assert labels["reason"] in REASONS and labels["reason"] != "other", labels
        assert labels.get("vantage", "") == (flow["vantage"] or "") and labels["target"] == flow["target"]["name"]
        assert (labels["source"], labels["protocol"]) == (flow["source"]["name"], flow["protocol"])
        assert labels["port"] == (f"{flow['port']}-{flow['port_end']}" if flow["port_end"] else str(flow["port"]))
    for vantage in report["vantages"]:
        assert value(scraped, "csaudit_vantage_up", vantage=vantage["name"]) == (vantage["state"] == "ok")
        assert value(scraped, "csaudit_vantage_probes", vantage=vantage["name"]) == vantage["probes"]
    assert value(scraped, "csaudit_flow_problems_omitted") == 0



def test_every_failure_and_every_gap_has_its_own_bounded_reason():
    assert set(FAILURE_REASONS) == set(Failure) and set(GAP_REASONS) == set(Gap)
    assert len(set(REASONS)) == len(REASONS) == len(Failure) + len(Gap) + 1  # and "other", for reports from before failures
    assert all(reason.replace("_", "").isalpha() and reason.islower() for reason in REASONS)
    assert GAP_REASONS[Gap.VANTAGE_UNAVAILABLE] == "unreachable_vantage" and FAILURE_REASONS[Failure.WRONG_SERVICE] == "wrong_service"


def test_the_golden_report_as_metrics_counts_what_the_report_says():
    document = golden_document()
    scraped = samples(render_report("prometheus", document))
    assert_metrics_match_report(scraped, document)
    assert value(scraped, "csaudit_build_info", version="0.0.0") == 1
    assert value(scraped, "csaudit_last_audit_timestamp_seconds") == datetime.datetime(2025, 3, 1, 12, tzinfo=datetime.UTC).timestamp()
    assert value(scraped, "csaudit_last_audit_duration_seconds") is None  # this report did not measure its run
    assert value(scraped, "csaudit_flows", rule="D01", zone="", status="fail") == 1  # the management tier: zone ""
    assert value(scraped, "csaudit_flows", rule="D01", zone="", status="waived") == 0  # every status is there, 0 included
    reasons = {dict(labels)["flow"]: dict(labels)["reason"] for (name, labels) in scraped if name == "csaudit_flow_problem"}
    assert reasons == {
        "D01:this machine->ms1:8096/tcp": "exposed", "F04:ms1->db1:3306/tcp": "no_address", "F11:ms1->kvm02:22/tcp": "refused",
        "F12:ms1->xen01:443/tcp": "timeout", "F34:v-2-VM->kvm02:5900-6100/tcp": "probe_error",
        "F46:kvm01->ps-1:111/udp": "not_judgeable", 'F23:s-5-VM->sec "nfs" <west> & co|*x*:2049/tcp': "refused",
        "F15:ms1->vc.example.org:443/tcp": "probe_error"}
    f34 = next(dict(labels) for (name, labels) in scraped if name == "csaudit_flow_problem" and "F34" in dict(labels)["flow"])
    assert f34["port"] == "5900-6100" and f34["status"] == "error"


def test_a_saved_report_from_before_failures_reads_other_not_a_guess():
    document = golden_document()
    older = {**document, "flows": [{k: v for k, v in f.items() if k != "failure"} for f in document["flows"]]}
    reasons = {dict(labels)["reason"] for (name, labels) in samples(render_prometheus(older)) if name == "csaudit_flow_problem"}
    assert reasons == {"other", "no_address", "not_judgeable"}  # the gaps were there already


def _results(failing: int, unverified: int) -> list[FlowResult]:
    made = []
    for n in range(failing):
        made.append(FlowResult(flow("F08", "agent to MS", "zone-east", dataclasses.replace(KVM01, name=f"kvm{n}"), MS1, 8250),
                               Status.FAIL, "refused", "refused", "local", 0.1, failure=Failure.REFUSED))
    for n in range(unverified):
        made.append(FlowResult(flow("F11", "MS to host SSH", "zone-east", MS1, dataclasses.replace(KVM01, name=f"kvm{n}"), 22),
                               Status.UNVERIFIED, None, "vantage lost", gap=Gap.VANTAGE_UNAVAILABLE))
    return made


@pytest.mark.parametrize("failing, unverified, shown_failing, shown_unverified", [
    (300, 900, 300, MAX_PROBLEM_SERIES - 300),
    (1200, 50, MAX_PROBLEM_SERIES, 0),
])
def test_the_per_flow_series_are_capped_and_failures_are_kept_first(failing, unverified, shown_failing, shown_unverified):
    results = _results(failing, unverified)[::-1]  # the unverified flows come first in the report
    document = report_document(results, golden_inventory(), now=datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC))
    scraped = samples(render_prometheus(document))
    statuses = [dict(labels)["status"] for (name, labels) in scraped if name == "csaudit_flow_problem"]
    assert (statuses.count("fail"), statuses.count("unverified")) == (shown_failing, shown_unverified)
    assert value(scraped, "csaudit_flow_problems_omitted") == failing + unverified - MAX_PROBLEM_SERIES
    assert value(scraped, "csaudit_flows", rule="F08", zone="zone-east", status="fail") == failing  # the counts are never capped


def test_an_empty_report_still_says_when_it_was_made():
    document = report_document([], golden_inventory(), now=datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC))
    families = {f.name: f for f in audit_families({k: v for k, v in document.items() if k != "flows"}, [])}
    assert families["csaudit_last_audit_timestamp_seconds"].samples[0].value > 0
    assert families["csaudit_flows"].samples == [] and families["csaudit_flow_problems_omitted"].samples[0].value == 0


@pytest.mark.programs("promtool")
def test_promtool_accepts_the_exposition(tmp_path):
    import subprocess

    for text in (render_report("prometheus", golden_document()), render_prometheus(report_document(
            _results(20, 20), golden_inventory(), now=datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)))):
        check = subprocess.run([find_program("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


def test_run_writes_the_textfile_for_node_exporter(cli, tmp_path):
    inventory = write_inventory(tmp_path, one_ms_cloud())
    with FaultServer(signed_api, MS, port=8080):
        result = cli("run", "--inventory", inventory, "--timeout", "0.5", "--format", "prometheus", "--output", "csaudit.prom",
                     "--json", "r.json")
    assert result.exit_code == 0 and result.stdout == "", result.stderr
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    text = (tmp_path / "csaudit.prom").read_text()
    assert text == render_report("prometheus", report)  # the file and the JSON describe the same run
    scraped = samples(text)
    assert_metrics_match_report(scraped, report)
    assert value(scraped, "csaudit_last_audit_duration_seconds") == report["duration_seconds"] > 0
    assert "# TYPE csaudit_flows gauge" in text and "_total" not in text  # a report has no counters
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
