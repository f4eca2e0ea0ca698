"""The terminal report at scale (issue 16): on a generated cloud, how long writing the grouped table
takes against writing the JSON report of the same run, how many lines it has and how wide they are.

`python -m bench.report [ZONES HOSTS ROUTERS]` (default 10 2000 5000). One audit runs in-process
against the embedded cloud (local probes, as bench/scale.py); then each report is written to a
file, interleaved, `REPS` times, and the fastest of each is compared. The grouping itself happens
while the run appends its results (csaudit/report/resultlog.py), so its cost is measured apart:
reading the run's flows back and grouping them, minus reading them back alone.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time

from csaudit.collect.config import ApiConfig
from csaudit.lab import Lab
from csaudit.lab.generate import generate_topology
from csaudit.model.environment import Environment
from csaudit.model.probes import ProbeOptions
from csaudit.pipeline import AuditRequest, run_audit
from csaudit.report.groups import FlowGrouper

REPS = 3


def _timed_write(outcome, fmt: str, path: str) -> float:
    with open(path, "w", encoding="utf-8") as out:
        started = time.perf_counter()
        outcome.write(fmt, out)
        return time.perf_counter() - started


def report_at_scale(zones: int, hosts: int, routers: int, timeout: float = 1.0) -> dict:
    with Lab(generate_topology(zones, hosts, routers)) as lab:
        request = AuditRequest(api_config=ApiConfig(endpoint=lab.endpoint, key=lab.key, secret=lab.secret),
                               probe=ProbeOptions(timeout=timeout))
        started = time.perf_counter()
        outcome = run_audit(request, Environment(stderr=io.StringIO()))
        run_seconds = time.perf_counter() - started
    times: dict[str, list[float]] = {"json": [], "table": []}
    with tempfile.TemporaryDirectory(prefix="csaudit-report-") as folder:
        for rep in range(REPS):  # alternate who goes first so that neither always gets a warm cache
            for fmt in ("json", "table") if rep % 2 == 0 else ("table", "json"):
                times[fmt].append(_timed_write(outcome, fmt, os.path.join(folder, f"report.{fmt}")))
        with open(os.path.join(folder, "report.table"), encoding="utf-8") as table:
            lines = table.read().splitlines()
    started = time.perf_counter()
    for _ in outcome.results:
        pass
    read_back = time.perf_counter() - started
    started = time.perf_counter()
    grouper = FlowGrouper()
    for flow in outcome.results:
        grouper.add(flow)
    groups = len(grouper.groups())
    grouping = time.perf_counter() - started - read_back
    return {"flows": len(outcome.results), "run_seconds": run_seconds, "json_seconds": min(times["json"]),
            "table_seconds": min(times["table"]), "lines": len(lines), "widest": max(map(len, lines)), "groups": groups,
            "grouping_seconds": max(grouping, 0.0)}


def rows(zones: int, hosts: int, routers: int) -> tuple[list, bool, list[str]]:
    result = report_at_scale(zones, hosts, routers)
    name = f"terminal report: {zones} zones, {hosts:,} hosts, {routers:,} routers/zone ({result['flows']:,} flows)"
    ratio = result["table_seconds"] / result["json_seconds"]
    table = [
        [name + ": written (s) vs the JSON report", f"{result['table_seconds']:.4f}", f"{result['json_seconds']:.2f}",
         f"{ratio:.4f}×", "≤ 1.1× JSON", "yes" if ratio <= 1.1 else "NO", ""],
        [name + ": lines (widest)", f"{result['lines']} ({result['widest']})", "", f"{result['groups']} groups", "< 300 (≤ 120)",
         "yes" if result["lines"] < 300 and result["widest"] <= 120 else "NO", ""],
        [name + ": grouping during the run (s)", f"{result['grouping_seconds']:.2f}", f"{result['run_seconds']:.1f}",
         f"{result['grouping_seconds'] / result['run_seconds']:.3f} of the run", "", "", ""],
    ]
    return table, True, []


if __name__ == "__main__":
    zones, hosts, routers = (int(a) for a in (sys.argv[1:4] if len(sys.argv) > 3 else (10, 2000, 5000)))
    from tabulate import tabulate

    table, ok, notes = rows(zones, hosts, routers)
    print(tabulate(table, headers=["benchmark", "csaudit", "JSON / run", "ratio", "target", "met", ""], tablefmt="github"))
    sys.exit(0 if ok else 1)
