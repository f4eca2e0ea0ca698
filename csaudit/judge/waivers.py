"""Waivers: failures an operator accepted, each with a reason and an expiry date (`--waivers FILE`).

    [[waiver]]
    flow = "F12:*->xen01:443/tcp"     # a glob on the flow id, and/or
    rule = "F12"                       # a glob on the rule id (both given: both must match)
    reason = "xen01 is retired on 2025-07-01 (CHG-1234)"
    expires = 2025-07-01               # the last day it applies

A waived failure keeps what was observed, shows as `waived` and does not make exit 1. An
expired waiver stops applying and the run warns. The file is user input: every problem is one
ConfigError naming the file and the line at fault.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable

from csaudit.collect.textfile import read_text
from csaudit.model.errors import ConfigError
from csaudit.model.results import FlowResult, Waiver
from csaudit.model.vocabulary import Status

_KEYS = ("rule", "flow", "reason", "expires")
_HEADER = re.compile(r"^\s*\[\[\s*waiver\s*\]\]")
_TOML_LINE = re.compile(r"at line (\d+)")




def waived_detail(expires, reason: str, failure: str) -> str:
    """How every format shows a waived flow: the waiver first, then what was seen."""
    return f"waived until {expires}: {reason} ({failure})"


def load_waivers(path: str) -> tuple[Waiver, ...]:
    return parse_waivers(read_text(path, "waivers", ConfigError), path)


def parse_waivers(text: str, origin: str = "waivers") -> tuple[Waiver, ...]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_LINE.search(str(exc))
        raise ConfigError(f"{origin}:{line.group(1) if line else '?'}: not valid TOML: {exc}") from None
    lines = text.splitlines()
    for key in document:
        if key != "waiver":
            raise ConfigError(f"{origin}:{_key_line(lines, key, 0, len(lines))}: unknown top-level key {key!r}; "
                              "expected [[waiver]] tables")
    entries = document.get("waiver", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{origin}:{_key_line(lines, 'waiver', 0, len(lines))}: 'waiver' must be [[waiver]] tables")
    spans = _entry_spans(lines)
    return tuple(_waiver(entry, n, spans, lines, origin) for n, entry in enumerate(entries))


def _waiver(entry, index: int, spans: list[tuple[int, int]], lines: list[str], origin: str) -> Waiver:
    first, end = spans[index] if index < len(spans) else (0, len(lines))

    def fail(what: str, key: str | None = None) -> ConfigError:
        line = _key_line(lines, key, first, end) if key else first + 1
        return ConfigError(f"{origin}:{line}: waiver #{index + 1}: {what}")

    if not isinstance(entry, dict):
        raise fail("must be a table")
    for key in entry:
        if key not in _KEYS:
            raise fail(f"unknown key {key!r} (known: {', '.join(_KEYS)})", key)
    for key in ("rule", "flow", "reason"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise fail(f"{key!r} must be a non-empty string", key)
    if "rule" not in entry and "flow" not in entry:
        raise fail("says nothing to match: give 'rule' (a rule id glob, e.g. \"F12\") or 'flow' (a flow id glob)")
    if "reason" not in entry:
        raise fail("has no 'reason': say why this failure is accepted")
    if "expires" not in entry:
        raise fail("has no 'expires' date: every waiver must end, e.g. expires = 2025-12-31")
    return Waiver(reason=entry["reason"].strip(), expires=_date(entry["expires"], lambda what: fail(what, "expires")),
                  rule=entry.get("rule"), flow=entry.get("flow"), where=f"{origin}:{first + 1}")


def _date(value, fail: Callable[[str], ConfigError]) -> datetime.date:
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            raise fail(f"'expires' = {value!r} is not a date like 2025-12-31") from None
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise fail("'expires' must be a date like 2025-12-31 (no time of day)")
    return value


def _entry_spans(lines: list[str]) -> list[tuple[int, int]]:
    """(first, end) line indexes of each [[waiver]] table, so errors can name the line."""
    starts = [n for n, line in enumerate(lines) if _HEADER.match(line)]
    return [(start, nxt) for start, nxt in zip(starts, [*starts[1:], len(lines)], strict=True)]


def _key_line(lines: list[str], key: str, first: int, end: int) -> int:
    name = rf"[\"']?{re.escape(key)}[\"']?"
    pattern = re.compile(rf"^\s*({name}\s*=|\[+\s*{name}\s*\])")  # `key = ...` or a `[key]` table
    return next((n + 1 for n in range(first, end) if pattern.match(lines[n])), first + 1)


def waive(results: Iterable[FlowResult], waivers: tuple[Waiver, ...], today: datetime.date,
          expired_hits: Counter[Waiver]) -> tuple[FlowResult, ...]:
    """Failures matched by a waiver still in force become `waived` (the first match wins). What expired
    waivers match is counted into `expired_hits`, so the run warns once, with the total, at its end (warn_expired)."""
    active = [w for w in waivers if not w.expired(today)]
    expired = [w for w in waivers if w.expired(today)]
    waived = []
    for result in results:
        if result.status != Status.FAIL:
            waived.append(result)
            continue
        for waiver in expired:
            expired_hits[waiver] += waiver.matches(result)
        waiver = next((w for w in active if w.matches(result)), None)
        waived.append(dataclasses.replace(result, status=Status.WAIVED, waiver=waiver) if waiver else result)
    return tuple(waived)


def warn_expired(waivers: tuple[Waiver, ...], today: datetime.date, expired_hits: Counter[Waiver],
                 warn: Callable[[str], None]) -> None:
    for waiver in waivers:
        if waiver.expired(today):
            hits = expired_hits[waiver]
            warn(f"csaudit: warning: {waiver.where}: the waiver for {waiver.describe()} expired on {waiver.expires} "
                 f"and no longer applies ({hits} failure{'s' if hits != 1 else ''} it matches count again)")
