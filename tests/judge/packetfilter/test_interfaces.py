"""A machine's interfaces from `ip -j addr` or --iface, and which one a packet crosses."""

import pathlib

import pytest

from csaudit.judge.packetfilter.interfaces import Interfaces, parse_iface_options, parse_ip_addr_json
from csaudit.judge.packetfilter.intervals import Intervals
from csaudit.model.errors import UsageError

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "firewall"


def one(address: str) -> Intervals:
    import ipaddress

    return Intervals.of(int(ipaddress.ip_address(address)))


def test_ip_j_addr_gives_each_interface_its_addresses():
    interfaces = parse_ip_addr_json((DATA / "cpvm-addr.json").read_text(), "cpvm-addr.json")
    names = dict(interfaces.items)
    assert str(names["eth2"][0]) == "198.51.100.12/24" and names["eth2"][1].version == 6 and "lo" in names
    assert interfaces.incoming(4, one("198.51.100.7"), one("198.51.100.12")) == ("eth2", "198.51.100.7 is on the link of eth2 (198.51.100.0/24)")
    assert interfaces.incoming(4, one("203.0.113.9"), one("198.51.100.12")) == ("eth2", "eth2 holds 198.51.100.12")
    assert interfaces.outgoing(4, one("10.1.1.102"), one("10.1.1.21")) == ("eth1", "10.1.1.21 is on the link of eth1 (10.1.1.0/24)")
    assert interfaces.outgoing(4, one("10.1.1.102"), one("198.51.100.12"))[0] == "lo"  # to itself
    assert interfaces.outgoing(4, one("10.9.9.9"), one("10.8.8.8")) == (None, "no interface holds 10.9.9.9")


def test_without_interfaces_nothing_is_assumed():
    assert Interfaces().incoming(4, one("10.0.0.1"), one("10.0.0.2")) == (None, "")


def test_iface_options():
    interfaces = parse_iface_options(["eth2=198.51.100.7/24", "eth2=2001:db8::7/64", "eth0=10.0.0.5"])
    assert dict(interfaces.items)["eth2"][1].version == 6 and interfaces.owns(int(one("10.0.0.5").single()), 4) == "eth0"
    for bad in ("eth2", "=10.0.0.1", "eth2=nowhere"):
        with pytest.raises(UsageError, match="expected NAME=ADDRESS"):
            parse_iface_options([bad])


@pytest.mark.parametrize("text", ["{", '{"ifname": "x"}', '[{"addr_info": []}]'])
def test_what_is_not_ip_j_addr_is_refused(text):
    with pytest.raises(UsageError, match="addr.json: "):
        parse_ip_addr_json(text, "addr.json")
