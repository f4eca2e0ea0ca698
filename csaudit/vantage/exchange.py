"""Talk to one service per target, briefly: send the probe kind's request, read its answer, hang up.

The local runner for every TCP probe kind (the bytes come from protocols.py; UDP runs in udp.py). It
reports facts only (facts.Connect, then facts.Stream or facts.Tls): whatever the server does, closing,
resetting, stalling or talking too much, is a fact for classify.py, never an exception. Every exchange
has its own time budget (the probe timeout), runs on a bounded thread pool, and closes its socket in a
finally block; TLS sessions end with close_notify.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import socket
import ssl
import threading
import time

from csaudit.vantage import protocols
from csaudit.vantage.connect import family_of, fd_budget
from csaudit.vantage.facts import CLOSED, CONNECTED, FULL, NO_ANSWER, RESET, TIMEOUT, Connect, Conversation, Stream, Tls
from csaudit.vantage.udp import udp_exchange_many

MAX_THREADS = 64  # exchanges in flight at once (each is one short conversation)
POKE_AFTER = 0.5  # fraction of the timeout a server-speaks-first service may stay silent before we poke it
Outcome = tuple[Connect, Conversation | None]  # no conversation when the connection failed


def exchange_many(targets, timeout: float, concurrency: int = MAX_THREADS,
                  stop: threading.Event | None = None, deadline: float | None = None) -> dict:
    """One exchange per target (objects with address, port, protocol, kind, source): target -> Outcome.

    Targets not started when `stop` is set or `deadline` (time.monotonic()) passes are left out.
    """
    def halted() -> bool:
        return (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() >= deadline)

    def run(target):
        return None if halted() else exchange(target, timeout)

    targets = list(dict.fromkeys(targets))
    udp = [t for t in targets if t.protocol == "udp"]
    results = udp_exchange_many(udp, timeout, fd_budget(concurrency), halted) if udp else {}
    targets = [t for t in targets if t.protocol != "udp"]
    if not targets:
        return results
    workers = max(1, min(concurrency, MAX_THREADS, len(targets)))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="csaudit-exchange") as pool:
        for target, outcome in zip(targets, pool.map(run, targets), strict=True):
            if outcome is not None:
                results[target] = outcome
    return results


def exchange(target, timeout: float) -> Outcome:
    if target.protocol == "udp":
        return udp_exchange_many([target], timeout, 1, lambda: False)[target]
    try:
        return _tls(target, timeout) if target.kind == "tls" else _tcp(target, timeout)
    except OSError as exc:  # this machine could not even open a socket (a descriptor limit): the probe failed
        return Connect(exc.errno or 0, failure=f"cannot probe {target.address}:{target.port}: {exc.strerror or 'no socket'}"), None


# ------------------------------------------------------------------ TCP

def _connect(target, timeout: float) -> tuple[socket.socket | None, Connect]:
    """A connected TCP socket (None when the connection failed) and how the attempt went."""
    sock = socket.socket(family_of(target.address), socket.SOCK_STREAM)
    began = time.monotonic()
    try:
        if target.source:
            try:
                sock.bind((target.source, 0))
            except OSError as exc:
                sock.close()
                return None, Connect(exc.errno or 0, failure=f"cannot send from {target.source}: {exc.strerror}")
        sock.settimeout(timeout)
        sock.connect((target.address, target.port))
    except TimeoutError:
        sock.close()
        return None, Connect(NO_ANSWER)
    except OSError as exc:
        sock.close()
        return None, Connect(exc.errno or NO_ANSWER)
    return sock, Connect(CONNECTED, round((time.monotonic() - began) * 1000, 2))


def _receive(sock: socket.socket, limit: float) -> tuple[bytes, str | None]:
    """One read until `limit` (time.monotonic()): (bytes, None) or (b"", how the stream ended)."""
    remaining = limit - time.monotonic()
    if remaining <= 0:
        return b"", TIMEOUT
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(16384)
    except TimeoutError:
        return b"", TIMEOUT
    except ConnectionResetError:
        return b"", RESET
    except OSError:
        return b"", CLOSED
    return (chunk, None) if chunk else (b"", CLOSED)


def _send(sock: socket.socket, data: bytes) -> str | None:
    """None once written; else how the stream ended (a server may hang up before we speak)."""
    try:
        sock.sendall(data)
    except ConnectionResetError:
        return RESET
    except OSError:
        return CLOSED
    return None


def _tcp(target, timeout: float) -> Outcome:
    sock, connect = _connect(target, timeout)
    if sock is None:
        return connect, None
    end = time.monotonic() + timeout
    try:
        ending = _send(sock, b"".join(protocols.request(target.kind, "tcp", target.address, target.port)))
        data, answer = b"", None
        poke_at = time.monotonic() + timeout * POKE_AFTER if target.kind in protocols.SERVER_SPEAKS_FIRST else None
        while answer is None and ending is None:
            waiting_for_greeting = poke_at is not None and not data
            chunk, ending = _receive(sock, min(end, poke_at) if waiting_for_greeting else end)
            if ending == TIMEOUT and waiting_for_greeting and time.monotonic() < end:
                # A silent server where one should greet: make an HTTP server show itself.
                ending, poke_at = _send(sock, protocols.HTTP_POKE), None
                continue
            data += chunk
            if chunk:
                answer = protocols.read_stream(target.kind, data, None)
                if answer is None and len(data) >= protocols.MAX_ANSWER:
                    ending = FULL
        if answer is not None and answer.matched and target.kind in protocols.FAREWELL and ending is None:
            _send(sock, protocols.FAREWELL[target.kind])
        poke = b""
        if not data and ending == TIMEOUT and target.kind not in protocols.SERVER_SPEAKS_FIRST:
            poke = _poke(target, timeout)  # silent to our request: an HTTP server waiting for its blank line?
        return connect, Stream(data, ending or CLOSED, poke)
    finally:
        sock.close()


def _poke(target, timeout: float) -> bytes:
    """The first bytes a service sends back to a bare HTTP request (b"" if none): who is it?"""
    sock, _ = _connect(target, timeout)
    if sock is None:
        return b""
    try:
        if _send(sock, protocols.HTTP_POKE) is not None:
            return b""
        chunk, _ = _receive(sock, time.monotonic() + timeout)
        return chunk
    finally:
        sock.close()


# ------------------------------------------------------------------ TLS (through memory BIOs, so the raw bytes stay ours)

@functools.cache  # loading the CA store costs tens of ms: once per process, shared by every thread
def _client_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context() if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # we connect to addresses; names are not what this probe checks
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return context


def _handshake(sock: socket.socket, context: ssl.SSLContext, end: float) -> tuple[Tls, ssl.SSLObject | None, ssl.MemoryBIO]:
    """The handshake, bounded by `end`: its facts, the session when it completed, and the outgoing BIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False)
    raw = bytearray()
    for _ in range(256):  # a handshake takes a handful of round trips
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            ending = _send(sock, outgoing.read()) if outgoing.pending else None
            chunk = b""
            if ending is None:
                chunk, ending = _receive(sock, end)
            if ending is not None:
                return Tls(raw=bytes(raw), ending=ending), None, outgoing
            raw += chunk
            incoming.write(chunk)
            continue
        except ssl.SSLError as exc:
            if outgoing.pending:  # our alert, so the server knows why we leave
                _send(sock, outgoing.read())
            untrusted = exc.verify_message if isinstance(exc, ssl.SSLCertVerificationError) else None
            return Tls(untrusted=untrusted, failure=getattr(exc, "reason", None) or "the handshake failed",
                       raw=bytes(raw)), None, outgoing
        if outgoing.pending:
            _send(sock, outgoing.read())
        return Tls(tls.version(), tls.getpeercert(binary_form=True)), tls, outgoing
    return Tls(failure="the handshake did not finish", raw=bytes(raw)), None, outgoing


