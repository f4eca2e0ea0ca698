"""The progress bar: drawn on stderr only when it is a terminal, only once a run lasts, erased at the end."""

import io
import json
import os

from csaudit.cli.main import main
from csaudit.collect.parse import parse_inventory
from csaudit.collect.saved import inventory_to_dict
from csaudit.model.environment import Environment
from csaudit.model.probes import ProbeTarget
from csaudit.report.progress import CLEAR_LINE, ProgressBar
from csaudit.vantage.connect import tcp_connect_many
from tests.conftest import free_port

MS = f"127.14.{os.getpid() % 250}.1"


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bar_waits_for_a_long_run_then_throttles_then_erases_itself():
    stream, clock = FakeTerminal(), FakeClock()
    bar = ProgressBar(stream, width=10, delay=0.5, interval=0.1, clock=clock)
    bar.update(1, 4)
    assert stream.getvalue() == ""  # a short run shows nothing
    clock.now += 0.6
    bar.update(2, 4)
    assert stream.getvalue() == "\rprobing [#####.....] 2/4 targets"
    clock.now += 0.01
    bar.update(3, 4)  # too soon after the last draw
    assert stream.getvalue().count("\r") == 1
    bar.update(4, 4)  # the end is always drawn
    assert stream.getvalue().endswith("\rprobing [##########] 4/4 targets")
    bar.close()
    assert stream.getvalue().endswith(CLEAR_LINE)


def test_bar_that_never_drew_writes_nothing_on_close():
    stream = FakeTerminal()
    bar = ProgressBar(stream, delay=10)
    bar.update(1, 1)
    bar.close()
    assert stream.getvalue() == ""


def test_environment_tells_a_terminal_stderr():
    assert Environment(stderr=FakeTerminal()).stderr_isatty
    assert not Environment(stderr=io.StringIO()).stderr_isatty


def test_engine_reports_each_step_up_to_the_total(listener):
    open_port = listener("127.0.0.1")
    targets = [ProbeTarget("127.0.0.1", open_port), ProbeTarget("127.0.0.1", free_port()), ProbeTarget("127.0.0.1", open_port)]
    steps = []
    results = tcp_connect_many(targets, 1.0, 8, progress=lambda done, total: steps.append((done, total)))
    assert len(results) == 2  # the duplicate target is probed once
    assert steps[-1] == (2, 2) and [d for d, _ in steps] == sorted({d for d, _ in steps})


def slow_run(tmp_path, filtered_port, stderr):
    """A run that lasts: F01 goes to a port that drops SYNs, so its probe waits the whole timeout."""
    port = filtered_port(MS)
    inventory = parse_inventory({"managementservers": [{"id": "m1", "name": "ms1", "serviceip": MS}]},
                                endpoint=f"http://{MS}:{port}/client/api", api_mode="signed")
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    stdout = io.StringIO()
    code = main(["run", "--inventory", str(path), "--api-port", str(port), "--timeout", "1", "--format", "json"],
                Environment(stdout=stdout, stderr=stderr, env={}, cwd=str(tmp_path)))
    return code, stdout.getvalue(), stderr.getvalue()


def test_a_run_on_a_terminal_shows_the_bar_on_stderr_only(tmp_path, filtered_port):
    code, stdout, stderr = slow_run(tmp_path, filtered_port, FakeTerminal())
    assert code == 1  # F01 timed out: a real failure
    assert "\rprobing management tier [" in stderr and "targets" in stderr  # it names the part of the cloud
    assert stderr.index(CLEAR_LINE) > stderr.rindex("\rprobing management tier [")  # erased before the next log line
    assert "\r" not in stdout and json.loads(stdout)["schema"] == "csaudit/report/v1"


def test_a_run_not_on_a_terminal_shows_no_bar(tmp_path, filtered_port):
    code, _, stderr = slow_run(tmp_path, filtered_port, io.StringIO())
    assert code == 1 and "\r" not in stderr and "probing management tier [" not in stderr
