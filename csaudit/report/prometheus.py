"""The report as Prometheus metrics: `--format prometheus` (for node_exporter's textfile collector)
and the audit part of `csaudit serve`'s /metrics.

Names follow Prometheus's naming guide: the `csaudit_` prefix, base units (seconds), `_total` only
on counters (there are none in a report: one report is one moment), a `_info` gauge for the build.
Every label takes its values from a bounded set, except those of `csaudit_flow_problem`: one series
per flow that does not pass, named by its flow, so that an alert can say which flow broke. Those
series are capped (MAX_PROBLEM_SERIES, failures kept first), so that a badly broken large cloud
cannot flood Prometheus; `csaudit_flow_problems_omitted` counts what the cap left out.
The metrics are computed from report flows as they stream by: memory holds the counts and the
problems kept, never the whole report.
"""

from __future__ import annotations

import datetime
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TextIO

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from csaudit.model.results import FINDING_KINDS, STATUSES
from csaudit.model.vocabulary import Failure, Gap, Status, VantageStatus

MAX_PROBLEM_SERIES = 1000  # csaudit_flow_problem series at most, whatever the size of the cloud

# The bounded `reason` label of csaudit_flow_problem: what went wrong (fail, error, waived) or what
# keeps the flow unverified. Derived from the flow's structured `failure` and `gap`, never from its text.
FAILURE_REASONS = {
    Failure.TIMEOUT: "timeout",
    Failure.REFUSED: "refused",
    Failure.EXPOSED: "exposed",
    Failure.WRONG_SERVICE: "wrong_service",
    Failure.SERVICE_PROBLEM: "service_problem",
    Failure.PROBE_ERROR: "probe_error",
}
GAP_REASONS = {
    Gap.VANTAGE_UNAVAILABLE: "unreachable_vantage",
    Gap.NO_VANTAGE: "no_vantage",
    Gap.NEEDS_OUTSIDE: "needs_outside",
    Gap.NO_ADDRESS: "no_address",
    Gap.NOT_JUDGEABLE: "not_judgeable",
    Gap.UNCONFIRMED: "unconfirmed",
    Gap.NOT_PROBED: "not_probed",
    Gap.ZONE_LISTING_FAILED: "zone_listing_failed",
}
OTHER_REASON = "other"  # a saved report from before flows carried their failure
REASONS = (*FAILURE_REASONS.values(), *GAP_REASONS.values(), OTHER_REASON)

PROBLEM_LABELS = ("flow", "rule", "zone", "source", "target", "port", "protocol", "expect", "vantage", "status", "reason")
# Which problems the cap keeps first: failures, probe errors, accepted failures, then unverified flows.
_PRIORITY = (Status.FAIL, Status.ERROR, Status.WAIVED, Status.UNVERIFIED)


def reason_label(flow: dict) -> str:
    """The bounded reason of a flow that does not pass (a report dict)."""
    if flow["status"] == Status.UNVERIFIED:
        return GAP_REASONS.get(flow.get("gap"), OTHER_REASON)
    return FAILURE_REASONS.get(flow.get("failure"), OTHER_REASON)


