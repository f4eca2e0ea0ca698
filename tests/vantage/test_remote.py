"""The remote side of csaudit's SSH vantages, run here for real: the probe command under sh, its
python3 and bash engines against real loopback sockets, the hop's own checks, and the parser."""

import os
import shutil
import subprocess
import sys

import pytest

from csaudit.model.probes import ProbeTarget
from csaudit.vantage.remote import agent, hop_command, parse_output, probe_command, probe_input
from tests.conftest import free_port

BASH_AGENT = agent("probe.sh")


def _run(argv, targets, env=None):
    done = subprocess.run(argv, input=probe_input(targets), capture_output=True, text=True, timeout=60, env=env)
    return parse_output(done.stdout, targets, 1.0), done


def _four_targets(listener, filtered_port):
    return [ProbeTarget("127.0.0.1", listener()), ProbeTarget("127.0.0.1", free_port()),
            ProbeTarget("127.0.0.1", filtered_port()), ProbeTarget("no-such-host.invalid", 80)]


def _only_tools(tmp_path, *tools):
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools:
        (folder / tool).symlink_to(shutil.which(tool))
    return {"PATH": str(folder)}


def test_python_engine_keeps_the_four_states(listener, filtered_port):
    targets = _four_targets(listener, filtered_port)
    answer, _ = _run(["/bin/sh", "-c", probe_command(1.0, 8)], targets)
    assert answer.engine == "python3"
    assert [answer.observations[t].state for t in targets] == ["open", "refused", "timeout", "error"]
    assert "cannot resolve no-such-host.invalid" in answer.observations[targets[3]].reason
    assert answer.observations[targets[0]].latency_ms is not None


@pytest.mark.programs("bash", "timeout", "date", "head")
def test_bash_engine_keeps_the_four_states(listener, filtered_port):
    targets = _four_targets(listener, filtered_port)
    answer, _ = _run(["bash", "-c", BASH_AGENT, "csaudit", "1", "8"], targets)
    assert answer.engine == "bash"
    assert [answer.observations[t].state for t in targets] == ["open", "refused", "timeout", "error"]


@pytest.mark.programs("bash", "timeout", "date", "head")
def test_without_python3_the_command_falls_back_to_bash(tmp_path, listener):
    targets = [ProbeTarget("127.0.0.1", listener()), ProbeTarget("127.0.0.1", free_port())]
    answer, _ = _run(["/bin/sh", "-c", probe_command(1.0, 8)], targets, env=_only_tools(tmp_path, "bash", "timeout", "date", "head"))
    assert answer.engine == "bash"
    assert [answer.observations[t].state for t in targets] == ["open", "refused"]


@pytest.mark.programs("date")
def test_without_python3_or_bash_the_command_says_so(tmp_path, listener):
    targets = [ProbeTarget("127.0.0.1", listener())]
    answer, done = _run(["/bin/sh", "-c", probe_command(1.0, 8)], targets, env=_only_tools(tmp_path, "date"))
    assert answer.engine == "none" and answer.observations == {}
    assert done.returncode == 0


def test_the_hop_reports_a_missing_key_before_any_connection(tmp_path):
    command = hop_command(probe_command(1.0, 4), "127.0.0.1", (str(tmp_path / "id_rsa.cloud"), str(tmp_path / "other")), 1, 5)
    answer, done = _run(["/bin/sh", "-c", command], [ProbeTarget("127.0.0.1", 1)])
    assert answer.hop_problem == "key-missing" and answer.engine is None
    assert done.stdout.strip() == "csaudit-hop key-missing"


# setpriv only as root (see below)
@(pytest.mark.programs("setpriv") if os.geteuid() == 0 else lambda test: test)
def test_the_hop_reports_an_unreadable_key():
    # Root reads every file, so as root the hop runs as `nobody` (setpriv, util-linux) on a key
    # it may see but not read.
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="csaudit-key-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)
        key = os.path.join(folder, "id_rsa.cloud")
        with open(key, "w") as handle:
            handle.write("x")
        os.chmod(key, 0)
        command = ["/bin/sh", "-c", hop_command("true", "127.0.0.1", (os.path.join(folder, "absent"), key), 1, 5)]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        answer, _ = _run(command, [])
        assert answer.hop_problem == "key-unreadable"
    finally:
        shutil.rmtree(folder)


