"""`nft -j list ruleset` read into the model: what is modelled, what becomes a fork or unknown, and
bad input as one clear error."""

import json
import pathlib

import pytest

from csaudit.judge.packetfilter.nftables import parse_nft_json, render_rule
from csaudit.judge.packetfilter.ruleset import InSet, Unmodelled, Unsupported
from csaudit.model.errors import UsageError
from tests.judge.packetfilter.helpers import (
    ACCEPT,
    DROP,
    chain,
    flow,
    into,
    machine,
    match,
    meta,
    payload,
    rule,
    table,
    verdicts,
)

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "firewall"


def test_a_real_listing_reads_into_base_chains_rules_and_policies():
    ruleset = parse_nft_json((DATA / "kvm-host.json").read_text(), "kvm-host.json")
    (key, chain_), = ruleset.chains.items()
    assert key == ("inet", "filter", "input") and chain_.base.hook == "input" and chain_.base.policy == "drop"
    texts = [r.ref.text for r in chain_.rules]
    assert texts[0] == "ct state established,related accept"
    assert 'iifname "lo" accept' in texts and "ip saddr 10.1.1.0/24 tcp dport { 16514, 49152-49216 } accept" in texts
    assert all(r.ref.position.startswith("handle ") for r in chain_.rules)


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not valid JSON (line 1"),
    ('{"nftables": 3}', 'JSON without an "nftables" list'),
    ('[1, 2]', 'JSON without an "nftables" list'),
    ('{"nftables": [{"chain": {"family": "inet"}}]}', "not the output of `nft -j list ruleset` (KeyError"),
])
def test_bad_input_is_one_clear_usage_error(text, message):
    with pytest.raises(UsageError) as caught:
        parse_nft_json(text, "new.json")
    assert caught.value.message.startswith("new.json: ") and message in caught.value.message


def test_named_priorities_hooks_off_the_path_and_families_that_never_see_ip():
    ruleset = parse_nft_json(json.dumps({"nftables": [
        table(), chain("early", "prerouting", "raw"), chain("late", "input", "filter + 10"),
        chain("fwd", "forward", 0, "drop"), table("arp", "a"), chain("arpin", "input", 0, "drop", family="arp", table_name="a")]}), "x")
    assert ruleset.chains[("inet", "t", "early")].base.priority == -300
    assert ruleset.chains[("inet", "t", "late")].base.priority == 10
    assert ("inet", "t", "fwd") not in ruleset.chains and ruleset.opaque == ()  # forward is not a local packet's path; arp sees no IP


def test_a_bridge_chain_that_could_drop_makes_that_side_unknown():
    side = machine("m", [table("bridge", "b"), chain("in", "input", 0, "drop", family="bridge", table_name="b")])
    result = into(side, flow("10.0.0.1", "10.0.0.2", 22))
    assert verdicts(result) == [("22", "unknown")]
    assert "the bridge family chain b/in (hook input) is not modelled" in result.parts[0].reason


def test_matches_outside_the_model_fork_and_statements_outside_it_end_unknown():
    fib = match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    side = machine("m", [table(), chain("in", "input", 0, "drop"),
                         rule("in", match(payload("tcp", "dport"), 22), fib, ACCEPT),
                         rule("in", match(payload("tcp", "dport"), 80), {"mangle": {"key": meta("mark"), "value": 1}}, ACCEPT),
                         rule("in", match(payload("tcp", "dport"), 443), {"xt": {"type": "match", "name": "multiport"}}, DROP)])
    steps = [step for r in side.ruleset.chains[("inet", "t", "in")].rules for step in r.steps]
    assert any(isinstance(s, Unmodelled) and s.text == "fib daddr type local" for s in steps)
    assert any(isinstance(s, Unsupported) for s in steps)
    fork = into(side, flow("10.0.0.1", "10.0.0.2", 22)).parts[0]
    assert fork.verdict == "unknown" and "`fib daddr type local` is not modelled" in fork.reason
    statement = into(side, flow("10.0.0.1", "10.0.0.2", 80)).parts[0]
    assert statement.verdict == "unknown" and 'is not modelled' in statement.reason and "mangle" in statement.reason
    # both ways of the xt match drop: the verdict is known all the same
    assert verdicts(into(side, flow("10.0.0.1", "10.0.0.2", 443))) == [("443", "dropped")]


def test_sets_packets_fill_are_not_read_as_fixed():
    dynamic = {"set": {"family": "inet", "table": "t", "name": "seen", "type": "ipv4_addr", "handle": 3, "flags": ["dynamic", "timeout"],
                       "elem": ["10.0.0.1"]}}
    side = machine("m", [table(), dynamic, chain("in", "input", 0, "drop"), rule("in", match(payload("ip", "saddr"), "@seen"), ACCEPT)])
    assert verdicts(into(side, flow("10.0.0.1", "10.0.0.2", 22))) == [("22", "unknown")]


def test_a_tcp_reset_holds_for_tcp_only_though_the_listing_leaves_the_match_out():
    side = machine("m", [table(), chain("in", "input", 0, "accept"), rule("in", {"reject": {"type": "tcp reset"}}),
                         rule("in", {"reject": {"type": "icmpv6", "expr": "no-route"}})])
    first = side.ruleset.chains[("inet", "t", "in")].rules[0].steps[0]
    assert isinstance(first, InSet) and first.key.field == "l4proto"
    assert verdicts(into(side, flow("10.0.0.1", "10.0.0.2", 53, "udp"))) == [("53", "accepted")]  # not TCP, not IPv6
    assert verdicts(into(side, flow("10.0.0.1", "10.0.0.2", 22))) == [("22", "rejected")]
    assert verdicts(into(side, flow("fd00::1", "fd00::2", 53, "udp"))) == [("53", "rejected")]


def test_rules_are_written_back_as_nft_writes_them():
    entry = {"expr": [match(meta("iifname"), {"set": ["eth0", "lo"]}), match(payload("ip", "saddr"), {"prefix": {"addr": "10.0.0.0", "len": 8}}, "!="),
                      match(payload("tcp", "dport"), {"range": [5900, 6100]}), {"counter": {"packets": 1, "bytes": 2}},
                      {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}], "comment": "vnc"}
    assert render_rule(entry) == 'iifname { "eth0", "lo" } ip saddr != 10.0.0.0/8 tcp dport 5900-6100 reject with icmpx admin-prohibited comment "vnc"'
