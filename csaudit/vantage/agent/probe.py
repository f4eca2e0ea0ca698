# csaudit's remote probe agent (python3). csaudit sends it as `python3 -c` over SSH: nothing is written
# or installed on the target. It reads probe lines on stdin and writes fact lines on stdout; csaudit
# classifies them (csaudit/vantage/classify.py), exactly as it does the facts of its local engines, and
# this agent follows the local exchange's steps (csaudit/vantage/exchange.py): connect, send the probe
# kind's request, read until the answer ends, poke a silent server with a bare HTTP request.
#
# It must run on the oldest python3 a CloudStack host or system VM has: Python 3.6, standard library
# only (a test parses it with the 3.6 grammar). Exit status 99: this python3 cannot run it (the shell
# falls back to the bash agent).
#
# stdin:  <index> <address> <port>                                  a TCP connect
#         <index> <address> <port> <tcp|udp> <kind> <base64 request datagrams, comma-separated|->
# stdout: csaudit-remote 2 python3
#         csaudit-connect <index> <OK|errno name> <ms|->             how the connect (TCP) ended
#         csaudit-failure <index> <words>                            the probe could not start at all
#         csaudit-stream <index> <ending> <data|-> <poke|->          what a TCP service said
#         csaudit-tls <index> <ending> <der|-> <version|-> <untrusted|-> <failure|-> <raw|-> <poke|->
#         csaudit-udp <index> <OK|errno name> <ms|-> <datagram,...|->
#         csaudit-unchecked <index> <words>                          the kind's exchange cannot run here
# Bytes and free text travel as base64 ("-" when empty); an ending is closed, reset, timeout or full.

try:
    import base64
    import errno
    import selectors
    import socket
    import sys
    import threading
    import time
except ImportError:
    raise SystemExit(99) from None

CAP = 65536  # bytes read at most from one service (the local engine's protocols.MAX_ANSWER)
POKE = b"GET / HTTP/1.0\r\n\r\n"
SERVER_SPEAKS_FIRST = ("ssh", "mysql", "vnc", "smtp")
FAREWELL = {"smtp": b"QUIT\r\n"}  # said once the service answered (protocols.FAREWELL)
lock = threading.Lock()


def out(*fields):
    with lock:
        sys.stdout.write(" ".join(str(f) for f in fields) + "\n")
        sys.stdout.flush()


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    return base64.b64encode(data).decode("ascii") if data else "-"


def code_name(code):
    return "OK" if code == 0 else errno.errorcode.get(code, "EIO")


def ms_since(began):
    return "%.2f" % ((time.monotonic() - began) * 1000)


def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def connect(address, port, timeout):
    """A connected blocking socket, or None."""
    sock = socket.socket(family(address), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, int(port)))
    except (OSError, socket.timeout):
        sock.close()
        return None
    return sock


def receive(sock, limit):
    """(bytes, None) for one read, or (b"", ending) when the stream ended or `limit` passed."""
    remaining = limit - time.monotonic()
    if remaining <= 0:
        return b"", "timeout"
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(16384)
    except socket.timeout:
        return b"", "timeout"
    except ConnectionResetError:
        return b"", "reset"
    except OSError:
        return b"", "closed"
    if not chunk:
        return b"", "closed"
    return chunk, None


def send(sock, data):
    """None once written; else how the stream ended."""
    try:
        sock.sendall(data)
    except ConnectionResetError:
        return "reset"
    except OSError:
        return "closed"
    return None


def poke(address, port, timeout):
    """What a service says to a bare HTTP request on a new connection (b"" if nothing)."""
    sock = connect(address, port, timeout)
    if sock is None:
        return b""
    try:
        if send(sock, POKE) is not None:
            return b""
        return receive(sock, time.monotonic() + timeout)[0]
    finally:
        sock.close()


