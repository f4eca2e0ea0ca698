"""Odd but common server behaviour gets a clear verdict, the same from every engine.

For every TCP probe kind, servers that close at once, reset, stay silent, send garbage, speak HTTP,
send a few bytes and stall, answer with a TLS alert, or send an over-long banner are probed by the
local engine and by both remote agents (python3 and bash, run here as sshd would run them). A flow
that must be open comes out `fail`, with a reason that says in words what the server did; never
`error`, never an exception's text.
"""

import functools
import os
import subprocess

import pytest

from csaudit.judge.verdict import judge
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.probes import ProbeOptions, ProbeTarget
from csaudit.model.vocabulary import TCP_KINDS
from csaudit.vantage.local import LocalVantage
from csaudit.vantage.remote import agent, parse_output, probe_command, probe_input
from tests.oddservers import BEHAVIOURS, OddServer

TIMEOUT = 1.0
ADDRESS = f"127.63.{os.getpid() % 250 + 1}.1"
BASH_TOOLS = ("bash", "timeout", "date", "head", "cat", "base64", "wc")
# What the reason must say, by behaviour (any one of the phrases); "close" may race with our request into a reset.
SAYS = {
    "close": ("closed the connection without a word", "reset the connection without a word"),
    "reset": ("reset the connection without a word",),
    "silent": ("nothing answered within",),
    "garbage": ("it answers with unrecognised bytes 00ff1337",),
    "http": ("it speaks HTTP (HTTP/1.1 200 OK, Server: odd-http)",),
    "stall": ("it answers with unrecognised bytes 010203",),  # "then falls silent", unless the reader knew sooner
    "tls-alert": ("it speaks TLS", "TLS answers, but the TLS handshake fails"),
    "long-banner": ("it speaks text ('AAAA",),
}
EXCEPTION_TEXT = ("Errno", "Error", "Traceback", "exception", "write_eof", "',)", "by peer")
# The http kind asks only for an HTTP server: the odd HTTP server is its pass (test_http_kind_passes_on_any_http_server).
CASES = [(kind, behaviour) for kind in sorted(TCP_KINDS) for behaviour in BEHAVIOURS if (kind, behaviour) != ("http", "http")]


@pytest.fixture(scope="module")
def servers():
    with OddServer(ADDRESS) as odd:
        yield odd


@pytest.fixture(scope="module")
def probed(servers):
    """Each engine probes every case once, all at once (as a run does), on first use."""
    targets = {(kind, behaviour): ProbeTarget(ADDRESS, port, kind=kind)
               for kind, behaviour in CASES for name, port in servers.ports.items() if name == behaviour}

    @functools.cache
    def run(engine: str) -> dict:
        batch = list(targets.values())
        if engine == "local":
            observations = LocalVantage().probe(batch, ProbeOptions(timeout=TIMEOUT))
        else:
            argv = ["/bin/sh", "-c", probe_command(TIMEOUT, 64)] if engine == "python3" else \
                ["bash", "-c", agent("probe.sh"), "csaudit", f"{TIMEOUT:g}", "64"]
            done = subprocess.run(argv, input=probe_input(batch), capture_output=True, text=True, timeout=120)
            answer = parse_output(done.stdout, batch, TIMEOUT)
            assert answer.engine == engine, done.stderr
            observations = answer.observations
        return {case: observations.get(target) for case, target in targets.items()}

    return run


def must_be_open(kind: str, port: int) -> Flow:
    return Flow(f"T:test->odd:{port}/tcp", "T", "a flow that must be open", None, Endpoint("host", "test", None),
                Endpoint("host", "odd", ADDRESS), "tcp", port, None, "open", kind, "test", ())


def check(observation, kind: str, behaviour: str, port: int) -> None:
    assert observation is not None, "no observation"
    result = judge(must_be_open(kind, port), observation, "test")
    assert result.status == "fail", (result.status, result.reason)
    assert any(phrase in result.reason for phrase in SAYS[behaviour]), result.reason
    assert not any(text in result.reason for text in EXCEPTION_TEXT), result.reason


@pytest.mark.parametrize("kind,behaviour", CASES)
def test_local_engine(probed, servers, kind, behaviour):
    check(probed("local")[kind, behaviour], kind, behaviour, servers.ports[behaviour])


@pytest.mark.parametrize("kind,behaviour", CASES)
def test_remote_python3_agent(probed, servers, kind, behaviour):
    check(probed("python3")[kind, behaviour], kind, behaviour, servers.ports[behaviour])


@pytest.mark.programs(*BASH_TOOLS)
@pytest.mark.parametrize("kind,behaviour", CASES)
def test_remote_bash_agent(probed, servers, kind, behaviour):
    check(probed("bash")[kind, behaviour], kind, behaviour, servers.ports[behaviour])


@pytest.mark.parametrize("engine", ["local", "python3"])
def test_http_kind_passes_on_any_http_server(servers, engine):
    """Where any HTTP server will do (a template host, a proxy), the odd HTTP server passes, saying what it is."""
    target = ProbeTarget(ADDRESS, servers.ports["http"], kind="http")
    if engine == "local":
        observation = LocalVantage().probe([target], ProbeOptions(timeout=TIMEOUT))[target]
    else:
        done = subprocess.run(["/bin/sh", "-c", probe_command(TIMEOUT, 64)], input=probe_input([target]),
                              capture_output=True, text=True, timeout=60)
        observation = parse_output(done.stdout, [target], TIMEOUT).observations[target]
    result = judge(must_be_open("http", target.port), observation, "test")
    assert result.status == "pass", result.reason
    assert "HTTP/1.1 200 OK, Server: odd-http" in result.reason
