"""Open and closed targets on 127.0.0.0/8: real listeners the benchmark opens, and ports nobody holds."""

from __future__ import annotations

import errno
import os
import random
import socket

from csaudit.model.probes import ProbeTarget

# Below Linux's ephemeral range (32768-60999), so the probes' own source ports never land on a target.
PORT_LOW, PORT_HIGH = 20000, 32000


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


class LoopbackTargets:
    """`addresses` x `ports` targets on 127.77.N.1.., `open_ports` of the ports listening on every address.

    Every address gets the same port list, so nmap scans exactly this list with one invocation
    (nmap scans the cross product of its hosts and its -p list). Use as a context manager;
    the listeners close on exit.
    """

    def __init__(self, addresses: int = 10, ports: int = 500, open_ports: int = 50, backlog: int = 64, seed: int | None = None):
        if not (0 < addresses <= 250 and 0 <= open_ports <= ports <= 4000):
            raise ValueError("need 1-250 addresses and 0 <= open_ports <= ports <= 4000")
        # One /24 of 127.77.0.0/16 per process, so two runs at once (a bench and a test) stay apart.
        self.addresses = [f"127.77.{os.getpid() % 250}.{i + 1}" for i in range(addresses)]
        self.n_ports, self.n_open, self.backlog = ports, open_ports, backlog
        self.rng = random.Random(seed if seed is not None else os.getpid())
        self.listeners: list[socket.socket] = []
        self.targets: list[ProbeTarget] = []
        self.expected: dict[ProbeTarget, str] = {}

    def __enter__(self) -> LoopbackTargets:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> None:
        candidates = list(range(PORT_LOW, PORT_HIGH))
        self.rng.shuffle(candidates)
        open_ports: list[int] = []
        closed_ports: list[int] = []
        for port in candidates:  # bounded: at most PORT_HIGH - PORT_LOW candidates
            if len(open_ports) == self.n_open and len(closed_ports) == self.n_ports - self.n_open:
                break
            if len(open_ports) < self.n_open:
                opened = self._listen_everywhere(port)
                if opened:
                    self.listeners.extend(opened)
                    open_ports.append(port)
                continue
            if all(_bindable(address, port) for address in self.addresses):
                closed_ports.append(port)
        else:
            raise RuntimeError(f"could not find {self.n_ports} free ports in {PORT_LOW}-{PORT_HIGH} on {self.addresses[0]}..")
        states = {port: "open" for port in open_ports} | {port: "refused" for port in closed_ports}
        ports = sorted(states)
        self.rng.shuffle(ports)  # open and closed interleaved, as in a real audit
        for address in self.addresses:
            for port in ports:
                target = ProbeTarget(address, port)
                self.targets.append(target)
                self.expected[target] = states[port]

    def _listen_everywhere(self, port: int) -> list[socket.socket] | None:
        opened = []
        for address in self.addresses:
            sock = socket.socket()
            try:
                sock.bind((address, port))
                sock.listen(self.backlog)
                sock.setblocking(False)
            except OSError:
                sock.close()
                for other in opened:
                    other.close()
                return None
            opened.append(sock)
        return opened

    def drain(self) -> int:
        """Accept and close the connections the probes left in the accept queues (bounded per listener)."""
        accepted = 0
        for sock in self.listeners:
            for _ in range(self.backlog + 1):
                try:
                    conn, _ = sock.accept()
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                        break
                    raise
                conn.close()
                accepted += 1
        return accepted

    def close(self) -> None:
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()
