import dataclasses
import io
import json
import os
import pathlib
import shutil
import socket

import pytest

from csaudit.cli.main import main
from csaudit.model.environment import Environment

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

# What the tests need beyond Python, by marker (tox.ini registers them; `tox -e unit` runs none of them):
#   root            runs as root (ports below 1024 for the embedded cloud, nft -c, iptables-restore, mounts)
#   netns           creates network namespaces of its own (root, iproute2)
#   programs(NAME)  drives a system program from a Debian package
# A test whose needs are not met skips and says which; with CSAUDIT_TESTS_REQUIRE_ALL=1 (set by tests/run as
# root after installing everything, and under CI=true) it fails instead, so a broken machine hides nothing.
DEBIAN_PACKAGES = dict(line.split() for line in (DATA / "debian-packages.txt").read_text().splitlines()
                       if line.strip() and not line.startswith("#"))
SYSTEM_DIRS = ("/usr/sbin", "/sbin")  # daemons live there, outside a normal user's PATH


def find_program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS))


def unmet_needs(item) -> list[str]:
    unmet = []
    if (item.get_closest_marker("root") or item.get_closest_marker("netns")) and os.geteuid() != 0:
        unmet.append("root")
    programs = [name for mark in item.iter_markers("programs") for name in mark.args]
    if item.get_closest_marker("netns"):
        programs.append("ip")
    for name in dict.fromkeys(programs):
        if name not in DEBIAN_PACKAGES:
            raise pytest.UsageError(f"{item.nodeid}: programs({name!r}) names no known Debian package (tests/conftest.py)")
        if find_program(name) is None:
            unmet.append(f"{name} (Debian package {DEBIAN_PACKAGES[name]})")
    return unmet


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    unmet = unmet_needs(item)
    if unmet:
        message = "needs " + ", ".join(unmet)
        if os.environ.get("CSAUDIT_TESTS_REQUIRE_ALL") or os.environ.get("CI"):
            pytest.fail(f"{message}, and this run requires everything (CSAUDIT_TESTS_REQUIRE_ALL or CI)", pytrace=False)
        pytest.skip(message)
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


def drop_syns(server: socket.socket) -> list[socket.socket]:
    """Make a bound socket a port that drops SYNs: listen with an accept queue that three connects
    fill and nobody empties. Returns those connects, for the caller to close."""
    server.listen(0)
    address, port = server.getsockname()[:2]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex((address, port))
        fillers.append(filler)
    return fillers


@pytest.fixture
def filtered_port():
    """A port whose SYNs are really dropped: its accept queue is full and nobody accepts."""
    sockets = []

    def make(address="127.0.0.1"):
        server = socket.socket()
        server.bind((address, 0))
        sockets.extend([server, *drop_syns(server)])
        return server.getsockname()[1]

    yield make
    for sock in sockets:
        sock.close()


def connect_observations(targets, timeout, *args, **kwargs):
    """The connect engine's facts for each target, read by the one classification (what a run reports)."""
    from csaudit.vantage.classify import connected
    from csaudit.vantage.connect import tcp_connect_many

    facts = tcp_connect_many(targets, timeout, *args, **kwargs)
    return {target: connected(target, fact, timeout) for target, fact in facts.items()}


def free_port(address="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]
