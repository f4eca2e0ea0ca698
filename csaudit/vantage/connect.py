"""The connect engine: many TCP connects from this machine at once, on non-blocking sockets and epoll.

It reports what each connect did (facts.Connect); classify.py says what that means. Non-blocking
connect_ex + epoll rather than asyncio streams: measured on this kind of machine, 5,000 connects take
0.14 s this way against 0.68 s with asyncio.open_connection (nmap: 0.13 s).
"""

from __future__ import annotations

import errno
import ipaddress
import resource
import select
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from csaudit.model.probes import ProbeTarget
from csaudit.vantage.facts import NO_ANSWER, Connect

SPARE_FDS = 64  # descriptors kept free for the rest of the process (API client, logs, listeners)
WAKE_UP = 0.2  # seconds; how often a long wait looks at the stop flag


def family_of(address: str) -> int:
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
) -> dict[ProbeTarget, Connect]:
    """Connect to every target once: the errno each ended with (CONNECTED, NO_ANSWER at the timeout, ...).

    At most `concurrency` connects are in flight (and `per_target` to one address), each is
    abandoned at its own deadline, so the batch ends within ceil(len/concurrency) * timeout.
    When `stop` is set or `deadline` passes, no new connect starts and those in flight are
    dropped: targets left out of the result were not probed. `progress(done, total)` hears of
    each step forward. The loop uses epoll directly: at 500,000 connects a run, the selectors
    module's bookkeeping cost more than the system calls.
    """
    concurrency = fd_budget(concurrency)
    results: dict[ProbeTarget, Connect] = {}
    resolved: dict[str, tuple[int, str] | str] = {}
    waiting = deque(dict.fromkeys(targets))
    deferred: deque[ProbeTarget] = deque()  # their address is at its per_target cap
    per_address: Counter[str] = Counter()
    poller = select.epoll()
    in_flight: dict[int, tuple[socket.socket, ProbeTarget, float, int]] = {}
    deadlines: deque[tuple[float, int, int]] = deque()  # (deadline, fd, serial), in start order: one timeout for all
    serial = 0
    total, reported = len(waiting), 0

    def finish(fd: int, facts: Connect | None) -> None:
        sock, target, _, _ = in_flight.pop(fd)
        sock.close()  # closing also takes it out of the epoll set: no unregister call needed
        per_address[target.address] -= 1
        if facts is not None:
            results[target] = facts

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
                    results[target] = Connect(NO_ANSWER, failure=where)
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
                    finish(fd, Connect(code, _ms(time.monotonic() - began)))
                now = time.monotonic()
                while deadlines and (deadlines[0][0] <= now or deadlines[0][1] not in in_flight
                                     or in_flight[deadlines[0][1]][3] != deadlines[0][2]):
                    _, fd, fd_serial = deadlines.popleft()
                    if fd in in_flight and in_flight[fd][3] == fd_serial:
                        finish(fd, Connect(NO_ANSWER))
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
            results[target] = Connect(exc.errno or errno.EADDRNOTAVAIL, failure=f"cannot send from {target.source}: {exc.strerror}")
            return None
    began = time.monotonic()
    code = sock.connect_ex((address, target.port))
    if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        return sock, began
    sock.close()
    results[target] = Connect(code, _ms(time.monotonic() - began))
    return None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
