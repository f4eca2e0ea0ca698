"""What each probe kind sends and how its answer is read: pure functions, bytes in, facts out.

No sockets here (exchange.py drives them). Standard library only, except the certificate of a TLS
handshake, which certificates.py reads with `cryptography`. A remote vantage runs none of this: it
sends the requests made here and brings the raw answers back, read here by the same functions.
Every request is the smallest one that makes the service show itself; none carries a credential.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import ssl
import struct

from csaudit.vantage import certificates

# kind -> the service that should answer, in the words of the report
SERVICE_NAMES = {
    "ssh": "SSH", "tls": "TLS", "http-api": "the CloudStack API", "mysql": "MySQL",
    "rpcbind": "rpcbind", "nfs": "NFS", "vnc": "VNC", "dns": "DNS", "ntp": "NTP",
    "http": "HTTP", "prometheus": "the Prometheus exporter", "smtp": "SMTP", "ldap": "LDAP", "ipmi": "IPMI (RMCP)",
    "vxlan": "VXLAN",
}
SERVER_SPEAKS_FIRST = frozenset({"ssh", "mysql", "vnc", "smtp"})
# What is said, once the service answered, to leave politely (an SMTP server logs a lost connection otherwise).
FAREWELL = {"smtp": b"QUIT\r\n"}
MAX_ANSWER = 64 * 1024  # bytes read at most from one service
EXPIRY_WARNING_DAYS = 30
# When a server-speaks-first service stays silent, this line makes an HTTP server show itself.
HTTP_POKE = b"GET / HTTP/1.0\r\n\r\n"


@dataclasses.dataclass(frozen=True)
class Answer:
    """What one exchange showed about the service behind a port."""

    service: str | None  # what answered: "SSH", "HTTP", ... (None: nothing recognisable)
    detail: str  # version, certificate facts, registrations
    matched: bool  # the expected service answered
    problem: str | None = None  # the right service, but unusable (an expired certificate)
    warnings: tuple[str, ...] = ()
    danger: str | None = None  # why it is critical when this service answers where a flow must be closed
    refused: str | None = None  # the service itself refuses this source (an allow-list): closed to it, for a deny rule


# ------------------------------------------------------------------ what answered instead

def identify(data: bytes) -> tuple[str | None, str]:
    """(service, detail) for the first bytes of an unknown answer."""
    if not data:
        return None, "nothing was said"
    if data.startswith(b"SSH-"):
        return "SSH", _first_line(data)
    if data.startswith(b"HTTP/"):
        server = _header(data, b"server")
        return "HTTP", _first_line(data) + (f", Server: {server}" if server else "")
    if data.startswith(b"RFB "):
        return "VNC", _first_line(data)
    if data[:4] in (b"220 ", b"220-") and b"SMTP" in data.split(b"\n", 1)[0].upper():
        return "SMTP", _first_line(data)
    if len(data) >= 12 and data[:4] == _RMCP_ASF and data[4:8] == _ASF_IANA:
        return "RMCP", "an ASF message"
    if len(data) >= 3 and data[0] in (0x15, 0x16) and data[1] == 3:
        return "TLS", "a TLS record"
    if len(data) > 5 and data[3] == 0 and data[4] in (0x0A, 0xFF) and 5 < int.from_bytes(data[:3], "little") < 1024:
        return "MySQL", _mysql_version(data) or "a MySQL packet"
    if len(data) >= 12 and data[0] & 0x80 and struct.unpack(">I", data[8:12])[0] == 1:
        return "ONC RPC", "an RPC reply"
    if len(data) >= 8 and struct.unpack(">I", data[4:8])[0] == 1 and data[8:12] in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x01"):
        return "ONC RPC", "an RPC reply"
    if len(data) == 48 and data[0] & 0x07 == 4:
        return "NTP", f"a mode-4 reply, stratum {data[1]}"
    if len(data) >= 12 and data[2] & 0x80 and not data[2] & 0x78 and all(c < 256 for c in struct.unpack(">HHHH", data[4:12])):
        return "DNS", f"a DNS response, rcode {_RCODES.get(data[3] & 0xF, data[3] & 0xF)}"
    text = data[:60].decode("ascii", "replace")
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text", repr(text.strip())
    return None, f"unrecognised bytes {data[:16].hex()}"


def mismatch(kind: str, data: bytes, ending: str | None = "closed", timeout: float | None = None) -> Answer:
    """The expected service did not answer: say what did, if anything."""
    expected = SERVICE_NAMES[kind]
    if not data:
        if ending == "timeout":
            return Answer(None, f"nothing answered within {timeout:g} s" if timeout else "nothing answered", False)
        if ending == "reset":
            return Answer(None, f"the server reset the connection without a word of {expected}", False)
        return Answer(None, f"the server closed the connection without a word of {expected}", False)
    service, detail = identify(data)
    if service is None and ending == "timeout":
        return Answer(None, f"it answers with {detail}, then falls silent, not {expected}", False)
    if service is None:
        return Answer(None, f"it answers with {detail}, not {expected}", False)
    return Answer(service, f"it speaks {service} ({detail}), not {expected}", False)


def _other_service(data: bytes, own: str | None = None) -> bool:
    """Already recognisable as some other protocol than `own`: no need to wait for more bytes."""
    return identify(data)[0] not in (None, "text", own)


def _first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii", "replace")[:120]


def _header(data: bytes, name: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")[:80]
    return None


# ------------------------------------------------------------------ SSH, VNC, MySQL: the server speaks first

def parse_ssh(data: bytes, ending: str | None) -> Answer | None:
    """RFC 4253 4.2: the identification line, possibly after a few other lines."""
    lines = data.split(b"\n")
    for line in lines if ending else lines[:-1]:
        if line.startswith(b"SSH-"):
            text = line.rstrip(b"\r").decode("ascii", "replace")
            software = text.split("-", 2)[2] if text.count("-") >= 2 else text
            return Answer("SSH", software, True)
    if ending is None and len(data) < 4096 and not (len(data) >= 4 and _other_service(data, "SSH")):
        return None
    return mismatch("ssh", data, ending)


def parse_vnc(data: bytes, ending: str | None) -> Answer | None:
    """RFB 7.1.1: the ProtocolVersion message, "RFB 003.008\\n"."""
    if data[:4] == b"RFB " and len(data) >= 12:
        major, _, minor = data[4:11].decode("ascii", "replace").partition(".")
        return Answer("VNC", f"RFB {major.lstrip('0') or '0'}.{minor.lstrip('0') or '0'}", True)
    if ending is None and len(data) < 12 and b"RFB ".startswith(data[:4]):
        return None
    return mismatch("vnc", data, ending)


def _mysql_version(data: bytes) -> str | None:
    if len(data) > 5 and data[4] == 0x0A:
        return data[5:].split(b"\x00", 1)[0].decode("ascii", "replace")[:80]
    return None


def parse_mysql(data: bytes, ending: str | None) -> Answer | None:
    """The protocol-10 Initial Handshake (or an ERR packet when the server refuses this host)."""
    if len(data) < 5 or (data[4:5] in (b"\x0a", b"\xff") and len(data) < 4 + int.from_bytes(data[:3], "little")):
        if ending is None and not (len(data) >= 4 and _other_service(data, "MySQL")):
            return None
        return mismatch("mysql", data, ending)
    payload = data[4:4 + int.from_bytes(data[:3], "little")]
    if data[3] == 0 and payload[:1] == b"\x0a" and b"\x00" in payload[1:]:
        version = _mysql_version(data) or "?"
        flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
        return Answer("MySQL", f"{flavour} {version.removeprefix('5.5.5-')} (protocol 10)", True)
    if payload[:1] == b"\xff" and len(payload) >= 3:
        code = struct.unpack("<H", payload[1:3])[0]
        message = payload[9:] if payload[3:4] == b"#" else payload[3:]  # skip the SQL state marker
        return Answer("MySQL", f"refuses this client: error {code} {message.decode('utf-8', 'replace')[:100]}", True)
    return mismatch("mysql", data, ending)


# ------------------------------------------------------------------ HTTP: listCapabilities without a signature

def http_api_request(host: str, port: int) -> bytes:
    """listCapabilities with no apiKey and no signature: a signed API refuses it (401), the
    unauthenticated integration API answers it."""
    return (f"GET /client/api?command=listCapabilities&response=json HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "User-Agent: csaudit-probe\r\nAccept: application/json\r\nConnection: close\r\n\r\n").encode()


def parse_http_api(data: bytes, ending: str | None) -> Answer | None:
    if ending is None and len(data) < MAX_ANSWER and (data.startswith(b"HTTP/") or b"HTTP/".startswith(data[:5])):
        return None  # Connection: close: the answer ends when the server closes
    if not data.startswith(b"HTTP/"):
        return mismatch("http-api", data, ending)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = _first_line(head)
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    try:
        document = json.loads(body.decode("utf-8", "replace")) if body.strip() else None
    except ValueError:
        document = None
    capability = _capability(document)
    if status == 200 and capability is not None:
        version = capability.get("cloudstackversion") or "(version not said)"
        return Answer("CloudStack integration API", f"CloudStack {version} answers listCapabilities without a signature", True,
                      danger="the unauthenticated integration API: whoever reaches it runs any command as the system admin")
    if status == 401:
        odd = "" if _cloudstack_error(document) else " (but not a CloudStack error document)"
        return Answer("CloudStack API", f"signed API: HTTP 401 to an unsigned request{odd}", True)
    server = _header(data, b"server")
    return Answer("HTTP", f"it speaks HTTP ({status_line}{f', Server: {server}' if server else ''}), "
                          "but /client/api is not the CloudStack API", False)


def _capability(document) -> dict | None:
    response = document.get("listcapabilitiesresponse") if isinstance(document, dict) else None
    capability = response.get("capability") if isinstance(response, dict) else None
    return capability if isinstance(capability, dict) else None


def _cloudstack_error(document) -> bool:
    return isinstance(document, dict) and any(isinstance(v, dict) and "errortext" in v for v in document.values())


# ------------------------------------------------------------------ HTTP: any server (HEAD /), the Prometheus exporter (HEAD /metrics)

def http_head(host: str, port: int, path: str = "/") -> bytes:
    """HEAD asks for the headers only: nothing is downloaded, and the probe hangs up once they are read."""
    return (f"HEAD {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: csaudit-probe\r\n"
            "Connection: close\r\n\r\n").encode()


def _http_head_read(kind: str, data: bytes, ending: str | None) -> tuple[int, str] | Answer | None:
    """(status, "status line, Server: ...") once the headers are in; an Answer when it is not HTTP; None: wait."""
    if not data.startswith(b"HTTP/"):
        if ending is None and len(data) < 5 and b"HTTP/".startswith(data):
            return None
        return mismatch(kind, data, ending)
    if b"\r\n\r\n" not in data and b"\n\n" not in data and ending is None and len(data) < MAX_ANSWER:
        return None
    status_line = _first_line(data)
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    server = _header(data, b"server")
    return status, status_line + (f", Server: {server}" if server else "")


def parse_http(data: bytes, ending: str | None) -> Answer | None:
    read = _http_head_read("http", data, ending)
    if read is None or isinstance(read, Answer):
        return read
    status, said = read
    if not 100 <= status < 600:
        return Answer(None, f"it answers with a malformed HTTP status line ({said})", False)
    return Answer("HTTP", said, True)


def prometheus_request(host: str, port: int) -> bytes:
    """GET /metrics (the exporter answers HEAD with headers only, which cannot tell its metrics from any
    page); the probe reads the first bytes of the body and hangs up."""
    return http_head(host, port, "/metrics").replace(b"HEAD ", b"GET ", 1)


def parse_prometheus(data: bytes, ending: str | None) -> Answer | None:
    """CloudStack's exporter answers /metrics with 200 and its cloudstack_* metrics to the addresses in
    prometheus.exporter.allowed.ips, and with 403 to every other one (PrometheusExporterServerImpl)."""
    read = _http_head_read("prometheus", data, ending)
    if read is None or isinstance(read, Answer):
        return read
    status, said = read
    if status == 403:
        why = "the exporter refuses this address (HTTP 403: not in prometheus.exporter.allowed.ips)"
        return Answer("Prometheus exporter", f"{said}: {why}", True, refused=why,
                      warnings=("this address is not in prometheus.exporter.allowed.ips: only an allowed Prometheus server "
                                "gets the metrics",))
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    if status == 200 and b"cloudstack_" in body:
        return Answer("Prometheus exporter", f"{said}: serves CloudStack metrics to this address", True)
    if status == 200 and ending is None and len(body) < 4096:
        return None  # the metrics have not come yet
    return Answer("HTTP", f"it speaks HTTP ({said}), but /metrics does not serve CloudStack's metrics", False)


# ------------------------------------------------------------------ SMTP (RFC 5321 4.2): the greeting

def parse_smtp(data: bytes, ending: str | None) -> Answer | None:
    """The greeting: "220 host ESMTP ...", possibly multi-line ("220-"); 554 is a server refusing this client."""
    lines = data.split(b"\n")
    complete = lines if ending else lines[:-1]
    for line in complete:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in (" ", "-", ""):
            return mismatch("smtp", data, ending)
        if text[3:4] == "-":
            continue
        code, said = text[:3], text[4:].strip()[:120]
        if code == "220":
            return Answer("SMTP", said or "220", True)
        if code == "554":
            return Answer("SMTP", f"554 {said}", True, problem=f"the SMTP server refuses this client (554 {said})")
        return mismatch("smtp", data, ending)
    if ending is None and len(data) < 4096 and not (len(data) >= 4 and _other_service(data, "SMTP")):
        prefix = data[:3]
        if prefix.isdigit() or b"220".startswith(prefix) or b"554".startswith(prefix):
            return None
    return mismatch("smtp", data, ending)


# ------------------------------------------------------------------ LDAP (RFC 4511): an anonymous RootDSE search

_LDAP_MESSAGE_ID = 1
_LDAP_RESULTS = {0: "success", 1: "operationsError", 2: "protocolError", 7: "authMethodNotSupported",
                 13: "confidentialityRequired", 48: "inappropriateAuthentication", 49: "invalidCredentials",
                 50: "insufficientAccessRights", 52: "unavailable", 53: "unwillingToPerform"}
_ROOT_DSE_ATTRIBUTES = (b"namingContexts", b"supportedLDAPVersion", b"vendorName")


def _ber(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 0x80 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
        (size.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content


def ldap_root_dse_search() -> bytes:
    """SearchRequest: base "", scope base, (objectClass=*), a few RootDSE attributes. No bind comes
    first: an LDAP server takes an unbound request as anonymous, so no credential is ever sent."""
    search = (_ber(0x04, b"") + _ber(0x0A, b"\x00") + _ber(0x0A, b"\x00") + _ber(0x02, b"\x00") + _ber(0x02, b"\x05")
              + _ber(0x01, b"\x00") + _ber(0x87, b"objectClass")
              + _ber(0x30, b"".join(_ber(0x04, name) for name in _ROOT_DSE_ATTRIBUTES)))
    return _ber(0x30, _ber(0x02, bytes([_LDAP_MESSAGE_ID])) + _ber(0x63, search))


def _ber_read(data: bytes, offset: int) -> tuple[int, bytes, int] | None:
    """(tag, content, next offset) of the element at offset; None when incomplete or malformed."""
    if len(data) < offset + 2:
        return None
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < offset + count:
            return None
        size = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    else:
        size = first
    if len(data) < offset + size:
        return None
    return tag, data[offset:offset + size], offset + size


def _ber_children(content: bytes) -> list[tuple[int, bytes]]:
    children, offset = [], 0
    while offset < len(content) and len(children) < 64:
        element = _ber_read(content, offset)
        if element is None:
            break
        tag, value, offset = element
        children.append((tag, value))
    return children


def _root_dse_facts(entry: bytes) -> str:
    facts = {}
    attributes = _ber_children(entry)
    for tag, attribute in (_ber_children(attributes[1][1]) if len(attributes) > 1 and attributes[1][0] == 0x30 else []):
        parts = _ber_children(attribute) if tag == 0x30 else []
        if len(parts) == 2 and parts[0][0] == 0x04:
            values = [v.decode("utf-8", "replace") for t, v in _ber_children(parts[1][1]) if t == 0x04]
            facts[parts[0][1].decode("utf-8", "replace")] = ", ".join(values)[:100]
    said = "; ".join(f"{name} {value}" for name, value in facts.items() if value)
    return f"RootDSE read anonymously ({said})" if said else "RootDSE read anonymously"


def parse_ldap(data: bytes, ending: str | None) -> Answer | None:
    """The first LDAPMessage back: a SearchResultEntry (the RootDSE), a SearchResultDone (an LDAP server
    that refuses anonymous reads is still one) or a Notice of Disconnection."""
    message = _ber_read(data, 0)
    if message is None:
        if ending is None and len(data) < MAX_ANSWER and data[:1] in (b"", b"\x30") and not _other_service(data):
            return None
        return mismatch("ldap", data, ending)
    tag, content, _ = message
    parts = _ber_children(content)
    if tag != 0x30 or len(parts) < 2 or parts[0][0] != 0x02:
        return mismatch("ldap", data, ending)
    operation, body = parts[1]
    if operation == 0x64:  # SearchResultEntry
        return Answer("LDAP", _root_dse_facts(body), True)
    if operation in (0x65, 0x78):  # SearchResultDone, ExtendedResponse (a notice of disconnection)
        result = _ber_children(body)
        code = int.from_bytes(result[0][1], "big") if result and result[0][0] == 0x0A else -1
        name = _LDAP_RESULTS.get(code, f"resultCode {code}")
        message_text = result[2][1].decode("utf-8", "replace")[:100] if len(result) > 2 and result[2][1] else ""
        said = f"{name}{f': {message_text}' if message_text else ''}"
        if code == 0:
            return Answer("LDAP", f"the RootDSE search succeeds ({said})", True)
        return Answer("LDAP", f"an LDAP server that refuses an anonymous RootDSE read ({said})", True)
    return mismatch("ldap", data, ending)


# ------------------------------------------------------------------ IPMI: the RMCP/ASF presence ping (DMTF DSP0136)

_RMCP_ASF = b"\x06\x00\xff\x06"  # RMCP version 1.0, reserved, sequence 255 (no RMCP ack), class ASF
_ASF_IANA = b"\x00\x00\x11\xbe"  # the ASF IANA enterprise number, 4542
_PRESENCE_PING, _PRESENCE_PONG = 0x80, 0x40


def rmcp_presence_ping() -> bytes:
    """The ASF Presence Ping: a read-only 'who are you' that every IPMI 1.5/2.0 BMC answers with a pong."""
    return _RMCP_ASF + _ASF_IANA + bytes([_PRESENCE_PING, 0x63, 0x00, 0x00])


def parse_ipmi(data: bytes, ending: str | None) -> Answer | None:
    if len(data) >= 12 and data[:4] == _RMCP_ASF and data[4:8] == _ASF_IANA and data[8] == _PRESENCE_PONG:
        entities = data[20] if len(data) > 20 else 0
        ipmi = "IPMI supported" if entities & 0x80 else "IPMI not advertised"
        return Answer("IPMI (RMCP)", f"an ASF presence pong, {ipmi}", True)
    if not data and ending is None:
        return None
    return mismatch("ipmi", data, ending)


# ------------------------------------------------------------------ ONC RPC: rpcbind GETPORT, NFS NULL

PORTMAPPER, NFS, MOUNTD = 100000, 100003, 100005
_IPPROTO_TCP = 6
_AUTH_NONE = struct.pack(">IIII", 0, 0, 0, 0)  # credential and verifier: no credentials at all
_XID_NFS_PORT, _XID_MOUNTD_PORT, _XID_NULL = 0x63730001, 0x63730002, 0x63730003


def rpc_call(xid: int, program: int, version: int, procedure: int, arguments: bytes = b"") -> bytes:
    return struct.pack(">IIIIII", xid, 0, 2, program, version, procedure) + _AUTH_NONE + arguments


def record(message: bytes) -> bytes:
    """RFC 5531 11: one last fragment, as RPC over TCP needs."""
    return struct.pack(">I", 0x80000000 | len(message)) + message


def rpcbind_calls() -> list[bytes]:
    """PMAPPROC_GETPORT (v2, understood by every rpcbind and portmap) for nfs v3 and mountd v3 over TCP."""
    return [rpc_call(_XID_NFS_PORT, PORTMAPPER, 2, 3, struct.pack(">IIII", NFS, 3, _IPPROTO_TCP, 0)),
            rpc_call(_XID_MOUNTD_PORT, PORTMAPPER, 2, 3, struct.pack(">IIII", MOUNTD, 3, _IPPROTO_TCP, 0))]


def nfs_null_call() -> bytes:
    return rpc_call(_XID_NULL, NFS, 3, 0)


def records(data: bytes) -> list[bytes]:
    """The complete record-marked RPC messages in a TCP byte stream."""
    messages, offset = [], 0
    while len(data) >= offset + 4:
        size = struct.unpack(">I", data[offset:offset + 4])[0] & 0x7FFFFFFF
        if len(data) < offset + 4 + size:
            break
        messages.append(data[offset + 4:offset + 4 + size])
        offset += 4 + size
    return messages


def _accepted(reply: bytes, xid: int) -> tuple[int, bytes] | None:
    """(accept_stat, results) of a MSG_ACCEPTED reply to xid, None if it is not one."""
    if len(reply) < 24 or struct.unpack(">III", reply[:12]) != (xid, 1, 0):
        return None
    verifier_length = struct.unpack(">I", reply[16:20])[0]
    offset = 20 + (verifier_length + 3) // 4 * 4
    if len(reply) < offset + 4:
        return None
    return struct.unpack(">I", reply[offset:offset + 4])[0], reply[offset + 4:]


def parse_rpcbind(messages: list[bytes], data: bytes, ending: str | None) -> Answer | None:
    """Both GETPORT replies: where nfs and mountd are registered (port 0: not registered)."""
    ports = {}
    for xid, program in ((_XID_NFS_PORT, "nfs"), (_XID_MOUNTD_PORT, "mountd")):
        reply = next((m for m in messages if m[:4] == struct.pack(">I", xid)), None)
        accepted = _accepted(reply, xid) if reply else None
        if accepted is not None and accepted[0] == 0 and len(accepted[1]) >= 4:
            ports[program] = struct.unpack(">I", accepted[1][:4])[0]
    if len(ports) < 2 and ending is None and not (messages and not ports) and not _other_service(data, "ONC RPC"):
        return None
    if "nfs" not in ports:
        if messages and _accepted(messages[0], struct.unpack(">I", messages[0][:4])[0]) is not None:
            return Answer("ONC RPC", "an RPC server answers, but not as rpcbind", False)
        return mismatch("rpcbind", data, ending)
    said = ", ".join(f"{name} on {port}/tcp" if port else f"{name} not registered" for name, port in ports.items())
    warnings = () if ports["nfs"] else ("rpcbind does not know nfs on this server: an NFSv3 mount would fail",)
    return Answer("rpcbind", said, True, warnings=warnings)


def parse_nfs(messages: list[bytes], data: bytes, ending: str | None) -> Answer | None:
    if not messages:
        return None if ending is None and not _other_service(data, "ONC RPC") else mismatch("nfs", data, ending)
    accepted = _accepted(messages[0], _XID_NULL)
    if accepted is None:
        return mismatch("nfs", data, ending)
    status, rest = accepted
    if status == 0:
        return Answer("NFS", "answers the NFSv3 NULL call", True)
    if status == 2 and len(rest) >= 8:  # PROG_MISMATCH: NFS, other versions only (an NFSv4-only server)
        low, high = struct.unpack(">II", rest[:8])
        return Answer("NFS", f"NFS versions {low}-{high} only (not v3)", True)
    return Answer("ONC RPC", f"an RPC server answers (accept_stat {status}), but not NFS", False)


# ------------------------------------------------------------------ DNS over UDP and TCP

DNS_ID = 0x6373
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def dns_query() -> bytes:
    """`. IN NS` with recursion desired: every DNS server, authoritative or resolver, answers it."""
    return struct.pack(">HHHHHH", DNS_ID, 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack(">HH", 2, 1)


def parse_dns(message: bytes | None, data: bytes, ending: str | None) -> Answer | None:
    if message is None:
        return None if ending is None and not _other_service(data, "DNS") else mismatch("dns", data, ending)
    if len(message) < 12:
        return mismatch("dns", data, ending)
    ident, flags, _, answers = struct.unpack(">HHHH", message[:8])
    if ident != DNS_ID or not flags & 0x8000:
        return mismatch("dns", data, ending)
    rcode = _RCODES.get(flags & 0xF, str(flags & 0xF))
    recursion = "recursion available" if flags & 0x0080 else "no recursion"
    warnings = ("the DNS server refuses our query (REFUSED): it may not serve this client",) if rcode == "REFUSED" else ()
    return Answer("DNS", f"{rcode}, {answers} answer(s), {recursion}", True, warnings=warnings)


def dns_tcp_message(data: bytes) -> bytes | None:
    if len(data) < 2:
        return None
    size = struct.unpack(">H", data[:2])[0]
    return data[2:2 + size] if len(data) >= 2 + size else None


# ------------------------------------------------------------------ NTP (RFC 5905 mode 3)

def ntp_request() -> bytes:
    """A mode-3 (client) packet, version 4, every other field zero: no timestamps of ours leak."""
    return bytes([0x23]) + bytes(47)


def parse_ntp(data: bytes, ending: str | None) -> Answer | None:
    if len(data) < 48 or data[0] & 0x07 != 4:
        return None if ending is None and not data else mismatch("ntp", data, ending)
    version, stratum = (data[0] >> 3) & 0x07, data[1]
    if stratum == 0:
        code = data[12:16].decode("ascii", "replace")
        return Answer("NTP", f"v{version}, kiss-o'-death {code}", True, warnings=(f"the NTP server says {code} (kiss-o'-death)",))
    refid = ".".join(str(b) for b in data[12:16]) if stratum > 1 else data[12:16].rstrip(b"\x00").decode("ascii", "replace")
    warnings = ("the NTP server is not synchronised (stratum 16)",) if stratum >= 16 else ()
    return Answer("NTP", f"v{version}, stratum {stratum}, reference {refid}", True, warnings=warnings)


# ------------------------------------------------------------------ one entry point per direction

def request(kind: str, protocol: str, host: str, port: int) -> list[bytes]:
    """What to send, in order (TCP: written as one stream; UDP: one datagram each). Empty: listen only."""
    if kind in SERVER_SPEAKS_FIRST:
        return []
    if kind == "tls":  # a TLS library makes its own; this one is for an engine without one (the bash agent)
        return [tls_client_hello()]
    if kind == "http-api":
        return [http_api_request(host, port)]
    if kind == "http":
        return [http_head(host, port)]
    if kind == "prometheus":
        return [prometheus_request(host, port)]
    if kind == "ldap":
        return [ldap_root_dse_search()]
    if kind == "ipmi":
        return [rmcp_presence_ping()]
    if kind == "vxlan":
        # One byte: shorter than a VXLAN header, so a VXLAN endpoint drops it without a word (and no frame can
        # reach a guest network), while a host with nothing on the port answers ICMP port unreachable.
        return [b"\x00"]
    if kind == "rpcbind":
        calls = rpcbind_calls()
        return calls if protocol == "udp" else [b"".join(record(c) for c in calls)]
    if kind == "nfs":
        return [record(nfs_null_call())]
    if kind == "dns":
        query = dns_query()
        return [query] if protocol == "udp" else [struct.pack(">H", len(query)) + query]
    if kind == "ntp":
        return [ntp_request()]
    raise ValueError(f"no request for probe kind {kind!r}")


@functools.cache  # loading the CA store costs tens of ms; one ClientHello serves every probe of a run
def tls_client_hello() -> bytes:
    """The first flight of a TLS client, as this machine's ssl module writes it (SNI-less, any version)."""
    outgoing = ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), outgoing)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def read_stream(kind: str, data: bytes, ending: str | None) -> Answer | None:
    """Read a TCP answer so far; None: wait for more (ending is None while the connection is open)."""
    if kind == "ssh":
        return parse_ssh(data, ending)
    if kind == "vnc":
        return parse_vnc(data, ending)
    if kind == "mysql":
        return parse_mysql(data, ending)
    if kind == "http-api":
        return parse_http_api(data, ending)
    if kind == "http":
        return parse_http(data, ending)
    if kind == "prometheus":
        return parse_prometheus(data, ending)
    if kind == "smtp":
        return parse_smtp(data, ending)
    if kind == "ldap":
        return parse_ldap(data, ending)
    if kind == "rpcbind":
        return parse_rpcbind(records(data), data, ending)
    if kind == "nfs":
        return parse_nfs(records(data), data, ending)
    if kind == "dns":
        return parse_dns(dns_tcp_message(data), data, ending)
    raise ValueError(f"probe kind {kind!r} has no TCP reader")


