"""UDP exchanges, all at once on non-blocking sockets in one thread.

A datagram costs no connection: a thread each would mostly be overhead (measured: 27,000 exchanges
took 2.7 s on a thread pool, most of it in locks). Each target gets a connected socket (so an ICMP
port unreachable comes back as ECONNREFUSED), its probe kind's request, one resend if nothing came
back by half the timeout, and an end at the timeout.
"""

from __future__ import annotations

import errno
import heapq
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable

from csaudit.vantage import protocols
from csaudit.vantage.connect import WAKE_UP
from csaudit.vantage.facts import CONNECTED, Connect, Datagrams

RESEND_AFTER = 0.5  # fraction of the timeout after which an unanswered request is sent again, once
MAX_DATAGRAMS = 8  # an answer not understood after this many datagrams will not be


class _Conversation:
    __slots__ = ("target", "sock", "requests", "began", "datagrams", "latency", "serial")

    def __init__(self, target, sock, requests, began):
        self.target, self.sock, self.requests, self.began = target, sock, requests, began
        self.serial = 0  # tells this conversation's timers from those of an earlier one on the same descriptor
        self.datagrams: list[bytes] = []
        self.latency = None


def udp_exchange_many(targets, timeout: float, concurrency: int, halted: Callable[[], bool]) -> dict:
    """One exchange per target (address, port, kind, source): target -> (Connect, Datagrams).
    Targets not finished when `halted()` turns true are left out."""
    results: dict = {}
    waiting = deque(targets)
    selector = selectors.DefaultSelector()
    talking: dict[int, _Conversation] = {}
    timers: list[tuple[float, int, int, str]] = []  # (when, serial, fd, resend | end)
    serial = 0

    def finish(conversation: _Conversation, result) -> None:
        talking.pop(conversation.sock.fileno())
        selector.unregister(conversation.sock)
        conversation.sock.close()
        if result is not None:
            results[conversation.target] = result

    try:
        while (waiting or talking) and not halted():
            while waiting and len(talking) < concurrency:
                target = waiting.popleft()
                started = _start(target)
                if not isinstance(started, _Conversation):
                    results[target] = started
                    continue
                fd = started.sock.fileno()
                talking[fd] = started
                selector.register(started.sock, selectors.EVENT_READ)
                serial += 1
                started.serial = serial
                heapq.heappush(timers, (started.began + timeout * RESEND_AFTER, serial, fd, "resend"))
                heapq.heappush(timers, (started.began + timeout, serial, fd, "end"))
            if not talking:
                continue
            wait = min(max(0.0, timers[0][0] - time.monotonic()), WAKE_UP)
            for key, _ in selector.select(timeout=wait):
                conversation = talking[key.fd]
                result = _read(conversation)
                if result is not None:
                    finish(conversation, result)
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                _, timer_serial, fd, what = heapq.heappop(timers)
                conversation = talking.get(fd)
                if conversation is None or conversation.serial != timer_serial:
                    continue  # that conversation ended, and its descriptor may serve another now
                if what == "end":
                    finish(conversation, _facts(conversation))
                elif not conversation.datagrams:  # its one resend timer: a single lost datagram must not decide
                    try:
                        _send(conversation)
                    except OSError as exc:
                        finish(conversation, _failure(exc))
    finally:
        for conversation in list(talking.values()):
            finish(conversation, None)  # halted: not probed, the caller says why
        selector.close()
    return results


def _start(target):
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if target.source:
        try:
            sock.bind((target.source, 0))
        except OSError as exc:
            sock.close()
            return Connect(exc.errno or errno.EADDRNOTAVAIL, failure=f"cannot send from {target.source}: {exc.strerror}"), None
    try:
        sock.connect((target.address, target.port))  # connected: an ICMP port unreachable comes back as ECONNREFUSED
        conversation = _Conversation(target, sock, protocols.request(target.kind, "udp", target.address, target.port),
                                     time.monotonic())
        _send(conversation)
        return conversation
    except OSError as exc:
        sock.close()
        return _failure(exc)


def _failure(exc: OSError):
    """The exchange ended in an error the network gave (ECONNREFUSED: an ICMP port unreachable)."""
    return Connect(CONNECTED), Datagrams(exc.errno or errno.EIO)


def _facts(c: _Conversation):
    return Connect(CONNECTED), Datagrams(CONNECTED, tuple(c.datagrams), c.latency)


def _send(conversation: _Conversation) -> None:
    for datagram in conversation.requests:
        conversation.sock.send(datagram)


def _read(c: _Conversation):
    """Everything that arrived; the result when the exchange is over, else None."""
    while True:
        try:
            datagram = c.sock.recv(65535)
        except BlockingIOError:
            return None
        except OSError as exc:
            return _failure(exc)
        c.latency = c.latency or round((time.monotonic() - c.began) * 1000, 2)
        c.datagrams.append(datagram)
        if protocols.read_datagrams(c.target.kind, c.datagrams, None) is not None or len(c.datagrams) >= MAX_DATAGRAMS:
            return _facts(c)
