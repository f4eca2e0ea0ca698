"""Protocol probes (issue 6) against real servers: each kind recognises its service, and a wrong service
on the right port is a fail that names what answered.

Real daemons where this machine can run them (sshd, openssl s_server, mariadbd, dnsmasq, rpcbind in a
private network namespace); the lab's listeners for the wrong services, VNC and NTP; recorded bytes for
NFS (see test_nfs_null_call_against_replayed_knfsd_bytes). Everything goes through the local vantage
(connect phase, then the exchange), the way `csaudit run` probes. Each test's marks say what it needs:
programs(...) for a daemon, root for a port below 1024 (or sshd), netns for rpcbind's private namespace.
"""

import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading

import pytest

from csaudit.judge.verdict import judge
from csaudit.lab.listeners import Listeners
from csaudit.lab.services import Service
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.probes import ProbeOptions, ProbeTarget
from csaudit.vantage.local import LocalVantage
from tests import realservers
from tests.conftest import SYSTEM_DIRS
from tests.faultserver import FaultServer, integration_api, signed_api
from tests.realservers import unique_address

TIMEOUT = 2.0
REPO = pathlib.Path(__file__).resolve().parents[2]


def probe(*targets, timeout=TIMEOUT):
    results = LocalVantage().probe(list(targets), ProbeOptions(timeout=timeout))
    assert set(results) == set(targets)
    return results[targets[0]] if len(targets) == 1 else results


def flow_for(target, expect="open"):
    return Flow(id="T", rule="T01", title="test", zone=None, source=Endpoint("user", "this machine", None),
                target=Endpoint("x", "x", target.address), protocol=target.protocol, port=target.port, port_end=None,
                expect=expect, probe=target.kind, citation="test")


def verdict(target, expect="open", timeout=TIMEOUT):
    return judge(flow_for(target, expect), probe(target, timeout=timeout), "local")


@pytest.fixture
def wrong_service():
    """Lab listeners speaking `kind` on `port` of a fresh 127.62.<pid>.N address: the wrong service on the right port."""
    started = []

    def make(kind, port, protocol="tcp", n=200):
        address = unique_address(n + len(started))
        listeners = Listeners([Service(f"wrong-{kind}", "database", address, port, protocol, kind)])
        listeners.bind_all()
        listeners.start()
        started.append(listeners)
        return address

    yield make
    for listeners in started:
        listeners.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("realservers")


# ------------------------------------------------------------------ ssh

@pytest.fixture(scope="module")
def openssh(folder):
    with realservers.sshd(folder) as where:
        yield where


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen")
def test_ssh_banner_of_a_real_openssh(openssh):
    address, port = openssh
    result = verdict(ProbeTarget(address, port, kind="ssh"))
    assert (result.status, result.service) == ("pass", "SSH")
    assert result.detail.startswith("OpenSSH_") and "Debian" in result.detail


@pytest.mark.root
def test_ssh_probe_on_port_22_answered_by_http_fails(wrong_service):
    address = wrong_service("http", 22)
    result = verdict(ProbeTarget(address, 22, kind="ssh"), timeout=1.0)
    assert result.status == "fail" and result.service == "HTTP"
    assert result.reason.startswith("port open, but it speaks HTTP") and result.reason.endswith("not SSH")


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen")
def test_one_port_probed_as_tcp_and_as_ssh_gets_both_observations(openssh):
    address, port = openssh
    plain, ssh = ProbeTarget(address, port), ProbeTarget(address, port, kind="ssh")
    results = probe(plain, ssh)
    assert results[plain].state == "open" and results[plain].service is None
    assert results[ssh].service == "SSH"


# ------------------------------------------------------------------ tls

@pytest.fixture(scope="module")
def tls_servers(folder):
    """Three certificates made here: a year left, 10 days left (warn), expired 3 days ago (fail)."""
    servers = {}
    stack = []
    try:
        for name, days, n in (("fresh", 365, 41), ("soon", 10, 42), ("expired", -3, 43)):
            context = realservers.tls_server(folder, name, days, n)
            servers[name] = context.__enter__()
            stack.append(context)
        yield servers
    finally:
        for context in reversed(stack):
            context.__exit__(None, None, None)


