"""Flows: what must be open or closed between two endpoints, derived from the catalogue for one inventory."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    role: str
    name: str
    address: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Remedy:
    """What an operator does about a failed flow of a rule: where to look, what to check, the read-only
    commands to run there, and where that advice comes from."""

    on: str  # the machine to look at, in an operator's words ("the SSVM", "the KVM host")
    check: str
    commands: tuple[str, ...]
    citation: str


@dataclasses.dataclass(frozen=True, slots=True)
class Flow:
    id: str
    rule: str
    title: str
    zone: str | None
    source: Endpoint
    target: Endpoint
    protocol: str
    port: int
    port_end: int | None
    expect: str
    probe: str
    citation: str
    notes: tuple[str, ...] = ()
    self_allowed: bool = False  # a deny rule the target's own machine is exempt from (D01: its local tooling)
    remedy: Remedy | None = None  # shared by every flow of the rule (one object, not a copy per flow)
    condition: str | None = None  # the rule's `when` in words: the setting or API fact that makes the flow exist

    @property
    def outside(self) -> bool:
        """A deny rule meant for outside the management network: probed from the outside vantage."""
        return self.source.role == "outside"
