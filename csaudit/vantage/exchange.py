"""Talk to one service per target, briefly: send the probe kind's request, read its answer, hang up.

The one runner for every probe kind (the bytes themselves come from protocols.py). Standard library
only, like protocols.py, so a remote vantage can run the same code where python3 exists. Every
exchange has its own time budget (the probe timeout), runs on a bounded thread pool, and closes
its socket in a finally block; TLS sessions end with close_notify.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import functools
import ipaddress
import socket
import ssl
import threading
import time

from csaudit.vantage import protocols
from csaudit.vantage.local import fd_budget
from csaudit.vantage.protocols import Answer
from csaudit.vantage.udp import udp_exchange_many

MAX_THREADS = 64  # exchanges in flight at once (each is one short conversation)
POKE_AFTER = 0.5  # fraction of the timeout a server-speaks-first service may stay silent before we poke it


@dataclasses.dataclass(frozen=True)
class Exchange:
    """How one conversation went: a connection state, and what answered when something did."""

    state: str  # open, open|filtered (UDP, no reply), refused, timeout, error
    reason: str
    answer: Answer | None = None
    latency_ms: float | None = None


def exchange_many(targets, timeout: float, concurrency: int = MAX_THREADS,
                  stop: threading.Event | None = None, deadline: float | None = None) -> dict:
    """Run one exchange per target (objects with address, port, protocol, kind, source).

    Targets not started when `stop` is set or `deadline` (time.monotonic()) passes are left out.
    """
    def halted() -> bool:
        return (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() >= deadline)

    def run(target):
        return None if halted() else exchange(target, timeout)

    targets = list(dict.fromkeys(targets))
    udp = [t for t in targets if t.protocol == "udp"]
    results = udp_exchange_many(udp, timeout, fd_budget(concurrency), halted, Exchange) if udp else {}
    targets = [t for t in targets if t.protocol != "udp"]
    if not targets:
        return results
    workers = max(1, min(concurrency, MAX_THREADS, len(targets)))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="csaudit-exchange") as pool:
        for target, outcome in zip(targets, pool.map(run, targets), strict=True):
            if outcome is not None:
                results[target] = outcome
    return results


def exchange(target, timeout: float, now: datetime.datetime | None = None) -> Exchange:
    try:
        if target.protocol == "udp":
            return udp_exchange_many([target], timeout, 1, lambda: False, Exchange)[target]
        if target.kind == "tls":
            return _tls(target, timeout, now or datetime.datetime.now(datetime.UTC))
        return _tcp(target, timeout)
    except OSError as exc:  # anything the socket layer says that the steps below did not expect
        return Exchange("error", f"{target.address}:{target.port}: {exc.strerror or exc}")


# ------------------------------------------------------------------ TCP

def _family(address: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def _connect(target, timeout: float) -> tuple[socket.socket | None, Exchange | None, float]:
    """A connected TCP socket, or the Exchange that says why there is none."""
    sock = socket.socket(_family(target.address), socket.SOCK_STREAM)
    began = time.monotonic()
    try:
        if target.source:
            sock.bind((target.source, 0))
        sock.settimeout(timeout)
        sock.connect((target.address, target.port))
    except ConnectionRefusedError:
        sock.close()
        return None, Exchange("refused", f"{target.address}:{target.port} refused the connection"), 0.0
    except TimeoutError:
        sock.close()
        return None, Exchange("timeout", f"no answer within {timeout:g} s (packets dropped?)"), 0.0
    except OSError as exc:
        sock.close()
        return None, Exchange("error", f"{target.address}:{target.port}: {exc.strerror or exc}"), 0.0
    return sock, None, round((time.monotonic() - began) * 1000, 2)


def _tcp(target, timeout: float) -> Exchange:
    sock, failed, latency = _connect(target, timeout)
    if failed:
        return failed
    end = time.monotonic() + timeout
    try:
        for chunk in protocols.request(target.kind, "tcp", target.address, target.port):
            sock.sendall(chunk)
        data, ending, answer = b"", None, None
        poke_at = time.monotonic() + timeout * POKE_AFTER if target.kind in protocols.SERVER_SPEAKS_FIRST else None
        while answer is None and ending is None:
            remaining = end - time.monotonic()
            if remaining <= 0:
                ending = "timeout"
                break
            if poke_at is not None and not data:
                remaining = max(0.001, min(remaining, poke_at - time.monotonic()))
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(16384)
            except TimeoutError:
                if poke_at is not None and not data and time.monotonic() < end:
                    # A silent server where one should greet: make an HTTP server show itself.
                    sock.sendall(protocols.HTTP_POKE)
                    poke_at = None
                    continue
                ending = "timeout"
                break
            except ConnectionResetError:
                ending = "closed"
                break
            if not chunk:
                ending = "closed"
                break
            data += chunk
            answer = protocols.read_stream(target.kind, data, None)
            if answer is None and len(data) >= protocols.MAX_ANSWER:
                ending = "closed"
        if answer is None and not data and ending == "timeout" and poke_at is None and target.kind not in protocols.SERVER_SPEAKS_FIRST:
            data = _poke(target, timeout)  # silent to our request: an HTTP server waiting for its blank line?
        if answer is None:
            answer = protocols.read_stream(target.kind, data, ending) if data else \
                protocols.mismatch(target.kind, b"", ending, timeout)
        return Exchange("open", f"{target.address}:{target.port} accepted the connection", answer, latency)
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


def _handshake(sock: socket.socket, context: ssl.SSLContext, end: float):
    """(SSLObject or None, its outgoing BIO, raw bytes the server sent, the SSL error or None); bounded by `end`."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False)
    raw = bytearray()
    for _ in range(256):  # a handshake takes a handful of round trips
        try:
            tls.do_handshake()
            if outgoing.pending:
                sock.sendall(outgoing.read())
            return tls, outgoing, bytes(raw), None
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError from None
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(16384)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                incoming.write_eof()
            raw += chunk
            incoming.write(chunk)
        except ssl.SSLError as exc:
            if outgoing.pending:  # our alert, so the server knows why we leave
                try:
                    sock.sendall(outgoing.read())
                except OSError:
                    pass
            return None, outgoing, bytes(raw), exc
    return None, outgoing, bytes(raw), ssl.SSLError("the handshake did not finish")


