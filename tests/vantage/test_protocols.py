"""Unit level: the pure request/parse functions of each probe kind, the verdict rules, the catalogue vocabulary."""

import datetime
import struct

import pytest

from csaudit.judge.verdict import judge
from csaudit.lab import banners as lab
from csaudit.model.errors import ConfigError
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.probes import Observation
from csaudit.model.vocabulary import TCP_KINDS, UDP_KINDS
from csaudit.plan.catalogue import PROBE_PROTOCOLS, load_catalogue, parse_catalogue
from csaudit.vantage import certificates, protocols


def flow(expect="open", probe="mysql"):
    return Flow(id="T", rule="T01", title="t", zone=None, source=Endpoint("user", "u", None), target=Endpoint("db", "db", "127.0.0.9"),
                protocol="tcp", port=3306, port_end=None, expect=expect, probe=probe, citation="c")


def test_the_catalogue_vocabulary_matches_what_the_probes_can_do():
    for kind, allowed in PROBE_PROTOCOLS.items():
        if kind in ("tcp", "none"):
            continue
        assert ("tcp" in allowed) == (kind in TCP_KINDS), kind
        assert ("udp" in allowed) == (kind in UDP_KINDS), kind
        assert kind in protocols.SERVICE_NAMES


def test_catalogue_refuses_a_kind_over_a_protocol_it_cannot_run_on():
    entry = ('[[flow]]\nid = "F99"\ntitle = "t"\nsource = "ms"\ntarget = "db"\nports = [123]\nprotocol = "tcp"\n'
             'probe = "ntp"\nexpect = "open"\nhypervisors = ["any"]\ncitation = "c"\n'
             'remedy = { on = "the MS", check = "x", commands = ["ss -tln"], citation = "docs" }\n')
    with pytest.raises(ConfigError, match="probe 'ntp' cannot run over tcp"):
        parse_catalogue(entry)
    with pytest.raises(ConfigError, match="probe must be one of"):
        parse_catalogue(entry.replace('"ntp"', '"imap"'))


def test_the_built_in_catalogue_probes_each_flow_with_its_service():
    kinds = {(r.id, r.ports[0].first, r.protocols): r.probe for r in load_catalogue()}
    assert kinds[("F04", 3306, ("tcp",))] == "mysql" and kinds[("D01", 8096, ("tcp",))] == "http-api"
    assert kinds[("F23", 111, ("tcp", "udp"))] == "rpcbind" and kinds[("F23", 2049, ("tcp",))] == "nfs"
    assert kinds[("F08", 8250, ("tcp",))] == "tls" and kinds[("F18", 3922, ("tcp",))] == "ssh"
    assert kinds[("F30", 53, ("udp", "tcp"))] == "dns" and kinds[("F31", 123, ("udp",))] == "ntp"
    assert kinds[("F34", 5900, ("tcp",))] == "vnc"


# ------------------------------------------------------------------ parsers, with the lab's real byte builders

def test_mysql_greeting_and_error_packet():
    answer = protocols.read_stream("mysql", lab.mysql_greeting("8.0.36", 7), None)
    assert (answer.service, answer.detail, answer.matched) == ("MySQL", "MySQL 8.0.36 (protocol 10)", True)
    refused = b"\xff\x6a\x04#HY000Host '127.0.0.9' is not allowed to connect to this MySQL server"
    answer = protocols.read_stream("mysql", struct.pack("<I", len(refused))[:3] + b"\x00" + refused, None)
    assert answer.matched and answer.detail.startswith("refuses this client: error 1130 Host '127.0.0.9'")


def test_partial_answers_wait_for_more_bytes():
    greeting = lab.mysql_greeting("8.0.36", 7)
    assert protocols.read_stream("mysql", greeting[:10], None) is None
    assert protocols.read_stream("ssh", b"SSH-2.0-Open", None) is None
    assert protocols.read_stream("vnc", b"RFB 003", None) is None
    assert protocols.read_stream("http-api", b"HTTP/1.1 401 X\r\n", None) is None


def test_a_truncated_answer_at_close_is_a_mismatch_not_a_crash():
    answer = protocols.read_stream("mysql", lab.mysql_greeting("8.0.36", 7)[:10], "closed")
    assert not answer.matched


def test_ssh_banner_after_other_lines():
    answer = protocols.read_stream("ssh", b"hello\r\nSSH-2.0-OpenSSH_7.4\r\n", None)
    assert (answer.service, answer.detail) == ("SSH", "OpenSSH_7.4")


def test_dns_reply_of_the_lab_is_read_over_udp_and_tcp():
    query = protocols.dns_query()
    answer = protocols.read_datagrams("dns", [lab.dns_reply(query)], None)
    assert answer.matched and answer.detail == "NXDOMAIN, 0 answer(s), recursion available"
    framed = protocols.request("dns", "tcp", "127.0.0.9", 53)[0]
    assert framed[2:] == query
    reply = lab.dns_tcp_reply(bytearray(framed))
    assert protocols.read_stream("dns", reply, None).matched


def test_rpcbind_and_nfs_replies_of_the_lab():
    registered = {(lab.NFS, "tcp"): 2049}
    replies = [lab.rpc_reply(call, lab.PORTMAPPER, registered) for call in protocols.rpcbind_calls()]
    answer = protocols.read_datagrams("rpcbind", replies, None)
    assert answer.detail == "nfs on 2049/tcp, mountd not registered" and answer.warnings == ()
    stream = protocols.request("rpcbind", "tcp", "127.0.0.9", 111)[0]
    assert protocols.read_stream("rpcbind", lab.rpc_tcp_reply(bytearray(stream), lab.PORTMAPPER, registered) +
                                 lab.rpc_tcp_reply(bytearray(stream[len(protocols.record(protocols.rpcbind_calls()[0])):]),
                                                   lab.PORTMAPPER, registered), None).matched
    null = lab.rpc_tcp_reply(bytearray(protocols.request("nfs", "tcp", "127.0.0.9", 2049)[0]), lab.NFS, {})
    assert protocols.read_stream("nfs", null, None).detail == "answers the NFSv3 NULL call"


