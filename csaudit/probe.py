"""Probe plans and observations: plain data shared by vantages and the verdict stage."""

from __future__ import annotations

import dataclasses

STATES = ("open", "refused", "timeout", "error")


@dataclasses.dataclass(frozen=True)
class ProbeTarget:
    """One connection attempt; flows that need the same attempt share it."""

    address: str
    port: int
    protocol: str = "tcp"
    source: str | None = None  # bind this address first, so the packet really leaves from it


@dataclasses.dataclass(frozen=True)
class Observation:
    state: str  # one of STATES
    reason: str
    latency_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class ProbeOptions:
    timeout: float = 2.0
    concurrency: int = 256
    outside: bool = False  # this machine sits outside the management network
