"""Where csaudit finds the CloudStack endpoint and credentials.

The sources and their precedence are exactly those of the `cs` library (`cs.read_config`):
CLOUDSTACK_* environment variables first; otherwise ~/.cloudstack.ini, ./cloudstack.ini and
$CLOUDSTACK_CONFIG (last one read wins), section [cloudstack] or --region / CLOUDSTACK_REGION.
`--endpoint` only replaces the endpoint. Secrets never come from the command line.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import os
from urllib.parse import urlsplit, urlunsplit

import cs

from csaudit.model.errors import ConfigError

log = logging.getLogger("csaudit.collect.config")

CONFIG_PLACES = (
    "CLOUDSTACK_ENDPOINT/CLOUDSTACK_KEY/CLOUDSTACK_SECRET in the environment",
    "~/.cloudstack.ini",
    "./cloudstack.ini",
    "$CLOUDSTACK_CONFIG",
)


ENV_ONLY_KEYS = ("key", "secret", "timeout", "verify", "dangerous_no_tls_verify", "cert", "cert_key")


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    endpoint: str
    key: str | None = dataclasses.field(default=None, repr=False)
    secret: str | None = dataclasses.field(default=None, repr=False)
    timeout: int = 10
    verify: str | None = None
    dangerous_no_tls_verify: bool = False
    cert: str | None = None
    cert_key: str | None = None
    region: str | None = None

    @property
    def api_mode(self) -> str:
        """No key and secret means the unauthenticated integration port (8096)."""
        return "signed" if self.key and self.secret else "integration"

    @property
    def public_endpoint(self) -> str:
        """The endpoint with any user:password@ part removed, fit for reports and logs."""
        return redact_url(self.endpoint)

    def cs_kwargs(self) -> dict:
        kwargs = {
            "endpoint": self.endpoint,
            "timeout": self.timeout,
            "method": "get",  # the integration port ignores POST bodies
            "dangerous_no_tls_verify": self.dangerous_no_tls_verify,
        }
        if self.api_mode == "signed":
            kwargs.update(key=self.key, secret=self.secret)
        for name in ("verify", "cert", "cert_key"):
            if getattr(self, name):
                kwargs[name] = getattr(self, name)
        return kwargs


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def warn_readable_secrets() -> list[str]:
    """Config files that hold a secret and can be read by group or others: one warning each."""
    paths = [os.path.expanduser("~/.cloudstack.ini"), os.path.join(os.getcwd(), "cloudstack.ini")]
    if os.environ.get("CLOUDSTACK_CONFIG"):
        paths.append(os.path.expanduser(os.environ["CLOUDSTACK_CONFIG"]))
    warnings = []
    for path in dict.fromkeys(paths):
        try:
            mode = os.stat(path).st_mode
            with open(path, encoding="utf-8", errors="replace") as handle:
                holds_secret = any(line.strip().lower().startswith("secret") for line in handle)
        except OSError:
            continue
        if holds_secret and mode & 0o077:
            warnings.append(f"{path} holds the API secret and is readable by others (mode {mode & 0o777:o}); run chmod 600 {path}")
    for warning in warnings:
        log.warning(warning)
    return warnings


def load_api_config(endpoint: str | None = None, region: str | None = None) -> ApiConfig:
    """Read the configuration the way `cs` users already have it, plus an --endpoint override."""
    warn_readable_secrets()
    try:
        raw = cs.read_config(ini_group=region)
    except SystemExit as exc:  # cs signals "no config file at all" with SystemExit
        if endpoint is None:
            raise ConfigError(
                "no CloudStack configuration found; csaudit looked at "
                + ", ".join(CONFIG_PLACES)
                + " (or pass --endpoint for an integration-port endpoint)"
            ) from exc
        # No file, but --endpoint given: the rest may still come from CLOUDSTACK_* variables.
        raw = {name: os.environ.get(f"CLOUDSTACK_{name.upper()}") for name in ENV_ONLY_KEYS}
    except configparser.NoSectionError as exc:
        raise ConfigError(f"region [{region}] is not in any cloudstack.ini that csaudit read") from exc
    except (configparser.Error, ValueError) as exc:
        raise ConfigError(f"cloudstack configuration is unusable: {exc}") from exc

    endpoint = endpoint or raw.get("endpoint")
    if not endpoint:
        raise ConfigError(
            "no CloudStack endpoint configured; csaudit looked at " + ", ".join(CONFIG_PLACES)
        )
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
        raise ConfigError(f"endpoint {redact_url(endpoint)!r} is not an http(s) URL")
    key, secret = raw.get("key") or None, raw.get("secret") or None
    if bool(key) != bool(secret):
        raise ConfigError("an API key needs its secret (and a secret its key); set both or neither")
    try:
        timeout = int(raw.get("timeout") or 10)
    except ValueError as exc:
        raise ConfigError(f"timeout must be a whole number of seconds, not {raw.get('timeout')!r}") from exc
    return ApiConfig(
        endpoint=endpoint,
        key=key,
        secret=secret,
        timeout=timeout,
        verify=raw.get("verify") or None,
        dangerous_no_tls_verify=_truthy(raw.get("dangerous_no_tls_verify")),
        cert=raw.get("cert") or None,
        cert_key=raw.get("cert_key") or None,
        region=raw.get("name"),
    )


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
