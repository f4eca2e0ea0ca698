"""`csaudit serve`: audit the cloud on a schedule and serve the last completed audit to Prometheus.

The audits run one after the other in the main thread, through the same pipeline as `csaudit run`
(whose signal handlers set serve's stop event); the HTTP server (csaudit/cli/exporter.py)
answers in threads of its own and never waits for an audit. An audit that fails (the API down, a
bad answer) is counted, logged in one line and shown in the metrics; the server goes on. SIGTERM or
Ctrl-C stops it: the audit under way stops at its probing (an API read under way first ends, within the
API client's timeouts) and is dropped, the responses under way finish, exit 0.
"""

from __future__ import annotations

import signal
import threading
import time

from csaudit.interrupts import stop_on_signals
from csaudit.model.environment import Environment
from csaudit.model.errors import ApiError, CsauditError
from csaudit.model.exitcodes import ExitStatus
from csaudit.pipeline import AuditRequest, run_audit

DEFAULT_LISTEN = "127.0.0.1:9596"  # loopback: the report names every address of the cloud; 9595 is CloudStack's own exporter
DEFAULT_INTERVAL = 300.0  # seconds between the starts of two audits
_POLL_SECONDS = 0.25  # how often the HTTP server checks for a shutdown


def split_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT or [IPv6]:PORT, the port from 0 (any free port) to 65535; ValueError otherwise."""
    if text.startswith("["):
        host, separator, port = text[1:].partition("]:")
    else:
        host, separator, port = text.rpartition(":")
        if ":" in host:
            raise ValueError("an IPv6 address goes in brackets: [ADDR]:PORT")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be ADDR:PORT with a port from 0 to 65535")
    return host, int(port)


def serve(request: AuditRequest, listen: tuple[str, int], interval: float, env: Environment) -> ExitStatus:
    """Check the configuration, bind the listen address (both: exit 2 when they fail), then audit
    every `interval` seconds until stopped."""
    from csaudit.cli.exporter import AuditRecord, open_server  # http.server and prometheus_client: only when serving

    _check_configuration(request)
    record = AuditRecord(interval)
    server = open_server(*listen, record)
    host, port = server.server_address[:2]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    env.log(f"csaudit: serving http://{where}/metrics, /report.json and /healthz; an audit every {interval:g} s")
    stop = threading.Event()
    restore = stop_on_signals(stop, (signal.SIGTERM, signal.SIGINT))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL_SECONDS},
                              name="csaudit-http", daemon=True)
    thread.start()
    try:
        audit_until_stopped(request, record, env, stop, interval)
    finally:
        restore()
        server.shutdown()
        server.server_close()  # waits for the responses under way
        thread.join(_POLL_SECONDS * 8)
        record.close()
    env.log("csaudit: stopped")
    return ExitStatus.OK


def _check_configuration(request: AuditRequest) -> None:
    """What would make every audit fail the same way is a usage error at the start, not a metric."""
    from csaudit.collect.config import load_api_config
    from csaudit.collect.saved import load_inventory
    from csaudit.plan.catalogue import load_catalogue

    load_catalogue(request.catalogue_file)
    if request.inventory_file is not None:
        load_inventory(request.inventory_file)
    elif request.api_config is None:
        load_api_config(request.endpoint, request.region)


def audit_until_stopped(request: AuditRequest, record, env: Environment, stop: threading.Event, interval: float) -> None:
    """One audit at a time, one starting every `interval` seconds (at once when the last took longer).
    SIGTERM and Ctrl-C set `stop`, during an audit too (run_audit's handlers set the event they are
    given, and raise nothing): the audit under way ends at its probing, and the loop with it."""
    while not stop.is_set():
        began = time.monotonic()
        record.started()
        try:
            outcome = run_audit(request, env, stop)
            if outcome.interrupted:  # SIGTERM or Ctrl-C while probing: a partial audit is not published
                outcome.results.close()
                record.abandoned()
                return
            record.succeeded(outcome)
        except CsauditError as error:
            record.failed(error.message, api_down=isinstance(error, ApiError))
            env.log(f"csaudit: audit failed: {error.message}")
        except Exception as error:  # a defect must not take the server down: it is one failed audit
            record.failed(f"{type(error).__name__}: {error}", api_down=False)
            env.log(f"csaudit: audit failed unexpectedly: {type(error).__name__}: {error}")
        if stop.is_set():
            record.abandoned()
            return
        stop.wait(max(0.0, interval - (time.monotonic() - began)))
