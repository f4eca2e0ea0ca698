"""Facts to an observation: the one place where what a probe saw gets its state and its reason in words.

Every engine, local or remote, reports facts (csaudit/vantage/facts.py); `observe` is the only
function that writes a reason. `error` is kept for failures of the probe itself (no route, a local
resource limit); whatever a server does after accepting a connection is an answer, open or not.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import os

from csaudit.model.probes import Observation, ProbeTarget
from csaudit.model.vocabulary import ProbeKind, Protocol, State
from csaudit.vantage import protocols
from csaudit.vantage.facts import (
    CLOSED,
    CONNECTED,
    FULL,
    NO_ANSWER,
    RESET,
    TIMEOUT,
    Connect,
    Conversation,
    Datagrams,
    Stream,
    Tls,
    Unchecked,
)
from csaudit.vantage.protocols import Answer


def observe(target: ProbeTarget, connect: Connect, conversation: Conversation | None, timeout: float,
            now: datetime.datetime | None = None) -> Observation:
    """The observation of one probe: its connection (or first datagram), then what the service said."""
    if target.protocol == Protocol.UDP:
        return _udp(target, connect, conversation, timeout)
    if connect.code == errno.ECONNRESET and conversation is None:  # reset before we could speak: that is its answer
        conversation = Stream(ending=RESET)
    connection = connected(target, connect, timeout)
    if connection.state != State.OPEN or conversation is None or target.kind == ProbeKind.TCP:
        return connection
    if isinstance(conversation, Unchecked):
        service = protocols.SERVICE_NAMES[target.kind]
        return dataclasses.replace(connection, reason=f"{connection.reason}; {service} not checked remotely ({conversation.why})")
    return with_answer(connection, answer_of(target, conversation, timeout, now or datetime.datetime.now(datetime.UTC)))


def connected(target: ProbeTarget, connect: Connect, timeout: float) -> Observation:
    """How a TCP connection attempt ended."""
    where = f"{target.address}:{target.port}"
    latency = connect.elapsed_ms
    if connect.failure is not None:
        return Observation(State.ERROR, connect.failure, latency)
    if connect.code in (CONNECTED, errno.ECONNRESET):  # a reset during connect: the handshake completed first
        return Observation(State.OPEN, f"{where} accepted the connection", latency)
    if connect.code == errno.ECONNREFUSED:
        return Observation(State.REFUSED, f"{where} refused the connection (nothing listens, or a firewall rejects)", latency)
    if connect.code == NO_ANSWER:
        return Observation(State.TIMEOUT, f"no answer within {timeout:g} s (packets dropped?)", latency)
    return Observation(State.ERROR, f"{where}: {os.strerror(connect.code)}", latency)


def _udp(target: ProbeTarget, connect: Connect, conversation: Conversation | None, timeout: float) -> Observation:
    where = f"{target.address}:{target.port}"
    if connect.failure is not None:
        return Observation(State.ERROR, connect.failure, connect.elapsed_ms)
    if isinstance(conversation, Unchecked):
        return Observation(State.ERROR, f"{where}/udp not probed: {conversation.why}")
    replies = conversation if isinstance(conversation, Datagrams) else Datagrams(connect.code)
    if replies.code == errno.ECONNREFUSED:
        return Observation(State.REFUSED, f"{where}/udp: port unreachable (ICMP): nothing listens", replies.elapsed_ms)
    if replies.code != CONNECTED:
        return Observation(State.ERROR, f"{where}: {os.strerror(replies.code)}", replies.elapsed_ms)
    if not replies.replies:
        return Observation(State.OPEN_FILTERED, f"no reply within {timeout:g} s over UDP: open or filtered, unconfirmed")
    datagrams = list(replies.replies)
    answer = protocols.read_datagrams(target.kind, datagrams, None) or protocols.read_datagrams(target.kind, datagrams, TIMEOUT)
    return with_answer(Observation(State.OPEN, f"{where}/udp replied", replies.elapsed_ms), answer)


def answer_of(target: ProbeTarget, conversation: Stream | Tls, timeout: float, now: datetime.datetime) -> Answer:
    """What the service behind an open TCP port showed, for the flow's probe kind."""
    kind = target.kind
    if isinstance(conversation, Tls):
        return _tls_answer(conversation, timeout, now)
    data, ending = conversation.data, conversation.ending
    if not data and conversation.poke:  # silent to our request; a bare HTTP request made it speak
        data, ending = conversation.poke, TIMEOUT
    if not data:
        return protocols.mismatch(kind, b"", ending, timeout)
    return protocols.read_stream(kind, data, None) or protocols.read_stream(kind, data, _reader_ending(ending))


def _tls_answer(tls: Tls, timeout: float, now: datetime.datetime) -> Answer:
    if tls.completed:
        return protocols.tls_answer(tls.version, tls.der, tls.untrusted, now)
    seen = tls.raw or tls.poke
    if tls.bytes_only and seen[:1] == b"\x16" and seen[1:2] == b"\x03":
        return Answer("TLS", "TLS answers with a handshake (its certificate not read: no TLS library there)", True)
    if seen[:1] in (b"\x15", b"\x16") and seen[1:2] == b"\x03":  # TLS records: a TLS server that refused the handshake
        reason = tls.failure or f"the handshake did not finish: {_STOPPED[tls.ending]}"
        return Answer("TLS", f"TLS answers, but the handshake fails ({reason})", True, problem=f"the TLS handshake fails ({reason})")
    return protocols.mismatch("tls", seen, tls.ending if not seen else _reader_ending(tls.ending), timeout)


_STOPPED = {CLOSED: "the server closed the connection", RESET: "the server reset the connection",
            TIMEOUT: "the server went silent", FULL: "the server kept sending"}


def _reader_ending(ending: str) -> str:
    """The kind readers know two endings: the talk is over (closed) or went quiet (timeout)."""
    return TIMEOUT if ending == TIMEOUT else CLOSED


def with_answer(connection: Observation, answer: Answer) -> Observation:
    if answer.matched:
        reason = f"{answer.service} answers: {answer.detail}"
    else:
        reason = f"{connection.reason}, but {answer.detail}"
    return Observation(connection.state, reason, connection.latency_ms, service=answer.service, detail=answer.detail,
                       mismatch=None if answer.matched else answer.detail, problem=answer.problem,
                       warnings=answer.warnings, danger=answer.danger, refused=answer.refused)

