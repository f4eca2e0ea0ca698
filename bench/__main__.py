"""`bench/run` (or `python -m bench` from the repository root): print issue 8's results table.

Exit status: 0 when csaudit's results are correct (agree with nmap / with the drop rule), 1 when
they are not, 2 when a prerequisite is missing. Missed speed targets are printed, not failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time

from tabulate import tabulate

from bench import firewall, html, nmap, report, scale
from bench.loopback import LoopbackTargets
from bench.netns import DropNamespace, require_netns
from csaudit.model.probes import ProbeOptions
from csaudit.vantage.classify import connected
from csaudit.vantage.connect import tcp_connect_many
from csaudit.vantage.local import LocalVantage

DEFAULTS = ProbeOptions()  # the engine's defaults: what `csaudit run` probes with


def _raise_fd_limit(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return f"raised the open-file limit from {soft} to {new}"
    return ""


def _seconds(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f}"


def engine_vs_nmap(reps: int, addresses: int, ports: int, open_ports: int) -> tuple[list, bool, list[str]]:
    """Part 1: the local probe stage and nmap -sT on the same loopback targets, interleaved, `reps` times each."""
    notes = []
    with LoopbackTargets(addresses=addresses, ports=ports, open_ports=open_ports) as lab:
        targets = lab.targets
        vantage = LocalVantage()
        ours, theirs = [], []
        mismatches: dict[str, int] = collections.Counter()
        for _ in range(reps):  # bounded; alternate who goes first so neither always gets a warm cache
            for who in ("csaudit", "nmap") if len(ours) % 2 == 0 else ("nmap", "csaudit"):
                if who == "csaudit":
                    started = time.perf_counter()
                    results = vantage.probe(targets, DEFAULTS)
                    ours.append(time.perf_counter() - started)
                    states = {t: results[t].state for t in targets}
                else:
                    nmap_states, elapsed = nmap.scan(targets)
                    theirs.append(elapsed)
                lab.drain()
            mismatches["csaudit vs nmap"] += sum(states[t] != nmap_states[t] for t in targets)
            mismatches["csaudit vs truth"] += sum(states[t] != lab.expected[t] for t in targets)
            mismatches["nmap vs truth"] += sum(nmap_states[t] != lab.expected[t] for t in targets)
        n_open = sum(1 for s in lab.expected.values() if s == "open")
        correct = mismatches["csaudit vs nmap"] == 0 and mismatches["csaudit vs truth"] == 0
        agree = "yes" if correct else ", ".join(f"{k}: {v} differ" for k, v in mismatches.items() if v)
        if mismatches["nmap vs truth"]:
            notes.append(f"nmap itself disagreed with the listeners {mismatches['nmap vs truth']} times over {reps} runs")
        ratio_best, ratio_median = min(ours) / min(theirs), statistics.median(ours) / statistics.median(theirs)
        rows = [
            [f"engine vs nmap: {len(targets)} loopback targets ({n_open} open, {len(lab.listeners)} listeners on {addresses} addresses)",
             _seconds(ours), _seconds(theirs), f"{ratio_best:.2f}× / {ratio_median:.2f}× nmap", "≤ 2× nmap", "yes" if ratio_median <= 2 else "NO", agree],
        ]
    return rows, correct, notes


def filtered(count: int, concurrencies: list[int], timeout: float, with_nmap: bool) -> tuple[list, bool, list[str]]:
    """Part 2: `count` targets whose SYNs are dropped by nft inside a netns we create; all must end as timeout."""
    rows, notes, correct, missed_default = [], [], True, False
    require_netns()
    limit = timeout * 1.5
    with DropNamespace(range(40000, 40000 + count)) as ns:
        targets = ns.targets
        for concurrency in concurrencies:
            started = time.perf_counter()
            results = tcp_connect_many(targets, timeout, concurrency)
            elapsed = time.perf_counter() - started
            states = collections.Counter(connected(t, results[t], timeout).state for t in targets)
            ok = states["timeout"] == len(targets)
            correct &= ok
            waves = -(-len(targets) // concurrency)
            missed_default |= concurrency == DEFAULTS.concurrency and elapsed > limit
            label = "default" if concurrency == DEFAULTS.concurrency else "alternative"
            rows.append([
                f"filtered: {len(targets)} dropped SYNs in netns, timeout {timeout:g} s, concurrency {concurrency} ({label}, {waves} wave{'s' * (waves > 1)})",
                f"{elapsed:.3f}", "", f"{elapsed / timeout:.2f}× timeout", f"≤ {limit:g} s (1.5× timeout)",
                "yes" if elapsed <= limit else "NO", "yes" if ok else ", ".join(f"{k} {v}" for k, v in states.items()),
            ])
        if with_nmap:
            nmap_states, elapsed = nmap.scan(targets, time_limit=900)
            same = sum(nmap_states[t] == "timeout" for t in targets)
            rows.append([f"filtered: the same {len(targets)} targets, nmap -sT -Pn -n (defaults)", "", f"{elapsed:.3f}",
                         f"{elapsed / timeout:.1f}× timeout", "(reference)", "", f"{same}/{len(targets)} filtered"])
    if missed_default:
        notes.append(
            f"filtered target missed at the default concurrency {DEFAULTS.concurrency}: every dropped connect holds its slot for "
            f"the full timeout, so {count} targets need ceil({count}/{DEFAULTS.concurrency}) = {-(-count // DEFAULTS.concurrency)} "
            f"waves of {timeout:g} s; no engine change can beat that without more connects in flight. "
            f"Ending within 1.5× timeout needs concurrency ≥ {count} (see the rows above; needs ~{count + 64} open files).")
    return rows, correct, notes


# name (--only) -> the benchmark, given the options and the concurrencies: (rows, results correct, notes)
BENCHMARKS = {
    "nmap": lambda args, _: engine_vs_nmap(args.reps, args.addresses, args.ports, args.open_ports),
    "filtered": lambda args, concurrencies: filtered(args.filtered, concurrencies, args.timeout, args.nmap_filtered),
    "scale": lambda args, _: scale.rows(args.zones, args.hosts, args.routers),
    "report": lambda args, _: report.rows(args.zones, args.hosts, args.routers),
    "html": lambda args, _: html.rows(args.zones, args.hosts, args.routers),
    "firewall": lambda args, _: firewall.rows(args.hosts, args.firewall_rules),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="repetitions of engine vs nmap (default 5)")
    parser.add_argument("--addresses", type=int, default=10, help="loopback addresses (default 10)")
    parser.add_argument("--ports", type=int, default=500, help="ports per address (default 500 → 5,000 targets)")
    parser.add_argument("--open", type=int, default=50, dest="open_ports", help="listening ports per address (default 50 → 500 listeners)")
    parser.add_argument("--filtered", type=int, default=1000, help="dropped targets in the netns (default 1,000)")
    parser.add_argument("--concurrency", default=f"{DEFAULTS.concurrency},256,512",
                        help=f"concurrencies for the filtered benchmark, comma separated (default {DEFAULTS.concurrency},256,512)")
    parser.add_argument("--timeout", type=float, default=DEFAULTS.timeout, help=f"probe timeout for the filtered benchmark (default {DEFAULTS.timeout:g})")
    parser.add_argument("--nmap-filtered", action="store_true", help="also time nmap on the filtered targets (slow: minutes)")
    parser.add_argument("--only", choices=tuple(BENCHMARKS), help="run one benchmark")
    parser.add_argument("--firewall-rules", type=int, default=1000, help="firewall: rules of the ruleset (default 1,000)")
    parser.add_argument("--zones", type=int, default=10, help="discovery at scale, the terminal and HTML reports: zones (default 10)")
    parser.add_argument("--hosts", type=int, default=2000, help="discovery at scale and firewall: hosts per zone (default 2,000)")
    parser.add_argument("--routers", type=int, default=5000, help="discovery at scale, the terminal and HTML reports: routers per zone (default 5,000)")
    args = parser.parse_args(argv)
    if not 1 <= args.reps <= 50 or not 1 <= args.filtered <= 20000 or not 0.05 <= args.timeout <= 30:
        parser.error("reps 1-50, filtered 1-20000, timeout 0.05-30 s")
    concurrencies = list(dict.fromkeys(int(c) for c in args.concurrency.split(",") if c.strip()))

    def terminate(signum, frame):  # SIGTERM runs the same cleanup as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    notes = [n for n in [_raise_fd_limit(max(concurrencies + [DEFAULTS.concurrency]) + args.addresses * args.open_ports + 256)] if n]
    rows, correct = [], True
    try:
        nmap.require_nmap()
        for name, benchmark in BENCHMARKS.items():
            if args.only in (None, name):
                more, ok, extra = benchmark(args, concurrencies)
                rows += more
                correct &= ok
                notes += extra
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; namespaces and listeners removed", file=sys.stderr)
        return 130
    version = subprocess.run(["nmap", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    print(f"machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, {version}")
    print(f"csaudit defaults: timeout {DEFAULTS.timeout:g} s, concurrency {DEFAULTS.concurrency}; times are best / median seconds")
    print(tabulate(rows, headers=["benchmark", "csaudit (s)", "nmap (s)", "ratio", "target", "met", "results correct"], tablefmt="github"))
    for note in notes:
        print(f"note: {note}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
