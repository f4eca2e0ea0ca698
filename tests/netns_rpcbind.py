"""Run inside `unshare --net --mount`: a real rpcbind, probed by csaudit's local vantage, then JSON on stdout.

rpcbind always binds 111 on every address (0.0.0.0 and ::) and keeps its lock and socket in /run, so on
the shared machine it would clash with the lab's own 127.x:111 listeners. In a private network and mount
namespace (a tmpfs over /run) it clashes with nothing, and both vanish when this process exits.
"""

import dataclasses
import json
import socket
import struct
import subprocess
import sys
import time

from csaudit.model.probes import ProbeOptions, ProbeTarget
from csaudit.vantage.local import LocalVantage

PMAPPROC_SET = 1


def register(program: int, version: int, port: int) -> bool:
    """PMAPPROC_SET over UDP from loopback, as a local nfsd or mountd registers itself."""
    call = struct.pack(">IIIIII", 7 + program, 0, 2, 100000, 2, PMAPPROC_SET) + bytes(16) + \
        struct.pack(">IIII", program, version, 6, port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        udp.sendto(call, ("127.0.0.1", 111))
        reply = udp.recv(512)
    return reply[-4:] == b"\x00\x00\x00\x01"  # bool TRUE


def listening() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", 111)) == 0


def probe() -> dict:
    targets = [ProbeTarget("127.0.0.1", 111, "tcp", kind="rpcbind"), ProbeTarget("127.0.0.1", 111, "udp", kind="rpcbind")]
    observed = LocalVantage().probe(targets, ProbeOptions(timeout=2))
    return {t.protocol: dataclasses.asdict(observed[t]) for t in targets}


def main() -> None:
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True, timeout=10)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    rpcbind = subprocess.Popen(["rpcbind", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not listening():
            if rpcbind.poll() is not None:
                raise SystemExit(f"rpcbind exited: {rpcbind.stderr.read().decode()}")
            time.sleep(0.05)
        result = {"before": probe()}
        result["registered"] = register(100003, 3, 2049) and register(100005, 3, 20048)
        result["after"] = probe()
        json.dump(result, sys.stdout)
    finally:
        rpcbind.terminate()
        rpcbind.wait(10)


if __name__ == "__main__":
    main()
