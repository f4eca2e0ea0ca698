"""Run `nmap -sT -Pn -n` on exactly a list of (address, port) targets and read its XML answer."""

from __future__ import annotations

import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import defaultdict

from csaudit.model.probes import ProbeTarget

# nmap's words in csaudit's: a connect() scan says open, closed (RST) or filtered (no answer).
STATE = {"open": "open", "closed": "refused", "filtered": "timeout"}


def require_nmap() -> str:
    path = shutil.which("nmap")
    if not path:
        raise RuntimeError("nmap is not installed (apt-get install nmap); the benchmark compares against it")
    return path


def port_list(ports) -> str:
    """20001,20002,20003,20007 -> '20001-20003,20007' (keeps nmap's command line short)."""
    ranges, ports = [], sorted(set(ports))
    start = prev = ports[0]
    for port in ports[1:] + [None]:
        if port is not None and port == prev + 1:
            prev = port
            continue
        ranges.append(f"{start}-{prev}" if prev > start else str(start))
        if port is not None:
            start = prev = port
    return ",".join(ranges)


def expand(ports: str) -> list[int]:
    out = []
    for part in ports.split(","):
        if "-" in part:
            low, high = part.split("-")
            out.extend(range(int(low), int(high) + 1))
        elif part:
            out.append(int(part))
    return out


def groups(targets: list[ProbeTarget]) -> list[tuple[list[str], list[int]]]:
    """Addresses that need the same port list share one nmap invocation; others get their own."""
    by_address: dict[str, set[int]] = defaultdict(set)
    for target in targets:
        if target.protocol != "tcp" or target.source:
            raise ValueError(f"nmap -sT cannot stand for {target}: only plain TCP targets without a source")
        by_address[target.address].add(target.port)
    by_ports: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for address, ports in by_address.items():
        by_ports[tuple(sorted(ports))].append(address)
    return [(addresses, list(ports)) for ports, addresses in by_ports.items()]


def parse(xml: str) -> dict[tuple[str, int | None], str]:
    """(address, port) -> nmap state, from explicit <port> rows and from collapsed <extraports>.

    nmap >= 7.80 lists the collapsed ports in <extrareasons ports=...>; for an older nmap, a host
    with a single <extraports> gets (address, None) -> its state, for the ports not listed.
    """
    states: dict[tuple[str, int | None], str] = {}
    root = ET.fromstring(xml)
    for host in root.iter("host"):
        address = next(a.get("addr") for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6"))
        ports = host.find("ports")
        if ports is None:
            continue
        for port in ports.iter("port"):
            states[(address, int(port.get("portid")))] = port.find("state").get("state")
        extras = list(ports.iter("extraports"))
        if len(extras) == 1:
            states[(address, None)] = extras[0].get("state")
        for extra in extras:
            for reasons in extra.iter("extrareasons"):
                for number in expand(reasons.get("ports", "")):
                    states[(address, number)] = extra.get("state")
    return states


def scan(targets: list[ProbeTarget], extra_args: tuple[str, ...] = (), time_limit: float = 300.0) -> tuple[dict[ProbeTarget, str], float]:
    """Scan exactly `targets`; returns (target -> csaudit-style state, wall seconds for all nmap runs)."""
    nmap = require_nmap()
    seen: dict[tuple[str, int | None], str] = {}
    elapsed = 0.0
    for addresses, ports in groups(targets):
        argv = [nmap, "-sT", "-Pn", "-n", *extra_args, "-oX", "-", "-p", port_list(ports), *addresses]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=time_limit, check=False)
        elapsed += time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:8])} ... failed ({done.returncode}): {done.stderr.strip()[:300]}")
        seen.update(parse(done.stdout))
    states = {}
    for t in targets:
        state = seen.get((t.address, t.port)) or seen.get((t.address, None), "missing")
        states[t] = STATE.get(state, f"nmap:{state}")
    return states, elapsed