def test_ntp_reply_and_kiss_of_death():
    reply = lab.ntp_reply(protocols.ntp_request(), now=1_700_000_000)
    answer = protocols.read_datagrams("ntp", [reply], None)
    assert answer.matched and answer.detail == "v4, stratum 2, reference 127.42.0.1"
    kiss = bytes([0x24, 0]) + bytes(10) + b"RATE" + bytes(32)
    assert protocols.read_datagrams("ntp", [kiss], None).warnings == ("the NTP server says RATE (kiss-o'-death)",)


def test_requests_carry_no_credentials():
    request = protocols.http_api_request("127.0.0.9", 8080)
    assert b"apikey" not in request.lower() and b"signature" not in request.lower() and b"Authorization" not in request
    for call in (*protocols.rpcbind_calls(), protocols.nfs_null_call()):
        assert call[24:40] == bytes(16)  # AUTH_NONE credential and verifier
    assert protocols.ntp_request()[1:] == bytes(47)  # no timestamps of ours


def test_identify_names_what_answered_instead():
    assert protocols.identify(b"SSH-2.0-x\r\n")[0] == "SSH"
    assert protocols.identify(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n") == ("HTTP", "HTTP/1.1 200 OK, Server: nginx")
    assert protocols.identify(b"RFB 003.008\n")[0] == "VNC"
    assert protocols.identify(b"\x16\x03\x03\x00\x10")[0] == "TLS"
    assert protocols.identify(lab.mysql_greeting("8.0.36", 1))[0] == "MySQL"
    assert protocols.identify(b"") == (None, "nothing was said")
    assert protocols.identify(b"\x00\x01\x02")[0] is None


def test_http_api_answers():
    signed = b'HTTP/1.1 401 Unauthorized\r\n\r\n{"listcapabilitiesresponse":{"errorcode":401,"errortext":"unable to verify"}}'
    assert protocols.read_stream("http-api", signed, "closed").service == "CloudStack API"
    integration = b'HTTP/1.1 200 OK\r\n\r\n{"listcapabilitiesresponse":{"capability":{"cloudstackversion":"4.19.1.0"}}}'
    answer = protocols.read_stream("http-api", integration, "closed")
    assert answer.service == "CloudStack integration API" and answer.danger
    web = protocols.read_stream("http-api", b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n", "closed")
    assert not web.matched and web.service == "HTTP"


# ------------------------------------------------------------------ TLS facts (the lab's certificate, made as when it starts)

LAB_STARTED = datetime.datetime(2026, 11, 24, 4, 50, 42, tzinfo=datetime.UTC)


def lab_der():
    from cryptography.hazmat.primitives.serialization import Encoding

    from csaudit.lab import tls

    _, certificate = tls.self_signed(LAB_STARTED)
    return certificate.public_bytes(Encoding.DER)


def test_certificate_subject_issuer_and_expiry_from_der():
    cert = certificates.parse_certificate(lab_der())
    assert cert.subject == cert.issuer == "CN=csaudit-lab" and cert.not_after.year == 2046
    assert (cert.not_before, cert.not_after) == (LAB_STARTED, datetime.datetime(2046, 11, 24, 4, 50, 42, tzinfo=datetime.UTC))


def test_tls_expiry_rules():
    der = lab_der()
    not_after = certificates.parse_certificate(der).not_after
    not_before = certificates.parse_certificate(der).not_before
    fine = protocols.tls_answer("TLSv1.3", der, "self-signed certificate", not_before + datetime.timedelta(days=1))
    assert fine.warnings == () and fine.problem is None and "self-signed, untrusted here" in fine.detail
    soon = protocols.tls_answer("TLSv1.3", der, None, not_after - datetime.timedelta(days=29, hours=1))
    assert soon.warnings and soon.problem is None
    late = protocols.tls_answer("TLSv1.3", der, None, not_after + datetime.timedelta(days=2))
    assert late.problem.startswith("the certificate expired on 2046-")


# ------------------------------------------------------------------ verdict

def test_verdict_rules_for_protocol_observations():
    mismatch = Observation("open", "x", service="HTTP", detail="it speaks HTTP (..), not MySQL", mismatch="it speaks HTTP (..), not MySQL")
    assert judge(flow(), mismatch).reason == "port open, but it speaks HTTP (..), not MySQL"
    assert judge(flow(), mismatch).status == "fail"
    assert judge(flow("closed"), mismatch).status == "fail"
    expired = Observation("open", "TLS answers", service="TLS", problem="the certificate expired on 2020-01-01")
    assert judge(flow(probe="tls"), expired).reason == "TLS answers, but the certificate expired on 2020-01-01"
    silent = Observation("open|filtered", "no reply")
    assert judge(flow(), silent).status == judge(flow("closed"), silent).status == "unverified"
    danger = Observation("open", "integration API answers", danger="anyone runs anything")
    assert judge(flow("closed"), danger).reason == "critical: must be closed, but integration API answers (anyone runs anything)"
    assert judge(flow(), Observation("open", "MySQL answers", service="MySQL", warnings=("w",))).status == "pass"
