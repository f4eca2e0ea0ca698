"""Pairs of network namespaces joined by a veth, for testing the firewall evaluator against the
kernel (needs root, ip, nft or iptables).

    [csfw-<pid>-<tag>-s<i>]  src0 10.218.P.(4i+1)/30, fd5a:c5a:P:i::1/64  --veth--  eth0 10.218.P.(4i+2)/30, fd5a:c5a:P:i::2/64  [csfw-<pid>-<tag>-t<i>]
                             src1 (a bridge) 10.219.P.(i+1)/32                         eth1 (a bridge) 10.220.P.(i+1)/32

Every address exists only inside these namespaces: the root namespace has no route to them, and
probes are sockets opened inside the source namespace (setns on this thread, then back). The
neighbours are static, so IPv6 needs no neighbour discovery (which a random ruleset may drop).
The target listens on every probed port, TCP and UDP (an echo), both families: a connect that
completes, or an echo that comes back, is an accepted packet; an error (RST, ICMP) is a reject; no
answer within the wait is a drop. Everything is removed on exit, and namespaces of a run killed
with SIGKILL are removed by the next (bench.netns.remove_stale).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import ipaddress
import json
import os
import selectors
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from bench.netns import namespaces, remove_stale, run

PREFIX = "csfw-"
CLONE_NEWNET = 0x40000000
IP_RECVERR, IPV6_RECVERR = 11, 25
WAIT = 0.3  # seconds without an answer that make a drop (a veth answers within a millisecond; doubtful drops are probed again)
RECHECK_WAIT = 3.0  # a drop the evaluator disagrees with is probed once more, this long, before it counts
SOURCE_PORTS = (33000, 60900)  # inside the evaluator's ephemeral range (intervals.EPHEMERAL); each probe its own
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def inside(namespace: str):
    """Run the block in a network namespace, on this thread only; sockets made there stay there."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - the thread would be lost in the namespace
                raise OSError(ctypes.get_errno(), "setns back home failed")
    finally:
        os.close(there)
        os.close(home)


@dataclasses.dataclass(frozen=True)
class Probe:
    pair: int
    family: int
    protocol: str  # tcp, udp
    port: int


@dataclasses.dataclass
class Pair:
    index: int
    source: str  # namespace names
    target: str
    source_v4: str
    target_v4: str
    source_v6: str
    target_v6: str

    def address(self, side: str, family: int) -> str:
        return getattr(self, f"{side}_v{family}")