@pytest.mark.programs("openssl")
def test_tls_certificate_facts_from_a_real_handshake(tls_servers):
    address, port = tls_servers["fresh"]
    result = verdict(ProbeTarget(address, port, kind="tls"))
    assert (result.status, result.service, result.warnings) == ("pass", "TLS", ())
    assert "CN=fresh" in result.detail and "issuer CN=csaudit test CA, O=csaudit" in result.detail
    assert "untrusted here (unable to get local issuer certificate)" in result.detail  # reported, not failed
    assert result.detail.startswith("TLSv1.")


@pytest.mark.programs("openssl")
def test_tls_expiring_within_30_days_is_a_pass_with_a_warning(tls_servers):
    address, port = tls_servers["soon"]
    result = verdict(ProbeTarget(address, port, kind="tls"))
    assert result.status == "pass"
    assert len(result.warnings) == 1 and result.warnings[0].startswith("the certificate expires in 10 days")


@pytest.mark.programs("openssl")
def test_tls_expired_certificate_is_a_fail_with_the_reason(tls_servers):
    address, port = tls_servers["expired"]
    result = verdict(ProbeTarget(address, port, kind="tls"))
    assert result.status == "fail" and result.service == "TLS"
    assert "answers, but the certificate expired on" in result.reason and "(3 days ago)" in result.reason


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen")
def test_tls_probe_on_port_8250_answered_by_ssh_fails(openssh, wrong_service):
    address = wrong_service("ssh", 8250)
    result = verdict(ProbeTarget(address, 8250, kind="tls"))
    assert result.status == "fail" and result.service == "SSH" and result.reason.endswith("not TLS")


@pytest.mark.root
def test_tls_probe_answered_by_plain_http_fails(wrong_service):
    address = wrong_service("http", 443)
    result = verdict(ProbeTarget(address, 443, kind="tls"), timeout=1.0)
    assert result.status == "fail" and "not TLS" in result.reason


# ------------------------------------------------------------------ mysql

@pytest.fixture(scope="module")
def mariadb(folder):
    with realservers.mariadb(folder) as where:
        yield where


@pytest.mark.root
@pytest.mark.programs("mariadbd", "mariadb-install-db")
def test_mysql_greeting_of_a_real_mariadb(mariadb):
    address, port = mariadb
    result = verdict(ProbeTarget(address, port, kind="mysql"))
    assert (result.status, result.service) == ("pass", "MySQL")
    assert result.detail.startswith("MariaDB 10.") and result.detail.endswith("(protocol 10)")


def test_mysql_probe_on_3306_answered_by_http_fails_naming_http(wrong_service):
    address = wrong_service("http", 3306)
    result = verdict(ProbeTarget(address, 3306, kind="mysql"))
    assert result.status == "fail"
    assert result.reason.startswith("port open, but it speaks HTTP (HTTP/1.1 200 OK") and result.reason.endswith("not MySQL")


@pytest.mark.root
@pytest.mark.programs("mariadbd", "mariadb-install-db")
def test_ssh_and_tls_probes_on_a_real_mariadb_name_mysql(mariadb):
    address, port = mariadb
    for kind in ("ssh", "tls"):
        result = verdict(ProbeTarget(address, port, kind=kind))
        assert result.status == "fail" and result.service == "MySQL", (kind, result.reason)


# ------------------------------------------------------------------ dns

@pytest.fixture(scope="module")
def resolver(folder):
    with realservers.dnsmasq(folder) as where:
        yield where


@pytest.mark.programs("dnsmasq")
def test_dns_over_udp_and_tcp_against_dnsmasq(resolver):
    address, port = resolver
    results = probe(ProbeTarget(address, port, "udp", kind="dns"), ProbeTarget(address, port, "tcp", kind="dns"))
    for target, observation in results.items():
        assert observation.state == "open" and observation.service == "DNS", target
        assert observation.detail.endswith("recursion available")  # dnsmasq is a resolver
    # no upstream configured: dnsmasq says REFUSED for the root, and the report says so
    assert all(o.warnings for o in results.values())