def test_parser_ignores_what_is_not_its_own():
    targets = [ProbeTarget("10.0.0.1", 22), ProbeTarget("10.0.0.2", 22)]
    stdout = "\n".join([
        "Welcome to a host with a chatty login",
        "csaudit-remote 3 future-engine",  # another wire version: not ours
        "csaudit-remote 2 python3",
        "csaudit-connect 0 OK 1.5",
        "csaudit-connect 7 OK 1.5",  # no such probe
        "csaudit-connect 1 EXPLODED 1",  # no such errno
        "csaudit-connect x OK 1",
        "csaudit-stream 1 sideways - -",  # no such ending
    ])
    answer = parse_output(stdout, targets, 2.0)
    assert answer.engine == "python3"
    assert list(answer.observations) == [targets[0]]
    assert answer.observations[targets[0]].latency_ms == 1.5


def test_the_probe_list_travels_on_stdin_and_nothing_secret_on_the_command_line():
    command = probe_command(2.0, 16)
    assert "10.1.2.3" not in command
    assert probe_input([ProbeTarget("10.1.2.3", 2049)]) == "0 10.1.2.3 2049\n"
    hop = hop_command(command, "169.254.3.4", ("/root/.ssh/id_rsa.cloud",), 3, 30)
    assert "for candidate in /root/.ssh/id_rsa.cloud;" in hop and '-i "$key"' in hop and "UserKnownHostsFile=/dev/null" in hop and "BatchMode=yes" in hop
    assert "root@169.254.3.4" in hop and "-p 3922" in hop


@pytest.mark.programs("bash", "timeout", "date", "head")
def test_a_python3_that_cannot_run_the_script_falls_back_to_bash_with_the_input_intact(tmp_path, listener):
    """One python3 start: the script itself exits 99 when it cannot import what it needs (here a
    real python3 whose selectors module is hidden), and bash gets the whole probe list."""
    env = _only_tools(tmp_path, "bash", "timeout", "date", "head")
    fake = tmp_path / "bin" / "python3"
    hide = "import sys; sys.modules['selectors'] = None; s = sys.argv[1]; sys.argv = ['-c'] + sys.argv[2:]; exec(compile(s, '-c', 'exec'))"
    fake.write_text(f'#!/bin/sh\nshift\nexec {sys.executable} -c "{hide}" "$@"\n')  # a real interpreter, not a shim
    fake.chmod(0o755)
    targets = [ProbeTarget("127.0.0.1", listener()), ProbeTarget("127.0.0.1", free_port())]
    answer, _ = _run(["/bin/sh", "-c", probe_command(1.0, 8)], targets, env=env)
    assert answer.engine == "bash"
    assert [answer.observations[t].state for t in targets] == ["open", "refused"]


@pytest.mark.programs("bash", "timeout", "date", "head")
def test_bash_without_the_tools_of_a_talk_connects_and_says_the_protocol_was_not_checked(tmp_path, listener):
    target = ProbeTarget("127.0.0.1", listener(), kind="ssh")
    answer, _ = _run(["bash", "-c", BASH_AGENT, "csaudit", "1", "8"], [target], env=_only_tools(tmp_path, "bash", "timeout", "date", "head"))
    assert answer.engine == "bash"
    observation = answer.observations[target]
    assert (observation.state, observation.service) == ("open", None)
    assert "SSH not checked remotely (bash connects only here: no cat, base64 or wc)" in observation.reason


@pytest.mark.programs("bash", "shellcheck")
def test_the_bash_agent_parses_and_passes_shellcheck(tmp_path):
    script = tmp_path / "probe.sh"
    script.write_text(BASH_AGENT)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    checked = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout
