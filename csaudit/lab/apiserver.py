"""HTTP front end of the simulated management servers.

One accept thread watches every API socket (signed 8080 and integration port on
each management server) and hands connections to a fixed pool of workers, so the
thread count stays bounded whatever the client does (ThreadingMixIn would start
one thread per connection).
"""

from __future__ import annotations

import errno
import logging
import queue
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from csaudit.lab.apiservice import ApiService, Response
from csaudit.lab.wakeup import Waker

log = logging.getLogger("csaudit.lab")

API_PATH = "/client/api"
WORKERS = 8
IDLE_SECONDS = 5.0  # a keep-alive connection with no request for this long is closed
MAX_BODY = 1 << 20  # form bodies beyond this are refused (the API never needs them)
_SELECT_SECONDS = 0.2


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Jetty does for requests.Session
    server_version = "csaudit-lab"
    sys_version = ""
    timeout = IDLE_SECONDS

    # set per connection by ApiServer
    service: ApiService
    integration: bool
    pool: WorkerPool

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "0")
        size = int(length) if length.isdigit() else -1
        if not 0 <= size <= MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(size).decode("utf-8", "replace")
        form = "application/x-www-form-urlencoded" in self.headers.get("Content-Type", "")
        self._serve(body if form else None)

    def _serve(self, body: str | None) -> None:
        url = urlsplit(self.path)
        if self.integration:
            # Any path, query string only; HttpCore there never reuses connections.
            response = self.service.integration(url.query)
            self.close_connection = True
        elif url.path.rstrip("/") != API_PATH:
            self.send_error(404)
            return
        else:
            response = self.service.signed(url.query, body)
        # Others are queued for a worker: let them in rather than idling on keep-alive.
        if self.pool.backlogged():
            self.close_connection = True
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value.replace("\r", " ").replace("\n", " "))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("api %s: " + format, self.client_address[0], *args)


class WorkerPool:
    """A fixed number of threads fed by a bounded queue (a full queue blocks accept)."""

    def __init__(self, size: int, name: str):
        self._jobs: queue.Queue = queue.Queue(maxsize=size * 8)
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("lab worker job failed")

    def submit(self, job, timeout: float) -> bool:
        try:
            self._jobs.put(job, timeout=timeout)
            return True
        except queue.Full:
            return False

    def backlogged(self) -> bool:
        return not self._jobs.empty()

    def close(self, timeout: float) -> None:
        for _ in self._threads:
            try:
                self._jobs.put(None, timeout=timeout)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout)


def bind_listener(address: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket; OSError (EADDRINUSE, EACCES) is left to the caller."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Restarting a lab must not wait for TIME_WAIT; a live listener still clashes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class ApiServer:
    def __init__(self, service: ApiService, workers: int = WORKERS):
        self.service = service
        self._workers = workers
        self._sockets: list[tuple[socket.socket, bool]] = []
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: WorkerPool | None = None
        self._handlers: dict[bool, type] = {}
        self._waker = Waker()

    def bind(self, address: str, port: int, integration: bool) -> None:
        sock = bind_listener(address, port)
        sock.setblocking(False)
        self._sockets.append((sock, integration))

    def start(self) -> None:
        self._pool = WorkerPool(self._workers, "lab-api")
        self._handlers = {integration: type("Handler", (_Handler,), {
            "service": self.service, "integration": integration, "pool": self._pool})
            for integration in (False, True)}
        self._thread = threading.Thread(target=self._accept_loop, name="lab-api-accept", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock, integration in self._sockets:
                selector.register(sock, selectors.EVENT_READ, integration)
            selector.register(self._waker.reader, selectors.EVENT_READ, None)
            while not self._stop.is_set():
                for key, _ in selector.select(_SELECT_SECONDS):
                    if key.data is None:
                        continue  # the wake-up byte: the loop condition decides
                    try:
                        self._accept(key.fileobj, key.data)
                    except Exception:  # keep serving the other sockets
                        log.exception("lab API accept failed")

    def _accept(self, listener: socket.socket, integration: bool) -> None:
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                raise
            return
        conn.setblocking(True)
        with self._active_lock:
            self._active.add(conn)
        if not self._pool.submit(lambda: self._handle(conn, peer, integration), timeout=IDLE_SECONDS):
            self._forget(conn)

    def _handle(self, conn: socket.socket, peer, integration: bool) -> None:
        try:
            self._handlers[integration](conn, peer, self)
        except OSError:
            pass  # the client went away, or stop() cut the connection
        finally:
            self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:
        with self._active_lock:
            self._active.discard(conn)
        try:
            conn.close()
        except OSError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut open connections (so no worker waits on an idle client), join."""
        self._waker.stop_loop(self._stop, self._thread, timeout)
        for sock in (*(s for s, _ in self._sockets), *self._waker.sockets()):
            sock.close()
        self._sockets.clear()
        with self._active_lock:
            for conn in self._active:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._pool is not None:
            self._pool.close(timeout)
