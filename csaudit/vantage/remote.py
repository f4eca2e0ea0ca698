"""What csaudit runs on a remote vantage, and how it reads the answer back. No connections here.

One command per vantage. It writes nothing and installs nothing on the target: an agent program
(agent/probe.py for python3, agent/probe.sh for bash) travels inside the command line, the probe list
on stdin, and facts come back on stdout, one line each (the wire format is documented in
agent/probe.py). They go through classify.observe, the same path as a local probe's facts.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import errno
import functools
import importlib.resources
import math
import re
import shlex

from csaudit.model.probes import Observation, ProbeTarget
from csaudit.vantage import protocols
from csaudit.vantage.classify import observe
from csaudit.vantage.facts import CONNECTED, ENDINGS, Connect, Conversation, Datagrams, Stream, Tls, Unchecked

WIRE_VERSION = "2"
DEFAULT_SYSTEMVM_KEY_ON_HOST = "/root/.ssh/id_rsa.cloud"  # pushed to every KVM host by the MS (LibvirtModifySshKeysCommandWrapper)
SYSTEMVM_PORT = 3922  # hard-coded in CloudStack; no setting changes it
SYSTEMVM_USER = "root"
FALL_BACK = 99  # the python3 agent's exit status when that python3 cannot run it


@functools.cache
def agent(name: str) -> str:
    """The text of an agent program shipped in the package (probe.py, probe.sh)."""
    return importlib.resources.files("csaudit.vantage").joinpath("agent", name).read_text(encoding="utf-8")


def probe_command(timeout: float, concurrency: int) -> str:
    """The shell command that probes the lines it reads on stdin (POSIX sh: any login shell)."""
    seconds = f"{timeout:g}"
    return (f"P={shlex.quote(agent('probe.py'))}; B={shlex.quote(agent('probe.sh'))}; "
            # One python3 start (the agent exits 99 when it cannot run there), not a test run and then the real one.
            f"if command -v python3 >/dev/null 2>&1; then python3 -c \"$P\" {seconds} {concurrency}; s=$?; "
            f"[ \"$s\" != {FALL_BACK} ] && exit \"$s\"; fi; "
            f"if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; "
            f"then exec bash -c \"$B\" csaudit {seconds} {concurrency}; "
            f"else echo 'csaudit-remote {WIRE_VERSION} none'; fi")


def hop_command(inner: str, address: str, keys: tuple[str, ...], connect_timeout: float, bound: float) -> str:
    """Run `inner` on a system VM from the machine that holds its key, as CloudStack does: from its
    KVM/XenServer host (router_proxy.sh), or from a management server for VMware/Hyper-V:
    ssh -p 3922 -i <key there> root@<control IP>. The key never leaves that machine; `keys` are the
    paths to try there, the first that exists is used.

    The VM's host key is not checked (-o StrictHostKeyChecking=no, as CloudStack itself; the VM
    regenerates it when recreated) and nothing is recorded: UserKnownHostsFile=/dev/null, -F /dev/null.
    A missing or unreadable key is reported before any connection, as a line csaudit understands.
    """
    ssh = ["ssh", "-F", "/dev/null", "-p", str(SYSTEMVM_PORT), "-i", "KEY", "-o", "BatchMode=yes",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-o", f"ConnectTimeout={max(1, math.ceil(connect_timeout))}", f"{SYSTEMVM_USER}@{address}", inner]
    ssh_line = shlex.join(ssh).replace(" KEY ", ' "$key" ', 1)
    return (f"key=; for candidate in {' '.join(map(_shell_path, keys))}; do "
            'if [ -e "$candidate" ]; then key=$candidate; break; fi; done; '
            "if [ -z \"$key\" ]; then echo 'csaudit-hop key-missing'; "
            "elif [ ! -r \"$key\" ]; then echo 'csaudit-hop key-unreadable'; "
            "elif ! command -v ssh >/dev/null 2>&1; then echo 'csaudit-hop no-ssh-client'; "
            f"elif command -v timeout >/dev/null 2>&1; then exec timeout {math.ceil(bound)} {ssh_line}; "
            f"else exec {ssh_line}; fi")


def _shell_path(path: str) -> str:
    """A path quoted for the remote shell, but ~user/... left for it to expand (~cloud/.ssh/id_rsa)."""
    head, slash, rest = path.partition("/")
    if head.startswith("~") and re.fullmatch(r"~[a-z_][a-z0-9_-]*", head) and slash:
        return f"{head}/{shlex.quote(rest)}"
    return shlex.quote(path)


def probe_input(targets: list[ProbeTarget]) -> str:
    lines = []
    for index, target in enumerate(targets):
        if target.kind == "tcp" and target.protocol == "tcp":
            lines.append(f"{index} {target.address} {target.port}\n")
            continue
        requests = protocols.request(target.kind, target.protocol, target.address, target.port)
        if target.protocol == "tcp":
            requests = [b"".join(requests)] if requests else []
        encoded = ",".join(base64.b64encode(r).decode("ascii") for r in requests) or "-"
        lines.append(f"{index} {target.address} {target.port} {target.protocol} {target.kind} {encoded}\n")
    return "".join(lines)


def batch_bound(count: int, timeout: float, concurrency: int, exchanges: int = 0) -> float:
    """How long a batch of `count` probes may take on the remote side (waves of connects, then of
    protocol exchanges: a TLS one may take a handshake, a second one, and an HTTP poke)."""
    waves = math.ceil(max(count, 1) / max(concurrency, 1)) + 3 * math.ceil(exchanges / max(concurrency, 1))
    return waves * timeout + 2 * timeout + 5


@dataclasses.dataclass(frozen=True)
class BatchAnswer:
    engine: str | None  # python3, bash, none; None when the agent never started
    observations: dict[ProbeTarget, Observation]
    hop_problem: str | None = None  # csaudit-hop line: the host could not even try the system VM
    unchecked: dict[ProbeTarget, str] = dataclasses.field(default_factory=dict)  # no probe possible there (UDP under bash)


def parse_output(stdout: str, targets: list[ProbeTarget], timeout: float,
                 now: datetime.datetime | None = None) -> BatchAnswer:
    """Fact lines -> observations, through classify.observe; lines that are not ours (a banner, a motd) are ignored."""
    engine = hop_problem = None
    connects: dict[int, Connect] = {}
    conversations: dict[int, Conversation] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "csaudit-hop":
            hop_problem = fields[1]
        elif len(fields) >= 3 and fields[0] == "csaudit-remote" and fields[1] == WIRE_VERSION:
            engine = fields[2]
        elif len(fields) >= 2 and fields[0].startswith("csaudit-") and fields[1].isdigit() and int(fields[1]) < len(targets):
            try:
                _read_fact(fields[0], int(fields[1]), fields[2:], connects, conversations)
            except (ValueError, IndexError, binascii.Error):
                continue  # a damaged line: that probe gets no result, which the caller reports
    observations: dict[ProbeTarget, Observation] = {}
    unchecked: dict[ProbeTarget, str] = {}
    for index, target in enumerate(targets):
        if target.protocol == "udp" and engine == "bash":
            unchecked[target] = "UDP not probed: no python3 there (bash /dev/tcp connects over TCP only)"
            continue
        conversation = conversations.get(index)
        if target.protocol == "udp":
            if isinstance(conversation, Datagrams | Unchecked):
                connect = connects.get(index, Connect(CONNECTED))
                observations[target] = observe(target, connect, conversation, timeout, now)
            continue
        connect = connects.get(index)
        if connect is None:
            continue
        if target.kind != "tcp" and connect.code == CONNECTED and conversation is None:
            conversation = Unchecked("no answer came back from the remote side")
        observations[target] = observe(target, connect, conversation, timeout, now)
    return BatchAnswer(engine, observations, hop_problem, unchecked)


def _read_fact(tag: str, index: int, fields: list[str], connects: dict, conversations: dict) -> None:
    """One fact line (see agent/probe.py) into `connects` or `conversations`; ValueError: damaged."""
    if tag == "csaudit-connect":
        connects[index] = Connect(_code(fields[0]), _number(fields[1]) if len(fields) > 1 else None)
    elif tag == "csaudit-failure":
        connects[index] = Connect(errno.EIO, failure=" ".join(fields) or "failed")  # words: the rest of the line
    elif tag == "csaudit-stream":
        conversations[index] = Stream(_bytes(fields[1]), _ending(fields[0]), _bytes(fields[2]))
    elif tag == "csaudit-tls":
        ending, der, version, untrusted, failure, raw, poke = fields[:7]
        conversations[index] = Tls(None if version == "-" else version, _bytes(der) or None, _text(untrusted),
                                   _text(failure), _bytes(raw), _ending(ending), _bytes(poke))
    elif tag == "csaudit-raw":  # the bash agent: a TLS server's first bytes, no handshake of its own
        conversations[index] = Tls(raw=_bytes(fields[1]), ending=_ending(fields[0]), bytes_only=True)
    elif tag == "csaudit-udp":
        replies = tuple(_bytes(d) for d in fields[2].split(",")) if fields[2] != "-" else ()
        conversations[index] = Datagrams(_code(fields[0]), replies, _number(fields[1]))
    elif tag == "csaudit-unchecked":
        conversations[index] = Unchecked(" ".join(fields) or "unchecked")


def _code(name: str) -> int:
    """An errno by its name (OK: connected); names travel, numbers differ between systems."""
    if name == "OK":
        return CONNECTED
    code = getattr(errno, name, None)
    if not isinstance(code, int) or not name.startswith("E"):
        raise ValueError(name)
    return code


def _ending(word: str) -> str:
    if word not in ENDINGS:
        raise ValueError(word)
    return word


def _bytes(text: str) -> bytes:
    return b"" if text == "-" else base64.b64decode(text, validate=True)


def _text(field: str) -> str | None:
    return _bytes(field).decode("utf-8", "replace") or None


def _number(text: str) -> float | None:
    try:
        return round(float(text), 2)
    except ValueError:
        return None
