"""The bytes each simulated service sends: banners, greetings and minimal replies.

Enough of every protocol for a prober to recognise the service (what a real
server sends first, or its answer to the smallest valid request), nothing more.
"""

from __future__ import annotations

import struct
import time

DEBIAN_SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
SSH_BANNERS = {
    "kvm-host": DEBIAN_SSH,
    "xenserver-host": b"SSH-2.0-OpenSSH_7.4\r\n",  # XenServer 8 dom0 (CentOS based)
    "ssvm": DEBIAN_SSH, "cpvm": DEBIAN_SSH, "router": DEBIAN_SSH,  # Debian 12 systemvm template
}
RFB_GREETING = b"RFB 003.008\n"
HTTP_SERVERS = {"xenserver-host": "xapi", "ssvm": "Apache", "cpvm": "Jetty(9.4.51)",
                "router": "Apache/2.4.57 (Debian)"}


def ssh_banner(role: str) -> bytes:
    return SSH_BANNERS.get(role, DEBIAN_SSH)


def mysql_greeting(server_version: str, connection_id: int) -> bytes:
    """A MySQL protocol-10 Initial Handshake packet, as mysqld sends on connect."""
    salt = b"\x2a\x13\x57\x6c\x1f\x3e\x22\x45\x61\x0b\x7d\x33\x48\x15\x66\x29\x3a\x52\x0e\x4c"
    capabilities = 0xDFFFFFFF  # what MySQL 8.0 advertises (everything but CLIENT_REMEMBER_OPTIONS)
    payload = (
        b"\x0a" + server_version.encode() + b"\x00"
        + struct.pack("<I", connection_id) + salt[:8] + b"\x00"
        + struct.pack("<H", capabilities & 0xFFFF)
        + b"\xff"  # utf8mb4_0900_ai_ci
        + struct.pack("<H", 0x0002)  # SERVER_STATUS_AUTOCOMMIT
        + struct.pack("<H", capabilities >> 16)
        + bytes([len(salt) + 1]) + b"\x00" * 10
        + salt[8:] + b"\x00" + b"caching_sha2_password\x00")
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


