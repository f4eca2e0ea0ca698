"""What `csaudit serve` serves over HTTP: the last completed audit and the server's own health.

    /metrics      the Prometheus exposition (text, or OpenMetrics when the scraper asks for it)
    /report.json  the last completed audit's JSON report (503 until one has completed)
    /healthz      200 while the server runs, with what it did last (JSON)

The audits run elsewhere (csaudit/cli/serve.py) and hand their outcome to the AuditRecord; a
request reads what the record holds at that moment and never waits for an audit. The metrics of an
audit are computed once, when it completes, and its JSON report is kept in an unlinked temporary
file, so a scrape costs the same whatever the cloud's size and however often it comes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector

from csaudit import __version__
from csaudit.model.errors import CsauditError, UsageError
from csaudit.report.prometheus import Families, audit_families, build_info

log = logging.getLogger("csaudit")

READ_CHUNK = 1 << 20
_OPENMETRICS_END = b"# EOF\n"
# What curl and Prometheus (2.x) ask for: the last audit is encoded in these formats when it is published,
# so that no scrape pays for it; another format is encoded at its first scrape.
_USUAL_ACCEPTS = (None, "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request: a silent one cannot hold a thread, nor the shutdown


class AuditRecord:
    """The last completed audit (its metric families and JSON report) and the counts of every attempt.
    The audit loop writes it, the request threads read it; one lock keeps each read whole."""

    def __init__(self, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._families: tuple[Metric, ...] = ()
        self._encoded: dict[str, bytes] = {}  # content type -> the last audit's families in it
        self._report: io.BufferedRandom | None = None
        self._report_size = 0
        self._finished_at: str | None = None
        self._audits = 0
        self._failures = 0
        self._api_up: bool | None = None  # None until an attempt ended
        self._last_success: bool | None = None
        self._running = False
        self._last_error: str | None = None
        self._process = ProcessCollector(registry=None)

    # ------------------------------------------------------------ the audit loop's side
    def started(self) -> None:
        with self._lock:
            self._running = True

    def succeeded(self, outcome) -> None:
        """Publish a completed audit (pipeline.AuditOutcome): its metrics, and its JSON report in a
        temporary file. The outcome's result log is closed here, once both are made."""
        report = None
        try:
            head = outcome.head()
            families = tuple(audit_families(head, iter(outcome.results)))
            encoded = dict(_encode(families, accept) for accept in _USUAL_ACCEPTS)
            report = tempfile.TemporaryFile()  # unlinked at once
            text = io.TextIOWrapper(report, encoding="utf-8", newline="")
            outcome.write("json", text)
            text.flush()
            text.detach()
        except BaseException as error:
            if report is not None:
                report.close()
            if isinstance(error, OSError):  # an audit that cannot be kept is a failed one, said in one line
                raise CsauditError(f"cannot keep the report in a temporary file ({tempfile.gettempdir()}): {error.strerror}") from None
            raise
        finally:
            outcome.results.close()
        with self._lock:
            previous = self._report
            self._families, self._report, self._report_size = families, report, report.tell()
            self._encoded = encoded
            self._finished_at = head["generated_at"]
            self._audits += 1
            self._api_up = self._last_success = True
            self._running = False
            self._last_error = None
        if previous is not None:
            previous.close()  # a request still sending it reads through its own duplicate of the descriptor

    def failed(self, message: str, api_down: bool) -> None:
        """An attempt that ended without a report; `api_down`: it failed reading the CloudStack API."""
        with self._lock:
            self._audits += 1
            self._failures += 1
            self._last_success = False
            if api_down:
                self._api_up = False
            self._running = False
            self._last_error = message

    def abandoned(self) -> None:
        """An attempt stopped by a signal: nothing to publish, nothing failed."""
        with self._lock:
            self._running = False

    def close(self) -> None:
        with self._lock:
            if self._report is not None:
                self._report.close()
            self._report = None

    # ------------------------------------------------------------ the request threads' side
    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """/metrics in the format the scraper accepts: the server's health, made for each scrape,
        then the last audit's metrics, encoded once per audit and format."""
        encoder, content_type = choose_encoder(accept)
        health = encoder(Families(self._health()))
        with self._lock:
            families, audit = self._families, self._encoded.get(content_type)
        if audit is None:
            content_type, audit = _encode(families, accept)
            with self._lock:
                if self._families is families:  # not replaced by a newer audit meanwhile
                    self._encoded[content_type] = audit
        if health.endswith(_OPENMETRICS_END):  # OpenMetrics ends the whole exposition once
            health = health[:-len(_OPENMETRICS_END)]
        return health + audit, content_type

    def collect(self) -> Iterator[Metric]:
        """The prometheus_client Collector protocol: everything /metrics shows."""
        with self._lock:
            families = self._families
        yield from self._health()
        yield from families

    def _health(self) -> Iterator[Metric]:
        with self._lock:
            audits, failures = self._audits, self._failures
            api_up, last_success, running = self._api_up, self._last_success, self._running
        yield build_info(__version__)
        if api_up is not None:  # absent until an attempt said something of the API
            yield _gauge("csaudit_api_up", "Whether the last audit attempt could read the CloudStack API (1) or not (0).",
                         int(api_up))
        if last_success is not None:  # absent until an attempt ended
            yield _gauge("csaudit_last_audit_success", "Whether the last audit attempt completed (1) or failed (0).",
                         int(last_success))
        yield _counter("csaudit_audits", "Audit attempts that ended, completed or failed.", audits)
        yield _counter("csaudit_audit_failures", "Audit attempts that failed (API unreachable, a bad answer, ...).", failures)
        yield _gauge("csaudit_audit_running", "Whether an audit is running now (1) or not (0).", int(running))
        yield _gauge("csaudit_audit_interval_seconds", "Seconds between the starts of two audits (--interval).", self.interval)
        yield from self._process.collect()

    @contextlib.contextmanager
    def report(self) -> Iterator[tuple[int, int] | None]:
        """(descriptor, size) of the last JSON report, or None before the first one. The descriptor is
        a duplicate, closed on exit: a newer report may replace the record's meanwhile."""
        with self._lock:
            if self._report is None:
                opened = None
            else:
                opened = (os.dup(self._report.fileno()), self._report_size)
        try:
            yield opened
        finally:
            if opened is not None:
                os.close(opened[0])

    def health(self) -> dict:
        with self._lock:
            return {"status": "ok", "version": __version__, "audit_running": self._running, "audits": self._audits,
                    "failures": self._failures, "last_audit": self._finished_at, "last_error": self._last_error}


