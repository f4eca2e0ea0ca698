"""Move a whole topology to another 127.N.0.0/16 when its addresses are taken.

Only the second octet changes, and it changes the same way in every string of
the topology (addresses, nfs:// URLs, settings such as `host`), so the moved
cloud is the same cloud: same names, same uuids, same faults.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from csaudit.lab.schema import Topology

_KEEP_FIELDS = {"api_key", "secret_key"}  # credentials are opaque, never rewritten
_LOOPBACK = re.compile(r"(?<![\d.])127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def shift_octet(octet: int, delta: int) -> int:
    """Rotate within 1..254: never 127.0.x.x (localhost services) nor 127.255.x.x."""
    return (octet - 1 + delta) % 254 + 1


def _rewrite_text(text: str, delta: int) -> str:
    if "127." not in text:
        return text
    # 127.0.x.x is this machine's own localhost (the source of its probes, in an allow-list), not the cloud's
    return _LOOPBACK.sub(lambda m: m.group(0) if m.group(1) == "0" else f"127.{shift_octet(int(m.group(1)), delta)}."
                         f"{m.group(2)}.{m.group(3)}", text)


def _rewrite(value: Any, delta: int) -> Any:
    if isinstance(value, str):
        return _rewrite_text(value, delta)
    if isinstance(value, tuple):
        return tuple(_rewrite(item, delta) for item in value)
    if isinstance(value, dict):
        return {key: _rewrite(item, delta) for key, item in value.items()}
    if dataclasses.is_dataclass(value):
        changes = {field.name: _rewrite(getattr(value, field.name), delta)
                   for field in dataclasses.fields(value) if field.name not in _KEEP_FIELDS}
        return dataclasses.replace(value, **changes)
    return value


def relocate(topology: Topology, delta: int) -> Topology:
    """The same topology with every 127.a.b.c rewritten to 127.(a+delta).b.c."""
    return _rewrite(topology, delta)


def second_octet(address: str) -> int:
    return int(address.split(".")[1])
