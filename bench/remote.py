"""`python -m bench.remote` (root, /usr/sbin/sshd): what remote vantages cost.

Real sshds (16 addresses each: OpenSSH's MAX_LISTEN_SOCKS) listen on N loopback addresses 127.89.P.1..N (P from the pid), each playing a KVM
host named in the SSH settings; one listener at 127.89.P.250 plays the MS. Every host gets M probes
(the open port, and refused ones on other addresses). The time is `SshVantages.probe()`: SSH connection,
one remote command per vantage, results parsed. sshd's log counts the logins (one per vantage).
The last workload adds two management servers and an outside vantage (three more sshd addresses) to a
run that goes zone by zone, as `csaudit run` does: the management tier, then two zones, each with MS and
outside probes; against the same hosts alone in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import tempfile
import time

from tabulate import tabulate

from csaudit.lab import sshd
from csaudit.model.inventory import Cluster, Host, Inventory, ManagementServer, Zone
from csaudit.model.probes import ProbeOptions, ProbeTarget
from csaudit.vantage.ssh import SshVantages
from csaudit.vantage.ssh_settings import DEFAULT_REMOTE_CONCURRENCY, RemoteSettings


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _dropping_port(address: str, keep: list[socket.socket]) -> int:
    """A port that silently drops SYNs: its accept queue is full and nobody accepts (as the lab's
    `filtered` fault); a connect to it waits the whole probe timeout."""
    server = socket.socket()
    server.bind((address, 0))
    server.listen(0)
    keep.append(server)
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        keep.append(filler)
    return server.getsockname()[1]


def _machine_cpu() -> float:
    """CPU seconds every process on this machine used so far (/proc/stat: user, nice, system, irq, softirq)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = handle.readline().split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(hosts: int, probes: int, concurrency: int, net: str, workdir: str, servers: list[sshd.Sshd],
            key: str, known_hosts: str, open_port: int, closed_port: int,
            dropped: tuple[str, int] | None = None) -> tuple[float, int, int, float, float]:
    """Wall seconds, SSH logins, probes, csaudit's own CPU seconds, and the whole machine's (sshds,
    remote shells and pythons included: here they share this machine's cores with csaudit).
    `dropped`: a port that drops SYNs, which every vantage also probes (it waits the whole timeout)."""
    names = [f"h{i}" for i in range(1, hosts + 1)]
    inventory = Inventory(None, None, None, zones=(Zone("z", "z"),), clusters=(Cluster("c", "c", "z", None, "KVM"),),
                          hosts=tuple(Host(n, n, "z", None, "c", "KVM", f"{net}.{i}", "Up") for i, n in enumerate(names, 1)))
    settings = RemoteSettings(connect_timeout=10, concurrency=concurrency, file=(
        ("defaults", (("key", key), ("known_hosts", known_hosts), ("user", "root"))),
        *((f"host.{n}", ()) for n in names)))
    # Probe j: the open port for even j, else a refused one on another address, so no two coincide.
    targets = [ProbeTarget(f"{net}.250", open_port, via=f"ssh:host/{n}") if j % 2 == 0 else
               ProbeTarget(f"{net}.{100 + j % 100}", closed_port + j // 100, via=f"ssh:host/{n}")
               for n in names for j in range(probes)]
    waiting = [ProbeTarget(*dropped, via=f"ssh:host/{n}") for n in names] if dropped else []
    targets = list(dict.fromkeys(targets + waiting))
    before = sum(len(server.logins()) for server in servers)
    began, own, machine = time.perf_counter(), _own_cpu(), _machine_cpu()
    with SshVantages(inventory, settings) as fleet:
        results = fleet.probe(targets, ProbeOptions(timeout=2))
        elapsed = time.perf_counter() - began
        own, machine = _own_cpu() - own, _machine_cpu() - machine
        states = [fleet_state.state for fleet_state in fleet.states()]
    if states.count("ok") != hosts or len(results) != len(targets):
        raise RuntimeError(f"not every vantage answered: {states}")
    if any(results[t].state != "timeout" for t in waiting):
        raise RuntimeError("a probe of the port that drops SYNs did not end as timeout")
    return elapsed, sum(len(server.logins()) for server in servers) - before, len(targets), own, machine


def measure_tier(hosts: int, net: str, servers: list[sshd.Sshd], key: str, known_hosts: str, open_port: int,
                 closed_port: int, with_tier: bool) -> tuple[float, int, int]:
    """Wall seconds, SSH logins and probes of a run in three parts (the management tier, zone a, zone b):
    hosts split between the zones; with_tier adds ms1, ms2 and the outside vantage, probed in every part."""
    names = [f"h{i}" for i in range(1, hosts + 1)]
    ms = [ManagementServer(f"m{i}", f"ms{i}", f"{net}.{hosts + i}", "serviceip", "Up") for i in (1, 2)] if with_tier else []
    outside = f"root@{net}.{hosts + 3}" if with_tier else None
    inventory = Inventory(None, None, None, zones=(Zone("a", "a"), Zone("b", "b")),
                          clusters=(Cluster("c", "c", "a", None, "KVM"),), management_servers=tuple(ms),
                          hosts=tuple(Host(n, n, "a", None, "c", "KVM", f"{net}.{i}", "Up") for i, n in enumerate(names, 1)))
    settings = RemoteSettings(connect_timeout=10, outside_host=outside, file=(
        ("defaults", (("key", key), ("known_hosts", known_hosts), ("user", "root"))), *((f"host.{n}", ()) for n in names)))
    tier = [f"ssh:ms/{m.name}" for m in ms] + ([f"ssh:outside/{net}.{hosts + 3}"] if outside else [])
    parts = [[], names[: hosts // 2], names[hosts // 2:]]
    before = sum(len(server.logins()) for server in servers)
    probes = 0
    began = time.perf_counter()
    with SshVantages(inventory, settings) as fleet:
        for number, part in enumerate(parts):
            # one probe per vantage and part: the open port, and a refused one per part for the tier's
            targets = [ProbeTarget(f"{net}.250", open_port, via=f"ssh:host/{n}") for n in part]
            targets += [ProbeTarget(f"{net}.250", closed_port + number, via=via) for via in tier]
            results = fleet.probe(targets, ProbeOptions(timeout=2))
            if len(results) != len(targets) or any(state.state != "ok" for state in fleet.states()):
                raise RuntimeError(f"not every vantage answered: {[s for s in fleet.states() if s.state != 'ok']}")
            probes += len(targets)
    return time.perf_counter() - began, sum(len(server.logins()) for server in servers) - before, probes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.remote", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, DEFAULT_REMOTE_CONCURRENCY])
    parser.add_argument("--waiting-concurrency", type=int, nargs="*", default=[16, 32, 64],
                        help="--ssh-concurrency values for the second workload, where every vantage also waits on a "
                             "port that drops SYNs (none: skip it)")
    args = parser.parse_args(argv)
    problem = sshd.available()
    if problem:
        print(f"bench.remote: {problem}", file=sys.stderr)
        return 2
    net = f"127.89.{os.getpid() % 250}"
    with tempfile.TemporaryDirectory(prefix="csaudit-bench-ssh-") as work:
        key = os.path.join(work, "id")
        public = sshd.make_key(key)
        addresses = [f"{net}.{i}" for i in range(1, max(args.hosts) + 4)]  # + ms1, ms2, outside
        servers = [sshd.Sshd(os.path.join(work, f"sshd{i}"), [(a, 22) for a in addresses[i:i + 16]], [public])
                   for i in range(0, len(addresses), 16)]
        keep: list[socket.socket] = []  # the dropping port's listener and the connections filling its queue
        listener = socket.socket()
        listener.bind((f"{net}.250", 0))
        listener.listen(4096)
        closed_port = _free_port(f"{net}.250")
        try:
            for server in servers:
                server.start()
            known_hosts = os.path.join(work, "known_hosts")
            with open(known_hosts, "w", encoding="ascii") as handle:
                handle.write("".join(f"{line}\n" for server in servers for line in server.known_hosts_lines()))
            dropped = (f"{net}.251", _dropping_port(f"{net}.251", keep))
            plan = [("instant", hosts, probes, concurrency, None) for hosts in args.hosts for concurrency in args.concurrency
                    for probes in ((2, 200) if hosts == 1 else (2,))]
            plan += [("waits 2 s", hosts, 2, concurrency, dropped) for hosts in (1, max(args.hosts))
                     for concurrency in args.waiting_concurrency]
            rows = []
            for workload, hosts, probes, concurrency, drop in plan:
                seconds, logins, count, own, machine = measure(hosts, probes, concurrency, net, work, servers, key,
                                                               known_hosts, listener.getsockname()[1], closed_port, drop)
                rows.append([workload, hosts, count, concurrency, f"{seconds:.2f}", f"{seconds / hosts * 1000:.0f}", logins,
                             f"{own:.2f}", f"{machine:.2f}", f"{machine / os.cpu_count() / seconds:.0%}"])
            hosts = max(args.hosts)
            for with_tier in (False, True):
                seconds, logins, count = measure_tier(hosts, net, servers, key, known_hosts, listener.getsockname()[1],
                                                      closed_port, with_tier)
                vantages = hosts + 3 * with_tier
                rows.append(["3 parts" + (" + 2 MS + outside" if with_tier else ""), vantages, count, DEFAULT_REMOTE_CONCURRENCY,
                             f"{seconds:.2f}", f"{seconds / vantages * 1000:.0f}", logins, "", "", ""])
        finally:
            for server in servers:
                server.stop()
            listener.close()
            for sock in keep:
                sock.close()
    print(tabulate(rows, headers=["workload", "vantages", "probes", "--ssh-concurrency", "seconds", "ms per vantage", "SSH logins",
                                  "csaudit CPU s", "machine CPU s", "cores busy"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