def build_info(version: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily("csaudit_build_info", "The csaudit version that made these metrics (always 1).", labels=["version"])
    family.add_metric([version], 1)
    return family


def audit_families(head: dict, flows: Iterable[dict], max_problems: int = MAX_PROBLEM_SERIES) -> list[Metric]:
    """The metrics of one audit: `head` is the report without its flows (AuditOutcome.head()), `flows`
    its report dicts, read once."""
    counts: Counter[tuple[str, str, str]] = Counter()
    gaps: Counter[str] = Counter()
    kept: dict[str, list[list[str]]] = {status: [] for status in _PRIORITY}
    problems = 0
    for flow in flows:
        status = flow["status"]
        counts[(flow["rule"], flow["zone"] or "", status)] += 1
        if status == Status.PASS:
            continue
        if status == Status.UNVERIFIED and flow.get("gap"):
            gaps[flow["gap"]] += 1
        problems += 1
        if len(kept[status]) < max_problems:  # enough of each status to fill the cap in priority order
            kept[status].append(_problem_labels(flow))
    shown = [labels for status in _PRIORITY for labels in kept[status]][:max_problems]
    return [
        *_run_families(head),
        _flow_counts(counts),
        _gauge("csaudit_unverified_flows", "Flows of the last audit left unverified, by what keeps them so (gap).",
               ["gap"], [([gap], gaps[gap]) for gap in Gap]),
        *_vantage_families(head.get("vantages") or []),
        _gauge("csaudit_findings", "Objects whose API state and network disagree, or whose CloudStack checks fail, in the last audit, by kind.",
               ["kind"], _finding_counts(head.get("findings") or [])),
        _gauge("csaudit_flow_problem", "A flow of the last audit that does not pass (always 1): its status and a bounded reason.",
               list(PROBLEM_LABELS), [(labels, 1) for labels in shown]),
        _gauge("csaudit_flow_problems_omitted", f"Flows that do not pass but have no csaudit_flow_problem series "
               f"(at most {max_problems} are exported).", [], [([], problems - len(shown))]),
    ]


def _run_families(head: dict) -> list[Metric]:
    finished = datetime.datetime.fromisoformat(head["generated_at"]).timestamp()
    families = [_gauge("csaudit_last_audit_timestamp_seconds", "When the last audit finished (Unix time).", [], [([], finished)])]
    if head.get("duration_seconds") is not None:
        families.append(_gauge("csaudit_last_audit_duration_seconds", "How long the last audit took, API to verdicts.",
                               [], [([], head["duration_seconds"])]))
    return families


def _flow_counts(counts: Counter) -> GaugeMetricFamily:
    """Every status of every (rule, zone) that has flows, zeros included: a status that comes back reads 0, not absent."""
    pairs = sorted({(rule, zone) for rule, zone, _ in counts})
    samples = [([rule, zone, status], counts[(rule, zone, status)]) for rule, zone in pairs for status in STATUSES]
    return _gauge("csaudit_flows", "Flows of the last audit by rule, zone (empty: the management tier) and status.",
                  ["rule", "zone", "status"], samples)


def _vantage_families(vantages: list[dict]) -> list[Metric]:
    return [
        _gauge("csaudit_vantage_up", "Whether probes could run from this vantage in the last audit (1) or not (0).",
               ["vantage"], [([v["name"]], 1 if v["state"] == VantageStatus.OK else 0) for v in vantages]),
        _gauge("csaudit_vantage_probes", "Probes that ran from this vantage in the last audit.",
               ["vantage"], [([v["name"]], v["probes"]) for v in vantages]),
    ]


def _finding_counts(findings: list[dict]) -> list[tuple[list[str], int]]:
    kinds = Counter(f["kind"] for f in findings)
    return [([kind], kinds[kind]) for kind in dict.fromkeys((*FINDING_KINDS, *sorted(kinds)))]


def _problem_labels(flow: dict) -> list[str]:
    port = f"{flow['port']}-{flow['port_end']}" if flow.get("port_end") else str(flow["port"])
    return [flow["id"], flow["rule"], flow["zone"] or "", flow["source"]["name"], flow["target"]["name"], port,
            flow["protocol"], flow["expect"], flow["vantage"] or "", flow["status"], reason_label(flow)]


def _gauge(name: str, documentation: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


class Families:
    """A fixed set of metric families, in the shape prometheus_client's exposition reads (a Collector)."""

    def __init__(self, families: Iterable[Metric]):
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def write_prometheus(head: dict, flows: Iterable[dict], out: TextIO) -> None:
    """The Prometheus text exposition of a report: the version that made it, then its audit metrics."""
    families = Families([build_info(head["tool_version"]), *audit_families(head, flows)])
    out.write(generate_latest(families).decode("utf-8"))


def render_prometheus(document: dict) -> str:
    buffer = io.StringIO()
    write_prometheus({k: v for k, v in document.items() if k != "flows"}, document["flows"], buffer)
    return buffer.getvalue()
