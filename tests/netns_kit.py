"""What the namespace clouds of the tests are built from (tests/netns_lab.py, tests/netns_cloud.py).

Namespaces named `<prefix><pid>-<part>` (bench.netns.remove_stale removes those of a killed run), veth
links and bridges between them, nft rulesets loaded inside them, the lab's protocol servers run inside them
(tests/netns_listeners.py), real sshds, and the private mount namespaces that give a node its own /root and
files under /var without writing to this machine's. Every command is bounded (bench.netns.run: 30 s).
"""

from __future__ import annotations

import os
import pathlib
import select
import shlex
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench/ is not an installed package

from bench.netns import namespaces, remove_stale, run  # noqa: E402
from csaudit.lab import sshd  # noqa: E402

READY_WAIT = 15.0  # seconds the listeners may take to bind (a Python start-up, on a busy machine)
BASH_ONLY_TOOLS = ("bash", "timeout", "date", "head", "cat", "base64", "wc")  # what the bash probe engine uses


class Namespaces:
    """Network namespaces of this process, one per part: ns["ms1"] is `<prefix><pid>-ms1`."""

    def __init__(self, prefix: str, parts):
        self.prefix = prefix
        self.names = {part: f"{prefix}{os.getpid()}-{part}" for part in parts}

    def __getitem__(self, part: str) -> str:
        return self.names[part]

    def create(self) -> None:
        remove_stale(self.prefix)
        for name in self.names.values():
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")

    def remove(self) -> None:
        """Kill what still runs inside, then delete the namespace (its links and nft tables go with it)."""
        present = namespaces()
        for name in self.names.values():
            if name in present:
                for inside in run("ip", "netns", "pids", name, check=False).stdout.split():
                    run("kill", "-KILL", inside, check=False)
                run("ip", "netns", "del", name, check=False)

    def leftovers(self) -> list[str]:
        present = namespaces()
        return [name for name in self.names.values() if name in present]

    def foreign_links(self) -> list[str]:
        """veth ends whose peer is outside these namespaces (e.g. in this machine's own): the traffic of
        a cloud that must stay inside would have a way out."""
        mine = set(self.names.values())
        foreign = []
        for name in self.names.values():
            for line in run("ip", "-n", name, "-o", "link", "show", "type", "veth").stdout.splitlines():
                words = line.split()
                peer = words[words.index("link-netns") + 1] if "link-netns" in words else None
                if peer not in mine:
                    foreign.append(f"{name}: {line.split(':')[1].strip()}")
        return foreign


def exec_in(namespace: str) -> list[str]:
    return ["ip", "netns", "exec", namespace]


def veth(namespace_a: str, name_a: str, namespace_b: str, name_b: str) -> None:
    """A veth pair made inside namespace_a with its peer moved to namespace_b: neither end ever shows in
    this machine's own namespace."""
    run("ip", "-n", namespace_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", namespace_b)


def bridge(namespace: str, name: str, address: str | None = None) -> None:
    run("ip", "-n", namespace, "link", "add", name, "type", "bridge")
    if address:
        run("ip", "-n", namespace, "addr", "add", address, "dev", name)
    run("ip", "-n", namespace, "link", "set", name, "up")


def link_up(namespace: str, name: str, *addresses: str, master: str | None = None) -> None:
    """Addresses (CIDR) on a link, optionally enslaved to a bridge, then up."""
    for address in addresses:
        run("ip", "-n", namespace, "addr", "add", address, "dev", name)
    if master:
        run("ip", "-n", namespace, "link", "set", name, "master", master)
    run("ip", "-n", namespace, "link", "set", name, "up")


def route(namespace: str, *spec: str) -> None:
    run("ip", "-n", namespace, "route", "add", *spec)


def load_nft(namespace: str, ruleset: str) -> None:
    run(*exec_in(namespace), "nft", "-f", "-", stdin=ruleset)


def input_filter(table: str, rules: str, policy: str = "accept") -> str:
    """An nft ruleset with one input chain."""
    return (f"table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy {policy};\n"
            f"{rules}  }}\n}}\n")


class ServedPorts:
    """The lab's protocol servers (tests/netns_listeners.py) in every namespace that has some, served by one
    process: `serve` says what, `start` starts it and waits until every socket listens, `stop` closes its stdin."""

    def __init__(self):
        self._argv: list[str] = []
        self._process: subprocess.Popen | None = None

    def serve(self, namespace: str, *specs: str) -> None:
        self._argv += ["--netns", namespace, *specs]

    def start(self, timeout: float = READY_WAIT) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "tests.netns_listeners", *self._argv],
                                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready or self._process.stdout.readline().strip() != "ready":
            why = self._process.stderr.read() if self._process.poll() is not None else f"no answer within {timeout:g} s"
            raise RuntimeError(f"the listeners did not start: {why}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process.stdout.close()
        self._process.stderr.close()
        self._process = None


def private_mounts(root: str | None = None, var_upper: pathlib.Path | None = None) -> list[str]:
    """A command prefix that runs the rest in a private mount namespace where `root` is seen as /root and,
    with `var_upper`, /var is an overlay whose writes (and the files put there first) land in var_upper.
    Nothing of it shows outside; this machine's /root and /var are never written."""
    steps = []
    if root:
        steps.append(f"mount --bind {shlex.quote(root)} /root")
    if var_upper is not None:
        work = var_upper.with_name(f"{var_upper.name}.work")
        work.mkdir(exist_ok=True)
        steps.append(f"mount -t overlay overlay -o lowerdir=/var,upperdir={shlex.quote(str(var_upper))},"
                     f"workdir={shlex.quote(str(work))} /var")
    if not steps:
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(steps) + ' && exec "$@"', "sh"]


def bash_only_bin(folder: pathlib.Path) -> str:
    """A PATH directory with bash and the coreutils the bash engine needs, and no python3."""
    folder.mkdir()
    for tool in BASH_ONLY_TOOLS:
        (folder / tool).symlink_to(shutil.which(tool))
    return str(folder)


def start_sshd(workdir: pathlib.Path, namespace: str, listen, keys, mounts: list[str] = (), **options) -> sshd.Sshd:
    """A real sshd inside the namespace (and the mount namespace `mounts` makes), listening only there."""
    server = sshd.Sshd(str(workdir), listen, keys, prefix=[*exec_in(namespace), *mounts], **options)
    return server.start()
