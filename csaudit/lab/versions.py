"""CloudStack release numbers, compared as tuples ("4.20.1.0" > "4.19.1.0")."""

import functools
from collections.abc import Mapping

Version = tuple[int, ...]


@functools.lru_cache(maxsize=256)  # called for every gated field of every row
def parse_version(text: str) -> Version:
    parts = tuple(int(part) for part in text.split("."))
    return parts + (0,) * (4 - len(parts))


def at_least(version: Version, since: str | None) -> bool:
    return since is None or version >= parse_version(since)


_too_new: dict[tuple[int, Version], frozenset[str]] = {}


def gate(row: dict, since: Mapping[str, str], version: Version) -> dict:
    """Drop the fields this release does not have yet, and nulls (Gson omits them)."""
    key = (id(since), version)  # the since-tables are module constants: id() is stable
    dropped = _too_new.get(key)
    if dropped is None:
        dropped = _too_new[key] = frozenset(
            name for name, first in since.items() if not at_least(version, first))
    return {name: value for name, value in row.items()
            if value is not None and name not in dropped}
