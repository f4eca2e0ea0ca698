"""Unit level: the probe kinds for the services the API names (http, prometheus, smtp, ldap, ipmi), read
against the lab's byte builders and against bytes of real servers' answers."""

import pytest

from csaudit.judge.verdict import judge
from csaudit.lab import banners as lab
from csaudit.model.flows import Endpoint, Flow
from csaudit.vantage import classify, protocols
from csaudit.vantage.facts import CONNECTED, Connect, Stream

# OpenLDAP 2.5's answer to an anonymous RootDSE search for namingContexts (captured bytes, as a
# protocol analyser shows them): a SearchResultEntry then a SearchResultDone, message id 1.
SLAPD_ROOT_DSE = bytes.fromhex(
    "3030020101642b040030273025040e" + b"namingContexts".hex() + "31130411" + b"dc=example,dc=org".hex()
    + "300c02010165070a010004000400")
# Active Directory refusing the search until a bind: SearchResultDone operationsError (1) with its text.
AD_NEEDS_BIND = bytes.fromhex("302602010165210a0101040004" "1a" + b"000004DC: LdapErr: DSID-0C".hex())


def flow(probe, expect="open"):
    return Flow("T", "T01", "t", None, Endpoint("ms", "ms", None), Endpoint("x", "x", "127.0.0.9"), "tcp", 1, None, expect,
                probe, "c")


def test_http_any_status_line_is_an_http_server_and_headers_are_enough():
    head = b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22\r\nContent-Length: 9999999\r\n\r\n"
    answer = protocols.read_stream("http", head, None)
    assert (answer.matched, answer.detail) == (True, "HTTP/1.1 404 Not Found, Server: nginx/1.22")
    assert protocols.read_stream("http", head[:20], None) is None  # the headers are not in yet
    assert protocols.read_stream("http", b"SSH-2.0-OpenSSH_9.2\r\n", None).detail.startswith("it speaks SSH")
    request = protocols.request("http", "tcp", "127.0.0.9", 80)[0]
    assert request.startswith(b"HEAD / HTTP/1.1\r\n") and b"Connection: close" in request


def test_prometheus_exporter_serves_or_refuses_and_a_deny_rule_counts_the_refusal_as_closed():
    served = protocols.read_stream("prometheus", lab.prometheus_response(True), None)
    assert served.matched and "serves CloudStack metrics" in served.detail and served.refused is None
    refused = protocols.read_stream("prometheus", lab.prometheus_response(False), None)
    assert refused.matched and "not in prometheus.exporter.allowed.ips" in refused.refused
    other = protocols.read_stream("prometheus", lab.http_response("nginx"), "closed")
    assert not other.matched and "does not serve CloudStack's metrics" in other.detail
    observation = classify.with_answer(classify.connected(_target("prometheus"), Connect(CONNECTED), 1), refused)
    assert judge(flow("prometheus", "closed"), observation).status == "pass"
    assert judge(flow("prometheus", "open"), observation).status == "pass"  # the exporter runs; this machine is not Prometheus
    served_observation = classify.with_answer(classify.connected(_target("prometheus"), Connect(CONNECTED), 1), served)
    assert judge(flow("prometheus", "closed"), served_observation).status == "fail"


def test_smtp_greeting_multiline_and_refusal():
    assert protocols.read_stream("smtp", lab.SMTP_GREETING, None).detail == "mail.lab.example ESMTP Postfix (Debian/GNU)"
    multi = b"220-mx.example.org ESMTP\r\n220-no UCE\r\n220 ready\r\n"
    assert protocols.read_stream("smtp", multi, None).matched
    assert protocols.read_stream("smtp", multi[:30], None) is None
    refusal = protocols.read_stream("smtp", b"554 5.7.1 mx.example.org: no service for 127.0.0.9\r\n", None)
    assert refusal.matched and "refuses this client" in refusal.problem
    ftp = protocols.read_stream("smtp", b"220 ProFTPD Server ready\r\n", None)
    assert ftp.matched  # an FTP greeting looks the same: the port is what the setting names
    assert not protocols.read_stream("smtp", b"421 too busy\r\n", None).matched
    assert protocols.identify(lab.SMTP_GREETING)[0] == "SMTP"
    assert protocols.request("smtp", "tcp", "127.0.0.9", 25) == []  # the server speaks first
    assert protocols.FAREWELL["smtp"] == b"QUIT\r\n"