def _encode(families, accept: str | None) -> tuple[str, bytes]:
    encoder, content_type = choose_encoder(accept)
    return content_type, encoder(Families(families))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class _Handler(BaseHTTPRequestHandler):
    server_version = f"csaudit/{__version__}"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        path = urllib.parse.urlsplit(self.path).path
        route = {"/metrics": self._metrics, "/report.json": self._report, "/healthz": self._health, "/": self._index}.get(path)
        if route is None:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /report.json or /healthz\n", body)
        else:
            route(body)

    def _metrics(self, body: bool) -> None:
        data, content_type = self.server.record.exposition(self.headers.get("Accept"))
        self._send(200, content_type, data, body)

    def _report(self, body: bool) -> None:
        with self.server.record.report() as opened:
            if opened is None:
                self._send(503, "application/json", b'{"error": "no audit has completed yet"}\n', body)
                return
            descriptor, size = opened
            self._headers(200, "application/json", size)
            offset = 0
            while body and offset < size:
                chunk = os.pread(descriptor, min(READ_CHUNK, size - offset), offset)
                if not chunk:
                    break
                self.wfile.write(chunk)
                offset += len(chunk)

    def _health(self, body: bool) -> None:
        self._send(200, "application/json", (json.dumps(self.server.record.health()) + "\n").encode(), body)

    def _index(self, body: bool) -> None:
        text = ("csaudit serve: the network flows of a CloudStack cloud, audited on a schedule\n"
                "/metrics      Prometheus metrics\n/report.json  the last completed audit's report\n"
                "/healthz      the server's health\n")
        self._send(200, "text/plain; charset=utf-8", text.encode(), body)

    def _send(self, status: int, content_type: str, data: bytes, body: bool) -> None:
        self._headers(status, content_type, len(data))
        if body:
            self.wfile.write(data)

    def _headers(self, status: int, content_type: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # the base class names it `format`
        log.debug("http: %s %s", self.address_string(), format % args)


class ExporterServer(ThreadingHTTPServer):
    """One thread per request. The threads are not daemons and server_close() joins them, so a
    shutdown lets the responses under way finish."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple, family: int, record: AuditRecord):
        self.address_family = family
        self.record = record
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks the resolver for the address's full name (socket.getfqdn), a
        # DNS query csaudit has no need of: bind, and name the server by what was given.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        log.debug("http: a request from %s failed", client_address, exc_info=True)  # a client that went away


def open_server(host: str, port: int, record: AuditRecord) -> ExporterServer:
    """Bind --listen ADDR:PORT (port 0: any free port). Every failure is one UsageError (exit 2)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        (family, _, _, _, address), *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"cannot listen on {where}: {error.strerror}") from None
    try:
        return ExporterServer(address, family, record)
    except OSError as error:
        raise UsageError(f"cannot listen on {where}: {error.strerror or error}") from None
