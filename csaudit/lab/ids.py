"""Stable identifiers: the same topology always yields the same uuids and MACs.

Derived from names (uuid5), never from addresses, so relocating a lab to another
127.N.0.0/16 keeps every id, and tests can hard-code none of them yet compare runs.
"""

import functools
import hashlib
import uuid

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://csaudit.invalid/lab")


@functools.lru_cache(maxsize=4096)  # shared ids (domain, templates, networks) recur on every row
def uuid_for(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{name}"))


def mac_for(kind: str, name: str, nic: str) -> str:
    """A locally administered unicast MAC, like CloudStack's 1e:00:... guest MACs."""
    digest = hashlib.sha1(f"{kind}/{name}/{nic}".encode()).digest()
    return "1e:00:" + ":".join(f"{byte:02x}" for byte in digest[:4])


def long_id_for(kind: str, name: str) -> int:
    """A positive 'msid'-like long, for fields that were numeric in old releases."""
    digest = hashlib.sha1(f"{kind}/{name}".encode()).digest()
    return int.from_bytes(digest[:5], "big")
