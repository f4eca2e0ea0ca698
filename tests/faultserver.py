"""A real HTTP server on loopback that misbehaves on purpose, one scripted answer per request."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit


def cloudstack_error(command: str, status: int, text: str, cserrorcode: int | None = None) -> tuple:
    body = {"uuidList": [], "errorcode": status, "errortext": text}
    if cserrorcode:
        body["cserrorcode"] = cserrorcode
    return ("reply", status, "application/json; charset=UTF-8", json.dumps({f"{command.lower()}response": body}))


def ok(command: str, inner: dict) -> tuple:
    return ("reply", 200, "application/json; charset=UTF-8", json.dumps({f"{command.lower()}response": inner}))


def signed_api(command: str, _attempt: int) -> tuple:
    """What CloudStack's API servlet says to a request without a signature."""
    return cloudstack_error(command, 401, "unable to verify user credentials and/or request signature")


def integration_api(command: str, _attempt: int) -> tuple:
    """What the unauthenticated integration port says: it just answers."""
    return ok(command, {"capability": {"cloudstackversion": "4.19.1.0", "apilimitmax": 25}})


class FaultServer:
    """`script(command, attempt)` returns ("reply", status, content_type, body) | ("reset",) |
    ("sleep", seconds) | ("raw", bytes). Requests are counted per command."""

    def __init__(self, script, address="127.13.0.1", tls_context: ssl.SSLContext | None = None, port: int = 0):
        self.script = script
        self.seen: list[str] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((address, port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        scheme = "https" if tls_context else "http"
        self.endpoint = f"{scheme}://{address}:{self.port}/client/api"
        self._tls = tls_context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket):
        try:
            conn.settimeout(5)
            if self._tls:
                conn = self._tls.wrap_socket(conn, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            target = data.split(b" ", 2)[1].decode()
            command = parse_qs(urlsplit(target).query).get("command", ["?"])[0]
            self.seen.append(command)
            action = self.script(command, self.seen.count(command))
            if action[0] == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if action[0] == "sleep":
                time.sleep(action[1])
                return
            if action[0] == "raw":
                conn.sendall(action[1])
                return
            _, status, ctype, body = action
            payload = body.encode()
            head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            conn.sendall(head.encode() + payload)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()
