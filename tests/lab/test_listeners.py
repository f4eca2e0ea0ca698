"""The lab's service ports over real loopback sockets: greetings, TLS, faults, lifecycle."""

import datetime
import errno
import os
import socket
import ssl
import struct
import threading
import time

import pytest
from cs import CloudStack

from csaudit.lab import Lab, default_topology
from csaudit.lab.relocate import relocate

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def lab():
    with Lab(default_topology()) as running:
        yield running


def _service(lab, name, port, protocol="tcp"):
    """The (address, port) the running lab serves for an object (it may have relocated)."""
    matches = [s for s in lab.services
               if s.object_name == name and s.port == port and s.protocol == protocol]
    assert len(matches) == 1, (name, port, matches)
    return matches[0].address, port


def _allowed_source(lab, address, port):
    """Where a connection to a firewalled lab port may come from (its first allowed source), else anywhere."""
    service = next(s for s in lab.services if (s.address, s.port, s.protocol) == (address, port, "tcp"))
    return (service.only_from[0], 0) if service.only_from else None


def _fault(lab, kind):
    return next(f for f in lab.faults if f.kind == kind)


def _first_bytes(address, size=256):
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\n") or len(data) >= 4 and data[3:4] == b"\x00":
                break
        return data


def _tls(address, request=None, source=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(address, timeout=TIMEOUT, source_address=source) as raw:
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
            answer = b""
            if request:
                tls.sendall(request)
                while chunk := tls.recv(4096):
                    answer += chunk
            return tls.version(), der, answer


@pytest.mark.root
def test_ssh_banners_on_hosts_and_system_vm_control_addresses(lab):
    assert _first_bytes(_service(lab, "kvm01", 22)) == b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    assert _first_bytes(_service(lab, "xen01", 22)).startswith(b"SSH-2.0-OpenSSH_")
    # control: the linklocal IP on KVM, the private IP on VMware
    kvm_ssvm = _service(lab, "s-1-VM", 3922)
    assert kvm_ssvm[0].endswith(".201.1") and _first_bytes(kvm_ssvm).startswith(b"SSH-2.0-")
    vmware_ssvm = _service(lab, "s-5-VM", 3922)
    assert vmware_ssvm[0].endswith(".2.101") and _first_bytes(vmware_ssvm).startswith(b"SSH-2.0-")
    assert _first_bytes(_service(lab, "r-8-VM", 3922)).startswith(b"SSH-2.0-")


def test_mysql_greeting_is_a_protocol_10_handshake():
    from csaudit.lab.listeners import Listeners
    from csaudit.lab.services import Service

    # The demo's db1 carries the wrong-service fault; a database of its own shows the greeting.
    address = f"127.42.251.{os.getpid() % 250 + 1}"
    listeners = Listeners([Service("db-alone", "database", address, 3306, "tcp", "mysql")])
    listeners.bind_all()
    listeners.start()
    try:
        data = _first_bytes((address, 3306), size=4)
        length = int.from_bytes(data[:3], "little")
        with socket.create_connection((address, 3306), timeout=TIMEOUT) as sock:
            packet = b""
            while len(packet) < 4 + length:
                packet += sock.recv(4 + length - len(packet))
    finally:
        listeners.stop()
    assert packet[3] == 0 and packet[4] == 10  # sequence 0, protocol version 10
    assert packet[5:].split(b"\x00", 1)[0] == b"8.0.36"
    assert packet.endswith(b"caching_sha2_password\x00")


@pytest.mark.root
def test_wrong_service_fault_answers_http_on_the_database_port(lab):
    fault = _fault(lab, "wrong-service")
    assert (fault.object_name, fault.port) == ("db1", 3306)
    source = _allowed_source(lab, fault.address, fault.port)
    with socket.create_connection((fault.address, fault.port), timeout=TIMEOUT, source_address=source) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.root
def test_ntp_servers_of_the_setting_answer_mode_3_requests(lab):
    (ntp,) = [s for s in lab.services if s.kind == "ntp"]
    assert (ntp.port, ntp.protocol) == (123, "udp") and ntp.address in lab.topology.settings["ntp.server.list"]
    request = bytes([0x23]) + bytes(39) + b"transmit"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(TIMEOUT)
        udp.sendto(request, (ntp.address, 123))
        reply, _ = udp.recvfrom(512)
    assert len(reply) == 48 and reply[0] & 0x07 == 4 and reply[1] == 2  # mode 4 (server), stratum 2
    assert reply[24:32] == b"transmit"  # origin timestamp = the client's transmit timestamp


@pytest.mark.root
def test_vnc_greeting_on_kvm_hosts(lab):
    assert _first_bytes(_service(lab, "kvm01", 5900)) == b"RFB 003.008\n"


@pytest.mark.root
@pytest.mark.parametrize("name, port", [
    ("ms1", 8250), ("ms2", 9090), ("kvm01", 16514), ("esxi02", 443), ("vcenter@127.42.2.10", 443),
    ("s-5-VM", 443)])
def test_tls_ports_complete_a_real_handshake(lab, name, port):
    name = name if "@" not in name else next(s.object_name for s in lab.services if s.role == "vcenter")
    address = _service(lab, name, port)
    version, der, _ = _tls(address, source=_allowed_source(lab, *address))
    assert version in ("TLSv1.2", "TLSv1.3")
    assert b"csaudit-lab" in der and der == lab.certificate  # the self-signed certificate the lab made at start


@pytest.mark.root
def test_the_lab_makes_its_certificate_when_it_starts(lab):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from csaudit.vantage.certificates import parse_certificate

    facts = parse_certificate(lab.certificate)
    assert facts.subject == facts.issuer == "CN=csaudit-lab"
    assert facts.not_before <= datetime.datetime.now(datetime.UTC) < facts.not_before + datetime.timedelta(hours=1)
    assert facts.not_after - facts.not_before == datetime.timedelta(days=7305)  # 20 years
    key = x509.load_der_x509_certificate(lab.certificate).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    with Lab(default_topology()) as other:  # relocates: this module's lab holds the addresses
        assert other.certificate != lab.certificate  # a new key and certificate per start
    assert other.certificate is None  # gone with the lab


@pytest.mark.root
def test_http_and_https_answer_a_request(lab):
    _, _, answer = _tls(_service(lab, "v-2-VM", 443), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    for name, port in (("r-3-VM", 80), ("v-6-VM", 8001), ("xen01", 80)):
        with socket.create_connection(_service(lab, name, port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200 OK")


def _dns_query(ident):
    question = b"".join(bytes([len(p)]) + p for p in (b"ms1", b"lab")) + b"\x00" + struct.pack(">HH", 1, 1)
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question


@pytest.mark.root
def test_dns_answers_over_udp_and_tcp(lab):
    zone_dns = [s for s in lab.services if s.role == "dns-server" and s.protocol == "udp"]
    assert len(zone_dns) == 4
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(TIMEOUT)
        udp.sendto(_dns_query(0x1234), (zone_dns[0].address, 53))
        reply, _ = udp.recvfrom(512)
    ident, flags = struct.unpack(">HH", reply[:4])
    assert ident == 0x1234 and flags & 0x8000  # a response to our query
    router_guest = _service(lab, "r-4-VM", 53)
    with socket.create_connection(router_guest, timeout=TIMEOUT) as sock:
        query = _dns_query(7)
        sock.sendall(struct.pack(">H", len(query)) + query)
        size = struct.unpack(">H", sock.recv(2))[0]
        assert struct.unpack(">H", sock.recv(size)[:2])[0] == 7


def _getport_call(program):
    credentials = struct.pack(">IIII", 0, 0, 0, 0)  # AUTH_NONE credential and verifier
    return struct.pack(">IIIIII", 42, 0, 2, 100000, 2, 3) + credentials + \
        struct.pack(">IIII", program, 3, 6, 0)


def _rpcbind_nfs_port(address):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(TIMEOUT)
        udp.sendto(_getport_call(100003), (address, 111))
        reply, _ = udp.recvfrom(512)
    xid, reply_type, accepted = struct.unpack(">III", reply[:12])
    assert (xid, reply_type, accepted) == (42, 1, 0)
    return struct.unpack(">I", reply[-4:])[0]


@pytest.mark.root
def test_nfs_servers_run_rpcbind_and_nfs(lab):
    east = _service(lab, "sec-nfs-east", 111, "udp")[0]
    assert _rpcbind_nfs_port(east) == 2049
    with socket.create_connection((east, 2049), timeout=TIMEOUT) as sock:  # NFS NULL call
        call = struct.pack(">IIIIIIIIII", 9, 0, 2, 100003, 3, 0, 0, 0, 0, 0)
        sock.sendall(struct.pack(">I", 0x80000000 | len(call)) + call)
        reply = sock.recv(64)
    assert struct.unpack(">IIIII", reply[4:24])[:3] == (9, 1, 0) and reply[-4:] == b"\x00" * 4


@pytest.mark.root
def test_missing_listener_is_refused_and_rpcbind_knows_it(lab):
    fault = _fault(lab, "missing-listener")
    assert (fault.object_name, fault.port) == ("sec-nfs-west", 2049)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((fault.address, fault.port), timeout=TIMEOUT).close()
    assert _rpcbind_nfs_port(fault.address) == 0  # nfsd is not registered there either


@pytest.mark.root
def test_filtered_port_really_times_out(lab):
    fault = _fault(lab, "filtered")
    assert (fault.object_name, fault.port) == ("xen01", 443)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection((fault.address, fault.port), timeout=0.5).close()
    assert time.monotonic() - started >= 0.45
    assert _first_bytes((fault.address, 22)).startswith(b"SSH-2.0-")  # the host itself is up


@pytest.mark.root
def test_api_state_mismatch_host_is_up_in_the_api_but_listens_nowhere(lab):
    fault = _fault(lab, "api-state-mismatch")
    assert fault.object_name == "kvm02" and fault.port is None
    api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
    kvm02 = api.listHosts(name="kvm02")["host"][0]
    assert (kvm02["state"], kvm02["ipaddress"]) == ("Up", fault.address)
    for port in (22, 16514, 5900):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((fault.address, port), timeout=TIMEOUT).close()
    assert not [s for s in lab.services if s.object_name == "kvm02"]


@pytest.mark.root
def test_exposed_integration_api_on_every_management_server(lab):
    exposed = [f for f in lab.faults if f.kind == "exposed"]
    assert sorted(f.object_name for f in exposed) == ["ms1", "ms2"]
    for fault in exposed:
        unsigned = CloudStack(endpoint=f"http://{fault.address}:{fault.port}/client/api")
        assert unsigned.listZones()["count"] == 2


@pytest.mark.root
def test_every_planned_tcp_service_accepts_connections(lab):
    checked = 0
    for service in lab.services:
        if service.protocol == "tcp" and service.kind != "filtered":
            source = (service.only_from[0], 0) if service.only_from else None
            socket.create_connection((service.address, service.port), timeout=TIMEOUT, source_address=source).close()
            checked += 1
    assert checked > 50


@pytest.mark.root
def test_faults_are_frozen_records(lab):
    fault = lab.faults[0]
    assert {"kind", "object_name", "address", "port", "protocol", "description"} <= set(vars(fault))
    with pytest.raises(AttributeError):
        fault.port = 1


# ------------------------------------------------------------------ lifecycle

def _can_bind(address, port):
    """True unless something listens there (SO_REUSEADDR: TIME_WAIT leftovers don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            assert error.errno == errno.EADDRINUSE
            return False
        return True


@pytest.mark.root
def test_threads_are_bounded_and_shutdown_frees_every_port():
    threads_before = threading.active_count()
    lab = Lab(relocate(default_topology(), 100))  # its own addresses: independent of the module lab
    started = time.monotonic()
    lab.start()
    try:
        start_seconds = time.monotonic() - started
        # 1 API accept thread + 8 API workers + 1 listener thread, whatever the number of ports
        assert threading.active_count() - threads_before <= 10
        tcp = [(s.address, s.port) for s in lab.services if s.protocol == "tcp"]
        assert not any(_can_bind(*address) for address in tcp)
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
        assert api.listZones()["count"] == 2
        # an idle client must not delay shutdown
        idle = socket.create_connection(_service(lab, "kvm01", 22), timeout=TIMEOUT)
    finally:
        stopping = time.monotonic()
        lab.stop()
    assert time.monotonic() - stopping < 2 and start_seconds < 2
    assert all(_can_bind(*address) for address in tcp)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(tcp[0], timeout=TIMEOUT)
    assert threading.active_count() == threads_before
    idle.close()


@pytest.mark.root
def test_port_clash_relocates_the_whole_cloud():
    wanted = relocate(default_topology(), 110)
    ms1 = wanted.management_servers[0].address
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind((ms1, 8080))
        blocker.listen(1)
    except OSError as error:  # someone already holds it: the clash is there anyway
        assert error.errno == errno.EADDRINUSE
    try:
        with Lab(wanted) as lab:
            assert lab.relocated
            new_ms1 = lab.topology.management_servers[0].address
            assert new_ms1 != ms1 and new_ms1.split(".")[2:] == ms1.split(".")[2:]
            assert lab.endpoint == f"http://{new_ms1}:8080/client/api"
            assert lab.topology.settings["host"].startswith(new_ms1)
            api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
            assert api.listZones()["count"] == 2
            assert _fault(lab, "filtered").address.split(".")[1] == new_ms1.split(".")[1]
    finally:
        blocker.close()


@pytest.mark.root
def test_idle_connections_are_closed_by_the_single_listener_thread():
    from csaudit.lab.listeners import Listeners
    from csaudit.lab.services import Service

    service = Service("kvm-idle", "kvm-host", "127.42.250.21", 22, "tcp", "ssh")
    listeners = Listeners([service], idle_seconds=0.4)
    listeners.bind_all()
    listeners.start()
    try:
        with socket.create_connection(("127.42.250.21", 22), timeout=TIMEOUT) as idle:
            assert idle.recv(64).startswith(b"SSH-2.0-")
            started = time.monotonic()
            assert idle.recv(64) == b""  # the server closed the silent client
            assert 0.3 < time.monotonic() - started < 1.5
    finally:
        listeners.stop()


@pytest.mark.root
def test_privileged_ports_without_root_are_a_config_error(monkeypatch):
    """A non-root lab cannot bind port 22/53/111: one clear ConfigError, nothing left open."""
    from csaudit.lab import tls
    from csaudit.model.errors import ConfigError

    # The package's topology is read and the lab's TLS key and certificate made as root, before the
    # child becomes nobody: the checkout (and a virtualenv inside it, whose modules cryptography may
    # import as it goes) may sit in a folder nobody cannot read (a `mktemp -d` is mode 700).
    topology = relocate(default_topology(), 120)
    identity = tls.make_identity()
    monkeypatch.setattr(tls, "make_identity", lambda: identity)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)  # nobody
            lab = Lab(topology)
            try:
                lab.start()
                code = 2
            except ConfigError as error:
                code = 0 if "ports below 1024 need root" in error.message and not lab.running else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.root
def test_the_cluster_servlet_and_mysql_answer_the_management_servers_only(lab):
    """As the firewalls between a real cloud's segments: a host's SYN to 9090 or 3306 is dropped (the
    kernel runs the socket filter before the handshake), while the MSs connect as before."""
    ms_addresses = [s.address for s in lab.services if s.object_name in ("ms1", "ms2") and s.port == 9090]
    host = next(s.address for s in lab.services if s.object_name == "kvm01" and s.port == 22)
    for name, port in (("ms2", 9090), ("db1", 3306)):
        target = _service(lab, name, port)
        for source, answers in ((ms_addresses[0], True), (host, False), ("127.0.0.1", False)):
            with socket.socket() as sock:
                sock.bind((source, 0))
                sock.settimeout(0.5)
                try:
                    sock.connect(target)
                    reached = True
                except TimeoutError:
                    reached = False
            assert reached is answers, (name, source)


@pytest.mark.root
def test_a_fault_planted_in_the_running_lab_changes_its_listeners_at_once():
    """What the real-Prometheus test does to a running cloud: a port stops listening, another opens,
    a third drops SYNs; the other ports and the API keep serving, and a fault that changes nothing is refused."""
    from csaudit.lab.schema import FaultSpec
    from csaudit.model.errors import ConfigError

    with Lab(relocate(default_topology(), 101)) as running:  # its own addresses: the module lab stays as it was
        agent = _service(running, "ms1", 8250)
        socket.create_connection(agent, timeout=TIMEOUT).close()
        planted = running.plant(FaultSpec("missing-listener", ("ms1",), "the agent port stops listening", port=8250))
        assert [(f.kind, f.object_name, f.address, f.port) for f in planted] == [("missing-listener", "ms1", agent[0], 8250)]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(agent, timeout=TIMEOUT)
        assert _first_bytes(_service(running, "kvm01", 22)).startswith(b"SSH-2.0-")  # the other ports are untouched

        running.plant(FaultSpec("exposed", ("kvm01",), "a web server nobody asked for", port=8888))
        with socket.create_connection(_service(running, "kvm01", 8888), timeout=TIMEOUT) as web:
            web.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert web.recv(64).startswith(b"HTTP/1.1 200")

        running.plant(FaultSpec("filtered", ("kvm01",), "a firewall drops SSH", port=22))
        with pytest.raises(TimeoutError):
            socket.create_connection(_service(running, "kvm01", 22), timeout=0.5)
        assert {f.fault_id for f in running.faults} >= {6, 7, 8} and running.faults[-1].kind == "filtered"

        with pytest.raises(ConfigError, match="changes no listener"):
            running.plant(FaultSpec("exposed", ("ms1",), "the integration API, which the API server serves", port=8096))
        api = CloudStack(endpoint=running.endpoint, key=running.key, secret=running.secret)
        assert api.listZones()["count"] == 2
