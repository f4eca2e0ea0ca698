"""Every non-API service port of the lab, served by ONE selector thread.

Hundreds of listeners cost one thread: sockets are non-blocking, TLS handshakes
are driven by readiness events, and idle connections are closed after a few
seconds. "filtered" ports are real listening sockets whose accept queue is kept
full, so the kernel drops new SYNs and a connect really times out.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import ipaddress
import logging
import select
import selectors
import socket
import ssl
import struct
import threading
import time

from csaudit.lab import banners, tls
from csaudit.lab.services import Service
from csaudit.lab.wakeup import Waker
from csaudit.model.errors import ConfigError

log = logging.getLogger("csaudit.lab")

IDLE_SECONDS = 3.0
MAX_CONNECTIONS = 512  # beyond this, new connections are closed at once
MAX_BUFFER = 64 * 1024
_SELECT_SECONDS = 0.25
_FILLERS = 2  # never-accepted connections that keep a filtered port's backlog full


class _Connection:
    def __init__(self, sock: socket.socket, service: Service, registered: dict):
        self.sock = sock
        self.service = service
        self.registered = registered
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.handshaking = False
        self.want_write = False  # TLS needs the socket writable to progress
        self.close_when_sent = False
        self.last_active = time.monotonic()


class Listeners:
    def __init__(self, services: list[Service], mysql_version: str = "8.0.36",
                 idle_seconds: float = IDLE_SECONDS):
        self._services = _unique_sockets(services)
        self._idle_seconds = idle_seconds
        self._mysql_version = mysql_version
        self._listening: list[socket.socket] = []
        self._filtered: list[socket.socket] = []  # plus their filler connections
        self._sockets: dict[tuple[str, int, str], list[socket.socket]] = {}  # (address, port, protocol) -> its sockets
        self._tasks: collections.deque = collections.deque()  # changes for the loop thread to make (update)
        self._connections: dict[int, _Connection] = {}
        self._selector = selectors.DefaultSelector()
        self._tls: tls.Identity | None = None  # made when TLS ports are bound
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waker = Waker()
        self._next_connection_id = 1

    # ------------------------------------------------------------ setup
    def bind_all(self) -> None:
        """Open every socket; OSError EADDRINUSE propagates (the lab relocates)."""
        if any(s.kind in ("tls", "https") for s in self._services):
            self._tls = tls.make_identity()
        for service in self._services:
            try:
                self._bind(service)
            except PermissionError:
                raise ConfigError(
                    f"cannot listen on {service.address}:{service.port}/{service.protocol} "
                    f"({service.object_name}): ports below 1024 need root (or "
                    "CAP_NET_BIND_SERVICE); run the lab as root, or use a topology with "
                    "listeners = false") from None

    def _bind(self, service: Service) -> None:
        if service.protocol == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((service.address, service.port))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self._listening.append(sock)
            self._sockets[_key(service)] = [sock]
            self._selector.register(sock, selectors.EVENT_READ, ("udp", service))
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((service.address, service.port))
            sock.listen(0 if service.kind == "filtered" else 64)
        except OSError:
            sock.close()
            raise
        if service.only_from:
            _drop_syns_unless_from(sock, service.only_from)
        if service.kind == "filtered":
            self._filtered.append(sock)
            self._fill_backlog(sock, service)
            self._sockets[_key(service)] = [sock, *self._filtered[-_FILLERS:]]
            return
        sock.setblocking(False)
        self._listening.append(sock)
        self._sockets[_key(service)] = [sock]
        self._selector.register(sock, selectors.EVENT_READ, ("listen", service))

    def _fill_backlog(self, sock: socket.socket, service: Service) -> None:
        """Backlog 0 + one established, never-accepted connection = the kernel drops SYNs."""
        for _ in range(_FILLERS):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex((service.address, service.port))
            self._filtered.append(filler)
        first = self._filtered[-_FILLERS]
        _, ready, _ = select.select([], [first], [], 1.0)
        if not ready or first.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            log.warning("could not fill the backlog of filtered port %s:%s",
                        service.address, service.port)

    def update(self, services: list[Service], timeout: float = 5.0) -> int:
        """Serve `services` from now on, while running: close the sockets of what is no longer served
        (or served as another kind), bind what is new. The loop thread makes the change between two
        events, as it owns the selector. Returns how many sockets changed; OSError propagates."""
        wanted = {_key(s): s for s in _unique_sockets(services)}
        current = {_key(s): s for s in self._services}
        gone = [key for key, service in current.items() if wanted.get(key) != service]
        new = [service for key, service in wanted.items() if current.get(key) != service]
        done, failures = threading.Event(), []

        def change() -> None:
            try:
                for key in gone:
                    self._close_sockets(key)
                if self._tls is None and any(s.kind in ("tls", "https") for s in new):
                    self._tls = tls.make_identity()
                for service in new:
                    self._bind(service)
                self._services = list(wanted.values())
            except BaseException as error:  # handed to the caller: the loop goes on
                failures.append(error)
            finally:
                done.set()

        self._tasks.append(change)
        self._waker.writer.send(b"x")
        if not done.wait(timeout):
            raise RuntimeError(f"the listener thread did not make the change within {timeout:g} s")
        if failures:
            raise failures[0]
        return len(gone) + len(new)

    def _close_sockets(self, key: tuple[str, int, str]) -> None:
        for sock in self._sockets.pop(key, []):
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass  # a filtered port's sockets are never registered
            for owner in (self._listening, self._filtered):
                if sock in owner:
                    owner.remove(sock)
            sock.close()

    def _run_tasks(self) -> None:
        try:
            self._waker.reader.recv(4096)
        except OSError:
            pass
        while self._tasks:
            self._tasks.popleft()()

    def start(self) -> None:
        self._selector.register(self._waker.reader, selectors.EVENT_READ, ("wake", None))
        self._thread = threading.Thread(target=self._loop, name="lab-listeners", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._waker.stop_loop(self._stop, self._thread, timeout)
        self.close()

    def close(self) -> None:
        """Close every socket (also after a failed bind_all, before start)."""
        for connection in list(self._connections.values()):
            self._drop(connection)
        for sock in (*self._listening, *self._filtered, *self._waker.sockets()):
            try:
                sock.close()
            except OSError:
                pass
        self._listening.clear()
        self._filtered.clear()
        self._selector.close()
        self._tls = None  # the key goes with the last connection that used it

    @property
    def certificate(self) -> bytes | None:
        """The DER certificate the TLS ports serve (made at bind_all; None without TLS ports)."""
        return self._tls.certificate if self._tls is not None else None

    @property
    def socket_count(self) -> int:
        return len(self._listening) + len(self._filtered)

    # ------------------------------------------------------------ event loop
    def _loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            for key, events in self._selector.select(_SELECT_SECONDS):
                kind, payload = key.data
                try:
                    if kind == "listen":
                        self._accept(key.fileobj, payload)
                    elif kind == "udp":
                        self._answer_datagrams(key.fileobj, payload)
                    elif kind == "conn":
                        self._on_ready(payload, events)
                    elif kind == "wake":
                        self._run_tasks()
                except Exception:  # one bad peer must not stop every other listener
                    log.exception("lab listener error on %s", payload)
                    if kind == "conn":
                        self._drop(payload)
            now = time.monotonic()
            if now - last_sweep > min(0.5, self._idle_seconds / 2):
                last_sweep = now
                for connection in list(self._connections.values()):
                    if now - connection.last_active > self._idle_seconds:
                        self._drop(connection)

    def _accept(self, listener: socket.socket, service: Service) -> None:
        for _ in range(16):  # bounded: other sockets get their turn
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                    return
                raise
            if len(self._connections) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            connection = _Connection(sock, service, self._registered(service))
            self._greet(connection)
            self._connections[id(connection)] = connection
            self._selector.register(connection.sock, self._events(connection), ("conn", connection))

    def _registered(self, service: Service) -> dict:
        if service.kind != "rpcbind":
            return {}
        # rpcbind only knows nfsd when nfsd really runs on that server.
        nfs = any(s.address == service.address and s.kind == "nfs" for s in self._services)
        return {(banners.PORTMAPPER, "tcp"): 111, (banners.PORTMAPPER, "udp"): 111,
                **({(banners.NFS, "tcp"): 2049} if nfs else {})}

    def _greet(self, connection: _Connection) -> None:
        kind, role = connection.service.kind, connection.service.role
        if kind == "ssh":
            connection.outbox += banners.ssh_banner(role)
        elif kind == "mysql":
            connection.outbox += banners.mysql_greeting(self._mysql_version, self._next_connection_id)
            self._next_connection_id += 1
        elif kind == "rfb":
            connection.outbox += banners.RFB_GREETING
        elif kind == "smtp":
            connection.outbox += banners.SMTP_GREETING
        elif kind in ("tls", "https"):
            connection.sock = self._tls.context.wrap_socket(connection.sock, server_side=True,
                                                            do_handshake_on_connect=False)
            connection.handshaking = True

    @staticmethod
    def _events(connection: _Connection) -> int:
        if connection.want_write or connection.outbox:
            return selectors.EVENT_WRITE
        return selectors.EVENT_READ

    def _on_ready(self, connection: _Connection, events: int) -> None:
        connection.last_active = time.monotonic()
        if connection.handshaking and not self._handshake(connection):
            return
        if events & selectors.EVENT_WRITE and connection.outbox:
            if not self._flush(connection):
                return
        if events & selectors.EVENT_READ and not self._receive(connection):
            return
        if connection.outbox and not connection.want_write:
            self._flush(connection)
        if id(connection) in self._connections:
            self._selector.modify(connection.sock, self._events(connection), ("conn", connection))

    def _handshake(self, connection: _Connection) -> bool:
        try:
            connection.sock.do_handshake()
        except ssl.SSLWantReadError:
            connection.want_write = False
        except ssl.SSLWantWriteError:
            connection.want_write = True
        except (ssl.SSLError, OSError):
            self._drop(connection)  # a plain-TCP probe or a client that gave up
            return False
        else:
            connection.handshaking = connection.want_write = False
            return True
        self._selector.modify(connection.sock, self._events(connection), ("conn", connection))
        return False

    def _receive(self, connection: _Connection) -> bool:
        try:
            data = connection.sock.recv(16384)
            while isinstance(connection.sock, ssl.SSLSocket) and connection.sock.pending():
                data += connection.sock.recv(16384)
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return True
        except (ssl.SSLError, OSError):
            self._drop(connection)
            return False
        if not data:
            self._drop(connection)
            return False
        connection.inbox += data
        if len(connection.inbox) > MAX_BUFFER:
            self._drop(connection)
            return False
        self._respond(connection)
        return True

    def _respond(self, connection: _Connection) -> None:
        service, inbox = connection.service, connection.inbox
        if service.kind in ("http", "https"):
            if banners.http_request_complete(inbox):
                connection.outbox += banners.http_response(service.role)
                connection.close_when_sent = True
                inbox.clear()
        elif service.kind == "prometheus":
            if banners.http_request_complete(inbox):
                try:
                    peer = connection.sock.getpeername()[0]
                except OSError:
                    peer = None
                connection.outbox += banners.prometheus_response(peer in service.allowed)
                connection.close_when_sent = True
                inbox.clear()
        elif service.kind == "smtp":
            reply, done = banners.smtp_reply(inbox)
            connection.outbox += reply
            connection.close_when_sent = connection.close_when_sent or done
        elif service.kind == "ldap":
            _answer_each(connection, lambda: banners.ldap_reply(inbox))
        elif service.kind == "dns":
            _answer_each(connection, lambda: banners.dns_tcp_reply(inbox))
        elif service.kind in ("rpcbind", "nfs"):
            program = banners.NFS if service.kind == "nfs" else banners.PORTMAPPER
            _answer_each(connection, lambda: banners.rpc_tcp_reply(inbox, program, connection.registered))
        else:
            inbox.clear()  # server-speaks-first services: the greeting was all they say

    def _flush(self, connection: _Connection) -> bool:
        try:
            sent = connection.sock.send(connection.outbox)
        except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return True
        except ssl.SSLWantReadError:
            return True
        except (ssl.SSLError, OSError):
            self._drop(connection)
            return False
        del connection.outbox[:sent]
        if not connection.outbox and connection.close_when_sent:
            self._drop(connection)
            return False
        return True

    def _answer_datagrams(self, sock: socket.socket, service: Service) -> None:
        registered = self._registered(service)
        for _ in range(16):
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP error from an earlier reply's destination
            if service.kind == "dns":
                reply = banners.dns_reply(data)
            elif service.kind == "ntp":
                reply = banners.ntp_reply(data)
            elif service.kind == "rmcp":
                reply = banners.rmcp_pong(data)
            elif service.kind == "vxlan":
                reply = None  # a VXLAN endpoint takes what it can decapsulate and answers nothing
            else:
                reply = banners.rpc_reply(data, banners.PORTMAPPER, registered)
            if reply:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

    def _drop(self, connection: _Connection) -> None:
        if self._connections.pop(id(connection), None) is not None:
            try:
                self._selector.unregister(connection.sock)
            except (KeyError, ValueError):
                pass
        try:
            connection.sock.close()
        except OSError:
            pass


def _key(service: Service) -> tuple[str, int, str]:
    return service.address, service.port, service.protocol


def _unique_sockets(services: list[Service]) -> list[Service]:
    """One socket per (address, port, protocol); the API ports belong to the API server."""
    chosen: dict[tuple[str, int, str], Service] = {}
    for service in services:
        if service.kind in ("api", "integration"):
            continue
        key = (service.address, service.port, service.protocol)
        other = chosen.setdefault(key, service)
        if other.kind != service.kind:
            raise ConfigError(f"{service.address}:{service.port}/{service.protocol} is claimed by "
                              f"{other.object_name} ({other.kind}) and {service.object_name} "
                              f"({service.kind}); give them different addresses")
    return list(chosen.values())


# A classic BPF socket filter (SO_ATTACH_FILTER, no privilege needed) on a listening TCP socket runs
# on every SYN before the handshake: returning 0 drops the packet, as a firewall's drop rule would.
_SO_ATTACH_FILTER = 26
_SKF_NET_OFF = -0x100000  # offsets from the network header: the IPv4 source address is at 12
_LOAD_WORD, _JUMP_IF_EQUAL, _RETURN = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
_KEEP, _DROP = 0xFFFFFFFF, 0


def _drop_syns_unless_from(sock: socket.socket, addresses: tuple[str, ...]) -> None:
    count = len(addresses)
    if count > 255:  # a jump offset is one byte
        raise ConfigError(f"{sock.getsockname()}: a lab firewall keeps at most 255 sources, not {count}")
    program = [(_LOAD_WORD, 0, 0, (_SKF_NET_OFF + 12) & 0xFFFFFFFF)]
    program += [(_JUMP_IF_EQUAL, count - i, 0, int(ipaddress.IPv4Address(a))) for i, a in enumerate(addresses)]
    program += [(_RETURN, 0, 0, _DROP), (_RETURN, 0, 0, _KEEP)]
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(buffer)))


def _answer_each(connection: _Connection, next_reply) -> None:
    """Answer each whole request the inbox holds (`next_reply` takes one off it, or gives None), at most 16 a read."""
    for _ in range(16):
        reply = next_reply()
        if reply is None:
            return
        connection.outbox += reply