def test_ldap_root_dse_of_slapd_an_ad_refusal_and_the_lab():
    answer = protocols.read_stream("ldap", SLAPD_ROOT_DSE, None)
    assert answer.matched and answer.detail == "RootDSE read anonymously (namingContexts dc=example,dc=org)"
    refusal = protocols.read_stream("ldap", AD_NEEDS_BIND, None)
    assert refusal.matched and "refuses an anonymous RootDSE read (operationsError: 000004DC" in refusal.detail
    lab_answer = protocols.read_stream("ldap", lab.ldap_reply(bytearray(protocols.ldap_root_dse_search())), None)
    assert lab_answer.detail == "RootDSE read anonymously (namingContexts dc=lab,dc=example; supportedLDAPVersion 3; vendorName OpenLDAP)"
    assert protocols.read_stream("ldap", SLAPD_ROOT_DSE[:10], None) is None  # incomplete: wait
    assert not protocols.read_stream("ldap", b"0\x03\x02\x01\x01", "closed").matched  # a message with no operation


def test_the_ldap_request_is_an_anonymous_base_search_with_no_credentials():
    request = protocols.ldap_root_dse_search()
    assert request[0] == 0x30 and request[5] == 0x63  # LDAPMessage, SearchRequest (not a BindRequest, 0x60)
    assert request[7:9] == b"\x04\x00" and b"objectClass" in request  # base "" (the RootDSE), (objectClass=*)
    assert lab.ldap_reply(bytearray(request)).startswith(b"0")


def test_ipmi_presence_ping_and_pong():
    ping = protocols.request("ipmi", "udp", "127.0.0.9", 623)[0]
    assert ping == bytes.fromhex("0600ff06000011be80630000")
    answer = protocols.read_datagrams("ipmi", [lab.rmcp_pong(ping)], None)
    assert (answer.matched, answer.detail) == (True, "an ASF presence pong, IPMI supported")
    assert not protocols.read_datagrams("ipmi", [b"\x00\xff\x13\x37"], "closed").matched
    assert protocols.identify(lab.rmcp_pong(ping))[0] == "RMCP"


@pytest.mark.parametrize("kind", ["http", "prometheus", "smtp", "ldap"])
def test_truncated_or_garbage_answers_are_mismatches_never_crashes(kind):
    for data in (b"\x30", b"\x30\x84\xff\xff\xff\xff", b"HTTP/", b"22", b"\x00" * 300, bytes(range(256))):
        answer = classify.answer_of(_target(kind), Stream(data, "closed"), 1.0, None)
        assert answer.matched is False or answer.service is not None


def _target(kind):
    from csaudit.model.probes import ProbeTarget
    return ProbeTarget("127.0.0.9", 1, kind=kind)


# ------------------------------------------------------------------ ipmi over real UDP sockets: the odd servers of UDP

@pytest.fixture
def udp_servers():
    """Four UDP servers on 127.x: the lab's BMC (a pong), one silent, one answering garbage, one answering
    as NTP; each answers every datagram it gets, in one thread, until the test ends."""
    import os
    import select
    import socket
    import threading

    address = f"127.64.{os.getpid() % 250 + 1}.1"
    behaviours = {"bmc": lab.rmcp_pong, "silent": lambda _: None, "garbage": lambda _: b"\x00\xff\x13\x37",
                  "ntp": lambda _: lab.ntp_reply(protocols.ntp_request())}
    sockets = {}
    for name in behaviours:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 0))
        sockets[name] = sock
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            ready, _, _ = select.select(list(sockets.values()), [], [], 0.1)
            for sock in ready:
                data, peer = sock.recvfrom(2048)
                name = next(n for n, s in sockets.items() if s is sock)
                reply = behaviours[name](data)
                if reply:
                    sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield address, {name: sock.getsockname()[1] for name, sock in sockets.items()}
    stop.set()
    thread.join(2)
    for sock in sockets.values():
        sock.close()


def probe_with(engine: str, targets: list, timeout: float) -> dict:
    """Observations of the targets from this machine's engine, or from the python3 agent a remote vantage runs."""
    import subprocess

    from csaudit.model.probes import ProbeOptions
    from csaudit.vantage.local import LocalVantage
    from csaudit.vantage.remote import parse_output, probe_command, probe_input

    if engine == "local":
        return LocalVantage().probe(targets, ProbeOptions(timeout=timeout))
    done = subprocess.run(["/bin/sh", "-c", probe_command(timeout, 64)], input=probe_input(targets),
                          capture_output=True, text=True, timeout=60)
    return parse_output(done.stdout, targets, timeout).observations