def _tls_session(target, timeout: float, verify: bool):
    """One connection and handshake: (Exchange if the connection failed, tls, raw, error, latency)."""
    sock, failed, latency = _connect(target, timeout)
    if failed:
        return failed, None, b"", None, 0.0
    end = time.monotonic() + timeout
    try:
        context = _client_context(verify)
        try:
            tls, outgoing, raw, error = _handshake(sock, context, end)
        except TimeoutError:
            return None, None, b"", TimeoutError(), latency
        if tls is not None:
            facts = (tls.version(), tls.getpeercert(binary_form=True))
            _goodbye(sock, tls, outgoing)
            return None, facts, raw, None, latency
        return None, None, raw, error, latency
    finally:
        sock.close()


def _goodbye(sock: socket.socket, tls, outgoing: ssl.MemoryBIO) -> None:
    """Send close_notify: the session ends cleanly, not half-open."""
    try:
        tls.unwrap()
    except ssl.SSLError:
        pass  # SSLWantReadError once close_notify is written: we do not wait for the server's
    if outgoing.pending:
        try:
            sock.sendall(outgoing.read())
        except OSError:
            pass


def _tls(target, timeout: float, now: datetime.datetime) -> Exchange:
    opened = f"{target.address}:{target.port} accepted the connection"
    failed, facts, raw, error, latency = _tls_session(target, timeout, verify=True)
    if failed:
        return failed
    untrusted = None
    if isinstance(error, ssl.SSLCertVerificationError):
        # A TLS server whose chain this machine does not trust (self-signed, private CA, expired):
        # look again without verification, to read the certificate.
        untrusted = error.verify_message
        failed, facts, raw, error, latency = _tls_session(target, timeout, verify=False)
        if failed:
            return failed
    if facts is not None:
        version, der = facts
        return Exchange("open", opened, protocols.tls_answer(version, der, untrusted, now), latency)
    if isinstance(error, TimeoutError):
        # Silent to a ClientHello: a plain HTTP server waiting for its blank line looks like this.
        return Exchange("open", opened, protocols.mismatch("tls", raw or _poke(target, timeout), "timeout", timeout), latency)
    if raw[:1] in (b"\x15", b"\x16") and raw[1:2] == b"\x03":
        reason = getattr(error, "reason", None) or str(error)
        return Exchange("open", opened, Answer("TLS", f"TLS answers, but the handshake fails ({reason})", True,
                                               problem=f"the TLS handshake fails ({reason})"), latency)
    return Exchange("open", opened, protocols.mismatch("tls", raw, "closed", timeout), latency)


def _poke(target, timeout: float) -> bytes:
    """The first bytes a service sends back to a bare HTTP request (b"" if none): who is it?"""
    sock, failed, _ = _connect(target, timeout)
    if failed:
        return b""
    try:
        sock.sendall(protocols.HTTP_POKE)
        return sock.recv(4096)
    except OSError:
        return b""
    finally:
        sock.close()
