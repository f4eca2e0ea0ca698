"""What csaudit runs on a remote vantage, and how it reads the answer back. No connections here.

One command per vantage. It writes nothing and installs nothing on the target: the probe code
travels inside the command line, the probe list on stdin, and the results come back on stdout,
one line per probe. It uses python3 where present (a real non-blocking connect, errno kept), else
bash's /dev/tcp under coreutils `timeout` (also when a python3 is on PATH but does not run). Never nc: system VMs and hosts do not all have it.

Wire format (version 1), one line each:
    stdin:   <index> <address> <port>                        (a TCP connect)
             <index> <address> <port> <tcp|udp> <kind> <base64 request datagrams, comma-separated|->
    stdout:  csaudit-remote 1 <engine>                       (first line: which engine ran)
             csaudit-probe <index> <state> <latency ms|-> <detail...>
             csaudit-answer <index> stream <base64|-> <closed|timeout|idle>
             csaudit-answer <index> datagrams <base64,...>
             csaudit-answer <index> tls <base64 certificate DER|-> <version|-> <why untrusted...>
             csaudit-answer <index> tls-failed <base64 answer to an HTTP poke|-> <ending> <reason...>
             csaudit-answer <index> unchecked - <reason...>
Protocol probes (python3 only): the remote side sends the kind's request bytes (made here, by
protocols.py) and sends back at most 4 KiB of raw answer, which csaudit reads here with the same
pure functions as a local probe; TLS handshakes remotely (ssl module) and returns the peer
certificate. bash connects only: its protocol probes stay TCP connects and say so; UDP is skipped.
The remote code is kept to what Python 3.6 and bash 4 understand: hosts run old distributions.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import math
import shlex

from csaudit.model.probes import Observation, ProbeTarget
from csaudit.vantage import protocols
from csaudit.vantage.protocols import Answer

WIRE_VERSION = "1"
DEFAULT_SYSTEMVM_KEY_ON_HOST = "/root/.ssh/id_rsa.cloud"  # pushed to every KVM host by the MS (LibvirtModifySshKeysCommandWrapper)
SYSTEMVM_PORT = 3922  # hard-coded in CloudStack; no setting changes it
SYSTEMVM_USER = "root"

# Python side: at most `concurrency` connects in flight, each abandoned at its own deadline.
PYTHON_PROBE = r"""
try:
    import base64, errno, os, selectors, socket, sys, threading, time
except ImportError:
    raise SystemExit(99)  # a python3 too old for this script: the shell falls back to bash
timeout = float(sys.argv[1]); concurrency = max(1, int(sys.argv[2]))
print("csaudit-remote 1 python3", flush=True)
todo = [line.split() for line in sys.stdin if len(line.split()) in (3, 6)]
sel = selectors.DefaultSelector(); flying = {}; lock = threading.Lock(); talks = []; slots = threading.Semaphore(concurrency)
CAP = 4096; POKE = b"GET / HTTP/1.0\r\n\r\n"
def out(line):
    with lock:
        print(" ".join(str(line).split()), flush=True)
def say(index, state, began, detail):
    ms = "%.2f" % ((time.monotonic() - began) * 1000) if began else "-"
    out("csaudit-probe %s %s %s %s" % (index, state, ms, detail))
def b64(data):
    return base64.b64encode(data).decode("ascii") if data else "-"
def state_of(code):
    if code == 0: return "open"
    if code == errno.ECONNREFUSED: return "refused"
    if code == errno.ETIMEDOUT: return "timeout"
    return "error"
