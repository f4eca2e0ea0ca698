"""The lab's TLS identity, made when the lab starts: csaudit ships no private key.

A fresh EC P-256 key (quick to make) and a self-signed certificate that says what the certificate
once bundled with the lab said: CN=csaudit-lab for subject and issuer, basic constraints CA:TRUE,
no subject alternative name, valid for 20 years from the moment the lab starts.

The ssl module loads a key only from a file. The PEM goes to an anonymous file in memory (memfd,
Linux) read through /proc/self/fd; where there is none, to a private temporary file (mode 600,
in TMPDIR) removed as soon as it is loaded. Either way the key then lives only in the server
context, in this process's memory, until the lab stops.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csaudit.model.errors import ConfigError

COMMON_NAME = "csaudit-lab"
VALID_DAYS = 20 * 365 + 5  # 20 years (five leap days)


@dataclasses.dataclass(frozen=True)
class Identity:
    """What the lab's TLS ports serve."""

    certificate: bytes  # DER, the bytes a client receives
    context: ssl.SSLContext  # server side, holding the key


def self_signed(now: datetime.datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its self-signed certificate, valid from now (whole seconds) for VALID_DAYS."""
    start = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def make_identity(now: datetime.datetime | None = None) -> Identity:
    """A new key and certificate, loaded into a TLS server context."""
    key, certificate = self_signed(now)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) + certificate.public_bytes(serialization.Encoding.PEM)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if not _load_from_memory(context, pem):
        _load_from_private_file(context, pem)
    return Identity(certificate.public_bytes(serialization.Encoding.DER), context)


def _load_from_memory(context: ssl.SSLContext, pem: bytes) -> bool:
    """True when the key and certificate were loaded from an anonymous memory file."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = os.memfd_create("csaudit-lab-tls", os.MFD_CLOEXEC)
    except OSError:
        return False
    try:
        with os.fdopen(os.dup(fd), "wb") as file:
            file.write(pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    except OSError:  # /proc not readable here (ssl.SSLError is one too): use a private file
        return False
    finally:
        os.close(fd)
    return True


def _load_from_private_file(context: ssl.SSLContext, pem: bytes) -> None:
    folder = tempfile.gettempdir()
    try:
        # mkstemp: mode 600, a name nobody else can take; removed when the block ends
        with tempfile.NamedTemporaryFile(prefix="csaudit-lab-", suffix=".pem", dir=folder) as file:
            file.write(pem)
            file.flush()
            context.load_cert_chain(file.name)
    except OSError as error:
        raise ConfigError(f"lab cannot load its TLS key through a private temporary file in {folder} "
                          f"({error.strerror or error})") from None
