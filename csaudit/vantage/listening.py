"""Which TCP ports listen on a machine, read from its /proc/net/tcp and /proc/net/tcp6 (read-only).

A port range (VNC 5900-6100) is probed on the ports that really listen on the target, when csaudit has
a vantage there, besides the spread sample: a firewall that opens the range only partly shows on the
sample; the ports in use show whether their service answers from the flow's source.
"""

from __future__ import annotations

import ipaddress

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")
READ_COMMAND = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; exit 0"  # what an SSH vantage runs
LISTEN = "0A"  # the kernel's TCP_LISTEN state, as /proc/net/tcp writes it
ANY_IPV4, ANY_IPV6 = ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")
MAX_LISTENING_PROBED = 16  # per range flow, beyond its sample: a host with 200 VNC consoles gets the first 16


def parse_proc_net_tcp(text: str) -> frozenset[tuple[str, int]]:
    """(address, port) of every listening socket in the text of /proc/net/tcp and /proc/net/tcp6;
    lines that are not socket lines (the headers, anything unreadable) are skipped."""
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN or ":" not in fields[1]:
            continue
        address, _, port = fields[1].partition(":")
        try:
            found.add((str(_address(address)), int(port, 16)))
        except ValueError:
            continue
    return frozenset(found)


def _address(hex_text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The kernel prints each 32-bit word of the address in host byte order (little-endian here)."""
    if len(hex_text) not in (8, 32):
        raise ValueError(hex_text)
    words = [bytes.fromhex(hex_text[i:i + 8])[::-1] for i in range(0, len(hex_text), 8)]
    address = ipaddress.ip_address(b"".join(words))
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def ports_on(listening: frozenset[tuple[str, int]], address: str) -> frozenset[int]:
    """The ports that listen on `address`, or on every address of the machine: 0.0.0.0 for IPv4, and
    [::] for both (Linux's default dual-stack socket; /proc does not show IPV6_V6ONLY)."""
    wanted = ipaddress.ip_address(address)
    anywhere = (ANY_IPV4, ANY_IPV6) if wanted.version == 4 else (ANY_IPV6,)
    return frozenset(port for where, port in listening if ipaddress.ip_address(where) in (wanted, *anywhere))


def ports_in_range(ports: frozenset[int], first: int, last: int) -> tuple[int, ...]:
    """The listening ports from first to last, at most MAX_LISTENING_PROBED of them."""
    return tuple(sorted(port for port in ports if first <= port <= last)[:MAX_LISTENING_PROBED])


def read_local() -> frozenset[tuple[str, int]]:
    """This machine's listening sockets (its network namespace's)."""
    text = []
    for path in PROC_FILES:
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                text.append(handle.read())
        except OSError:
            continue
    return parse_proc_net_tcp("\n".join(text))
