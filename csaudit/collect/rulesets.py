"""Ruleset and interface files for `csaudit firewall`: read as text here (the edge of the program);
judge/packetfilter tells their formats apart and reads them."""

from __future__ import annotations

from csaudit.collect.textfile import read_text
from csaudit.model.firewalls import RulesetText


def read_rulesets(paths: tuple[str, ...] | list[str]) -> tuple[RulesetText, ...]:
    return tuple(RulesetText(path, read_text(path, "ruleset")) for path in paths)


def read_addresses(path: str) -> str:
    return read_text(path, "interface list (ip -j addr)")
