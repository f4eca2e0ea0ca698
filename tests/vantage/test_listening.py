"""Listening ports read from /proc/net/tcp{,6}: the parser on real kernel text, and the local vantage
on sockets this test opens; the remote read runs in tests/vantage/test_ssh_netns.py."""

import dataclasses
import socket

from csaudit.model.flows import Endpoint, Flow
from csaudit.model.probes import ProbeOptions
from csaudit.vantage import range_ports, sample_ports
from csaudit.vantage.listening import MAX_LISTENING_PROBED, parse_proc_net_tcp, ports_in_range, ports_on, read_local
from csaudit.vantage.local import LocalVantage

# Lines as Linux writes them (the columns past `st` cut): a listener on 127.0.0.1:5901, one on every IPv4
# address (:22), an established connection (st 01), one IPv6 listener on ::1:5902 and one on [::]:5903.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:170D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:170E 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:170E 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:170F 00000000000000000000000000000000:0000 0A 00000000:00000000
   2: 0000000000000000FFFF00000500A8C0:1710 00000000000000000000000000000000:0000 0A 00000000:00000000
garbage line
"""


def test_the_kernel_text_gives_every_listener_and_nothing_else():
    assert parse_proc_net_tcp(PROC_NET_TCP) == {
        ("127.0.0.1", 5901), ("0.0.0.0", 22), ("::1", 5902), ("::", 5903), ("192.168.0.5", 5904)}


def test_a_range_takes_the_ports_of_its_address_and_of_every_address():
    listening = parse_proc_net_tcp(PROC_NET_TCP)
    # [::]:5903 takes IPv4 too (a dual-stack socket), 0.0.0.0:22 every IPv4 address but no IPv6 one
    assert ports_on(listening, "127.0.0.1") == {5901, 5903, 22}
    assert ports_on(listening, "::1") == {5902, 5903}
    assert ports_on(listening, "10.0.0.1") == {22, 5903}
    assert ports_on(listening, "fd00::1") == {5903}
    assert ports_in_range(ports_on(listening, "127.0.0.1"), 5900, 6100) == (5901, 5903)
    assert ports_in_range(frozenset(range(5900, 6100)), 5900, 6100) == tuple(range(5900, 5900 + MAX_LISTENING_PROBED))


def _range_flow(address: str) -> Flow:
    return Flow(f"F34:v-2-VM->kvm01:5900-6100/tcp@{address}", "F34", "VNC", "z", Endpoint("user", "this machine", None),
                Endpoint("host", "kvm01", address), "tcp", 5900, 6100, "open", "vnc", "test")


def test_a_range_whose_target_is_this_machine_adds_the_ports_that_listen_there():
    with socket.socket() as console, socket.socket() as elsewhere:
        console.bind(("127.93.0.1", 0))
        console.listen(1)
        elsewhere.bind(("127.93.0.2", 0))
        elsewhere.listen(1)
        port = console.getsockname()[1]
        assert ("127.93.0.1", port) in read_local()
        # ranges around the listener's (random) port, which is none of the five sampled ones
        flow, other = (dataclasses.replace(_range_flow(address), port=port - 101, port_end=port + 99)
                       for address in ("127.93.0.1", "127.93.0.2"))
        ports = range_ports([flow, other], [LocalVantage()], ProbeOptions())
        sample = set(sample_ports(flow.port, flow.port_end))
        assert ports[flow.id][0] == flow.port and sample | {port} <= set(ports[flow.id])  # the first port stays first
        assert sample <= set(ports[other.id]) and port not in ports[other.id]  # another address's listener is not its