def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET
def receive(sock, end, poke):
    data = b""; ending = "timeout"; poke_at = time.monotonic() + timeout / 2 if poke else None
    while len(data) < CAP:
        now = time.monotonic()
        if now >= end: break
        wait = end - now
        if data: wait = min(wait, 0.3)
        elif poke_at is not None: wait = max(0.001, min(wait, poke_at - now))
        sock.settimeout(wait)
        try:
            chunk = sock.recv(CAP - len(data))
        except socket.timeout:
            if not data and poke_at is not None:
                sock.sendall(POKE); poke_at = None; continue
            if data: ending = "idle"
            break
        except OSError:
            ending = "closed"; break
        if not chunk:
            ending = "closed"; break
        data += chunk
    return data, ending
def tls(index, sock, address, port):
    try:
        import ssl
    except ImportError:
        out("csaudit-answer %s unchecked - no ssl module in this python3" % index); sock.close(); return
    untrusted = ""
    for verify in (True, False):
        if sock is None:
            sock = socket.socket(family(address), socket.SOCK_STREAM); sock.settimeout(timeout)
            try:
                sock.connect((address, int(port)))
            except OSError as exc:
                out("csaudit-answer %s unchecked - second connection failed: %s" % (index, exc)); sock.close(); return
        context = ssl.create_default_context() if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        if not verify: context.verify_mode = ssl.CERT_NONE
        sock.settimeout(timeout)
        try:
            wrapped = context.wrap_socket(sock)
        except ssl.SSLError as exc:
            sock.close(); sock = None
            if verify and getattr(exc, "reason", "") == "CERTIFICATE_VERIFY_FAILED":
                untrusted = getattr(exc, "verify_message", None) or "certificate verify failed"; continue
            failed(index, address, port, getattr(exc, "reason", None) or str(exc)); return
        except (socket.timeout, OSError) as exc:
            sock.close(); failed(index, address, port, "timeout" if isinstance(exc, socket.timeout) else str(exc)); return
        try:
            out("csaudit-answer %s tls %s %s %s" % (index, b64(wrapped.getpeercert(True)), wrapped.version() or "-", untrusted))
            try:
                wrapped.settimeout(0.2); wrapped.unwrap()
            except (OSError, ValueError):
                pass
        finally:
            wrapped.close()
        return
def failed(index, address, port, reason):
    data, ending = b"", "closed"
    sock = socket.socket(family(address), socket.SOCK_STREAM); sock.settimeout(timeout)
    try:
        sock.connect((address, int(port))); sock.sendall(POKE)
        data, ending = receive(sock, time.monotonic() + timeout, False)
    except OSError:
        pass
    finally:
        sock.close()
    out("csaudit-answer %s tls-failed %s %s %s" % (index, b64(data), ending, reason))
def talk(index, sock, address, port, kind, request):
    try:
        if kind == "tls":
            tls(index, sock, address, port); return
        try:
            if request != "-": sock.sendall(base64.b64decode(request))
            data, ending = receive(sock, time.monotonic() + timeout, request == "-")
        finally:
            sock.close()
        out("csaudit-answer %s stream %s %s" % (index, b64(data), ending))
    except Exception as exc:
        out("csaudit-answer %s unchecked - %s" % (index, exc))
    finally:
        slots.release()
def udp(index, address, port, kind, request):
    sock = socket.socket(family(address), socket.SOCK_DGRAM); began = time.monotonic()
    try:
        sock.connect((address, int(port))); grams = [base64.b64decode(g) for g in request.split(",")]
        for g in grams: sock.send(g)
        end = began + timeout; resend = began + timeout / 2; got = []
        while len(got) < 8:
            now = time.monotonic()
            if now >= end: break
            wake = min(end, resend) if resend and not got else end
            if got: wake = min(wake, now + 0.3)
            sock.settimeout(max(0.001, wake - now))
            try:
                got.append(sock.recv(65535)[:CAP])
            except socket.timeout:
                if got: break
                if resend and time.monotonic() >= resend:
                    for g in grams: sock.send(g)
                    resend = None
        if not got:
            say(index, "open|filtered", None, "no reply within %g s over UDP" % timeout); return
        say(index, "open", began, "replied")
        out("csaudit-answer %s datagrams %s" % (index, ",".join(b64(g) for g in got)))
    except ConnectionRefusedError:
        say(index, "refused", began, "port unreachable (ICMP)")
    except Exception as exc:
        say(index, "error", None, exc)
    finally:
        sock.close(); slots.release()
