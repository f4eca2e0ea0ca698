"""The API fault matrix against a real HTTP server: every case is one clear line and exit code 3."""

import time
import types

import pytest

from csaudit.collect.api import CloudStackApi
from csaudit.collect.config import ApiConfig
from csaudit.model.errors import ApiError
from tests.conftest import free_port
from tests.faultserver import FaultServer, cloudstack_error, ok

ERRORS = {
    401: "unable to verify user credentials and/or request signature",
    405: "Method not allowed",
    429: "There are too many api calls",
    431: "Unable to execute API command listcapabilities due to invalid value",
    432: "Unknown API command: listCapabilities",
    530: "Internal error executing command, please contact your system administrator",
    503: "Service Unavailable",
}


@pytest.fixture(autouse=True)
def backoff(monkeypatch):
    """The waits between retries, recorded instead of slept: the schedule is checked, the suite stays fast."""
    waits = []  # only the API client's clock: the fault server's own sleeps stay real
    monkeypatch.setattr("csaudit.collect.api.time", types.SimpleNamespace(monotonic=time.monotonic, sleep=waits.append))
    return waits


def run(cli, endpoint, *extra):
    result = cli("run", "--endpoint", endpoint, *extra, env_vars={"CLOUDSTACK_KEY": "k", "CLOUDSTACK_SECRET": "s", "CLOUDSTACK_TIMEOUT": "1"})
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result


@pytest.mark.parametrize("status", sorted(ERRORS))
def test_http_errors(cli, status):
    with FaultServer(lambda command, n: cloudstack_error(command, status, ERRORS[status])) as server:
        result = run(cli, server.endpoint)
    assert result.exit_code == 3
    [line] = [x for x in result.stderr.splitlines() if x.startswith("csaudit: listCapabilities")]
    assert f"HTTP {status}: {ERRORS[status]}" in line
    retried = status in (429, 503)
    assert server.seen.count("listCapabilities") == (3 if retried else 1)


def test_503_then_success_is_retried():
    answers = iter([cloudstack_error("listZones", 503, "busy"), ok("listZones", {"count": 1, "zone": [{"id": "z"}]})])
    with FaultServer(lambda command, n: next(answers)) as server:
        api = CloudStackApi(ApiConfig(server.endpoint, key="k", secret="s", timeout=2))
        assert api.list_all("listZones", "zone") == [{"id": "z"}]
    assert server.seen == ["listZones", "listZones"]


def test_connection_refused(cli):
    result = run(cli, f"http://127.13.0.2:{free_port('127.13.0.2')}/client/api")
    assert result.exit_code == 3 and "cannot connect to http://127.13.0.2" in result.stderr and "connection refused" in result.stderr


def test_connection_reset_is_retried_then_reported(cli, backoff):
    with FaultServer(lambda command, n: ("reset",)) as server:
        result = run(cli, server.endpoint)
    assert result.exit_code == 3
    assert "dropped the connection" in result.stderr and "gave up after 3 attempts" in result.stderr
    assert server.seen.count("listCapabilities") == 3
    assert backoff == [0.5, 1.0]  # the README's schedule: 0.5 s, then 1 s


def test_slow_server_times_out(cli):
    with FaultServer(lambda command, n: ("sleep", 3)) as server:
        result = run(cli, server.endpoint)
    assert result.exit_code == 3 and "no answer from" in result.stderr and "within 1 s" in result.stderr


def test_tls_verification_failure(cli):
    from csaudit.lab import tls

    context = tls.make_identity().context  # the lab's self-signed certificate, trusted by nobody
    with FaultServer(lambda command, n: ok(command, {}), tls_context=context) as server:
        result = run(cli, server.endpoint)
    assert result.exit_code == 3 and "TLS verification failed" in result.stderr


@pytest.mark.parametrize("answer,message", [
    (("reply", 200, "text/html", "<html><h1>Welcome to nginx</h1></html>"), "JSON (application/json) was expected"),
    (("reply", 502, "text/html", "<html><h1>502 Bad Gateway</h1></html>"), "HTTP 502"),
    (("reply", 200, "application/json", '{"listcapabilitiesresponse": {"capab'), "Malformed JSON"),
    (("reply", 200, "application/json", '{"somethingelse": {"x": 1}, "more": 2}'), "single top-level key"),
    (("reply", 200, "application/json", '{"listcapabilitiesresponse": {"nothing": 1}}'), "no 'capability' object"),
    (("reply", 200, "application/json", '{"listcapabilitiesresponse": [1, 2]}'), "malformed answer"),
])
def test_bad_bodies(cli, answer, message):
    with FaultServer(lambda command, n: answer) as server:
        result = run(cli, server.endpoint)
    assert result.exit_code == 3 and message in result.stderr
    assert len([x for x in result.stderr.splitlines() if x.startswith("csaudit: listCapabilities")]) == 1


def test_error_on_a_later_command_names_it(cli):
    def script(command, n):
        if command == "listCapabilities":
            return ok(command, {"capability": {"cloudstackversion": "4.19.0.0"}})
        if command == "listZones":
            return ok(command, {"count": 1, "zone": [{"id": "z", "name": "z"}]})
        if command == "listHosts":
            return cloudstack_error(command, 530, "Caught: java.sql.SQLException", 4250)
        return ok(command, {})

    with FaultServer(script) as server:
        result = run(cli, server.endpoint)
    assert result.exit_code == 3
    assert "listHosts: CloudStack answered HTTP 530: Caught: java.sql.SQLException" in result.stderr


def test_wrong_envelope_rows(cli):
    with FaultServer(lambda command, n: ok(command, {"capability": {}}) if command == "listCapabilities" else ok(command, {"count": "two", "zone": [1]})) as server:
        with pytest.raises(ApiError, match="malformed"):
            CloudStackApi(ApiConfig(server.endpoint, timeout=2)).list_all("listZones", "zone")
