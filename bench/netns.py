"""A network namespace that silently drops SYNs, made and removed by the benchmark.

Layout: netns `csaudit-bench-<pid>`, a veth pair whose host end stays in the root namespace,
a private /30 (10.213.x.y) that exists only on that pair, and an nft table inside the namespace
that drops TCP SYNs to a port range. Probes go from the root namespace to the inside address over
the veth; nothing leaves the machine. Everything is removed on exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

from csaudit.model.probes import ProbeTarget

PREFIX = "csaudit-bench-"
SUPERNET = ipaddress.ip_network("10.213.0.0/16")


def require_netns(what: str = "the netns benchmark") -> None:
    """Fail loudly (never skip) when a prerequisite is missing."""
    missing = [tool for tool in ("ip", "nft") if not shutil.which(tool)]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not installed (apt-get install iproute2 nftables); needed for {what}")
    if os.geteuid() != 0:
        raise RuntimeError(f"{what} needs root (ip netns add, nft); run it as root, as CI does")


def run(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def namespaces() -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Remove our namespaces whose process is gone (a run killed with SIGKILL), and the processes
    left inside them. Only ours: names are `<prefix><pid>` or `<prefix><pid>-<part>`, pid dead."""
    removed = []
    for name in namespaces():
        owner = name[len(prefix):].split("-")[0] if name.startswith(prefix) else ""
        if not owner.isdigit():
            continue
        pid = int(owner)
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            for inside in run("ip", "netns", "pids", name, check=False).stdout.split():
                run("kill", "-KILL", inside, check=False)
            run("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


class DropNamespace:
    """`with DropNamespace(ports=range(40000, 41000)) as ns:` then probe ns.targets (all SYNs dropped)."""

    def __init__(self, ports: range):
        if not (1 <= len(ports) <= 20000 and ports.start >= 1 and ports.stop <= 65536 and ports.step == 1):
            raise ValueError("ports must be a contiguous range of 1-20000 ports")
        pid = os.getpid()
        self.ports = ports
        self.name = f"{PREFIX}{pid}"
        self.host_if, self.inner_if = f"csb{pid % 10**8}h", f"csb{pid % 10**8}n"  # <= 15 characters
        subnet = list(SUPERNET.subnets(new_prefix=30))[pid % 16384]
        self.host_address, self.address = (str(h) for h in subnet.hosts())
        self.prefixlen = subnet.prefixlen
        self.created = False

    @property
    def targets(self) -> list[ProbeTarget]:
        return [ProbeTarget(self.address, port) for port in self.ports]

    def __enter__(self) -> DropNamespace:
        require_netns()
        remove_stale()
        if self.name in namespaces():
            raise RuntimeError(f"netns {self.name} already exists")
        in_use = run("ip", "-4", "-o", "addr", "show").stdout
        if f" {self.host_address}/" in in_use or f" {self.address}/" in in_use:
            raise RuntimeError(f"{self.host_address}/{self.prefixlen} is already in use on this machine")
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def _create(self) -> None:
        run("ip", "netns", "add", self.name)
        self.created = True
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if)
        run("ip", "link", "set", self.inner_if, "netns", self.name)
        run("ip", "addr", "add", f"{self.host_address}/{self.prefixlen}", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        run("ip", "-n", self.name, "addr", "add", f"{self.address}/{self.prefixlen}", "dev", self.inner_if)
        run("ip", "-n", self.name, "link", "set", self.inner_if, "up")
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        rules = (
            "table inet csaudit_bench {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    tcp dport {self.ports.start}-{self.ports.stop - 1} tcp flags & (syn | ack) == syn drop\n"
            "  }\n"
            "}\n"
        )
        run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=rules)
        # Safety: the inside address must be reached over our veth, never over a real route.
        route = run("ip", "-4", "-o", "route", "get", self.address).stdout
        if f" dev {self.host_if} " not in f"{route} ":
            raise RuntimeError(f"{self.address} would not go over {self.host_if} ({route.strip()}); refusing to probe")

    def remove(self) -> None:
        """Delete the namespace (its nft table and its veth end go with it) and our host veth end."""
        if self.created or self.name in namespaces():
            run("ip", "netns", "del", self.name, check=False)
        if run("ip", "link", "show", self.host_if, check=False).returncode == 0:
            run("ip", "link", "del", self.host_if, check=False)
        self.created = False

    def exists(self) -> bool:
        return self.name in namespaces() or run("ip", "link", "show", self.host_if, check=False).returncode == 0