def _tls_session(target, timeout: float, verify: bool) -> Outcome:
    sock, connect = _connect(target, timeout)
    if sock is None:
        return connect, None
    try:
        facts, session, outgoing = _handshake(sock, _client_context(verify), time.monotonic() + timeout)
        if session is not None:
            _goodbye(sock, session, outgoing)
        return connect, facts
    finally:
        sock.close()


def _goodbye(sock: socket.socket, tls: ssl.SSLObject, outgoing: ssl.MemoryBIO) -> None:
    """Send close_notify: the session ends cleanly, not half-open."""
    try:
        tls.unwrap()
    except ssl.SSLError:
        pass  # SSLWantReadError once close_notify is written: we do not wait for the server's
    if outgoing.pending:
        _send(sock, outgoing.read())


def _tls(target, timeout: float) -> Outcome:
    connect, facts = _tls_session(target, timeout, verify=True)
    if facts is not None and facts.untrusted is not None:
        # A TLS server whose chain this machine does not trust (self-signed, private CA, expired):
        # look again without verification, to read the certificate.
        untrusted = facts.untrusted
        connect, facts = _tls_session(target, timeout, verify=False)
        if facts is not None:
            facts = dataclasses.replace(facts, untrusted=untrusted)
    if isinstance(facts, Tls) and not facts.completed and not facts.raw and facts.ending == TIMEOUT:
        # Silent to a ClientHello: a plain HTTP server waiting for its blank line looks like this.
        facts = dataclasses.replace(facts, poke=_poke(target, timeout))
    return connect, facts
