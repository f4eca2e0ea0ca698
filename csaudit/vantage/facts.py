"""What a probe engine saw, before any interpretation: the plain facts every engine reports.

The local engines (the connect loop, the TCP, TLS and UDP exchanges) and the remote agents (python3,
bash) all end in these, and csaudit/vantage/classify.py alone turns them into an Observation.
"""

from __future__ import annotations

import dataclasses
import errno

# How a TCP conversation stopped.
CLOSED = "closed"  # the server closed its side (FIN)
RESET = "reset"  # the server reset the connection (RST)
TIMEOUT = "timeout"  # the server said nothing more before the probe's time ran out
FULL = "full"  # the server went on talking past what a probe reads
ENDINGS = frozenset({CLOSED, RESET, TIMEOUT, FULL})

CONNECTED = 0  # Connect.code when the connection was accepted
NO_ANSWER = errno.ETIMEDOUT  # Connect.code when nothing came back before the timeout


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    """One connection attempt (TCP), or the sending of the first datagram (UDP)."""

    code: int  # CONNECTED, NO_ANSWER, or the errno the system gave
    elapsed_ms: float | None = None
    failure: str | None = None  # the probe could not start at all (cannot resolve, cannot bind), in words


@dataclasses.dataclass(frozen=True, slots=True)
class Stream:
    """What a TCP service sent back to the probe kind's request."""

    data: bytes = b""
    ending: str = CLOSED
    poke: bytes = b""  # the answer to a bare HTTP request on a second connection, when this one stayed silent


@dataclasses.dataclass(frozen=True, slots=True)
class Tls:
    """A TLS handshake: the peer certificate when it completed, else the server's bytes and the failure."""

    version: str | None = None
    der: bytes | None = None  # the peer certificate
    untrusted: str | None = None  # why this machine's CA store refused the chain
    failure: str | None = None  # the TLS library's short reason when the handshake failed
    raw: bytes = b""  # what the server sent when the handshake failed
    ending: str = CLOSED
    poke: bytes = b""
    bytes_only: bool = False  # no TLS library there (the bash agent): only the server's first bytes were read

    @property
    def completed(self) -> bool:
        return self.der is not None or self.version is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Datagrams:
    """A UDP exchange: the replies, or the error that ended it (ECONNREFUSED: ICMP port unreachable)."""

    code: int = 0
    replies: tuple[bytes, ...] = ()
    elapsed_ms: float | None = None  # until the first reply


@dataclasses.dataclass(frozen=True, slots=True)
class Unchecked:
    """A remote agent could not run the kind's exchange (bash connects only, no ssl module): the connect stands alone."""

    why: str


Conversation = Stream | Tls | Datagrams | Unchecked