@pytest.mark.root
def test_dns_probe_on_53_answered_by_ntp_and_by_ssh_is_never_a_pass(wrong_service):
    address = wrong_service("ntp", 53, "udp")
    udp = verdict(ProbeTarget(address, 53, "udp", kind="dns"), timeout=0.6)
    # An NTP server ignores a DNS query, as a real one does: no reply, so unconfirmed, never a pass.
    assert (udp.status, udp.observed) == ("unverified", "open|filtered")
    address = wrong_service("ssh", 53)
    tcp = verdict(ProbeTarget(address, 53, "tcp", kind="dns"))
    assert tcp.status == "fail" and tcp.service == "SSH"


# ------------------------------------------------------------------ ntp (the lab's server: no NTP daemon is installed)

@pytest.mark.root
def test_ntp_mode_3_request_against_the_lab_ntp_server(wrong_service):
    """The lab's NTP listener answers like a stratum-2 server (no ntpd/chrony here)."""
    address = wrong_service("ntp", 123, "udp")
    result = verdict(ProbeTarget(address, 123, "udp", kind="ntp"))
    assert (result.status, result.service) == ("pass", "NTP") and "stratum 2" in result.detail


@pytest.mark.root
@pytest.mark.programs("dnsmasq")
def test_ntp_probe_on_123_answered_by_a_real_dns_server_fails(folder):
    address = unique_address(123)
    with realservers.dnsmasq(folder, address, 123):
        result = verdict(ProbeTarget(address, 123, "udp", kind="ntp"))
    assert result.status == "fail" and result.service == "DNS" and result.reason.endswith("not NTP")


# ------------------------------------------------------------------ udp: no reply, and refused

def test_udp_without_a_reply_is_open_filtered_and_never_a_pass():
    address = unique_address(124)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound: no ICMP error, and no answer
        silent.bind((address, 0))
        target = ProbeTarget(address, silent.getsockname()[1], "udp", kind="ntp")
        for expect in ("open", "closed"):
            result = verdict(target, expect, timeout=0.6)
            assert (result.status, result.observed) == ("unverified", "open|filtered")
            assert result.reason.startswith("unconfirmed: no reply within 0.6 s over UDP")


def test_udp_port_unreachable_is_refused():
    address = unique_address(125)
    port = realservers.free_port(address, socket.SOCK_DGRAM)  # nothing listens: the kernel answers ICMP
    result = verdict(ProbeTarget(address, port, "udp", kind="dns"))
    assert (result.status, result.observed) == ("fail", "refused") and "port unreachable" in result.reason


@pytest.mark.root
def test_udp_exchanges_run_together_and_a_request_lost_once_is_sent_again(wrong_service):
    """One batch mixes refused, silent and answering UDP targets (one thread, non-blocking sockets);
    a relay drops the first NTP request it gets, so only the resend can be answered."""
    ntp = wrong_service("ntp", 123, "udp")
    address = unique_address(126)
    silent = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(30)]
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sock in (*silent, relay):
            sock.bind((address, 0))
        relay.settimeout(5)

        def drop_the_first_then_relay():
            relay.recvfrom(512)  # lost
            request, client = relay.recvfrom(512)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
                upstream.settimeout(2)
                upstream.sendto(request, (ntp, 123))
                relay.sendto(upstream.recv(512), client)

        helper = threading.Thread(target=drop_the_first_then_relay, daemon=True)
        helper.start()
        refused = [ProbeTarget(address, realservers.free_port(address, socket.SOCK_DGRAM), "udp", kind="dns") for _ in range(30)]
        quiet = [ProbeTarget(address, s.getsockname()[1], "udp", kind="ntp") for s in silent]
        answering = [ProbeTarget(ntp, 123, "udp", kind="ntp"), ProbeTarget(address, relay.getsockname()[1], "udp", kind="ntp")]
        results = probe(*refused, *quiet, *answering, timeout=1.0)
        helper.join(5)
    finally:
        for sock in (*silent, relay):
            sock.close()
    assert {results[t].state for t in refused} == {"refused"}
    assert {results[t].state for t in quiet} == {"open|filtered"}
    for target in answering:
        assert (results[target].state, results[target].service) == ("open", "NTP")
    assert results[answering[1]].latency_ms >= 500  # answered after the resend, at half the timeout


