"""`csaudit serve` scraped by a real Prometheus (Debian's `prometheus`, started here on 127.0.0.1 with a
configuration and a data folder of its own) while it audits the embedded cloud (real API server and
listeners on 127.x): what Prometheus stores equals the JSON report; the repository's alert rules fire
for the cloud's planted faults, for a fault planted in the running cloud one interval later, and for
the API going down; every query of the Grafana dashboard answers; promtool accepts the exposition.

The rules are the repository's own, with every `for` set to 0s so that an alert fires at its first
evaluation instead of after minutes (their timing is what `promtool test rules` checks, in
tests/test_monitoring.py)."""

import http.client
import json
import re
import subprocess
import time
import urllib.parse

import pytest

from bench.serve import ServeProcess, samples, series_key, value
from csaudit.lab import Lab, default_topology
from csaudit.lab.schema import FaultSpec
from tests.conftest import REPO, find_program, free_port
from tests.report.test_prometheus import assert_metrics_match_report
from tests.test_monitoring import dashboard_queries

pytestmark = [pytest.mark.root, pytest.mark.programs("prometheus", "promtool")]

INTERVAL = 2.0  # seconds between audits: the demo cloud's audit takes about 1.5 s at --timeout 0.5
RULES = REPO / "monitoring" / "csaudit-alerts.yml"


