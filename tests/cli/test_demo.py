"""`csaudit demo` for a normal user: the embedded cloud and its audit run in a private user and network
namespace, where the cloud's ports below 1024 are free to bind and the machine's own loopback is untouched."""

import errno
import os
import socket
import subprocess
import sys
import time

import pytest

from csaudit.lab import private_network

UNPRIVILEGED = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]  # uid 1000, no capability on this machine
# Where the demo cloud listens inside its namespace: its API on the two MSs, SSH on a host, NFS on secondary storage.
DEMO_PORTS = [("127.42.0.11", 8080), ("127.42.0.12", 8080), ("127.42.1.21", 22), ("127.42.1.40", 2049)]


def answers(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((address, port)) == 0


def unprivileged(*argv: str, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) -> subprocess.Popen:
    """argv as a normal user would run it: a non-zero uid without any capability in this machine's namespaces."""
    return subprocess.Popen([*UNPRIVILEGED, *argv], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, text=True,
                            **kwargs)


@pytest.mark.root
@pytest.mark.programs("unshare")
def test_the_unprivileged_user_really_cannot_bind_a_low_port():
    check = unprivileged(sys.executable, "-c", "import os, socket; print(os.geteuid()); socket.socket().bind(('127.0.0.1', 80))")
    out, err = check.communicate(timeout=30)
    assert check.returncode != 0 and out.strip() == "1000" and "Permission denied" in err


@pytest.mark.root
@pytest.mark.programs("unshare")
def test_a_normal_user_gets_the_whole_demo_and_this_machine_sees_none_of_it(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDSTACK_")}
    watched = [where for where in DEMO_PORTS if not answers(*where)]  # another test's cloud may hold some
    assert watched, "every demo address is taken on this machine: nothing to watch"
    # The report goes to files, not pipes: it is larger than a pipe holds, and nothing reads it while we watch.
    with open(tmp_path / "out", "w") as out_file, open(tmp_path / "err", "w") as err_file:
        demo = unprivileged(sys.executable, "-m", "csaudit", "demo", env={**env, "HOME": str(tmp_path)}, cwd=tmp_path,
                            stdout=out_file, stderr=err_file)
        seen_on_this_machine = []
        deadline = time.monotonic() + 120
        while demo.poll() is None and time.monotonic() < deadline:  # the cloud must never answer out here
            seen_on_this_machine += [where for where in watched if answers(*where)]
            time.sleep(0.05)
        demo.wait(timeout=max(1, deadline - time.monotonic()))
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert demo.returncode == 1, err
    assert seen_on_this_machine == []
    assert "run in a private user and network namespace of their own" in err
    assert out.splitlines()[0].startswith("== ") and " flows failed, in " in out.splitlines()[0]  # what is wrong first
    assert "Planted faults in the demo cloud" in out
    for n in (1, 2, 3, 4, 5, 6, 7, 8):
        assert f"  {n}. [" in out
    assert "NOT FOUND" not in out and "Other failures: none" in out
    assert "Remote vantages: not shown (not root: a real sshd cannot switch users" in out
    assert "Traceback" not in err


def test_where_namespaces_are_forbidden_one_line_says_how_to_run_the_demo(cli, monkeypatch):
    def forbidden(flags):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(private_network, "_unshare", forbidden)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = cli("demo")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "csaudit: the demo binds ports below 1024, which needs root, and this system forbids unprivileged user "
        "namespaces: run `csaudit demo` as root (sudo), or allow unprivileged user namespaces (sysctl user.max_user_namespaces)"]
