"""Issue 8 part 3: discovery at scale against the embedded cloud (`csaudit lab generate`).

The lab (API only, no service listeners) serves a generated cloud in this process; `csaudit run`
audits every zone in a child process with local probes (its targets do not listen: refused at
once). Reported: API requests the simulator counted against the pages the listings need at
pagesize 500, wall time, and the child's peak RSS.
"""

from __future__ import annotations

import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

from csaudit.collect.api import CloudStackApi
from csaudit.collect.config import ApiConfig
from csaudit.lab import Lab, generate_topology

# Every listing csaudit makes: (command, list key, extra parameters); per-zone ones are marked.
LISTINGS = (
    ("listZones", {}), ("listPods", {}), ("listClusters", {}), ("listHosts", {}), ("listSystemVms", {}),
    ("listRouters", {"listall": True}), ("listRouters", {"listall": True, "projectid": -1}),
    ("listManagementServers", {}), ("listImageStores", {}), ("listStoragePools", {}), ("listConfigurations", {}),
    ("listTemplates", {"templatefilter": "all", "listall": True}), ("listIsos", {"isofilter": "all", "listall": True}),
    ("listPhysicalNetworks", {}), ("listLdapConfigurations", {}),
)
PER_ZONE = (("listConfigurations", {}),)
SINGLE_CALLS = ("listCapabilities", "listDbMetrics", "listUsageServerMetrics")


def pages_needed(api: CloudStackApi, zone_ids: list[str], vmware_zone_ids: list[str]) -> int:
    """The pages a perfect client needs at pagesize 500: every listing once, nothing per object."""

    def pages(command: str, **params) -> int:
        count = api.call(command, page=1, pagesize=1, **params).get("count", 0)
        return max(1, math.ceil(count / 500))

    total = len(SINGLE_CALLS) + sum(pages(command, **params) for command, params in LISTINGS)
    total += sum(pages(command, zoneid=z, **params) for z in zone_ids for command, params in PER_ZONE)
    total += sum(pages("listVmwareDcs", zoneid=z) for z in vmware_zone_ids)
    return total


def discovery_at_scale(zones: int, hosts: int, routers: int, timeout: float = 1.0) -> dict:
    topology = generate_topology(zones, hosts, routers)
    with Lab(topology) as lab, tempfile.TemporaryDirectory(prefix="csaudit-scale-") as folder:
        ini = lab.write_ini(os.path.join(folder, "cloudstack.ini"))
        env = {**os.environ, "CLOUDSTACK_CONFIG": ini, "HOME": folder,
               "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
        env = {k: v for k, v in env.items() if k not in ("CLOUDSTACK_ENDPOINT", "CLOUDSTACK_KEY", "CLOUDSTACK_SECRET")}
        before = sum(lab.requests.values())
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "csaudit", "run", "--no-remote", "--format", "json",
                                "--output", os.path.join(folder, "report.json"), "--timeout", str(timeout)],
                               env=env, capture_output=True, text=True, timeout=1800)
        elapsed = time.perf_counter() - started
        requests = sum(lab.requests.values()) - before
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        flows = next((line.split()[1] for line in child.stderr.splitlines() if re.match(r"csaudit: \d+ flows: ", line)), "?")
        api = CloudStackApi(ApiConfig(lab.endpoint, key=lab.key, secret=lab.secret))
        zone_rows = api.list_all("listZones", "zone")
        vmware = {c.get("zoneid") for c in api.list_all("listClusters", "cluster") if c.get("hypervisortype") == "VMware"}
        needed = pages_needed(api, [z["id"] for z in zone_rows], [z["id"] for z in zone_rows if z["id"] in vmware])
        per_command = dict(lab.requests)
    return {"exit": child.returncode, "stderr": child.stderr[-2000:], "seconds": elapsed, "requests": requests,
            "pages_needed": needed, "peak_rss_mb": peak_rss_mb, "flows": flows, "per_command": per_command}


def rows(zones: int, hosts: int, routers: int) -> tuple[list, bool, list[str]]:
    result = discovery_at_scale(zones, hosts, routers)
    ok = result["exit"] in (0, 1)
    name = f"discovery at scale: {zones} zones, {hosts:,} hosts, {routers:,} routers/zone ({result['flows']} flows)"
    table = [
        [name + ": API requests", str(result["requests"]), "", f"{result['pages_needed']} pages needed",
         f"≤ {result['pages_needed'] + 15}", "yes" if result["requests"] <= result["pages_needed"] + 15 else "NO", "yes" if ok else "NO"],
        [name + ": wall time", f"{result['seconds']:.1f}", "", "", "< 30 s", "yes" if result["seconds"] < 30 else "NO", ""],
        [name + ": peak RSS (MB)", f"{result['peak_rss_mb']:.0f}", "", "", "< 300 MB", "yes" if result["peak_rss_mb"] < 300 else "NO", ""],
    ]
    notes = [] if ok else [f"csaudit run exited {result['exit']}: {result['stderr']}"]
    return table, ok, notes


if __name__ == "__main__":
    zones, hosts, routers = (int(a) for a in (sys.argv[1:4] if len(sys.argv) > 3 else (10, 2000, 5000)))
    from tabulate import tabulate

    table, ok, notes = rows(zones, hosts, routers)
    print(tabulate(table, headers=["benchmark", "csaudit", "", "ratio", "target", "met", "results correct"], tablefmt="github"))
    for note in notes:
        print(f"note: {note}")
    sys.exit(0 if ok else 1)
