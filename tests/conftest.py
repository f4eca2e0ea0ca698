import dataclasses
import io
import json
import pathlib
import socket

import pytest

from csaudit.cli import main
from csaudit.environment import Environment

DATA = pathlib.Path(__file__).parent / "data"
# Real API responses recorded from CloudStack's simulator (source and licence: data/cloudstack-go/README.md).
FIXTURES = DATA / "cloudstack-go"


@dataclasses.dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """Run csaudit in-process with an injected environment (httpie-style harness).

    HOME and the working directory point at an empty temp dir, so no real cloudstack.ini
    and no CLOUDSTACK_* variable of the developer leaks into a test.
    """
    for name in list(__import__("os").environ):
        if name.startswith("CLOUDSTACK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def run(*argv, env_vars=None):
        for key, value in (env_vars or {}).items():
            monkeypatch.setenv(key, value)
        stdout, stderr = io.StringIO(), io.StringIO()
        env = Environment(stdout=stdout, stderr=stderr, env=dict(__import__("os").environ), cwd=str(tmp_path))
        code = main(list(argv), env)
        return CliResult(code, stdout.getvalue(), stderr.getvalue())

    return run


def golden_flow_lines() -> list[str]:
    """The flows derived from raw_small_cloud.json, reviewed by hand: zone, id, source, target, expect."""
    return [line for line in (DATA / "golden_flows.tsv").read_text().splitlines() if not line.startswith("#")]


@pytest.fixture
def raw_small_cloud():
    return json.loads((DATA / "raw_small_cloud.json").read_text())


@pytest.fixture
def listener():
    """Real loopback listeners, closed after the test."""
    opened = []

    def make(address="127.0.0.1", port=0, backlog=16):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
        opened.append(sock)
        return sock.getsockname()[1]

    yield make
    for sock in opened:
        sock.close()


@pytest.fixture
def filtered_port():
    """A port whose SYNs are really dropped: its accept queue is full and nobody accepts."""
    sockets = []

    def make(address="127.0.0.1"):
        server = socket.socket()
        server.bind((address, 0))
        server.listen(0)
        sockets.append(server)
        port = server.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((address, port))
            sockets.append(filler)
        return port

    yield make
    for sock in sockets:
        sock.close()


def free_port(address="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]
