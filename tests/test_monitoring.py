"""The repository's monitoring files (monitoring/): the alert rules pass `promtool check rules` and their
unit tests (`promtool test rules`), and they and the Grafana dashboard name only metrics csaudit
exports. tests/test_prometheus.py loads the same rules and runs the dashboard's queries in a real Prometheus."""

import json
import re
import subprocess

import pytest
import yaml

from bench.serve import samples
from csaudit.cli.exporter import AuditRecord
from csaudit.report.formats import render_report
from tests.conftest import REPO, find_program
from tests.golden_report import golden_document

MONITORING = REPO / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "csaudit-alerts.yml"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def exported_metric_names() -> set[str]:
    """What csaudit exports: a report's metrics (every family, from the golden report) and serve's own."""
    record = AuditRecord(interval=300)
    record.failed("an attempt, so that the API's state is exported too", api_down=True)
    vantage = {"name": "ssh:host/kvm01", "state": "unreachable", "probes": 0, "reason": "refused", "object": None, "engine": None}
    report = {**golden_document(), "vantages": [vantage], "duration_seconds": 1.5}  # the golden report has every kind of flow, not these
    exposition = render_report("prometheus", report) + record.exposition(None)[0].decode()
    return {name for name, _ in samples(exposition)}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers, ranges,
    grouping clauses, function names, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        if following != "(" and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard, and its variable's query."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
            assert found, variable["definition"]
            queries.append((f"variable {variable['name']}", found.group(1)))
    return queries


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_promql_reader_finds_metric_names_only():
    expr = 'sum by (zone) (rate(csaudit_flows{status="fail", zone=~"a|b"}[5m])) > on (job) group_left() 3 * up or vector(0)'
    assert metric_names(expr) == {"csaudit_flows", "up"}


def test_every_dashboard_query_reads_only_metrics_csaudit_exports():
    exported = exported_metric_names()
    assert {"csaudit_flows", "csaudit_flow_problem", "csaudit_api_up", "csaudit_audits_total", "csaudit_build_info"} <= exported
    queries = dashboard_queries()
    assert len(queries) >= 12
    for title, expr in queries:
        names = metric_names(expr)
        assert names and names <= exported, (title, names - exported)


def test_the_dashboard_is_a_grafana_dashboard_with_a_datasource_and_an_instance_choice():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"] and target["refId"], panel["title"]


def test_every_alert_rule_reads_only_metrics_csaudit_exports_and_says_how_bad():
    exported = exported_metric_names()
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {"CsauditRequiredFlowDown", "CsauditDenyRuleExposed", "CsauditVantageUnreachable",
                                                 "CsauditApiDown", "CsauditAuditFailing", "CsauditAuditStale"}
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names and names <= exported, (rule["alert"], names - exported)
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"]


@pytest.mark.programs("promtool")
def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    check = subprocess.run([find_program("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "SUCCESS: 6 rules found" in check.stdout, check.stdout + check.stderr
    tests = subprocess.run([find_program("promtool"), "test", "rules", "csaudit-alerts.test.yml"], cwd=MONITORING,
                           capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr
