"""Request signature verification, as ApiServer.verifyRequest does it.

Kept separate and pure so the exact algorithm (what is sorted, what is encoded,
when it is lower-cased) can be read and tested against the `cs` client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

_EXPIRES_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")


def java_url_encode(value: str) -> str:
    """URLEncoder.encode(value, "UTF-8").replaceAll("\\+", "%20")."""
    # quote() keeps A-Za-z0-9 and "_.-~" and encodes space as %20; Java also keeps "*"
    # but encodes "~" (so a "~" in a value breaks cs signatures on real servers too).
    return quote(value, safe="*").replace("~", "%7E")


def string_to_sign(params: Mapping[str, str]) -> str:
    """Names sorted case-sensitively (Collections.sort), `signature` skipped, lower-cased."""
    pairs = [f"{name}={java_url_encode(params[name])}"
             for name in sorted(params) if name.lower() != "signature"]
    return "&".join(pairs).lower()


def sign(params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), string_to_sign(params).encode("utf-8"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_expires(text: str) -> datetime | None:
    """DateUtil.parseTZDateString: 2024-01-01T12:00:00+0000 (cs sends exactly this)."""
    for pattern in _EXPIRES_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def verify(params: Mapping[str, str], secrets: Mapping[str, str],
           now: datetime | None = None) -> bool:
    """True when the request carries a valid, unexpired signature of a known key.

    `params` holds the first value of every parameter, names as received.
    """
    lowered = {name.lower(): value for name, value in params.items()}
    api_key, signature = lowered.get("apikey"), lowered.get("signature")
    if not api_key or not signature or api_key not in secrets:
        return False
    if lowered.get("signatureversion") == "3":
        expires = parse_expires(lowered.get("expires", ""))
        if expires is None or expires < (now or datetime.now(UTC)):
            return False
    expected = sign(params, secrets[api_key])
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
