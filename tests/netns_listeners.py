"""Serve ports inside a network namespace until stdin closes: `python -m tests.netns_listeners SPEC...`.

A SPEC is ADDRESS:PORT[/udp]=KIND. KIND is a service kind of the lab (csaudit/lab/services.py: tls, https,
http, ssh, mysql, rfb, dns, rpcbind, nfs, ntp), served by the lab's own listeners, so a probe from any vantage
meets the protocol it expects; or one of the MS's HTTP servlets, answered as CloudStack does:
  api          the signed API (8080): 401 to an unsigned request
  integration  the unauthenticated integration API (integration.api.port): listCapabilities without a signature
  accept       a port that accepts and says nothing
Prints "ready" once every socket listens (the namespace builders wait for it), and stops when stdin closes,
so a killed test leaves no server behind.
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading

from csaudit.lab.listeners import Listeners
from csaudit.lab.services import Service

VERSION = "4.19.1.0"
UNSIGNED = {"listcapabilitiesresponse": {"uuidList": [], "errorcode": 401,
                                         "errortext": "unable to verify user credentials and/or request signature"}}
CAPABILITIES = {"listcapabilitiesresponse": {"capability": {"cloudstackversion": VERSION, "apilimitinterval": 1}}}


class _Servlet(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, dict] = (401, UNSIGNED)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status, document = self.answer
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


SERVLETS = {"api": (401, UNSIGNED), "integration": (200, CAPABILITIES)}


def parse(spec: str) -> tuple[str, int, str, str]:
    """ADDRESS:PORT[/udp]=KIND -> (address, port, protocol, kind)."""
    where, _, kind = spec.partition("=")
    where, _, protocol = where.partition("/")
    address, _, port = where.rpartition(":")
    return address, int(port), protocol or "tcp", kind


def serve(specs: list[str]) -> None:
    services, servers, plain = [], [], []
    for address, port, protocol, kind in map(parse, specs):
        if kind in SERVLETS:
            handler = type(f"{kind}_servlet", (_Servlet,), {"answer": SERVLETS[kind]})
            servers.append(http.server.ThreadingHTTPServer((address, port), handler))
        elif kind == "accept":
            sock = socket.create_server((address, port), backlog=64)
            plain.append(sock)
        else:
            services.append(Service("netns", "lab", address, port, protocol, kind))
    lab = Listeners(services)
    lab.bind_all()
    lab.start()
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    for sock in plain:
        threading.Thread(target=_accept_and_close, args=(sock,), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin, or dies
    for server in servers:
        server.shutdown()
    lab.stop()


def _accept_and_close(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1:])
