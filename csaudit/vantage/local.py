"""The local vantage: TCP connects from this machine, many at once, on non-blocking sockets.

Non-blocking connect_ex + epoll rather than asyncio streams: measured on this kind of machine,
5,000 connects take 0.14 s this way against 0.68 s with asyncio.open_connection (nmap: 0.13 s).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import resource
import select
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from csaudit.model.flows import Flow
from csaudit.model.probes import Observation, ProbeOptions, ProbeTarget
from csaudit.vantage.protocols import UDP_KINDS

SPARE_FDS = 64  # descriptors kept free for the rest of the process (API client, logs, listeners)
WAKE_UP = 0.2  # seconds; how often a long wait looks at the stop flag


class LocalVantage:
    """This machine stands for the `user` role, and for any source whose address it owns."""

    name = "local"

    def __init__(self):
        self._owned: dict[str, bool] = {}

    def plan(self, flow: Flow, options: ProbeOptions) -> ProbeTarget | str:
        if flow.probe == "none":
            return next((n for n in flow.notes), "a connect cannot judge this flow")
        if flow.protocol == "udp" and flow.probe not in UDP_KINDS:
            return f"UDP cannot be judged by a connect; give the flow a UDP probe kind ({', '.join(sorted(UDP_KINDS))})"
        if not flow.target.address:
            return f"no address known for {flow.target.role} {flow.target.name}"
        if flow.outside and not options.outside:
            return "deny rule for the outside network: run csaudit from outside the management network with --outside"
        if flow.source.role == "user":
            return ProbeTarget(flow.target.address, flow.port, flow.protocol, kind=flow.probe)
        if not flow.source.address:
            return f"no address known for {flow.source.role} {flow.source.name}"
        if not self.owns(flow.source.address):
            return f"no vantage for {flow.source.role} {flow.source.name} ({flow.source.address})"
        return ProbeTarget(flow.target.address, flow.port, flow.protocol, source=flow.source.address, kind=flow.probe)

    def close(self) -> None:
        """Nothing is kept between calls of probe."""

    def owns(self, address: str) -> bool:
        """Can this machine send from that address? bind() succeeds only for its own."""
        if address not in self._owned:
            try:
                with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
                    sock.bind((address, 0))
                self._owned[address] = True
            except (OSError, ValueError):
                self._owned[address] = False
        return self._owned[address]

    def probe(self, targets: list[ProbeTarget], options: ProbeOptions) -> dict[ProbeTarget, Observation]:
        from csaudit.vantage.protocol_probe import probe_with_protocols  # it uses this module's connect engine

        return probe_with_protocols(targets, options)


def _family(address: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def _resolve(address: str) -> tuple[int, str] | str:
    """An IP literal as is; a name through the resolver (once per name)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address)
            return family, address
        except OSError:
            pass
    try:
        info = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve {address}: {exc.strerror}"
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr[0]