def http_response(role: str, status: str = "200 OK") -> bytes:
    body = f"<html><body>csaudit lab: {role}</body></html>\n".encode()
    server = HTTP_SERVERS.get(role, "nginx")
    head = (f"HTTP/1.1 {status}\r\nServer: {server}\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def http_request_complete(data: bytes) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


# ------------------------------------------------------------------ DNS

def dns_reply(query: bytes) -> bytes | None:
    """NXDOMAIN for any well-formed query: proves a DNS server answers on the port."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack(">HHH", query[:6])
    if flags & 0x8000 or qdcount < 1:  # a response, or no question: ignore like named does
        return None
    end = 12
    while end < len(query) and query[end] != 0:  # walk the first question's labels
        end += 1 + query[end]
    end += 5  # root label + QTYPE + QCLASS
    if end > len(query):
        return None
    opcode_rd = flags & 0x7900  # keep opcode and RD
    reply_flags = 0x8000 | opcode_rd | 0x0080 | 3  # QR, RA, RCODE=NXDOMAIN
    return struct.pack(">HHHHHH", ident, reply_flags, 1, 0, 0, 0) + query[12:end]


def dns_tcp_reply(buffer: bytearray) -> bytes | None:
    """Consume one length-prefixed DNS message (RFC 1035 4.2.2) and answer it."""
    if len(buffer) < 2:
        return None
    size = struct.unpack(">H", buffer[:2])[0]
    if len(buffer) < 2 + size:
        return None
    message = bytes(buffer[2:2 + size])
    del buffer[:2 + size]
    reply = dns_reply(message) or b""
    return struct.pack(">H", len(reply)) + reply if reply else b""


# ------------------------------------------------------------------ ONC RPC (rpcbind, NFS)

PORTMAPPER, NFS = 100000, 100003
_ACCEPTED, _SUCCESS, _PROG_UNAVAIL, _PROC_UNAVAIL = 0, 0, 1, 3
_IPPROTO = {6: "tcp", 17: "udp"}


def rpc_reply(call: bytes, program: int, registered: dict[tuple[int, str], int]) -> bytes | None:
    """Reply to an RPC call: NULL procedure, and portmapper GETPORT.

    `registered` maps (program, "tcp"/"udp") to the port rpcbind would report;
    a program whose listener is missing is not registered (GETPORT answers 0).
    """
    if len(call) < 40:
        return None
    xid, msg_type, rpc_version, prog, _vers, proc = struct.unpack(">IIIIII", call[:24])
    if msg_type != 0:
        return None
    head = struct.pack(">II", xid, 1)  # xid, REPLY
    if rpc_version != 2:
        return head + struct.pack(">IIII", 1, 0, 2, 2)  # MSG_DENIED, RPC_MISMATCH 2..2
    accepted = head + struct.pack(">III", _ACCEPTED, 0, 0)  # + AUTH_NONE verifier
    if prog != program:
        return accepted + struct.pack(">I", _PROG_UNAVAIL)
    if proc == 0:
        return accepted + struct.pack(">I", _SUCCESS)
    if program == PORTMAPPER and proc == 3:  # PMAPPROC_GETPORT(prog, vers, prot, port)
        offset = 24
        for _ in range(2):  # skip credential and verifier
            if len(call) < offset + 8:
                return None
            length = struct.unpack(">I", call[offset + 4:offset + 8])[0]
            offset += 8 + (length + 3) // 4 * 4
        if len(call) < offset + 16:
            return None
        wanted, _, protocol, _ = struct.unpack(">IIII", call[offset:offset + 16])
        port = registered.get((wanted, _IPPROTO.get(protocol, "")), 0)
        return accepted + struct.pack(">II", _SUCCESS, port)
    return accepted + struct.pack(">I", _PROC_UNAVAIL)


def rpc_tcp_reply(buffer: bytearray, program: int,
                  registered: dict[tuple[int, str], int]) -> bytes | None:
    """Consume one record-marked RPC call (RFC 5531 11) and answer it."""
    if len(buffer) < 4:
        return None
    mark = struct.unpack(">I", buffer[:4])[0]
    size = mark & 0x7FFFFFFF
    if len(buffer) < 4 + size:
        return None
    call = bytes(buffer[4:4 + size])
    del buffer[:4 + size]
    reply = rpc_reply(call, program, registered)
    return struct.pack(">I", 0x80000000 | len(reply)) + reply if reply else b""


# ------------------------------------------------------------------ NTP

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01


def _ntp_timestamp(seconds: float) -> bytes:
    whole = int(seconds) + NTP_EPOCH_OFFSET
    return struct.pack(">II", whole & 0xFFFFFFFF, int((seconds % 1) * 2**32))


def ntp_reply(request: bytes, now: float | None = None) -> bytes | None:
    """A stratum-2 server's mode-4 answer to a mode-3 client request (RFC 5905 7.3)."""
    if len(request) < 48 or request[0] & 0x07 != 3:
        return None
    now = time.time() if now is None else now
    version = (request[0] >> 3) & 0x07
    head = bytes([version << 3 | 4, 2, request[2] or 6, 0xEC])  # LI 0, mode 4, stratum 2, poll, precision
    root = struct.pack(">II", 0x00000200, 0x00000400)  # root delay and dispersion: a few ms
    refid = bytes([127, 42, 0, 1])  # the upstream server it follows (an IPv4 address at stratum 2)
    return (head + root + refid + _ntp_timestamp(now - 60) + request[40:48]  # origin = client's transmit
            + _ntp_timestamp(now) + _ntp_timestamp(now))


# ------------------------------------------------------------------ SMTP, LDAP, RMCP, the Prometheus exporter

SMTP_GREETING = b"220 mail.lab.example ESMTP Postfix (Debian/GNU)\r\n"
SMTP_BYE = b"221 2.0.0 Bye\r\n"


def smtp_reply(buffer: bytearray) -> tuple[bytes, bool]:
    """Answer whole command lines: (what to send, hang up after it). QUIT ends the session; anything
    else gets the 502 of a relay that serves this lab no further."""
    out, done = b"", False
    while b"\n" in buffer and not done:
        line, _, rest = bytes(buffer).partition(b"\n")
        del buffer[:len(line) + 1]
        if line.strip().upper() == b"QUIT":
            out, done = out + SMTP_BYE, True
        else:
            out += b"502 5.5.2 Error: command not recognized\r\n"
    return out, done


def _ber(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _ber_element(data: bytes, offset: int = 0) -> tuple[int, bytes, int] | None:
    if len(data) < offset + 2:
        return None
    tag, first, offset = data[offset], data[offset + 1], offset + 2
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or len(data) < offset + count:
            return None
        size, offset = int.from_bytes(data[offset:offset + count], "big"), offset + count
    else:
        size = first
    return (tag, data[offset:offset + size], offset + size) if len(data) >= offset + size else None


def ldap_reply(buffer: bytearray) -> bytes | None:
    """Consume one LDAPMessage: a base-scope search of "" (the RootDSE) gets slapd's entry and a
    success; any other request gets unwillingToPerform, as a directory that serves nothing else."""
    message = _ber_element(bytes(buffer))
    if message is None:
        return None
    tag, content, end = message
    del buffer[:end]
    message_id = _ber_element(content)
    if tag != 0x30 or message_id is None or message_id[0] != 0x02:
        return b""
    ident = _ber(0x02, message_id[1])
    operation = _ber_element(content, message_id[2])
    if operation is not None and operation[0] == 0x63 and operation[1].startswith(b"\x04\x00"):
        values = {b"namingContexts": [b"dc=lab,dc=example"], b"supportedLDAPVersion": [b"3"],
                  b"vendorName": [b"OpenLDAP"]}
        attributes = b"".join(_ber(0x30, _ber(0x04, name) + _ber(0x31, b"".join(_ber(0x04, v) for v in vals)))
                              for name, vals in values.items())
        entry = _ber(0x30, ident + _ber(0x64, _ber(0x04, b"") + _ber(0x30, attributes)))
        return entry + _ber(0x30, ident + _ber(0x65, _ber(0x0A, b"\x00") + _ber(0x04, b"") + _ber(0x04, b"")))
    return _ber(0x30, ident + _ber(0x65, _ber(0x0A, b"\x35") + _ber(0x04, b"") + _ber(0x04, b"not served by this lab")))


def rmcp_pong(ping: bytes) -> bytes | None:
    """The ASF Presence Pong (DSP0136 3.2.4.3) of an IPMI 2.0 BMC, to a Presence Ping."""
    if len(ping) < 12 or ping[:4] != b"\x06\x00\xff\x06" or ping[4:8] != b"\x00\x00\x11\xbe" or ping[8] != 0x80:
        return None
    data = b"\x00\x00\x11\xbe" + b"\x00\x00\x00\x00" + b"\x81" + b"\x00" + bytes(6)  # IPMI supported, ASF 1.0
    return b"\x06\x00\xff\x06" + b"\x00\x00\x11\xbe" + bytes([0x40, ping[9], 0x00, len(data)]) + data


PROMETHEUS_METRICS = (b"# HELP cloudstack_hosts_total Total number of hosts\n# TYPE cloudstack_hosts_total gauge\n"
                      b'cloudstack_hosts_total{zone="lab",filter="total"} 3\n')


def prometheus_response(allowed: bool) -> bytes:
    """What CloudStack's exporter answers on /metrics: the metrics, or 403 to an address not allowed."""
    body = PROMETHEUS_METRICS if allowed else b"Forbidden"
    status = "200 OK" if allowed else "403 Forbidden"
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body
