"""The lab's TLS identity (csaudit/lab/tls.py): made at start, never written where it could stay."""

import datetime
import os
import ssl
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from csaudit.lab import tls
from csaudit.model.errors import ConfigError
from csaudit.vantage.certificates import parse_certificate


def handshake(server: ssl.SSLContext) -> bytes:
    """A whole TLS handshake in memory against the server context; the certificate the client received."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server)
    side = server.wrap_bio(to_server, to_client, server_side=True)
    done = {client: False, side: False}
    for _ in range(20):
        for peer in done:
            if not done[peer]:
                try:
                    peer.do_handshake()
                    done[peer] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            return client.getpeercert(binary_form=True)
    raise AssertionError("the handshake did not complete")


def test_a_self_signed_certificate_for_csaudit_lab_valid_20_years_from_the_start():
    started = datetime.datetime(2027, 2, 28, 10, 11, 12, 999999, tzinfo=datetime.UTC)
    key, certificate = tls.self_signed(started)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert certificate.subject == certificate.issuer == x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "csaudit-lab")])
    assert certificate.not_valid_before_utc == started.replace(microsecond=0)
    assert certificate.not_valid_after_utc == datetime.datetime(2047, 2, 28, 10, 11, 12, tzinfo=datetime.UTC)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    certificate.verify_directly_issued_by(certificate)  # really self-signed, with its own key


def test_each_identity_is_new_and_its_context_serves_its_certificate():
    first, second = tls.make_identity(), tls.make_identity()
    assert first.certificate != second.certificate
    assert handshake(first.context) == first.certificate
    facts = parse_certificate(first.certificate)
    assert facts.subject == facts.issuer == "CN=csaudit-lab"
    assert facts.not_before <= datetime.datetime.now(datetime.UTC) < facts.not_before + datetime.timedelta(minutes=5)


def test_the_key_goes_through_memory_and_touches_no_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    loaded = []
    original = ssl.SSLContext.load_cert_chain

    def spy(context, certfile, *args, **kwargs):
        loaded.append(str(certfile))
        return original(context, certfile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    identity = tls.make_identity()
    assert len(loaded) == 1 and loaded[0].startswith("/proc/self/fd/")
    assert not os.path.exists(loaded[0]) or "csaudit-lab-tls" not in os.readlink(loaded[0])  # closed once loaded
    assert list(tmp_path.iterdir()) == []
    assert handshake(identity.context) == identity.certificate


def test_without_a_memory_file_a_private_temporary_file_is_removed_once_loaded(monkeypatch, tmp_path):
    monkeypatch.delattr(os, "memfd_create")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []
    original = ssl.SSLContext.load_cert_chain

    def spy(context, certfile, *args, **kwargs):
        seen.append((str(certfile), os.stat(certfile).st_mode & 0o777, os.path.dirname(certfile)))
        return original(context, certfile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    identity = tls.make_identity()
    ((path, mode, folder),) = seen
    assert (mode, folder) == (0o600, str(tmp_path)) and os.path.basename(path).startswith("csaudit-lab-")
    assert list(tmp_path.iterdir()) == []  # removed before the lab serves anything
    assert handshake(identity.context) == identity.certificate


def test_a_temporary_folder_that_cannot_take_the_file_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delattr(os, "memfd_create")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as raised:
        tls.make_identity()
    assert raised.value.message == (f"lab cannot load its TLS key through a private temporary file in {tmp_path / 'missing'} "
                                    "(No such file or directory)")
