"""Unit level: certificate facts from DER (csaudit/vantage/certificates.py) and what tls_answer says about them.

The certificates are made here with cryptography; malformed ones are cut or altered from those.
"""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from csaudit.vantage import certificates, protocols

UTC = datetime.UTC
KEY = ec.generate_private_key(ec.SECP256R1())
CA = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csaudit test CA"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "csaudit")])
NOW = datetime.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def make_der(subject: x509.Name, issuer: x509.Name = CA, not_before=datetime.datetime(2030, 1, 1, tzinfo=UTC),
             not_after=datetime.datetime(2031, 1, 1, tzinfo=UTC)) -> bytes:
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(KEY.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
                   .sign(KEY, hashes.SHA256()))
    return certificate.public_bytes(Encoding.DER)


def names(*pairs) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


GOOD = make_der(names((NameOID.COMMON_NAME, "fresh")))
UNREADABLE = "TLSv1.3 handshake; the certificate could not be read"


def assert_unreadable(der: bytes) -> None:
    with pytest.raises(certificates.CertificateError) as raised:
        certificates.parse_certificate(der)
    assert str(raised.value) == "not a well-formed X.509 certificate (DER)"  # words, not the library's message
    answer = protocols.tls_answer("TLSv1.3", der, None, NOW)
    assert (answer.service, answer.detail, answer.matched, answer.problem, answer.warnings) == ("TLS", UNREADABLE, True, None, ())


def test_the_facts_of_a_ca_signed_certificate():
    cert = certificates.parse_certificate(GOOD)
    assert (cert.subject, cert.issuer) == ("CN=fresh", "CN=csaudit test CA, O=csaudit") and not cert.self_signed
    assert (cert.not_before, cert.not_after) == (datetime.datetime(2030, 1, 1, tzinfo=UTC), datetime.datetime(2031, 1, 1, tzinfo=UTC))
    answer = protocols.tls_answer("TLSv1.3", GOOD, "unable to get local issuer certificate", NOW)
    assert answer.detail == ("TLSv1.3, CN=fresh, expires 2031-01-01, issuer CN=csaudit test CA, O=csaudit, "
                             "untrusted here (unable to get local issuer certificate)")
    assert (answer.problem, answer.warnings) == (None, ())


@pytest.mark.parametrize("der", [b"garbage", b"\x00", b"\xff" * 64, b"\x30\x03\x02\x01\x01",  # a SEQUENCE, not a certificate
                                 b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
                         ids=["text", "one-byte", "ff", "not-a-certificate", "pem-not-der"])
def test_garbage_der_is_said_in_words(der):
    assert_unreadable(der)


@pytest.mark.parametrize("keep", [1, 2, 4, 40, len(GOOD) // 2, len(GOOD) - 1])
def test_truncated_der_is_said_in_words(keep):
    assert_unreadable(GOOD[:keep])


def test_trailing_bytes_and_an_unknown_version_are_said_in_words():
    assert_unreadable(GOOD + b"\x00")
    version = GOOD.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT INTEGER 2 (v3)
    assert_unreadable(GOOD[:version + 4] + b"\x05" + GOOD[version + 5:])  # the library raises InvalidVersion, no ValueError


def test_no_certificate_at_all():
    assert protocols.tls_answer(None, b"", None, NOW).detail == "TLS handshake, but no certificate was sent"


def test_a_certificate_without_a_common_name():
    der = make_der(names((NameOID.ORGANIZATION_NAME, "csaudit"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
                         (NameOID.EMAIL_ADDRESS, "ops@example.org")))
    assert certificates.parse_certificate(der).subject == "O=csaudit, OU=ops, 1.2.840.113549.1.9.1=ops@example.org"
    assert protocols.tls_answer("TLSv1.2", der, None, NOW).detail == (
        "TLSv1.2, O=csaudit, OU=ops, 1.2.840.113549.1.9.1=ops@example.org, expires 2031-01-01, issuer CN=csaudit test CA, O=csaudit")
    empty = make_der(x509.Name([]), issuer=x509.Name([]))
    cert = certificates.parse_certificate(empty)
    assert cert.subject == cert.issuer == "(empty)" and cert.self_signed
    assert protocols.tls_answer("TLSv1.3", empty, None, NOW).detail == "TLSv1.3, (empty), expires 2031-01-01, self-signed"


def test_a_non_ascii_subject():
    subject = names((NameOID.COUNTRY_NAME, "CH"), (NameOID.LOCALITY_NAME, "Zürich"), (NameOID.ORGANIZATION_NAME, "Société Générale"),
                    (NameOID.COMMON_NAME, "東京-ms1 ✓"))
    der = make_der(subject, issuer=subject)
    assert "Zürich".encode() in der  # UTF8String on the wire
    cert = certificates.parse_certificate(der)
    assert cert.subject == cert.issuer == "C=CH, L=Zürich, O=Société Générale, CN=東京-ms1 ✓"
    assert protocols.tls_answer("TLSv1.3", der, "self-signed certificate", NOW).detail == (
        "TLSv1.3, C=CH, L=Zürich, O=Société Générale, CN=東京-ms1 ✓, expires 2031-01-01, self-signed, untrusted here")


def test_utctime_and_generalizedtime_dates():
    """RFC 5280 4.1.2.5: UTCTime through 2049 (YY >= 50 means 19YY), GeneralizedTime from 2050 on."""
    utc_times = make_der(names((NameOID.COMMON_NAME, "utc")), not_before=datetime.datetime(1950, 1, 1, tzinfo=UTC),
                         not_after=datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert b"\x17\x0d500101000000Z" in utc_times and b"\x17\x0d491231235959Z" in utc_times
    cert = certificates.parse_certificate(utc_times)
    assert (cert.not_before, cert.not_after) == (datetime.datetime(1950, 1, 1, tzinfo=UTC),
                                                 datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))
    early = protocols.tls_answer("TLSv1.3", utc_times, None, datetime.datetime(1949, 6, 1, tzinfo=UTC))
    assert early.warnings == ("the certificate is not valid before 1950-01-01",)

    generalized = make_der(names((NameOID.COMMON_NAME, "generalized")), not_before=datetime.datetime(2050, 1, 1, tzinfo=UTC),
                           not_after=datetime.datetime(2150, 6, 30, 8, 30, 15, tzinfo=UTC))
    assert b"\x18\x0f20500101000000Z" in generalized and b"\x18\x0f21500630083015Z" in generalized
    cert = certificates.parse_certificate(generalized)
    assert (cert.not_before, cert.not_after) == (datetime.datetime(2050, 1, 1, tzinfo=UTC),
                                                 datetime.datetime(2150, 6, 30, 8, 30, 15, tzinfo=UTC))

    both = make_der(names((NameOID.COMMON_NAME, "both")), not_before=datetime.datetime(2049, 12, 31, tzinfo=UTC),
                    not_after=datetime.datetime(2050, 1, 1, 12, tzinfo=UTC))
    assert b"\x17\x0d491231000000Z" in both and b"\x18\x0f20500101120000Z" in both
    cert = certificates.parse_certificate(both)
    assert (cert.not_before, cert.not_after) == (datetime.datetime(2049, 12, 31, tzinfo=UTC), datetime.datetime(2050, 1, 1, 12, tzinfo=UTC))
    assert cert.not_before.utcoffset() == cert.not_after.utcoffset() == datetime.timedelta(0)
    late = protocols.tls_answer("TLSv1.3", both, None, datetime.datetime(2050, 1, 3, 12, tzinfo=UTC))
    assert late.problem == "the certificate expired on 2050-01-01 (2 days ago)"