class Prometheus:
    """A Prometheus server of the test's own on 127.0.0.1, scraping `target` every second."""

    def __init__(self, folder, target: str, rules_text: str):
        self.folder, self.port = folder, free_port()
        (folder / "rules.yml").write_text(rules_text)
        (folder / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [rules.yml]\n"
            f"scrape_configs:\n  - job_name: csaudit\n    static_configs:\n      - targets: ['{target}']\n")
        self.process = None

    def __enter__(self):
        argv = [find_program("prometheus"), f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        with open(self.folder / "prometheus.log", "wb") as log:
            self.process = subprocess.Popen(argv, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        ready = wait_for(lambda: self._ready(), 30)
        if not ready:
            self.__exit__()
            raise AssertionError(f"prometheus did not get ready: {self.log()[-2000:]}")
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return (self.folder / "prometheus.log").read_text(errors="replace")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited {self.process.returncode}: {self.log()[-2000:]}")
        try:
            return self.get("/-/ready")[0] == 200
        except OSError:
            return False

    def get(self, path: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def api(self, path: str, **query):
        status, body = self.get(f"/api/v1/{path}?{urllib.parse.urlencode(query)}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", (path, query, answer)
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def stored(self) -> dict:
        """Every csaudit series at its latest scrape, keyed as bench.serve.samples keys an exposition."""
        return {series_key(r["metric"].pop("__name__"), _without_target(r["metric"])): float(r["value"][1])
                for r in self.query('{__name__=~"csaudit_.+"}')}

    def firing(self, alertname: str) -> list[dict]:
        return [a["labels"] for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def _without_target(labels: dict) -> dict:
    return {k: v for k, v in labels.items() if k not in ("job", "instance")}


def wait_for(condition, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


def _epoch(iso: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(iso).timestamp()


def test_a_real_prometheus_scrapes_serve_and_the_alert_rules_fire_for_the_broken_flows(tmp_path):
    rules = re.sub(r"(?m)^(\s+for:) \S+$", r"\1 0s", RULES.read_text())
    changed = [(a, b) for a, b in zip(RULES.read_text().splitlines(), rules.splitlines(), strict=True) if a != b]
    assert len(changed) == 4 and all(b.strip() == "for: 0s" for _, b in changed)  # only the `for` durations differ
    with Lab(default_topology()) as lab:
        ini = lab.write_ini(tmp_path / "lab.ini")
        argv = ["--interval", f"{INTERVAL:g}", "--timeout", "0.5", "--no-remote"]
        with ServeProcess(argv, tmp_path, tmp_path / "serve.log", {"CLOUDSTACK_CONFIG": ini}) as serve, \
                Prometheus(tmp_path, f"127.0.0.1:{serve.port}", rules) as prometheus:
            assert wait_for(lambda: prometheus.query("csaudit_audits_total >= 1"), 30), serve.log() + prometheus.log()
            health = wait_for(lambda: {r["name"]: r["health"] for g in prometheus.api("rules")["groups"] for r in g["rules"]
                                       if r["health"] != "unknown"}, 5)  # "unknown" until their first evaluation
            assert health == {"CsauditRequiredFlowDown": "ok", "CsauditDenyRuleExposed": "ok", "CsauditVantageUnreachable": "ok",
                              "CsauditApiDown": "ok", "CsauditAuditFailing": "ok", "CsauditAuditStale": "ok"}

            # What Prometheus stored equals the report of the same audit (the one whose time it holds).
            for _ in range(10):
                report = json.loads(serve.get("/report.json")[2])
                stored = prometheus.stored()
                if value(stored, "csaudit_last_audit_timestamp_seconds") == _epoch(report["generated_at"]):
                    break
                time.sleep(0.5)
            assert value(stored, "csaudit_last_audit_timestamp_seconds") == _epoch(report["generated_at"])
            assert_metrics_match_report(stored, report)
            assert report["summary"]["fail"] == sum(v for (name, labels), v in stored.items()
                                                    if name == "csaudit_flows" and ("status", "fail") in labels) > 0
            assert value(stored, "csaudit_api_up") == value(stored, "csaudit_last_audit_success") == 1
            assert value(stored, "csaudit_last_audit_duration_seconds") == report["duration_seconds"]
            [up] = prometheus.query('up{job="csaudit"}')
            assert up["value"][1] == "1"

            # The cloud's planted faults, as alerts that name the broken flow.
            assert wait_for(lambda: prometheus.firing("CsauditDenyRuleExposed"), 10)
            exposed = {a["flow"]: a for a in prometheus.firing("CsauditDenyRuleExposed")}
            # the exposed integration API, from every place D01 is probed from (this machine, the peer MS, the hosts)
            assert set(exposed) == {f["id"] for f in report["flows"] if f["status"] == "fail" and f["expect"] == "closed"}
            assert {"D01:this machine->ms1:8096/tcp", "D01:ms2->ms1:8096/tcp", "D01:kvm01->ms1:8096/tcp"} <= set(exposed)
            assert exposed["D01:this machine->ms1:8096/tcp"]["reason"] == "exposed"
            down = {a["flow"]: a for a in prometheus.firing("CsauditRequiredFlowDown")}
            assert down["F12:ms1->xen01:443/tcp"]["reason"] == "timeout"  # xen01 drops SYNs to 443
            assert down["F04:ms1->database:3306/tcp"]["reason"] == "wrong_service"  # the database answers HTTP
            assert down["F11:ms1->kvm02:22/tcp"]["reason"] == "refused"  # kvm02 listens nowhere
            assert set(down) == {f["id"] for f in report["flows"] if f["status"] == "fail" and f["expect"] == "open"}
            agent = "F08:kvm01->ms1:8250/tcp"
            assert agent not in down
            for quiet in ("CsauditApiDown", "CsauditAuditFailing", "CsauditAuditStale", "CsauditVantageUnreachable"):
                assert prometheus.firing(quiet) == [], quiet

            # A fault planted in the running cloud: ms1 stops listening on 8250. One interval later, its alert.
            lab.plant(FaultSpec("missing-listener", ("ms1",), "the agent port of ms1 stops listening", port=8250))
            planted = time.monotonic()
            fired = wait_for(lambda: [a for a in prometheus.firing("CsauditRequiredFlowDown") if a["flow"] == agent], 4 * INTERVAL + 10)
            assert fired, serve.log()[-3000:]
            waited = time.monotonic() - planted
            assert (fired[0]["reason"], fired[0]["rule"], fired[0]["source"], fired[0]["target"], fired[0]["port"]) == \
                ("refused", "F08", "kvm01", "ms1", "8250")
            assert fired[0]["severity"] == "critical" and fired[0]["zone"] == "zone-east"
            after = json.loads(serve.get("/report.json")[2])
            assert next(f for f in after["flows"] if f["id"] == agent)["failure"] == "refused"

            # Every query of the Grafana dashboard answers, with data, against what this server stored (by now, several scrapes).
            for title, expr in dashboard_queries():
                assert prometheus.query(expr.replace("$instance", ".*")), title
            assert f"127.0.0.1:{serve.port}" in prometheus.api("label/instance/values", **{"match[]": "csaudit_build_info"})

            # The exposition as Prometheus's own linter reads it.
            text = serve.get("/metrics")[2].decode()
            check = subprocess.run([find_program("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
            assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr
            assert samples(text)  # and csaudit's own reading of it

            # The API goes down: the audits fail, the server stays up, the last completed audit stays served.
            lab.stop()
            assert wait_for(lambda: prometheus.firing("CsauditApiDown") and prometheus.firing("CsauditAuditFailing"), 4 * INTERVAL + 10)
            assert prometheus.query('csaudit_flows{rule="F08", status="fail"} > 0')  # the last completed audit's, planted fault included
            assert prometheus.query("increase(csaudit_audit_failures_total[1m]) > 0")
            assert serve.stop() == 0
        print(f"alert for the planted fault fired {waited:.1f} s after it was planted (--interval {INTERVAL:g})")
    log = serve.log()
    assert "Traceback" not in log and "csaudit: audit failed: " in log and "csaudit: stopped" in log