class PairLab:
    def __init__(self, pairs: int, tag: str, ports: tuple[int, ...]):
        pid = os.getpid()
        if not 1 <= pairs <= 60:
            raise ValueError("1 to 60 pairs")
        self.ports = ports
        self.name = f"{PREFIX}{pid}-{tag}"
        octet = pid % 250 + 1
        self.pairs = [Pair(i, f"{self.name}-s{i}", f"{self.name}-t{i}", f"10.218.{octet}.{4 * i + 1}", f"10.218.{octet}.{4 * i + 2}",
                           f"fd5a:c5a:{octet:x}:{i:x}::1", f"fd5a:c5a:{octet:x}:{i:x}::2") for i in range(pairs)]
        self._octet = octet
        self._listeners: dict[int, list[socket.socket]] = {}
        self._echo: dict[int, list[socket.socket]] = {}
        self._next_port = {p.index: SOURCE_PORTS[0] for p in self.pairs}
        self._interfaces: dict[str, str] = {}
        self.legacy: set[str] = set()  # namespaces that hold iptables-legacy tables (the oracle empties them when it moves on)

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> PairLab:
        remove_stale(PREFIX)
        try:
            for pair in self.pairs:
                self._create(pair)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for sockets in (*self._listeners.values(), *self._echo.values()):
            for sock in sockets:
                sock.close()
        self._listeners.clear()
        self._echo.clear()
        for name in namespaces():
            if name.startswith(self.name + "-"):
                run("ip", "netns", "del", name, check=False)

    def leftovers(self) -> list[str]:
        return [n for n in namespaces() if n.startswith(self.name + "-")]

    def _create(self, pair: Pair) -> None:
        for name in (pair.source, pair.target):
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", pair.source, "link", "add", "src0", "type", "veth", "peer", "name", "eth0", "netns", pair.target)
        for name, device, v4, v6, dummy, extra in (
                (pair.source, "src0", pair.source_v4, pair.source_v6, "src1", f"10.219.{self._octet}.{pair.index + 1}"),
                (pair.target, "eth0", pair.target_v4, pair.target_v6, "eth1", f"10.220.{self._octet}.{pair.index + 1}")):
            run("ip", "-n", name, "addr", "add", f"{v4}/30", "dev", device)
            run("ip", "-n", name, "addr", "add", f"{v6}/64", "dev", device, "nodad")
            run("ip", "-n", name, "link", "set", device, "up")
            run("ip", "-n", name, "link", "add", dummy, "type", "bridge")  # a second interface, holding one address
            run("ip", "-n", name, "addr", "add", f"{extra}/32", "dev", dummy)
            run("ip", "-n", name, "link", "set", dummy, "up")
        for name in (pair.source, pair.target):
            # A reject's ICMP answer is rate-limited per destination; one batch rejects many probes at once.
            for setting in ("net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000",
                            "net.ipv4.icmp_msgs_burst=100000"):
                run("ip", "netns", "exec", name, "sysctl", "-q", "-w", setting, check=False)
        macs = {name: json.loads(run("ip", "-n", name, "-j", "link", "show", device).stdout)[0]["address"]
                for name, device in ((pair.source, "src0"), (pair.target, "eth0"))}
        for name, device, peer, other in ((pair.source, "src0", pair.target, "target"), (pair.target, "eth0", pair.source, "source")):
            for family in (4, 6):
                run("ip", "-n", name, "neigh", "replace", pair.address(other, family), "lladdr", macs[peer], "dev", device, "nud", "permanent")
        with inside(pair.target):
            self._listeners[pair.index], self._echo[pair.index] = [], []
            for port in self.ports:
                for kind, store in ((socket.SOCK_STREAM, self._listeners), (socket.SOCK_DGRAM, self._echo)):
                    sock = socket.socket(socket.AF_INET6, kind)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("::", port))
                    if kind == socket.SOCK_STREAM:
                        sock.listen(1024)
                    sock.setblocking(False)
                    store[pair.index].append(sock)

    # ------------------------------------------------------------ commands inside the namespaces
    def run_in(self, namespace: str, *argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", namespace, *argv, stdin=stdin, check=check)

    def run_many(self, jobs: list[tuple]) -> list[subprocess.CompletedProcess]:
        """(namespace, argv tuple, stdin) jobs, a few at a time: loading and dumping rulesets is most of the time."""
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda job: self.run_in(job[0], *job[1], stdin=job[2], check=False), jobs))

    def interfaces(self, namespace: str) -> str:
        """The namespace's `ip -j addr` (its interfaces do not change while the lab runs)."""
        if namespace not in self._interfaces:
            self._interfaces[namespace] = self.run_in(namespace, "ip", "-j", "addr").stdout
        return self._interfaces[namespace]

    # ------------------------------------------------------------ probing
    def probe(self, probes: list[Probe], wait: float = WAIT) -> dict[Probe, str]:
        """accept, reject, drop, or local-block (the source's own output refused to send: EPERM).

        Accept means the connection is usable both ways: over TCP, the handshake completes and the
        target's greeting arrives (the target accepts only once the handshake's last ACK came through);
        over UDP, two datagrams each come back (the second one is no longer conntrack's new)."""
        results: dict[Probe, str] = {}
        selector = selectors.DefaultSelector()
        pending: dict[socket.socket, list] = {}  # socket -> [probe, stage]
        served: list[socket.socket] = []
        try:
            for index in {p.pair for p in probes}:
                for sock in self._listeners[index] + self._echo[index]:
                    selector.register(sock, selectors.EVENT_READ, None)
            for probe in probes:
                sock = self._open(probe)
                outcome = self._start(sock, probe)
                if outcome is not None:
                    results[probe] = outcome
                    sock.close()
                    continue
                pending[sock] = [probe, 0]
                selector.register(sock, selectors.EVENT_WRITE if probe.protocol == "tcp" else selectors.EVENT_READ, probe)
            deadline = time.monotonic() + wait
            while pending and time.monotonic() < deadline:
                for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                    sock = key.fileobj
                    if key.data is None:
                        served += self._serve(sock)
                        continue
                    state = pending[sock]
                    outcome = self._advance(sock, state)
                    if outcome == "read":
                        selector.modify(sock, selectors.EVENT_READ, key.data)
                    elif outcome is not None:
                        results[state[0]] = outcome
                        selector.unregister(sock)
                        sock.close()
                        del pending[sock]
            for sock, (probe, _) in pending.items():
                results[probe] = "drop"
                selector.unregister(sock)
                sock.close()
        finally:
            for key in list(selector.get_map().values()):
                if key.data is None:
                    served += self._serve(key.fileobj)
            selector.close()
            for sock in served:
                sock.close()
        return results

    def _open(self, probe: Probe) -> socket.socket:
        pair = self.pairs[probe.pair]
        port = self._next_port[probe.pair]
        self._next_port[probe.pair] = port + 1 if port < SOURCE_PORTS[1] else SOURCE_PORTS[0]
        family = socket.AF_INET if probe.family == 4 else socket.AF_INET6
        with inside(pair.source):
            sock = socket.socket(family, socket.SOCK_STREAM if probe.protocol == "tcp" else socket.SOCK_DGRAM)
        sock.setblocking(False)
        # ICMP errors at once: a UDP socket reports the soft ones (host unreachable) only so, and a TCP
        # connect over IPv6 would otherwise wait for its retransmission (one second) to report any
        if probe.family == 4:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        sock.bind((pair.address("source", probe.family), port))
        return sock

    def _start(self, sock: socket.socket, probe: Probe) -> str | None:
        address = (self.pairs[probe.pair].address("target", probe.family), probe.port)
        if probe.protocol == "tcp":
            code = sock.connect_ex(address)
            if code == errno.EINPROGRESS:
                return None
            return "local-block" if code == errno.EPERM else "reject"
        sock.connect(address)
        return self._send(sock)

    @staticmethod
    def _send(sock: socket.socket) -> str | None:
        try:
            sock.send(b"csaudit-firewall-test")
        except OSError as exc:
            return "local-block" if exc.errno == errno.EPERM else "reject"
        return None

    def _advance(self, sock: socket.socket, state: list) -> str | None:
        """The next stage of one probe: "read" (wait for data now), None (wait on), or its outcome."""
        probe, stage = state
        if probe.protocol == "tcp" and stage == 0:  # the connect ended
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                return "local-block" if code == errno.EPERM else "reject"
            state[1] = 1
            return "read"
        try:
            data = sock.recv(64)
        except BlockingIOError:
            return None
        except OSError as exc:
            return "local-block" if exc.errno == errno.EPERM else "reject"
        if probe.protocol == "tcp":
            return "accept" if data else "reject"
        if stage == 0:  # the first echo came back: now the next datagram
            state[1] = 1
            return self._send(sock)
        return "accept"

    @staticmethod
    def _serve(sock: socket.socket) -> list[socket.socket]:
        """Accept what connected and greet it (kept open until the batch ends); echo each datagram back."""
        accepted = []
        for _ in range(4096):  # bounded: a burst of one batch
            try:
                if sock.type == socket.SOCK_STREAM:
                    conn, _ = sock.accept()
                    conn.setblocking(False)
                    accepted.append(conn)
                    conn.send(b"hi")
                else:
                    data, peer = sock.recvfrom(512)
                    sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # a greeting or echo the target's own output refused (EPERM): the source sees nothing
        return accepted


def address_int(text: str) -> int:
    return int(ipaddress.ip_address(text))
