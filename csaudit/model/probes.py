"""Probe plans and observations: plain data shared by vantages and the verdict stage."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from csaudit.model.vocabulary import Gap, State, VantageStatus


class Unverifiable(str):
    """Why a flow cannot be verified: the words of the report, and the gap they belong to (for coverage).
    It is a str, so what reads reasons as text keeps reading them."""

    gap: Gap

    def __new__(cls, text: str, gap: Gap) -> Unverifiable:
        reason = super().__new__(cls, text)
        reason.gap = gap
        return reason


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One connection attempt; flows that need the same attempt share it."""

    address: str
    port: int
    protocol: str = "tcp"
    source: str | None = None  # bind this address first, so the packet really leaves from it
    kind: str = "tcp"  # the probe kind (catalogue `probe`): which service must answer
    via: str | None = None  # the remote vantage that runs it (ssh:host/NAME); None: the vantage that planned it


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    state: State
    reason: str
    latency_ms: float | None = None
    service: str | None = None  # what answered (protocol probes only)
    detail: str | None = None  # version, certificate facts, registrations
    mismatch: str | None = None  # the port is open, but the wrong service (or none) answered
    problem: str | None = None  # the right service, but unusable (an expired certificate)
    warnings: tuple[str, ...] = ()
    danger: str | None = None  # why this service answering a must-be-closed flow is critical
    refused: str | None = None  # the service itself refuses this source (an allow-list): a deny rule holds


# The probe defaults, here only: ProbeOptions and the command line read them.
DEFAULT_TIMEOUT = 2.0  # seconds a probe waits for an answer
DEMO_TIMEOUT = 1.5  # `csaudit demo`: its cloud is on loopback; a dropped SYN (its planted filtered port) waits this long
DEFAULT_CONCURRENCY = 1024  # one wave covers 1,000 filtered targets within one timeout (bench/)
DEFAULT_PER_TARGET = 32  # connects in flight to one address: an audit, not a port scan


@dataclasses.dataclass(frozen=True)
class ProbeOptions:
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    per_target: int | None = DEFAULT_PER_TARGET
    outside: bool = False  # this machine sits outside the management network
    deadline: float | None = None  # time.monotonic() after which no probe starts or waits
    stop: threading.Event | None = dataclasses.field(default=None, compare=False)  # set on Ctrl-C / SIGTERM
    progress: Callable[[int, int], None] | None = dataclasses.field(default=None, compare=False)  # (done, total) targets


@dataclasses.dataclass(frozen=True)
class VantageState:
    """One place probes ran from, for the report's vantage summary and the API cross-check."""

    name: str  # local, ssh:host/NAME, ssh:systemvm/NAME
    state: VantageStatus
    probes: int  # probes it ran
    reason: str = ""
    role: str | None = None  # the object it stands for (host, ssvm, cpvm, vr), for the cross-check
    object_name: str | None = None
    engine: str | None = None  # what ran the probes remotely: python3, bash
