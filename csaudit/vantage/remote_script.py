"""What csaudit runs on a remote vantage, and how it reads the answer back. No connections here.

One command per vantage. It writes nothing and installs nothing on the target: the probe code
travels inside the command line, the probe list on stdin, and the results come back on stdout,
one line per probe. It uses python3 where present (a real non-blocking connect, errno kept), else
bash's /dev/tcp under coreutils `timeout` (also when a python3 is on PATH but does not run). Never nc: system VMs and hosts do not all have it.

Wire format (version 1), one line each:
    stdin:   <index> <address> <port>
    stdout:  csaudit-remote 1 <engine>                       (first line: which engine ran)
             csaudit-probe <index> <state> <latency ms|-> <detail...>
The remote code is kept to what Python 3.6 and bash 4 understand: hosts run old distributions.
"""

from __future__ import annotations

import dataclasses
import math
import shlex

from csaudit.probe import Observation, ProbeTarget

WIRE_VERSION = "1"
DEFAULT_SYSTEMVM_KEY_ON_HOST = "/root/.ssh/id_rsa.cloud"  # pushed to every KVM host by the MS (flows.md §2)
SYSTEMVM_PORT = 3922  # hard-coded in CloudStack; no setting changes it
SYSTEMVM_USER = "root"

# Python side: at most `concurrency` connects in flight, each abandoned at its own deadline.
PYTHON_PROBE = r"""
import errno, os, selectors, socket, sys, time
timeout = float(sys.argv[1]); concurrency = max(1, int(sys.argv[2]))
print("csaudit-remote 1 python3", flush=True)
todo = [line.split() for line in sys.stdin if len(line.split()) == 3]
sel = selectors.DefaultSelector(); flying = {}
def say(index, state, began, detail):
    ms = "%.2f" % ((time.monotonic() - began) * 1000) if began else "-"
    print("csaudit-probe %s %s %s %s" % (index, state, ms, " ".join(str(detail).split())), flush=True)
def state_of(code):
    if code == 0: return "open"
    if code == errno.ECONNREFUSED: return "refused"
    if code == errno.ETIMEDOUT: return "timeout"
    return "error"
def start(index, address, port):
    try:
        family, kind, proto, _, where = socket.getaddrinfo(address, int(port), 0, socket.SOCK_STREAM)[0]
    except (OSError, ValueError) as exc:
        say(index, "error", None, "cannot resolve %s: %s" % (address, exc)); return
    sock = socket.socket(family, kind, proto); sock.setblocking(False); began = time.monotonic()
    code = sock.connect_ex(where)
    if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        flying[sock] = (index, began); sel.register(sock, selectors.EVENT_WRITE); return
    sock.close(); say(index, state_of(code), began, os.strerror(code) if code else "connected")
while todo or flying:
    while todo and len(flying) < concurrency:
        start(*todo.pop(0))
    if not flying:
        continue
    for key, _ in sel.select(timeout=0.05):
        index, began = flying.pop(key.fileobj); sel.unregister(key.fileobj)
        code = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR); key.fileobj.close()
        say(index, state_of(code), began, os.strerror(code) if code else "connected")
    now = time.monotonic()
    for sock, (index, began) in list(flying.items()):
        if now - began >= timeout:
            del flying[sock]; sel.unregister(sock); sock.close()
            say(index, "timeout", began, "no answer within %g s" % timeout)
"""

# bash side: one short-lived bash per connect, `concurrency` at a time, each under `timeout`.
BASH_PROBE = r"""
t=$1; c=$2
echo "csaudit-remote 1 bash"
probe() {
  local began ended err rc state
  began=$(date +%s%N)
  err=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>&1 >/dev/null); rc=$?
  ended=$(date +%s%N)
  err=$(printf '%s' "$err" | head -n 1); err=${err##*: }
  if [ "$rc" = 0 ]; then state=open; err=connected
  elif [ "$rc" = 124 ]; then state=timeout; err="no answer within $t s"
  else case "$err" in *refused*) state=refused ;; *"timed out"*) state=timeout ;; *) state=error ;; esac
  fi
  echo "csaudit-probe $1 $state $(( (ended - began) / 1000000 )) $err"
}
running=0
while read -r index address port; do
  [ -n "$port" ] || continue
  probe "$index" "$address" "$port" &
  running=$((running + 1))
  if [ "$running" -ge "$c" ]; then wait; running=0; fi
done
wait
"""


