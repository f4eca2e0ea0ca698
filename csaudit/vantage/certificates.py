"""What csaudit reads from a TLS server's certificate: DER bytes in, subject, issuer and validity out.

The DER is decoded by `cryptography` (x509.load_der_x509_certificate); nothing is verified here
(exchange.py asks the ssl module whether this machine trusts the chain). Names are written as the
report shows them: each attribute as KEY=value in the order the certificate lists them, with the
usual short keys (CN, O, OU, L, ST, C) and the dotted OID for any other attribute.
"""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import x509

# OID -> the short key the report writes (others keep their dotted OID)
NAME_KEYS = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU"}


class CertificateError(ValueError):
    """The bytes are not a certificate csaudit can read; str() says so in words, never a library's message."""


@dataclasses.dataclass(frozen=True)
class Certificate:
    subject: str  # "CN=csaudit-lab", "(empty)" when the certificate names nobody
    issuer: str
    not_before: datetime.datetime  # timezone-aware, UTC
    not_after: datetime.datetime

    @property
    def self_signed(self) -> bool:
        """Issued by its own subject (names compared as written; the signature is not checked)."""
        return self.subject == self.issuer


def parse_certificate(der: bytes) -> Certificate:
    """Subject, issuer and validity of an X.509 certificate (RFC 5280 4.1), read from DER.

    Raises CertificateError (and nothing else) when the bytes are not one well-formed certificate:
    garbage, truncated, trailing bytes, an unknown version, a name or date that does not decode.
    """
    try:
        certificate = x509.load_der_x509_certificate(bytes(der))
        return Certificate(_name(certificate.subject), _name(certificate.issuer),
                           certificate.not_valid_before_utc, certificate.not_valid_after_utc)
    except Exception:  # bytes from the network; the library's errors vary (ValueError, x509.InvalidVersion)
        raise CertificateError("not a well-formed X.509 certificate (DER)") from None


def _name(name: x509.Name) -> str:
    parts = []
    for rdn in name.rdns:
        for attribute in rdn:
            oid = attribute.oid.dotted_string
            value = attribute.value
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            parts.append(f"{NAME_KEYS.get(oid, oid)}={text}")
    return ", ".join(parts) or "(empty)"