def read_datagrams(kind: str, datagrams: list[bytes], ending: str | None) -> Answer | None:
    """Read the UDP replies so far; None: wait for more."""
    data = b"".join(datagrams)
    if kind == "rpcbind":
        return parse_rpcbind(datagrams, data, ending)
    if kind == "dns":
        return parse_dns(next((d for d in datagrams if d[:2] == struct.pack(">H", DNS_ID)), datagrams[0] if datagrams else None),
                         data, ending)
    if kind == "ntp":
        return parse_ntp(next((d for d in datagrams if len(d) >= 48), data), ending)
    if kind == "ipmi":
        return parse_ipmi(next((d for d in datagrams if d[:4] == _RMCP_ASF), data), ending)
    if kind == "vxlan":  # VXLAN never answers: a reply is another service on the port
        return mismatch("vxlan", data, ending) if datagrams else None
    raise ValueError(f"probe kind {kind!r} has no UDP reader")


# ------------------------------------------------------------------ TLS: the facts of a handshake

def tls_answer(version: str | None, der: bytes | None, untrusted: str | None, now: datetime.datetime) -> Answer:
    """The facts of a completed handshake; an expired certificate is a problem, a near expiry a warning.

    An untrusted chain is only reported: private clouds and the lab use self-signed certificates.
    """
    if not der:
        return Answer("TLS", f"{version or 'TLS'} handshake, but no certificate was sent", True)
    try:
        cert = certificates.parse_certificate(der)
    except certificates.CertificateError:
        return Answer("TLS", f"{version or 'TLS'} handshake; the certificate could not be read", True)
    days = (cert.not_after - now).total_seconds() / 86400
    trust = "self-signed" if cert.self_signed else f"issuer {cert.issuer}"
    if untrusted:
        trust += ", untrusted here" + ("" if "self-signed" in untrusted or "self signed" in untrusted else f" ({untrusted})")
    detail = f"{version}, {cert.subject}, expires {cert.not_after:%Y-%m-%d}, {trust}"
    if days < 0:
        return Answer("TLS", detail, True, problem=f"the certificate expired on {cert.not_after:%Y-%m-%d} ({-days:.0f} days ago)")
    warnings = (f"the certificate expires in {days:.0f} days ({cert.not_after:%Y-%m-%d})",) if days < EXPIRY_WARNING_DAYS else ()
    if cert.not_before > now:
        warnings += (f"the certificate is not valid before {cert.not_before:%Y-%m-%d}",)
    return Answer("TLS", detail, True, warnings=warnings)