# ------------------------------------------------------------------ rpcbind (real, in a private network namespace)

@pytest.fixture(scope="module")
def rpcbind_report():
    # netns_rpcbind.py runs mount, ip and rpcbind by name: from where the marks found them (rpcbind is in /usr/sbin).
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_DIRS])}
    done = subprocess.run([realservers.program("unshare"), "--net", "--mount", "--propagation", "private", sys.executable,
                           str(REPO / "tests" / "netns_rpcbind.py")], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.netns
@pytest.mark.programs("unshare", "mount", "rpcbind")
def test_rpcbind_over_tcp_and_udp_tells_where_nfs_is(rpcbind_report):
    assert rpcbind_report["registered"]
    for protocol in ("tcp", "udp"):
        before, after = rpcbind_report["before"][protocol], rpcbind_report["after"][protocol]
        assert before["service"] == after["service"] == "rpcbind" and before["mismatch"] is None
        assert before["detail"] == "nfs not registered, mountd not registered"
        assert before["warnings"] == ["rpcbind does not know nfs on this server: an NFSv3 mount would fail"]
        assert after["detail"] == "nfs on 2049/tcp, mountd on 20048/tcp" and after["warnings"] == []


@pytest.mark.root
@pytest.mark.programs("dnsmasq")
def test_rpcbind_probe_on_111_answered_by_dns_and_by_http_fails(folder, wrong_service):
    address = unique_address(111)
    with realservers.dnsmasq(folder, address, 111):  # dnsmasq answers anything with FORMERR
        udp = verdict(ProbeTarget(address, 111, "udp", kind="rpcbind"))
    assert udp.status == "fail" and udp.service == "DNS" and udp.reason.endswith("not rpcbind")
    address = wrong_service("http", 111)
    tcp = verdict(ProbeTarget(address, 111, "tcp", kind="rpcbind"), timeout=1.0)
    assert tcp.status == "fail" and tcp.reason.endswith("not rpcbind")


# ------------------------------------------------------------------ nfs (replayed bytes)

# A Linux knfsd's reply to NFSv3 NULL over TCP: record mark, xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier,
# SUCCESS, no results. With AUTH_NONE and no results RFC 5531 leaves exactly this encoding; only the xid
# (bytes 4-8) changes, and the replay puts the caller's there.
KNFSD_NULL_REPLY = bytes.fromhex("80000018" "00000000" "00000001" "00000000" "00000000" "00000000" "00000000")
# An NFSv4-only server (nfs-utils with vers3=n) to the same call: PROG_MISMATCH, low 4, high 4.
KNFSD_V4_ONLY_REPLY = bytes.fromhex("80000020" "00000000" "00000001" "00000000" "00000000" "00000000" "00000002"
                                    "00000004" "00000004")


@pytest.fixture
def replay_server():
    """Answers one record-marked call with recorded bytes (the caller's xid put in)."""
    servers = []

    def make(reply: bytes, n: int) -> str:
        address = unique_address(n)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, 2049))
        sock.listen(8)
        sock.settimeout(0.2)
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                with conn:
                    conn.settimeout(2)
                    try:
                        call = conn.recv(4096)
                        if len(call) >= 8:
                            conn.sendall(reply[:4] + call[4:8] + reply[8:])
                    except OSError:
                        pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        servers.append((sock, stop, thread))
        return address

    yield make
    for sock, stop, thread in servers:
        stop.set()
        thread.join(5)
        sock.close()


