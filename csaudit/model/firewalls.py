"""A machine's packet filter as text, before it is read: ruleset files given to `csaudit firewall`,
or what `run --collect-firewall` read on a machine over SSH."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class RulesetText:
    origin: str  # the file, or the machine and the command (`kvm01: nft -j list ruleset`)
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class MachineFirewall:
    """What was read on one machine: its rulesets and its interfaces, or why they could not be read."""

    role: str
    name: str
    vantage: str  # ssh:host/NAME, ssh:systemvm/NAME
    rulesets: tuple[RulesetText, ...] = ()
    interfaces: str | None = None  # `ip -j addr` output
    problems: tuple[str, ...] = ()  # what could not be read, and why (a command missing, not root)
