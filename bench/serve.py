"""`python -m bench.serve` (root): `csaudit serve` over 100 audit cycles of the demo cloud.

The embedded demo cloud runs in this process; `csaudit serve --no-remote` audits it in a child
process every --interval seconds. This process scrapes the child's /metrics every --poll seconds,
times each scrape, and notes from the scrape itself whether an audit was running then. When the
audit counter reaches 1 and each later milestone, it reads the child's CPU time (/proc/PID/stat)
and resident memory (/proc/PID/status). Reported: CPU seconds per audit cycle (from cycle 1 to the
last, so start-up is left out), the resident memory at cycle 1 and at the last (growth beyond noise
would be a leak), and the /metrics response time while an audit runs against the same while idle
(the baseline, measured in the same run). Only 127.0.0.0/8 is ever touched. Exit status 0 when every
audit completed, every scrape parsed and the child stopped cleanly on SIGTERM, 1 otherwise,
2 when a prerequisite is missing. The timings are reported, never asserted.

ServeProcess is also what the tests use to drive `csaudit serve` as a real process.
"""

from __future__ import annotations

import argparse
import http.client
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families
from tabulate import tabulate

REPO = pathlib.Path(__file__).resolve().parents[1]
_SERVING = re.compile(r"serving http://127\.0\.0\.1:(\d+)/metrics")