@pytest.mark.parametrize("engine", ["local", "python3"])
def test_ipmi_against_a_bmc_silence_garbage_and_ntp(udp_servers, engine):
    from csaudit.model.probes import ProbeTarget

    address, ports = udp_servers
    targets = {name: ProbeTarget(address, port, "udp", kind="ipmi") for name, port in ports.items()}
    seen = probe_with(engine, list(targets.values()), 0.8)
    udp_flow = flow("ipmi")
    udp_flow = Flow(udp_flow.id, udp_flow.rule, udp_flow.title, None, udp_flow.source, udp_flow.target, "udp", 623, None,
                    "open", "ipmi", "c")
    results = {name: judge(udp_flow, seen[target]) for name, target in targets.items()}
    assert (results["bmc"].status, results["bmc"].reason) == ("pass", "IPMI (RMCP) answers: an ASF presence pong, IPMI supported")
    assert results["silent"].status == "unverified" and "open or filtered" in results["silent"].reason
    assert results["garbage"].status == "fail" and "unrecognised bytes 00ff1337" in results["garbage"].reason
    assert results["ntp"].status == "fail" and "it speaks NTP" in results["ntp"].reason


@pytest.mark.parametrize("engine", ["local", "python3"])
def test_smtp_probe_says_quit_after_the_greeting(engine):
    """A mail server sees a polite client: the greeting is read, then QUIT, and nothing else is sent."""
    import os
    import socket
    import subprocess
    import threading

    from csaudit.model.probes import ProbeOptions, ProbeTarget
    from csaudit.vantage.local import LocalVantage
    from csaudit.vantage.remote import parse_output, probe_command, probe_input

    address = f"127.65.{os.getpid() % 250 + 1}.{1 if engine == 'local' else 2}"
    server = socket.create_server((address, 0))
    heard = []

    server.settimeout(3)

    def serve():  # the local engine's first connect only checks the port: it hangs up at once
        for _ in range(2 if engine == "local" else 1):
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.sendall(lab.SMTP_GREETING)
                connection.settimeout(3)
                try:
                    heard.append(connection.recv(100))
                except OSError:
                    heard.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    target = ProbeTarget(address, server.getsockname()[1], kind="smtp")
    if engine == "local":
        seen = LocalVantage().probe([target], ProbeOptions(timeout=1.0))[target]
    else:
        done = subprocess.run(["/bin/sh", "-c", probe_command(1.0, 64)], input=probe_input([target]),
                              capture_output=True, text=True, timeout=60)
        seen = parse_output(done.stdout, [target], 1.0).observations[target]
    thread.join(5)
    server.close()
    assert seen.service == "SMTP" and heard[-1] == b"QUIT\r\n" and set(heard) <= {b"", b"QUIT\r\n"}


def test_the_vxlan_request_is_one_byte_too_short_for_any_vxlan_frame():
    assert protocols.request("vxlan", "udp", "127.0.0.9", 8472) == [b"\x00"]  # a VXLAN header alone is 8 bytes
    assert protocols.read_datagrams("vxlan", [], "timeout") is None  # silence: left to the UDP classification
    assert "it speaks NTP" in protocols.read_datagrams("vxlan", [lab.ntp_reply(protocols.ntp_request())], None).detail


@pytest.mark.parametrize("engine", ["local", "python3"])
def test_vxlan_silence_is_unconfirmed_a_refusal_fails_and_an_answer_is_another_service(udp_servers, engine):
    import socket

    from csaudit.model.probes import ProbeTarget

    address, ports = udp_servers
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:  # a port nothing listens on
        closed.bind((address, 0))
        ports = {**ports, "closed": closed.getsockname()[1]}
    targets = {name: ProbeTarget(address, port, "udp", kind="vxlan") for name, port in ports.items() if name != "bmc"}
    seen = probe_with(engine, list(targets.values()), 0.8)
    base = flow("ipmi")
    vxlan = Flow(base.id, "F42", base.title, None, base.source, base.target, "udp", 8472, None, "open", "vxlan", "c")
    results = {name: judge(vxlan, seen[target]) for name, target in targets.items()}
    assert results["silent"].status == "unverified" and results["silent"].gap == "unconfirmed"
    assert results["closed"].status == "fail" and results["closed"].failure == "refused", results["closed"].reason
    assert results["ntp"].status == "fail" and "it speaks NTP" in results["ntp"].reason
