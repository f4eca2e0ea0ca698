"""A machine's interfaces (`ip -j addr`, or --iface NAME=ADDRESS[/LEN]) and which one a packet
crosses, for rules that match on iifname/oifname.

Incoming: the interface whose network holds the source address (it is on that link), else the one
that holds the destination address. Outgoing: the interface whose network holds the destination,
else the one that holds the source address. Between two addresses of the machine itself: lo. Each
answer says which of these it is, and the report repeats it; without interface data it is unknown.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json

from csaudit.judge.packetfilter.intervals import Intervals
from csaudit.model.errors import UsageError

Network = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclasses.dataclass(frozen=True)
class Interfaces:
    items: tuple[tuple[str, tuple[Network, ...]], ...] = ()  # (name, its addresses with their prefixes)
    known: bool = False  # False: nothing is known of the machine's interfaces
    # (name, family, address, first and last of its network, prefix length, the address with its prefix), by prefix length
    _plain: list = dataclasses.field(default_factory=list, compare=False, repr=False)

    def _entries(self) -> list:
        if not self._plain and self.items:
            self._plain.extend(sorted(((name, a.version, int(a.ip), int(a.network.network_address), int(a.network.broadcast_address),
                                        a.network.prefixlen, a) for name, addresses in self.items for a in addresses),
                                      key=lambda entry: -entry[5]))
        return self._plain

    def owns(self, address: int, family: int) -> str | None:
        return next((entry[0] for entry in self._entries() if entry[1] == family and entry[2] == address), None)

    def on_link(self, address: int, family: int) -> tuple[str, Network] | None:
        """The interface with the longest prefix that holds `address` (not counting /32 and /128)."""
        for name, version, _, first, last, prefix, interface in self._entries():
            if version == family and first <= address <= last and prefix < (32 if family == 4 else 128):
                return name, interface
        return None

    def incoming(self, family: int, source: Intervals, destination: Intervals) -> tuple[str | None, str]:
        return self._choose(family, near=source, own=destination, local_other=source)

    def outgoing(self, family: int, source: Intervals, destination: Intervals) -> tuple[str | None, str]:
        return self._choose(family, near=destination, own=source, local_other=destination)

    def _choose(self, family: int, near: Intervals, own: Intervals, local_other: Intervals) -> tuple[str | None, str]:
        """`near`: the far end's address (its link tells the interface); `own`: this machine's address."""
        far, mine = near.single(), own.single()
        if not self.known:
            return None, ""
        if far is not None and self.owns(far, family):
            return "lo", "both ends are this machine"
        if far is not None:
            link = self.on_link(far, family)
            if link is not None:
                return link[0], f"{_text(far, family)} is on the link of {link[0]} ({link[1].network})"
        if mine is not None:
            name = self.owns(mine, family)
            if name is not None:
                return name, f"{name} holds {_text(mine, family)}"
            return None, f"no interface holds {_text(mine, family)}"
        return None, "the address is not known"


@functools.lru_cache(maxsize=4096)
def _text(address: int, family: int) -> str:
    return str(ipaddress.IPv4Address(address) if family == 4 else ipaddress.IPv6Address(address))


def parse_ip_addr_json(text: str, origin: str) -> Interfaces:
    """`ip -j addr` (iproute2 4.13 and later)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{origin}: not valid JSON (line {exc.lineno}: {exc.msg}); give the output of `ip -j addr`") from None
    if not isinstance(data, list):
        raise UsageError(f"{origin}: not the output of `ip -j addr` (a JSON list of interfaces)")
    items = []
    try:
        for link in data:
            addresses = tuple(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
                              for info in link.get("addr_info", ()) if info.get("family") in ("inet", "inet6") and "local" in info)
            items.append((str(link["ifname"]), addresses))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{origin}: not the output of `ip -j addr` ({type(exc).__name__}: {exc})") from None
    return Interfaces(tuple(items), True)


def parse_iface_options(options: list[str]) -> Interfaces:
    """--iface NAME=ADDRESS[/LEN], repeatable; a name may be given several times."""
    items: dict[str, list[Network]] = {}
    for option in options:
        name, equals, address = option.partition("=")
        try:
            if not name or not equals:
                raise ValueError
            items.setdefault(name, []).append(ipaddress.ip_interface(address))
        except ValueError:
            raise UsageError(f"--iface {option!r}: expected NAME=ADDRESS[/LEN], e.g. eth2=198.51.100.7/24") from None
    return Interfaces(tuple((name, tuple(addresses)) for name, addresses in items.items()), bool(items))


def combine_interfaces(*parts: Interfaces) -> Interfaces:
    known = [p for p in parts if p.known]
    return Interfaces(tuple(item for p in known for item in p.items), bool(known))
