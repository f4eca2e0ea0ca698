"""Servers that misbehave the way real ones do, each on a loopback port of its own: they accept a
connection and then close at once, reset it, stay silent, send garbage, speak HTTP, send a few bytes
and stall, answer with a TLS alert, or send a banner far too long. Every connection is held at most
HOLD seconds; stop() closes everything and joins every thread."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

HOLD = 8.0  # seconds a connection is kept open at most
READ_WINDOW = 0.3  # how long a server that reads first waits for the client's bytes
GARBAGE = b"\x00\xff\x13\x37\x8b\x1e\x00\x9c"
HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nServer: odd-http\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"  # fatal handshake_failure
STALL_BYTES = b"\x01\x02\x03"
LONG_BANNER = b"A" * (256 * 1024)


def _read_a_little(conn: socket.socket) -> bytes:
    conn.settimeout(READ_WINDOW)
    try:
        return conn.recv(65536)
    except OSError:
        return b""


def _hold(conn: socket.socket, stop: threading.Event) -> None:
    """Keep the connection open and silent until the client leaves, HOLD passes, or the server stops."""
    conn.settimeout(0.1)
    deadline = time.monotonic() + HOLD
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def close(conn, stop):
    pass  # closed by the caller at once


def reset(conn, stop):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST


def silent(conn, stop):
    _hold(conn, stop)


def garbage(conn, stop):
    conn.sendall(GARBAGE)
    _hold(conn, stop)


def http(conn, stop):
    _read_a_little(conn)  # a request, or nothing: an HTTP server answers once it has read
    conn.sendall(HTTP_ANSWER)


def stall(conn, stop):
    conn.sendall(STALL_BYTES)
    _hold(conn, stop)


def tls_alert(conn, stop):
    _read_a_little(conn)  # the ClientHello (or nothing)
    conn.sendall(TLS_ALERT)


def long_banner(conn, stop):
    with contextlib.suppress(OSError):
        conn.settimeout(2.0)
        conn.sendall(LONG_BANNER)
    _hold(conn, stop)


BEHAVIOURS = {"close": close, "reset": reset, "silent": silent, "garbage": garbage, "http": http,
              "stall": stall, "tls-alert": tls_alert, "long-banner": long_banner}


class OddServer:
    """One listener per behaviour on `address`, as a context manager: `ports[behaviour]`."""

    def __init__(self, address: str):
        self.address = address
        self.ports: dict[str, int] = {}
        self._stop = threading.Event()
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> OddServer:
        for name, behaviour in BEHAVIOURS.items():
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.address, 0))
            listener.listen(64)
            listener.settimeout(0.1)
            self._listeners.append(listener)
            self.ports[name] = listener.getsockname()[1]
            thread = threading.Thread(target=self._serve, args=(listener, behaviour), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _serve(self, listener: socket.socket, behaviour) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn, behaviour), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _handle(self, conn: socket.socket, behaviour) -> None:
        try:
            behaviour(conn, self._stop)
        except OSError:
            pass  # the client left first
        finally:
            conn.close()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for listener in self._listeners:
            listener.close()
        for thread in self._threads:
            thread.join(HOLD + 2)