def spawn(function, *args):
    slots.acquire(); worker = threading.Thread(target=function, args=args); worker.daemon = True; worker.start(); talks.append(worker)
def start(index, address, port, proto="tcp", kind="tcp", request="-"):
    if proto == "udp":
        spawn(udp, index, address, port, kind, request); return
    try:
        fam, kind_, proto_, _, where = socket.getaddrinfo(address, int(port), 0, socket.SOCK_STREAM)[0]
    except (OSError, ValueError) as exc:
        say(index, "error", None, "cannot resolve %s: %s" % (address, exc)); return
    sock = socket.socket(fam, kind_, proto_); sock.setblocking(False); began = time.monotonic()
    code = sock.connect_ex(where)
    if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        flying[sock] = (index, began, address, port, kind, request); sel.register(sock, selectors.EVENT_WRITE); return
    done(sock, code, index, began, address, port, kind, request)
def done(sock, code, index, began, address, port, kind, request):
    say(index, state_of(code), began, os.strerror(code) if code else "connected")
    if code or kind == "tcp":
        sock.close(); return
    sock.setblocking(True); spawn(talk, index, sock, address, port, kind, request)
while todo or flying:
    while todo and len(flying) < concurrency:
        start(*todo.pop(0))
    if not flying:
        continue
    for key, _ in sel.select(timeout=0.05):
        index, began, address, port, kind, request = flying.pop(key.fileobj); sel.unregister(key.fileobj)
        code = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        done(key.fileobj, code, index, began, address, port, kind, request)
    now = time.monotonic()
    for sock, (index, began, address, port, kind, request) in list(flying.items()):
        if now - began >= timeout:
            del flying[sock]; sel.unregister(sock); sock.close()
            say(index, "timeout", began, "no answer within %g s" % timeout)
for worker in talks:
    worker.join(4 * timeout + 5)
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
while read -r index address port proto rest; do
  [ -n "$port" ] || continue
  [ "${proto:-tcp}" = tcp ] || continue  # UDP needs python3: csaudit reports it unchecked
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
            # One python3 start (the script exits 99 when it cannot run there), not a test run and then the real one.
            f"if command -v python3 >/dev/null 2>&1; then python3 -c \"$P\" {seconds} {concurrency}; s=$?; "
            f"[ \"$s\" != 99 ] && exit \"$s\"; fi; "
            f"if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; "
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
    engine: str | None  # python3, bash, none; None when the script never started
    observations: dict[ProbeTarget, Observation]
    hop_problem: str | None = None  # csaudit-hop line: the host could not even try the system VM
    unchecked: dict[ProbeTarget, str] = dataclasses.field(default_factory=dict)  # no probe possible there (UDP under bash)