def test_nfs_null_call_against_replayed_knfsd_bytes(replay_server):
    """Replayed bytes, not a live server: this machine's kernel has no nfsd, and a user-space NFS server
    would bind 2049 and 111 on every address. The rpcbind test above checks the same RPC reply parser
    against a live rpcbind."""
    v3 = verdict(ProbeTarget(replay_server(KNFSD_NULL_REPLY, 71), 2049, kind="nfs"))
    assert (v3.status, v3.service, v3.detail) == ("pass", "NFS", "answers the NFSv3 NULL call")
    v4 = verdict(ProbeTarget(replay_server(KNFSD_V4_ONLY_REPLY, 72), 2049, kind="nfs"))
    assert (v4.status, v4.detail) == ("pass", "NFS versions 4-4 only (not v3)")


def test_nfs_probe_on_2049_answered_by_rpcbind_or_ssh_fails(wrong_service):
    address = wrong_service("rpcbind", 2049)
    result = verdict(ProbeTarget(address, 2049, kind="nfs"))
    assert result.status == "fail" and result.reason == "port open, but an RPC server answers (accept_stat 1), but not NFS"
    address = wrong_service("ssh", 2049)
    assert verdict(ProbeTarget(address, 2049, kind="nfs")).service == "SSH"


# ------------------------------------------------------------------ vnc

def test_vnc_banner_and_the_wrong_service_on_5900(wrong_service):
    """The lab's RFB listener sends what QEMU's VNC server sends first ("RFB 003.008\\n", ui/vnc.c)."""
    good = verdict(ProbeTarget(wrong_service("rfb", 5900), 5900, kind="vnc"))
    assert (good.status, good.service, good.detail) == ("pass", "VNC", "RFB 3.8")
    bad = verdict(ProbeTarget(wrong_service("ssh", 5900), 5900, kind="vnc"))
    assert bad.status == "fail" and bad.service == "SSH" and bad.reason.endswith("not VNC")


# ------------------------------------------------------------------ http-api

def test_http_api_signed_api_passes_and_an_open_integration_api_is_critical():
    address = unique_address(80)
    with FaultServer(signed_api, address) as signed, FaultServer(integration_api, address) as integration:
        good = verdict(ProbeTarget(address, signed.port, kind="http-api"))
        assert (good.status, good.service) == ("pass", "CloudStack API") and "401" in good.detail
        deny = verdict(ProbeTarget(address, integration.port, kind="http-api"), expect="closed")
        assert deny.status == "fail" and deny.reason.startswith("critical: must be closed")
        assert "runs any command as the system admin" in deny.reason and "4.19.1.0" in deny.detail
        closed_signed = verdict(ProbeTarget(address, signed.port, kind="http-api"), expect="closed")
        assert closed_signed.status == "fail" and not closed_signed.reason.startswith("critical")
    for command in signed.seen + integration.seen:
        assert command == "listCapabilities"


def test_http_api_probe_answered_by_a_plain_web_server_fails(wrong_service):
    result = verdict(ProbeTarget(wrong_service("http", 8080), 8080, kind="http-api"))
    assert result.status == "fail" and result.service == "HTTP"
    assert result.reason.endswith("but /client/api is not the CloudStack API")


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen", "ss")
def test_every_exchange_closes_its_connection(openssh):
    """No half-open session: after a batch of probes, sshd holds no connection from us."""
    address, port = openssh
    probe(*[ProbeTarget(address, port, kind=k) for k in ("ssh", "tls", "mysql", "vnc", "http-api")], timeout=0.5)
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( dport = :{port} )"], capture_output=True,
                         text=True, timeout=10).stdout
    assert f"{address}:{port}" not in out


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen")
def test_observation_fields_reach_the_json_report(openssh):
    from csaudit.report.document import flow_json

    address, port = openssh
    row = flow_json(verdict(ProbeTarget(address, port, kind="ssh")))
    assert row["service"] == "SSH" and row["detail"].startswith("OpenSSH_") and row["probe"] == "ssh"
    assert row["warnings"] == [] and dataclasses.is_dataclass(verdict(ProbeTarget(address, port, kind="ssh")))