def fd_budget(wanted: int) -> int:
    """How many sockets may be open at once: raise the soft RLIMIT_NOFILE toward the hard one if
    needed, and never plan more than the limit allows (EMFILE would abort the whole batch)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        new_soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - SPARE_FDS))


def tcp_connect_many(
    targets: list[ProbeTarget],
    timeout: float,
    concurrency: int,
    per_target: int | None = None,
    stop: threading.Event | None = None,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[ProbeTarget, Observation]:
    """Connect to every target once; each ends as open, refused, timeout or error.

    At most `concurrency` connects are in flight (and `per_target` to one address), each is
    abandoned at its own deadline, so the batch ends within ceil(len/concurrency) * timeout.
    When `stop` is set or `deadline` passes, no new connect starts and those in flight are
    dropped: targets left out of the result were not probed. `progress(done, total)` hears of
    each step forward. The loop uses epoll directly: at 500,000 connects a run, the selectors
    module's bookkeeping cost more than the system calls.
    """
    concurrency = fd_budget(concurrency)
    results: dict[ProbeTarget, Observation] = {}
    resolved: dict[str, tuple[int, str] | str] = {}
    waiting = deque(dict.fromkeys(targets))
    deferred: deque[ProbeTarget] = deque()  # their address is at its per_target cap
    per_address: Counter[str] = Counter()
    poller = select.epoll()
    in_flight: dict[int, tuple[socket.socket, ProbeTarget, float, int]] = {}
    deadlines: deque[tuple[float, int, int]] = deque()  # (deadline, fd, serial), in start order: one timeout for all
    serial = 0
    total, reported = len(waiting), 0
    timed_out = f"no answer within {timeout:g} s (packets dropped?)"

    def finish(fd: int, observation: Observation | None) -> None:
        sock, target, _, _ = in_flight.pop(fd)
        sock.close()  # closing also takes it out of the epoll set: no unregister call needed
        per_address[target.address] -= 1
        if observation is not None:
            results[target] = observation

    def halted() -> bool:
        return (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() >= deadline)

    try:
        while (waiting or deferred or in_flight) and not halted():
            if deferred and (not waiting or len(deferred) > len(waiting)):
                waiting.extendleft(reversed(deferred))  # give capped addresses another chance
                deferred.clear()
            while waiting and len(in_flight) < concurrency:
                target = waiting.popleft()
                if per_target and per_address[target.address] >= per_target:
                    deferred.append(target)
                    continue
                where = resolved.get(target.address)
                if where is None:
                    where = resolved[target.address] = _resolve(target.address)
                if isinstance(where, str):
                    results[target] = Observation("error", where)
                    continue
                started = _start(target, where, results)
                if started is None:
                    continue
                sock, began = started
                fd = sock.fileno()
                serial += 1
                in_flight[fd] = (sock, target, began, serial)
                per_address[target.address] += 1
                poller.register(fd, select.EPOLLOUT)
                deadlines.append((began + timeout, fd, serial))
            if in_flight:
                wait = min(max(0.0, deadlines[0][0] - time.monotonic()), WAKE_UP)
                for fd, _ in poller.poll(wait):
                    sock, target, began, _ = in_flight[fd]
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    finish(fd, _observation(code, target, time.monotonic() - began, timeout))
                now = time.monotonic()
                while deadlines and (deadlines[0][0] <= now or deadlines[0][1] not in in_flight
                                     or in_flight[deadlines[0][1]][3] != deadlines[0][2]):
                    _, fd, fd_serial = deadlines.popleft()
                    if fd in in_flight and in_flight[fd][3] == fd_serial:
                        finish(fd, Observation("timeout", timed_out))
            if progress is not None and len(results) != reported:
                reported = len(results)
                progress(reported, total)
    finally:
        for fd in list(in_flight):
            finish(fd, None)  # halted: not probed, the caller says why
        poller.close()
    return results


def _start(target: ProbeTarget, where: tuple[int, str], results: dict) -> tuple[socket.socket, float] | None:
    family, address = where
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    if target.source:
        try:
            sock.bind((target.source, 0))
        except OSError as exc:
            sock.close()
            results[target] = Observation("error", f"cannot send from {target.source}: {exc.strerror}")
            return None
    began = time.monotonic()
    code = sock.connect_ex((address, target.port))
    if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        return sock, began
    sock.close()
    results[target] = _observation(code, target, time.monotonic() - began, 0)
    return None


def _observation(code: int, target: ProbeTarget, elapsed: float, timeout: float) -> Observation:
    latency = round(elapsed * 1000, 2)
    if code == 0:
        return Observation("open", f"{target.address}:{target.port} accepted the connection", latency)
    if code == errno.ECONNREFUSED:
        return Observation("refused", f"{target.address}:{target.port} refused the connection (nothing listens, or a firewall rejects)", latency)
    if code == errno.ETIMEDOUT:
        return Observation("timeout", f"no answer within {timeout:g} s (packets dropped?)", latency)
    return Observation("error", f"{target.address}:{target.port}: {os.strerror(code)}", latency)