def parse_output(stdout: str, targets: list[ProbeTarget], timeout: float,
                 now: datetime.datetime | None = None) -> BatchAnswer:
    """Result lines -> observations; lines that are not ours (a banner, a motd) are ignored.

    The answer bytes of a protocol probe are read here, with the same functions as a local probe."""
    engine = None
    hop_problem = None
    observations: dict[ProbeTarget, Observation] = {}
    answers: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        fields = line.split(" ", 5)
        if fields[0] == "csaudit-remote" and len(fields) >= 3 and fields[1] == WIRE_VERSION:
            engine = fields[2].strip()
        elif fields[0] == "csaudit-hop" and len(fields) >= 2:
            hop_problem = fields[1].strip()
        elif fields[0] == "csaudit-probe" and len(fields) >= 5 and fields[1].isdigit():
            index = int(fields[1])
            if index >= len(targets) or fields[2] not in ("open", "refused", "timeout", "error", "open|filtered"):
                continue
            latency = None if fields[3] == "-" else _number(fields[3])
            detail = fields[4] if len(fields) == 5 else f"{fields[4]} {fields[5]}"
            observations[targets[index]] = remote_observation(fields[2], targets[index], latency, detail, timeout)
        elif fields[0] == "csaudit-answer" and len(fields) >= 4 and fields[1].isdigit() and int(fields[1]) < len(targets):
            answers[int(fields[1])] = line.split(" ", 5)[2:]
    unchecked: dict[ProbeTarget, str] = {}
    for index, target in enumerate(targets):
        connect = observations.get(target)
        if target.kind == "tcp" or connect is None or connect.state != "open":
            if engine == "bash" and target.protocol == "udp":
                unchecked[target] = "UDP not probed: no python3 there (bash /dev/tcp connects over TCP only)"
            continue
        if engine == "bash" or index not in answers:
            why = "bash /dev/tcp connects only" if engine == "bash" else "no answer came back from the remote side"
            observations[target] = dataclasses.replace(
                connect, reason=f"{connect.reason}; {protocols.SERVICE_NAMES[target.kind]} not checked remotely ({why})")
            continue
        answer = _answer(target, answers[index], timeout, now or datetime.datetime.now(datetime.UTC))
        if answer is None:
            observations[target] = dataclasses.replace(
                connect, reason=f"{connect.reason}; {protocols.SERVICE_NAMES[target.kind]} not checked remotely "
                                f"({' '.join(answers[index][2:]) or 'unreadable answer line'})")
            continue
        if answer.matched:
            reason = f"{answer.service} answers: {answer.detail}"
        else:
            reason = f"{connect.reason}, but {answer.detail}"
        observations[target] = Observation(connect.state, reason, connect.latency_ms, service=answer.service,
                                           detail=answer.detail, mismatch=None if answer.matched else answer.detail,
                                           problem=answer.problem, warnings=answer.warnings, danger=answer.danger)
    return BatchAnswer(engine, observations, hop_problem, unchecked)


def _bytes(text: str) -> bytes:
    return b"" if text == "-" else base64.b64decode(text, validate=True)


def _answer(target: ProbeTarget, fields: list[str], timeout: float, now: datetime.datetime) -> Answer | None:
    """One csaudit-answer line (after its index) as the Answer a local exchange would give; None: unchecked."""
    how, payload, rest = fields[0], fields[1], " ".join(fields[2:]).strip()
    kind = target.kind
    try:
        if how == "stream" and target.protocol == "tcp" and kind != "tls":
            data = _bytes(payload)
            ending = "timeout" if rest in ("idle", "timeout") else "closed"
            answer = protocols.read_stream(kind, data, None) if data else None
            if answer is None:
                answer = protocols.read_stream(kind, data, ending) if data else protocols.mismatch(kind, b"", ending, timeout)
            return answer
        if how == "datagrams" and target.protocol == "udp":
            datagrams = [_bytes(d) for d in payload.split(",")]
            return protocols.read_datagrams(kind, datagrams, None) or protocols.read_datagrams(kind, datagrams, "timeout")
        if how == "tls" and kind == "tls":
            version, _, untrusted = rest.partition(" ")
            return protocols.tls_answer(None if version == "-" else version, _bytes(payload) or None,
                                        untrusted.strip() or None, now)
        if how == "tls-failed" and kind == "tls":
            raw = _bytes(payload)
            ending, _, reason = rest.partition(" ")
            if raw[:1] in (b"\x15", b"\x16") and raw[1:2] == b"\x03":
                return Answer("TLS", f"TLS answers, but the handshake fails ({reason})", True,
                              problem=f"the TLS handshake fails ({reason})")
            return protocols.mismatch("tls", raw, "timeout" if ending in ("idle", "timeout") else "closed", timeout)
    except (ValueError, binascii.Error):
        return None
    return None


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
