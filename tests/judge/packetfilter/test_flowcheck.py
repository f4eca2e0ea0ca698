"""A flow's packets through one or two machines: chain order, jumps, the split of sets (ephemeral
source port, port ranges, any source), the reply and the handshake's later packets, and a reject's
answer. The kernel agrees with these on generated rulesets (test_kernel_oracle.py); here each rule
of the walk is pinned by a small case."""

from csaudit.judge.packetfilter.flowcheck import trace
from tests.judge.packetfilter.helpers import (
    ACCEPT,
    DROP,
    RETURN,
    chain,
    flow,
    into,
    machine,
    match,
    meta,
    out_of,
    payload,
    rule,
    table,
    verdicts,
)

TCP_22 = match(payload("tcp", "dport"), 22)


def test_an_accept_goes_on_to_the_next_base_chain_and_a_drop_is_final():
    side = machine("m", [table(), chain("first", "input", -10), chain("second", "input", 10, "drop"),
                         rule("first", TCP_22, ACCEPT), rule("second", match(payload("tcp", "dport"), 80), ACCEPT)])
    dropped = into(side, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert dropped.verdict == "dropped" and "the policy drop of chain second" in dropped.decision.text()
    assert verdicts(into(side, flow("10.0.0.1", "10.0.0.2", 80))) == [("80", "accepted")]


def test_jump_returns_goto_does_not_and_a_return_from_the_base_chain_is_its_policy():
    side = machine("m", [table(), chain("in", "input", 0, "drop"), chain("sub"), chain("gone"),
                         rule("in", match(payload("tcp", "dport"), {"range": [20, 30]}), {"jump": {"target": "sub"}}),
                         rule("in", match(payload("tcp", "dport"), 25), ACCEPT),
                         rule("in", match(payload("tcp", "dport"), 40), {"goto": {"target": "gone"}}),
                         rule("in", match(payload("tcp", "dport"), 40), ACCEPT),
                         rule("in", match(payload("tcp", "dport"), 50), RETURN), rule("in", ACCEPT),
                         rule("sub", match(payload("tcp", "dport"), 22), ACCEPT), rule("sub", match(payload("tcp", "dport"), 23), DROP),
                         rule("gone", match(payload("tcp", "dport"), 41), ACCEPT)])
    ports = {port: into(side, flow("10.0.0.1", "10.0.0.2", port)).parts[0].verdict for port in (22, 23, 25, 40, 50, 60)}
    assert ports == {22: "accepted", 23: "dropped", 25: "accepted", 40: "dropped", 50: "dropped", 60: "accepted"}


def test_a_source_port_match_decides_only_when_every_ephemeral_port_agrees():
    whole = machine("m", [table(), chain("in", "input", 0, "drop"),
                          rule("in", match(payload("tcp", "sport"), {"range": [1024, 65535]}), ACCEPT)])
    assert verdicts(into(whole, flow("10.0.0.1", "10.0.0.2", 22))) == [("22", "accepted")]
    part = machine("m", [table(), chain("in", "input", 0, "drop"),
                         rule("in", match(payload("tcp", "sport"), {"range": [40000, 50000]}), ACCEPT)])
    unknown = into(part, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert unknown.verdict == "unknown" and "ephemeral source port" in unknown.reason and "40000-50000" in unknown.reason
    agree = machine("m", [table(), chain("in", "input", 0, "accept"),
                          rule("in", match(payload("tcp", "sport"), {"range": [40000, 50000]}), ACCEPT)])
    assert verdicts(into(agree, flow("10.0.0.1", "10.0.0.2", 22))) == [("22", "accepted")]  # both ways accepted


def test_a_port_range_gets_a_verdict_per_part():
    side = machine("m", [table(), chain("in", "input", 0, "drop"),
                         rule("in", match(payload("tcp", "dport"), {"range": [5900, 5964]}), ACCEPT),
                         rule("in", match(payload("tcp", "dport"), 6000), {"reject": None})])
    result = into(side, flow("10.0.0.1", "10.0.0.2", 5900, port_end=6100))
    assert verdicts(result) == [("5900-5964", "accepted"), ("5965-5999", "dropped"), ("6000", "rejected"), ("6001-6100", "dropped")]


def test_any_source_splits_by_address():
    side = machine("m", [table(), chain("in", "input", 0, "drop"),
                         rule("in", match(payload("ip", "saddr"), {"prefix": {"addr": "10.1.0.0", "len": 16}}), ACCEPT)])
    part = into(side, flow(None, "10.0.0.2", 8096)).parts[0]
    assert part.verdict == "unknown"
    assert part.reason == "it depends on the source address: accepted from 10.1.0.0/16; dropped from other addresses"


def test_the_reply_and_the_connections_later_packets_must_pass_too():
    no_reply = machine("m", [table(), chain("in", "input"), chain("out", "output", 0, "drop"),
                             rule("out", match({"ct": {"key": "state"}}, "new"), ACCEPT)])
    part = into(no_reply, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert part.verdict == "dropped" and part.decision.what == "reply" and part.decision.direction == "out"
    no_ack = machine("m", [table(), chain("in", "input", 0, "accept"),
                           rule("in", match({"ct": {"key": "state"}}, "established"), {"reject": {"type": "tcp reset"}})])
    part = into(no_ack, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert part.verdict == "rejected" and part.decision.what == "later"  # the handshake's ACK is reset: the source sees a reset
    udp = machine("m", [table(), chain("in", "input", 0, "accept"),
                        rule("in", match({"ct": {"key": "state"}}, "established"), DROP)])
    assert verdicts(into(udp, flow("10.0.0.1", "10.0.0.2", 53, "udp"))) == [("53", "dropped")]  # the second datagram


def test_a_reject_whose_answer_cannot_leave_is_a_drop_for_the_source():
    side = machine("m", [table(), chain("in", "input"), chain("out", "output", 0, "drop"),
                         rule("in", TCP_22, {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}),
                         rule("out", match(meta("l4proto"), "icmp"), ACCEPT)])
    assert verdicts(into(side, flow("10.0.0.1", "10.0.0.2", 22))) == [("22", "rejected")]  # ICMP gets out
    part = into(side, flow("fd00::1", "fd00::2", 22)).parts[0]  # ICMPv6 does not
    assert part.verdict == "dropped" and part.decision.what == "answer" and part.reason.startswith("after it was rejected with icmp")


def test_a_source_that_rejects_its_own_packet_answers_itself_over_lo():
    side = machine("m", [table(), chain("out", "output"), chain("in", "input", 0, "drop"),
                         rule("out", TCP_22, {"reject": {"type": "tcp reset"}}),
                         rule("in", match(meta("iifname"), "lo"), match({"ct": {"key": "state"}}, "related"), ACCEPT)])
    part = out_of(side, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert part.verdict == "rejected" and part.decision.role == "source" and part.decision.direction == "out"


def test_both_machines_of_a_flow():
    source = machine("s", [table(), chain("out", "output", 0, "drop"), rule("out", TCP_22, ACCEPT),
                           rule("out", match({"ct": {"key": "state"}}, "established"), ACCEPT)])
    target = machine("t", [table(), chain("in", "input", 0, "drop"), rule("in", match(payload("tcp", "dport"), {"set": [22, 80]}), ACCEPT),
                           rule("in", match({"ct": {"key": "state"}}, "established"), ACCEPT)])
    assert verdicts(trace(flow("10.0.0.1", "10.0.0.2", 22), source, target)) == [("22", "accepted")]
    part = trace(flow("10.0.0.1", "10.0.0.2", 80), source, target).parts[0]
    assert part.verdict == "dropped" and part.decision.machine == "s" and part.decision.role == "source"


def test_a_rule_on_an_interface_name_needs_the_machines_interfaces():
    rules = [table(), chain("in", "input", 0, "drop"), rule("in", match(meta("iifname"), "eth1"), TCP_22, ACCEPT)]
    unknown = into(machine("m", rules), flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert unknown.verdict == "unknown" and "the input interface is not known (give the machine's interfaces" in unknown.reason
    known = machine("m", rules, interfaces=["eth0=192.0.2.5/24", "eth1=10.0.0.2/24"])
    part = into(known, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert part.verdict == "accepted" and "arrives on eth1: 10.0.0.1 is on the link of eth1 (10.0.0.0/24)" in part.decision.text()
    routed = into(known, flow("172.16.0.1", "10.0.0.2", 22)).parts[0]  # not on a link: the interface that holds the address
    assert routed.verdict == "accepted" and "eth1 holds 10.0.0.2" in routed.decision.text()


def test_a_link_local_target_is_reached_from_a_link_local_source():
    side = machine("vm", [table(), chain("in", "input", 0, "drop"),
                          rule("in", match(payload("ip", "saddr"), {"prefix": {"addr": "169.254.0.0", "len": 16}}), ACCEPT)],
                   interfaces=["eth0=169.254.1.2/16", "eth1=10.1.1.102/24"])
    part = into(side, flow("10.1.1.22", "169.254.1.2", 3922)).parts[0]  # the API lists the host's management address
    assert part.verdict == "accepted" and "arrives on eth0" in part.decision.text()


def test_addresses_that_are_names_or_missing_cannot_be_evaluated():
    side = machine("m", [table(), chain("in", "input")])
    assert into(side, flow("10.0.0.1", "db.example.org", 3306)).problem == "the address of host dst is the name 'db.example.org', not an IP address"
    assert into(side, flow("fd00::1", "10.0.0.2", 22)).problem.startswith("source fd00::1 and target 10.0.0.2 are not of the same IP version")


def test_an_icmp_error_a_source_sends_itself_comes_from_its_own_address():
    """Found by the kernel oracle: the ICMP error for a packet the source's own output rejects is sent
    from the source's address to itself (a TCP reset instead comes from the target's address)."""
    rules = ("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -s 10.0.0.1/32 -p icmp -j DROP\n"
             "-A OUTPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable\n"
             "-A OUTPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset\n-A OUTPUT -s 10.0.0.2/32 -p tcp -j DROP\nCOMMIT\n")
    side = machine("s", rules)
    icmp = out_of(side, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert icmp.verdict == "dropped" and "-A OUTPUT -s 10.0.0.1/32 -p icmp -j DROP" in icmp.decision.text()
    reset = out_of(side, flow("10.0.0.1", "10.0.0.2", 23)).parts[0]
    assert reset.verdict == "dropped" and "-A OUTPUT -s 10.0.0.2/32 -p tcp -j DROP" in reset.decision.text()