def probe_command(timeout: float, concurrency: int) -> str:
    """The shell command that probes the lines it reads on stdin (POSIX sh: any login shell)."""
    seconds = f"{timeout:g}"
    return (f"P={shlex.quote(PYTHON_PROBE)}; B={shlex.quote(BASH_PROBE)}; "
            f"if python3 -c 'import selectors' >/dev/null 2>&1; then exec python3 -c \"$P\" {seconds} {concurrency}; "
            f"elif command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; "
            f"then exec bash -c \"$B\" csaudit {seconds} {concurrency}; "
            f"else echo 'csaudit-remote 1 none'; fi")


def hop_command(inner: str, address: str, key: str, connect_timeout: float, bound: float) -> str:
    """Run `inner` on a system VM from the host that runs it, as CloudStack does (router_proxy.sh):
    ssh -p 3922 -i <key on the host> root@<link-local IP>. The key never leaves the host.

    The VM's host key is not checked (-o StrictHostKeyChecking=no, as CloudStack itself; the VM
    regenerates it when recreated) and nothing is recorded: UserKnownHostsFile=/dev/null, -F /dev/null.
    A missing or unreadable key is reported before any connection, as a line csaudit understands.
    """
    ssh = ["ssh", "-F", "/dev/null", "-p", str(SYSTEMVM_PORT), "-i", key, "-o", "BatchMode=yes",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-o", f"ConnectTimeout={max(1, math.ceil(connect_timeout))}", f"{SYSTEMVM_USER}@{address}", inner]
    quoted_key = shlex.quote(key)
    return (f"if [ ! -e {quoted_key} ]; then echo 'csaudit-hop key-missing'; "
            f"elif [ ! -r {quoted_key} ]; then echo 'csaudit-hop key-unreadable'; "
            f"elif ! command -v ssh >/dev/null 2>&1; then echo 'csaudit-hop no-ssh-client'; "
            f"elif command -v timeout >/dev/null 2>&1; then exec timeout {math.ceil(bound)} {shlex.join(ssh)}; "
            f"else exec {shlex.join(ssh)}; fi")


def probe_input(targets: list[ProbeTarget]) -> str:
    return "".join(f"{index} {target.address} {target.port}\n" for index, target in enumerate(targets))


def batch_bound(count: int, timeout: float, concurrency: int) -> float:
    """How long a batch of `count` probes may take on the remote side (waves of connects)."""
    return math.ceil(max(count, 1) / max(concurrency, 1)) * timeout + 2 * timeout + 5


@dataclasses.dataclass(frozen=True)
class BatchAnswer:
    engine: str | None  # python3, bash, none; None when the script never started
    observations: dict[ProbeTarget, Observation]
    hop_problem: str | None = None  # csaudit-hop line: the host could not even try the system VM


def parse_output(stdout: str, targets: list[ProbeTarget], timeout: float) -> BatchAnswer:
    """Result lines -> observations; lines that are not ours (a banner, a motd) are ignored."""
    engine = None
    hop_problem = None
    observations: dict[ProbeTarget, Observation] = {}
    for line in stdout.splitlines():
        fields = line.split(" ", 5)
        if fields[0] == "csaudit-remote" and len(fields) >= 3 and fields[1] == WIRE_VERSION:
            engine = fields[2].strip()
        elif fields[0] == "csaudit-hop" and len(fields) >= 2:
            hop_problem = fields[1].strip()
        elif fields[0] == "csaudit-probe" and len(fields) >= 5 and fields[1].isdigit():
            index = int(fields[1])
            if index >= len(targets) or fields[2] not in ("open", "refused", "timeout", "error"):
                continue
            latency = None if fields[3] == "-" else _number(fields[3])
            detail = fields[4] if len(fields) == 5 else f"{fields[4]} {fields[5]}"
            observations[targets[index]] = remote_observation(fields[2], targets[index], latency, detail, timeout)
    return BatchAnswer(engine, observations, hop_problem)


def remote_observation(state: str, target: ProbeTarget, latency: float | None, detail: str, timeout: float) -> Observation:
    where = f"{target.address}:{target.port}"
    if state == "open":
        reason = f"{where} accepted the connection"
    elif state == "refused":
        reason = f"{where} refused the connection (nothing listens, or a firewall rejects)"
    elif state == "timeout":
        reason = f"no answer within {timeout:g} s (packets dropped?)"
    else:
        reason = f"{where}: {detail.strip() or 'unknown error'}"
    return Observation(state, reason, latency)


def _number(text: str) -> float | None:
    try:
        return round(float(text), 2)
    except ValueError:
        return None
