"""UDP exchanges, all at once on non-blocking sockets in one thread.

A datagram costs no connection: a thread each would mostly be overhead (measured: 27,000 exchanges
took 2.7 s on a thread pool, most of it in locks). Each target gets a connected socket (so an ICMP
port unreachable comes back as ECONNREFUSED), its probe kind's request, one resend if nothing came
back by half the timeout, and an end at the timeout.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable

from csaudit.vantage import protocols
from csaudit.vantage.local import WAKE_UP

RESEND_AFTER = 0.5  # fraction of the timeout after which an unanswered request is sent again, once
MAX_DATAGRAMS = 8  # an answer not understood after this many datagrams will not be


class _Conversation:
    __slots__ = ("target", "sock", "requests", "began", "datagrams", "latency", "answer", "serial")

    def __init__(self, target, sock, requests, began):
        self.target, self.sock, self.requests, self.began = target, sock, requests, began
        self.serial = 0  # tells this conversation's timers from those of an earlier one on the same descriptor
        self.datagrams: list[bytes] = []
        self.latency = None
        self.answer = None


def udp_exchange_many(targets, timeout: float, concurrency: int, halted: Callable[[], bool], outcome) -> dict:
    """One exchange per target (address, port, kind, source); `outcome(state, reason, answer, latency)`
    builds each result. Targets not finished when `halted()` turns true are left out."""
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

    def ended(c: _Conversation):
        if not c.datagrams:
            return outcome("open|filtered", f"no reply within {timeout:g} s over UDP: open or filtered, unconfirmed", None, None)
        answer = c.answer or protocols.read_datagrams(c.target.kind, c.datagrams, "timeout")
        return outcome("open", f"{c.target.address}:{c.target.port}/udp replied", answer, c.latency)

    try:
        while (waiting or talking) and not halted():
            while waiting and len(talking) < concurrency:
                target = waiting.popleft()
                started = _start(target, outcome)
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
                result = _read(conversation, outcome)
                if result is not None:
                    finish(conversation, result)
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                _, timer_serial, fd, what = heapq.heappop(timers)
                conversation = talking.get(fd)
                if conversation is None or conversation.serial != timer_serial:
                    continue  # that conversation ended, and its descriptor may serve another now
                if what == "end":
                    finish(conversation, ended(conversation))
                elif not conversation.datagrams:  # its one resend timer: a single lost datagram must not decide
                    try:
                        _send(conversation)
                    except OSError as exc:
                        finish(conversation, _failure(conversation.target, exc, outcome))
    finally:
        for conversation in list(talking.values()):
            finish(conversation, None)  # halted: not probed, the caller says why
        selector.close()
    return results


def _start(target, outcome):
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if target.source:
            sock.bind((target.source, 0))
        sock.connect((target.address, target.port))  # connected: an ICMP port unreachable comes back as ECONNREFUSED
        conversation = _Conversation(target, sock, protocols.request(target.kind, "udp", target.address, target.port),
                                     time.monotonic())
        _send(conversation)
        return conversation
    except OSError as exc:
        sock.close()
        return _failure(target, exc, outcome)


def _failure(target, exc: OSError, outcome):
    if isinstance(exc, ConnectionRefusedError):
        return outcome("refused", f"{target.address}:{target.port}/udp: port unreachable (ICMP): nothing listens", None, None)
    return outcome("error", f"{target.address}:{target.port}: {exc.strerror or exc}", None, None)


def _send(conversation: _Conversation) -> None:
    for datagram in conversation.requests:
        conversation.sock.send(datagram)


def _read(c: _Conversation, outcome):
    """Everything that arrived; the result when the exchange is over, else None."""
    while True:
        try:
            datagram = c.sock.recv(65535)
        except BlockingIOError:
            return None
        except OSError as exc:
            return _failure(c.target, exc, outcome)
        c.latency = c.latency or round((time.monotonic() - c.began) * 1000, 2)
        c.datagrams.append(datagram)
        c.answer = protocols.read_datagrams(c.target.kind, c.datagrams, None)
        if c.answer is not None:
            return outcome("open", f"{c.target.address}:{c.target.port}/udp replied", c.answer, c.latency)
        if len(c.datagrams) >= MAX_DATAGRAMS:
            return outcome("open", f"{c.target.address}:{c.target.port}/udp replied",
                           protocols.read_datagrams(c.target.kind, c.datagrams, "timeout"), c.latency)
