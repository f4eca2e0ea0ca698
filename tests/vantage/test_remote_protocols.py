"""Protocol probes from a remote vantage (issue 6): the probe command runs here under /bin/sh, as sshd
would run it, with its embedded python3 engine against real servers on unique 127.62.<pid>.N addresses.
The remote side only sends the request bytes and returns the raw answer; csaudit reads it locally, so
a remote probe must give the same verdict as the local probe of the same target.
"""

import ast
import socket
import subprocess

import pytest

from csaudit.judge.verdict import judge
from csaudit.model.probes import ProbeTarget
from csaudit.vantage.remote import agent, parse_output, probe_command, probe_input
from tests import realservers
from tests.realservers import unique_address
from tests.vantage import test_local as local_probes
from tests.vantage.test_local import TIMEOUT, flow_for, probe

# the real servers of the local protocol-probe tests, shared
folder, openssh, tls_servers, wrong_service = (local_probes.folder, local_probes.openssh, local_probes.tls_servers,
                                               local_probes.wrong_service)


def remote(*targets, argv=None, timeout=TIMEOUT):
    argv = argv or ["/bin/sh", "-c", probe_command(timeout, 8)]
    done = subprocess.run(argv, input=probe_input(list(targets)), capture_output=True, text=True, timeout=60)
    return parse_output(done.stdout, list(targets), timeout)


def same_verdict(target, expect="open", timeout=TIMEOUT):
    """(remote verdict, local verdict) of one target."""
    answer = remote(target, timeout=timeout)
    assert answer.engine == "python3"
    mine = judge(flow_for(target, expect), answer.observations[target], "ssh:host/test")
    local = judge(flow_for(target, expect), probe(target, timeout=timeout), "local")
    assert (mine.status, mine.observed, mine.service) == (local.status, local.observed, local.service), (mine, local)
    return mine


def test_the_remote_engine_is_python_3_6_syntax():
    ast.parse(agent("probe.py"), feature_version=(3, 6))


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen")
def test_a_real_openssh_banner_read_remotely(openssh):
    address, port = openssh
    result = same_verdict(ProbeTarget(address, port, kind="ssh"))
    assert (result.status, result.service) == ("pass", "SSH") and "OpenSSH" in result.detail


def test_http_on_a_mysql_flow_fails_remotely_as_locally(wrong_service):
    address = wrong_service("http", 3306, n=210)
    result = same_verdict(ProbeTarget(address, 3306, kind="mysql"))
    assert result.status == "fail" and result.service == "HTTP" and "not MySQL" in result.reason


def test_ssh_on_a_tls_flow_fails_remotely(wrong_service):
    address = wrong_service("ssh", 8250, n=215)
    result = same_verdict(ProbeTarget(address, 8250, kind="tls"))
    assert result.status == "fail" and result.service == "SSH"


def test_plain_http_on_a_tls_flow_fails_remotely(wrong_service):
    address = wrong_service("http", 8250, n=218)
    result = same_verdict(ProbeTarget(address, 8250, kind="tls"))
    assert result.status == "fail" and result.service == "HTTP"


@pytest.mark.programs("openssl")
def test_tls_certificates_read_remotely(tls_servers):
    fresh = same_verdict(ProbeTarget(*tls_servers["fresh"], kind="tls"))
    assert fresh.status == "pass" and "CN=fresh" in fresh.detail
    expired = same_verdict(ProbeTarget(*tls_servers["expired"], kind="tls"))
    assert expired.status == "fail" and "expired" in expired.reason


@pytest.mark.root
def test_udp_kinds_remotely_reply_silence_and_refusal(wrong_service):
    ntp = same_verdict(ProbeTarget(wrong_service("ntp", 123, "udp", n=220), 123, "udp", kind="ntp"))
    assert (ntp.status, ntp.service) == ("pass", "NTP")
    address = unique_address(226)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((address, 0))
        quiet = same_verdict(ProbeTarget(address, silent.getsockname()[1], "udp", kind="ntp"), timeout=0.6)
    assert (quiet.status, quiet.observed) == ("unverified", "open|filtered")
    address = unique_address(227)
    refused = same_verdict(ProbeTarget(address, realservers.free_port(address, socket.SOCK_DGRAM), "udp", kind="dns"))
    assert (refused.status, refused.observed) == ("fail", "refused")


@pytest.mark.root
@pytest.mark.programs("sshd", "ssh-keygen", "bash", "timeout", "date", "head")
def test_bash_engine_reads_the_banner_and_leaves_udp_unprobed(openssh):
    address, port = openssh
    ssh, udp = ProbeTarget(address, port, kind="ssh"), ProbeTarget(address, 123, "udp", kind="ntp")
    answer = remote(ssh, udp, argv=["bash", "-c", agent("probe.sh"), "csaudit", "2", "8"])
    assert answer.engine == "bash"
    assert (answer.observations[ssh].state, answer.observations[ssh].service) == ("open", "SSH")
    assert "OpenSSH" in answer.observations[ssh].detail
    assert udp not in answer.observations and "UDP not probed" in answer.unchecked[udp]


@pytest.mark.parametrize("kind", ["ssh", "mysql"])
def test_an_answer_line_that_does_not_decode_leaves_the_connect_and_says_so(kind):
    target = ProbeTarget("10.0.0.1", 22, kind=kind)
    stdout = "csaudit-remote 2 python3\ncsaudit-connect 0 OK 1.0\ncsaudit-stream 0 closed !!notbase64 -\n"
    observation = parse_output(stdout, [target], 2.0).observations[target]
    assert observation.state == "open" and "not checked remotely" in observation.reason
