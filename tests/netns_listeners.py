"""Serve ports inside network namespaces until stdin closes: `python -m tests.netns_listeners [--netns NAME SPEC...]...`.

One process serves every namespace: it enters each (setns) only to open that namespace's sockets, which stay
there, so a cloud of a dozen machines costs one Python start instead of a dozen. A SPEC is ADDRESS:PORT[/udp]=KIND.
KIND is a service kind of the lab (csaudit/lab/services.py: tls, https, http, ssh, mysql, rfb, dns, rpcbind,
nfs, ntp), served by the lab's own listeners, so a probe from any vantage meets the protocol it expects; or one
of the MS's HTTP servlets, answered as CloudStack does:
  api          the signed API (8080): 401 to an unsigned request
  integration  the unauthenticated integration API (integration.api.port): listCapabilities without a signature
  accept       a port that accepts and says nothing
Prints "ready" once every socket listens (the namespace builders wait for it), and stops when stdin closes
(also when the test that started it dies), so no server outlives its test.
"""

from __future__ import annotations

import ctypes
import http.server
import json
import os
import socket
import socketserver
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


class _Server(socketserver.ThreadingTCPServer):
    """http.server's ThreadingHTTPServer without its server_bind, which looks its own name up in DNS (a wait
    for a resolver that no namespace of the cloud has)."""

    allow_reuse_address = True
    daemon_threads = True


def parse(spec: str) -> tuple[str, int, str, str]:
    """ADDRESS:PORT[/udp]=KIND -> (address, port, protocol, kind)."""
    where, _, kind = spec.partition("=")
    where, _, protocol = where.partition("/")
    address, _, port = where.rpartition(":")
    return address, int(port), protocol or "tcp", kind


CLONE_NEWNET = 0x40000000


def enter(namespace: str) -> None:
    """This thread into the named network namespace (os.setns needs Python 3.12)."""
    descriptor = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(descriptor, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(descriptor)


def groups(argv: list[str]) -> list[tuple[str, list[str]]]:
    """--netns NAME SPEC... --netns NAME SPEC... -> [(NAME, [SPEC, ...]), ...]"""
    result: list[tuple[str, list[str]]] = []
    words = iter(argv)
    for word in words:
        if word == "--netns":
            result.append((next(words), []))
        elif not result:
            raise SystemExit(f"{word}: a SPEC comes after --netns NAME")
        else:
            result[-1][1].append(word)
    return result


def open_sockets(specs: list[str]) -> tuple[Listeners, list, list]:
    """The sockets of one namespace (the one this thread is in), bound and listening."""
    services, servers, plain = [], [], []
    for address, port, protocol, kind in map(parse, specs):
        if kind in SERVLETS:
            handler = type(f"{kind}_servlet", (_Servlet,), {"answer": SERVLETS[kind]})
            servers.append(_Server((address, port), handler))
        elif kind == "accept":
            plain.append(socket.create_server((address, port), backlog=64))
        else:
            services.append(Service("netns", "lab", address, port, protocol, kind))
    lab = Listeners(services)
    lab.bind_all()
    return lab, servers, plain


def serve(argv: list[str]) -> None:
    opened = []
    for namespace, specs in groups(argv):
        enter(namespace)  # a failure ends the process here: nothing is ever bound outside the named namespaces
        opened.append(open_sockets(specs))
    for lab, servers, plain in opened:
        lab.start()
        for server in servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        for sock in plain:
            threading.Thread(target=_accept_and_close, args=(sock,), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin, or dies
    for lab, servers, _ in opened:
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