class ServeProcess:
    """`csaudit serve --listen 127.0.0.1:0 ARGV...` as a child process, its stderr in `log_path`.
    A context manager: on exit it stops the child with SIGTERM (SIGKILL if that fails, bounded)."""

    def __init__(self, argv, cwd, log_path, env_vars=None, start_timeout: float = 30.0):
        self.argv = [sys.executable, "-m", "csaudit", "serve", "--listen", "127.0.0.1:0", *argv]
        self.cwd, self.log_path = str(cwd), pathlib.Path(log_path)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLOUDSTACK_")},
                    "HOME": str(cwd), "PYTHONPATH": str(REPO), **(env_vars or {})}
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def __enter__(self) -> ServeProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            found = _SERVING.search(self.log())
            if found:
                self.port = int(found.group(1))
                return self
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"csaudit serve did not start (exit {self.process.returncode}): {self.log()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, method: str = "GET", headers: dict | None = None, timeout: float = 10.0):
        """(status, headers, body) of one request; http.client, so no proxy setting of the machine applies."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """The samples of /metrics (see samples)."""
        status, _, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return samples(body.decode())

    def cpu_seconds(self) -> float:
        fields = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def rss_bytes(self) -> int:
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """The samples of an exposition: (name, frozenset of label pairs) -> value. A label with an empty
    value is left out: to Prometheus it is the same as no label, and it stores none."""
    return {series_key(sample.name, sample.labels): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def series_key(name: str, labels: dict) -> tuple[str, frozenset]:
    return name, frozenset((label, text) for label, text in labels.items() if text != "")


def value(scraped: dict, name: str, **labels) -> float | None:
    return scraped.get(series_key(name, labels))


def measure(cycles: int, interval: float, timeout: float, poll: float, workdir: pathlib.Path) -> tuple[dict, bool, list[str]]:
    from csaudit.lab import Lab, default_topology

    problems: list[str] = []
    milestones = sorted({1, *(m for m in (10, 50, *range(100, cycles, 100)) if m < cycles), cycles})
    at: dict[int, tuple[float, int]] = {}  # cycle -> (CPU s, RSS bytes) when the counter reached it
    latencies = {"idle": [], "audit running": []}
    scrapes = 0
    with Lab(default_topology()) as lab:
        ini = lab.write_ini(workdir / "lab.ini")
        argv = ["--interval", f"{interval:g}", "--timeout", f"{timeout:g}", "--no-remote"]
        with ServeProcess(argv, workdir, workdir / "serve.log", {"CLOUDSTACK_CONFIG": ini}) as serve:
            started = time.monotonic()
            limit = started + 30 + cycles * max(interval, 1.0) * 5  # bounded, however slow the machine
            audits, scraped = 0.0, {}
            while audits < cycles and time.monotonic() < limit and serve.process.poll() is None:
                began = time.perf_counter()
                status, _, body = serve.get("/metrics")
                elapsed = time.perf_counter() - began  # the response alone: reading the text is this side's work
                if status != 200:
                    problems.append(f"/metrics answered {status}")
                    break
                scraped = samples(body.decode())
                scrapes += 1
                running = value(scraped, "csaudit_audit_running")
                latencies["audit running" if running else "idle"].append(elapsed)
                audits = value(scraped, "csaudit_audits_total") or 0
                for milestone in milestones:
                    if audits >= milestone and milestone not in at:
                        at[milestone] = (serve.cpu_seconds(), serve.rss_bytes())
                time.sleep(poll)
            wall = time.monotonic() - started
            failures = value(scraped, "csaudit_audit_failures_total")
            flows = sum(v for (name, _), v in scraped.items() if name == "csaudit_flows")
            code = serve.stop()
    if audits < cycles:
        problems.append(f"only {audits:g} of {cycles} audits completed")
    if failures:
        problems.append(f"{failures:g} audits failed")
    if code != 0:
        problems.append(f"csaudit serve exited {code} on SIGTERM")
    if not latencies["idle"] or not latencies["audit running"]:
        problems.append("no scrape landed " + ("while idle" if not latencies["idle"] else "during an audit"))
    result = {"cycles": cycles, "flows": flows, "wall": wall, "scrapes": scrapes, "at": at, "latencies": latencies, "interval": interval,
              "timeout": timeout}
    return result, not problems, problems


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{1000 * statistics.median(ordered):.1f} / {1000 * p95:.1f} / {1000 * ordered[-1]:.1f} ms ({len(ordered)})"


def rows(result: dict) -> list[list[str]]:
    at, cycles = result["at"], result["cycles"]
    table = [[f"audit cycles (demo cloud, {result['flows']:g} flows)", f"{cycles} in {result['wall']:.1f} s, --interval {result['interval']:g}, "
              f"--timeout {result['timeout']:g}, {result['scrapes']} scrapes"]]
    if 1 in at and cycles in at and cycles > 1:
        cpu = (at[cycles][0] - at[1][0]) / (cycles - 1)
        table.append(["CPU per cycle (cycles 1 to last)", f"{cpu:.3f} s"])
    for milestone, (_, rss) in sorted(at.items()):
        table.append([f"resident memory at cycle {milestone}", f"{rss / 2**20:.1f} MB"])
    if 1 in at and cycles in at:
        table.append([f"growth, cycle 1 to {cycles}", f"{(at[cycles][1] - at[1][1]) / 2**20:+.1f} MB"])
    table.append(["/metrics while idle: median / p95 / max (n)", _ms(result["latencies"]["idle"])])
    table.append(["/metrics while an audit runs: median / p95 / max (n)", _ms(result["latencies"]["audit running"])])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100, help="audits to wait for (default 100)")
    parser.add_argument("--interval", type=float, default=4.0, help="serve --interval: seconds between audit starts (default 4: an audit of the demo takes ~2.7 s)")
    parser.add_argument("--timeout", type=float, default=0.5, help="serve --timeout: seconds a probe waits (default 0.5)")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between two scrapes (default 0.2)")
    parser.add_argument("--workdir", type=pathlib.Path, help="where the lab's ini and serve's log go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not 1 <= args.cycles <= 1000 or not 0 <= args.interval <= 60 or not 0.05 <= args.timeout <= 10 or not 0.01 <= args.poll <= 10:
        parser.error("cycles 1-1000, interval 0-60 s, timeout 0.05-10 s, poll 0.01-10 s")
    if os.geteuid() != 0:
        print("bench.serve: needs root (the demo cloud listens on ports below 1024 on 127.x)", file=sys.stderr)
        return 2
    import tempfile

    def terminate(signum, frame):  # SIGTERM runs the same cleanup as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        with tempfile.TemporaryDirectory(prefix="csaudit-bench-serve-") as scratch:
            result, correct, problems = measure(args.cycles, args.interval, args.timeout, args.poll, args.workdir or pathlib.Path(scratch))
    except KeyboardInterrupt:
        print("bench.serve: interrupted; the lab and csaudit serve stopped", file=sys.stderr)
        return 130
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(tabulate(rows(result), headers=["csaudit serve", "result"], tablefmt="github"))
    for problem in problems:
        print(f"problem: {problem}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
