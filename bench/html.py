"""The HTML report and the diagrams at scale (issue 16, items 3 and 5): on a generated cloud, how
long writing the HTML report takes against writing the JSON report of the same run, how large the
page is and what of it is the flow table's rows, and how large the collapsed diagram is (its DOT,
and the SVG graphviz makes of it when `dot` is installed).

`python -m bench.html [ZONES HOSTS ROUTERS]` (default 10 2000 5000). One audit runs in-process
against the embedded cloud (local probes, as bench/scale.py); then each report is written to a
file, interleaved, `REPS` times, and the fastest of each is compared.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench.report import _timed_write
from csaudit.collect.config import ApiConfig
from csaudit.lab import Lab
from csaudit.lab.generate import generate_topology
from csaudit.model.environment import Environment
from csaudit.model.probes import ProbeOptions
from csaudit.pipeline import AuditRequest, run_audit

REPS = 2


def html_at_scale(zones: int, hosts: int, routers: int, timeout: float = 1.0) -> dict:
    with Lab(generate_topology(zones, hosts, routers)) as lab:
        request = AuditRequest(api_config=ApiConfig(endpoint=lab.endpoint, key=lab.key, secret=lab.secret),
                               probe=ProbeOptions(timeout=timeout))
        outcome = run_audit(request, Environment(stderr=io.StringIO()))
    times: dict[str, list[float]] = {"json": [], "html": [], "dot": []}
    with tempfile.TemporaryDirectory(prefix="csaudit-html-") as folder:
        path = {fmt: os.path.join(folder, f"report.{fmt}") for fmt in times}
        for rep in range(REPS):  # alternate who goes first so that neither always gets a warm cache
            for fmt in ("json", "html") if rep % 2 == 0 else ("html", "json"):
                times[fmt].append(_timed_write(outcome, fmt, path[fmt]))
        times["dot"].append(_timed_write(outcome, "dot", path["dot"]))
        size = {fmt: os.path.getsize(path[fmt]) for fmt in times}
        with open(path["html"], encoding="utf-8") as page:
            text = page.read()
        rows = len(re.search(r'<script type="application/json" id="flow-data">(.*?)</script>', text, re.S).group(1))
        svg = len(re.search(r"<svg .*?</svg>", text, re.S).group(0))
        dot_seconds, dot_svg = None, None
        if shutil.which("dot"):
            started = time.perf_counter()
            drawn = subprocess.run(["dot", "-Tsvg", path["dot"]], capture_output=True, timeout=600)
            dot_seconds = time.perf_counter() - started
            dot_svg = len(drawn.stdout) if drawn.returncode == 0 else None
    return {"flows": len(outcome.results), "json_seconds": min(times["json"]), "html_seconds": min(times["html"]),
            "dot_write_seconds": times["dot"][0], "size": size, "rows_bytes": rows, "svg_bytes": svg,
            "dot_seconds": dot_seconds, "dot_svg_bytes": dot_svg}


def rows(zones: int, hosts: int, routers: int) -> tuple[list, bool, list[str]]:
    result = html_at_scale(zones, hosts, routers)
    name = f"HTML report: {zones} zones, {hosts:,} hosts, {routers:,} routers/zone ({result['flows']:,} flows)"
    mb = 1e6
    table = [
        [name + ": written (s) vs the JSON report", f"{result['html_seconds']:.1f}", f"{result['json_seconds']:.1f}",
         f"{result['html_seconds'] / result['json_seconds']:.2f}×", "", "", ""],
        [name + ": size (MB) vs the JSON report", f"{result['size']['html'] / mb:.1f}", f"{result['size']['json'] / mb:.1f}",
         f"{result['size']['html'] / result['size']['json']:.2f}×", "", "", ""],
        [name + ": the flow rows / the diagram's SVG (MB)", f"{result['rows_bytes'] / mb:.1f} / {result['svg_bytes'] / mb:.3f}",
         "", f"{result['rows_bytes'] / result['flows']:.0f} bytes a flow", "", "", ""],
        [name + ": DOT (MB), written (s); dot -Tsvg (s), SVG (MB)",
         f"{result['size']['dot'] / mb:.3f}, {result['dot_write_seconds']:.1f}; "
         + (f"{result['dot_seconds']:.1f}, {result['dot_svg_bytes'] / mb:.2f}" if result["dot_svg_bytes"] else "no dot / failed"),
         "", "", "renders", "yes" if result["dot_svg_bytes"] else "NO", ""],
    ]
    return table, bool(result["dot_svg_bytes"]) or not shutil.which("dot"), []


if __name__ == "__main__":
    zones, hosts, routers = (int(a) for a in (sys.argv[1:4] if len(sys.argv) > 3 else (10, 2000, 5000)))
    from tabulate import tabulate

    table, ok, notes = rows(zones, hosts, routers)
    print(tabulate(table, headers=["benchmark", "csaudit", "JSON", "ratio", "target", "met", ""], tablefmt="github"))
    sys.exit(0 if ok else 1)