def stream(index, sock, address, port, kind, request, timeout):
    """Send the kind's request; read until the server stops talking, closes, or the time is up."""
    end = time.monotonic() + timeout
    ending = send(sock, request) if request else None
    data = b""
    poke_at = time.monotonic() + timeout / 2 if kind in SERVER_SPEAKS_FIRST else None
    quiet = 0.3  # once an answer began, this much silence ends it (the local engine reads it as complete)
    while ending is None and len(data) < CAP:
        greeting = poke_at is not None and not data
        limit = min(end, poke_at) if greeting else (min(end, time.monotonic() + quiet) if data else end)
        chunk, ending = receive(sock, limit)
        if ending == "timeout" and greeting and time.monotonic() < end:
            ending, poke_at = send(sock, POKE), None
            continue
        data += chunk
    if len(data) >= CAP and ending is None:
        ending = "full"
    if data and ending in (None, "timeout") and kind in FAREWELL:  # still connected: the talk ended by going quiet
        send(sock, FAREWELL[kind])
    poked = b""
    if not data and ending == "timeout" and kind not in SERVER_SPEAKS_FIRST:
        poked = poke(address, port, timeout)
    out("csaudit-stream", index, ending or "closed", b64(data[:CAP]), b64(poked))


def handshake(ssl, sock, context, end):
    """(facts dict, session or None, outgoing BIO) of one TLS handshake through memory BIOs."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False)
    raw = b""
    for _ in range(256):
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            ending = send(sock, outgoing.read()) if outgoing.pending else None
            chunk = b""
            if ending is None:
                chunk, ending = receive(sock, end)
            if ending is not None:
                return {"raw": raw, "ending": ending}, None, outgoing
            raw += chunk
            incoming.write(chunk)
            continue
        except ssl.SSLError as exc:
            if outgoing.pending:
                send(sock, outgoing.read())
            reason = getattr(exc, "reason", None)
            untrusted = None
            if reason == "CERTIFICATE_VERIFY_FAILED":
                untrusted = getattr(exc, "verify_message", None) or "certificate verify failed"
            return {"untrusted": untrusted, "failure": reason or "the handshake failed", "raw": raw}, None, outgoing
        if outgoing.pending:
            send(sock, outgoing.read())
        return {"version": tls.version(), "der": tls.getpeercert(True)}, tls, outgoing
    return {"failure": "the handshake did not finish", "raw": raw}, None, outgoing


def tls_session(ssl, sock, address, port, timeout, verify):
    if sock is None:
        sock = connect(address, port, timeout)
        if sock is None:
            return None
    context = ssl.create_default_context() if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    try:
        facts, session, outgoing = handshake(ssl, sock, context, time.monotonic() + timeout)
        if session is not None:
            try:
                session.unwrap()
            except ssl.SSLError:
                pass
            if outgoing.pending:
                send(sock, outgoing.read())
        return facts
    finally:
        sock.close()


def tls(index, sock, address, port, timeout):
    try:
        import ssl
    except ImportError:
        sock.close()
        out("csaudit-unchecked", index, "no ssl module in this python3")
        return
    facts = tls_session(ssl, sock, address, port, timeout, True)
    if facts is not None and facts.get("untrusted"):
        untrusted = facts["untrusted"]
        facts = tls_session(ssl, None, address, port, timeout, False)
        if facts is not None:
            facts["untrusted"] = untrusted
    if facts is None:
        out("csaudit-unchecked", index, "the second connection failed")
        return
    poked = b""
    if "der" not in facts and not facts.get("raw") and facts.get("ending") == "timeout":
        poked = poke(address, port, timeout)
    out("csaudit-tls", index, facts.get("ending", "closed"), b64(facts.get("der") or b""), facts.get("version") or "-",
        b64(facts.get("untrusted") or ""), b64(facts.get("failure") or ""), b64(facts.get("raw") or b""), b64(poked))


def udp(slots, index, address, port, request, timeout):
    try:
        exchange_datagrams(index, address, port, request, timeout)
    except Exception as exc:  # an agent bug must not silence the other probes: csaudit reports it unchecked
        out("csaudit-unchecked", index, "the agent failed: %s" % type(exc).__name__)
    finally:
        slots.release()


def exchange_datagrams(index, address, port, request, timeout):
    sock = socket.socket(family(address), socket.SOCK_DGRAM)
    began = time.monotonic()
    got = []
    try:
        sock.connect((address, int(port)))
        grams = [base64.b64decode(g) for g in request.split(",")] if request != "-" else []
        for gram in grams:
            sock.send(gram)
        end = began + timeout
        resend = began + timeout / 2
        first = None
        while len(got) < 8:
            now = time.monotonic()
            if now >= end:
                break
            wake = min(end, resend) if resend and not got else end
            if got:
                wake = min(wake, now + 0.3)
            sock.settimeout(max(0.001, wake - now))
            try:
                got.append(sock.recv(65535)[:CAP])
                first = first or ms_since(began)
            except socket.timeout:
                if got:
                    break
                if resend and time.monotonic() >= resend:
                    for gram in grams:
                        sock.send(gram)
                    resend = None
        out("csaudit-udp", index, "OK", first or "-", ",".join(b64(g) for g in got) or "-")
    except OSError as exc:
        out("csaudit-udp", index, code_name(exc.errno or errno.EIO), ms_since(began), ",".join(b64(g) for g in got) or "-")
    finally:
        sock.close()


def talk(slots, index, sock, address, port, kind, request, timeout):
    try:
        if kind == "tls":
            tls(index, sock, address, port, timeout)
        else:
            try:
                stream(index, sock, address, port, kind, base64.b64decode(request) if request != "-" else b"", timeout)
            finally:
                sock.close()
    except Exception as exc:  # an agent bug must not silence the other probes: csaudit reports it unchecked
        out("csaudit-unchecked", index, "the agent failed: %s" % type(exc).__name__)
    finally:
        slots.release()


def main():
    timeout = float(sys.argv[1])
    concurrency = max(1, int(sys.argv[2]))
    print("csaudit-remote 2 python3", flush=True)
    todo = [line.split() for line in sys.stdin if len(line.split()) in (3, 6)]
    selector = selectors.DefaultSelector()
    flying = {}
    workers = []
    slots = threading.Semaphore(concurrency)

    def spawn(function, *args):
        slots.acquire()
        worker = threading.Thread(target=function, args=(slots,) + args)
        worker.daemon = True
        worker.start()
        workers.append(worker)

    def done(sock, code, index, began, address, port, kind, request):
        out("csaudit-connect", index, code_name(code), ms_since(began))
        if code or kind == "tcp":
            sock.close()
            return
        sock.setblocking(True)
        spawn(talk, index, sock, address, port, kind, request, timeout)

    def start(index, address, port, proto="tcp", kind="tcp", request="-"):
        if proto == "udp":
            spawn(udp, index, address, port, request, timeout)
            return
        try:
            where = socket.getaddrinfo(address, int(port), 0, socket.SOCK_STREAM)[0]
        except (OSError, ValueError) as exc:
            out("csaudit-failure", index, "cannot resolve %s: %s" % (address, getattr(exc, "strerror", None) or exc))
            return
        sock = socket.socket(where[0], where[1], where[2])
        sock.setblocking(False)
        began = time.monotonic()
        code = sock.connect_ex(where[4])
        if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            flying[sock] = (index, began, address, port, kind, request)
            selector.register(sock, selectors.EVENT_WRITE)
            return
        done(sock, code, index, began, address, port, kind, request)

    while todo or flying:
        while todo and len(flying) < concurrency:
            start(*todo.pop(0))
        if not flying:
            continue
        for key, _ in selector.select(timeout=0.05):
            index, began, address, port, kind, request = flying.pop(key.fileobj)
            selector.unregister(key.fileobj)
            done(key.fileobj, key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), index, began, address, port, kind, request)
        now = time.monotonic()
        for sock, (index, began, _, _, _, _) in list(flying.items()):
            if now - began >= timeout:
                del flying[sock]
                selector.unregister(sock)
                sock.close()
                out("csaudit-connect", index, "ETIMEDOUT", ms_since(began))
    for worker in workers:
        worker.join(4 * timeout + 5)


if __name__ == "__main__":
    main()
