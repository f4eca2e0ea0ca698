"""The evaluator against the kernel: hypothesis makes rulesets (tests/judge/packetfilter/generators.py),
the real nft, iptables-nft-restore and iptables-legacy-restore load them into namespaces, and every
probe through them must get the evaluator's verdict (kernel_oracle.py). Within the modelled subset
the evaluator may never say unknown; beyond it, whatever it says must be the kernel's.

Each hypothesis example is a batch of rulesets, one per namespace pair, probed at once (a drop costs
one wait for the whole batch). The number of examples bounds the run; each test also requires that
it checked at least MINIMUM rulesets, so a run cut short by a time budget fails instead of passing
quietly.
"""

import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.judge.packetfilter.generators import PORTS, Case, iptables_cases, nft_cases
from tests.judge.packetfilter.kernel_oracle import Checked, check_batch
from tests.netns_pairs import PairLab

BATCH = 10
pytestmark = [pytest.mark.netns, pytest.mark.programs("nft")]
IPTABLES = pytest.mark.programs("iptables-nft-restore", "ip6tables-nft-restore")
LEGACY = pytest.mark.programs("iptables-legacy-restore", "ip6tables-legacy-restore")
BUDGET = {"nft": 60.0, "iptables-nft": 40.0, "iptables-legacy": 30.0}  # seconds: a bound, far above what a run takes


@pytest.fixture(scope="module")
def lab():
    with PairLab(BATCH, "oracle", PORTS) as pairs:
        yield pairs
    assert pairs.leftovers() == []


def differential(lab, strategy, batches: int, modelled: bool, budget: float):
    checked = Checked()
    started = time.monotonic()

    # No shrinking: a batch takes a second, and a failure prints its whole ruleset anyway.
    @settings(max_examples=batches, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
    @given(cases=st.lists(strategy, min_size=BATCH, max_size=BATCH))
    def run(cases):
        if time.monotonic() - started > budget:
            return  # out of time: the count below says how far it got
        mismatches = check_batch(lab, cases, modelled, checked)
        assert not mismatches, "\n\n".join(str(m) for m in mismatches[:3])

    run()
    return checked


def test_nft_rulesets_in_the_modelled_subset_get_the_kernels_verdict_on_every_probe(lab):
    checked = differential(lab, nft_cases(modelled=True), batches=20, modelled=True, budget=BUDGET["nft"])
    assert checked.rulesets >= 200 and checked.unknown == 0
    assert all(checked.verdicts.get(v, 0) > 0 for v in ("accept", "drop", "reject"))  # the generator reaches every verdict


@IPTABLES
def test_iptables_nft_rulesets_get_the_kernels_verdict_on_every_probe(lab):
    checked = differential(lab, iptables_cases("iptables-nft", modelled=True), batches=10, modelled=True, budget=BUDGET["iptables-nft"])
    assert checked.rulesets >= 100 and checked.unknown == 0
    assert all(checked.verdicts.get(v, 0) > 0 for v in ("accept", "drop", "reject"))


@LEGACY
def test_iptables_legacy_rulesets_get_the_kernels_verdict_on_every_probe(lab):
    checked = differential(lab, iptables_cases("iptables-legacy", modelled=True), batches=7, modelled=True,
                           budget=BUDGET["iptables-legacy"])
    assert checked.rulesets >= 70 and checked.unknown == 0


def test_nft_rulesets_with_unmodelled_features_are_unknown_never_wrong(lab):
    checked = differential(lab, nft_cases(modelled=False), batches=5, modelled=False, budget=BUDGET["nft"])
    assert checked.rulesets >= 50 and checked.unknown > 0


@IPTABLES
def test_iptables_rulesets_with_unmodelled_features_are_unknown_never_wrong(lab):
    checked = differential(lab, iptables_cases("iptables-nft", modelled=False), batches=4, modelled=False,
                           budget=BUDGET["iptables-nft"])
    assert checked.rulesets >= 40 and checked.unknown > 0


# Hand-written rulesets shaped like CloudStack's own system VM rules (systemvm/debian/etc/iptables/
# iptables-consoleproxy, iptables-secstorage: default-drop INPUT, per-interface conntrack accepts,
# ICMP, NEW connections per interface and port) and like a hardened KVM host. In the namespaces the
# target's link is eth0 and the source's src0; the probed ports are generators.PORTS.
CPVM_LIKE = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -i eth0 -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i eth1 -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 13 -j DROP
-A INPUT -p icmp -j ACCEPT
-A INPUT -i eth0 -p tcp -m state --state NEW -m tcp --dport 443 -j ACCEPT
-A INPUT -i eth0 -p tcp -m state --state NEW -m multiport --dports 80,8080 -j ACCEPT
-A INPUT -i eth1 -p tcp -m state --state NEW -m tcp --dport 8250 -j ACCEPT
COMMIT
"""
SSVM_LIKE = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:HTTP - [0:0]
-A INPUT -i eth0 -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -i eth0 -p tcp -m state --state NEW -m tcp --dport 80 -j HTTP
-A INPUT -i eth0 -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset
-A INPUT -i eth0 -p udp -m udp --dport 8250 -j REJECT --reject-with icmp6-adm-prohibited
-A HTTP -s {S6}/128 -j ACCEPT
-A HTTP -j RETURN
COMMIT
"""
HARDENED_SOURCE = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A OUTPUT -o src0 -p tcp -m multiport --dports 22,443 -j ACCEPT
-A OUTPUT -o src+ -p udp -m udp --dport 80 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset
COMMIT
"""
KVM_HOST = """table inet filter {
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    meta l4proto { icmp, ipv6-icmp } accept
    ip saddr {S4}/30 tcp dport 22 accept
    ip6 saddr {S6}/64 tcp dport { 22, 443 } accept
    tcp dport 3306 reject with tcp reset
    udp dport 8250 reject
  }
}"""
CLOUDSTACK_SHAPED = [
    (Case("iptables-nft", CPVM_LIKE, "", 4), {(4, "tcp", 443): "accept", (4, "tcp", 8080): "accept", (4, "tcp", 8250): "drop"}),
    (Case("iptables-legacy", CPVM_LIKE, "", 4), {(4, "tcp", 80): "accept", (4, "udp", 80): "drop"}),
    (Case("iptables-nft", SSVM_LIKE, "", 6), {(6, "tcp", 80): "accept", (6, "tcp", 3306): "reject", (6, "udp", 8250): "reject",
                                              (6, "tcp", 22): "drop"}),
    (Case("iptables-nft", "", HARDENED_SOURCE, 4), {(4, "tcp", 443): "accept", (4, "udp", 80): "accept", (4, "tcp", 3306): "reject",
                                                    (4, "tcp", 8080): "drop"}),
    (Case("nft", KVM_HOST, ""), {(4, "tcp", 22): "accept", (6, "tcp", 443): "accept", (4, "tcp", 443): "drop",
                                 (4, "tcp", 3306): "reject", (6, "udp", 8250): "reject"}),
]


@IPTABLES
@LEGACY
def test_cloudstack_shaped_rulesets_get_the_kernels_verdict(lab):
    cases = [case for case, _ in CLOUDSTACK_SHAPED]
    checked = Checked()
    mismatches = check_batch(lab, cases, modelled=True, checked=checked)
    assert not mismatches, "\n\n".join(str(m) for m in mismatches[:3])
    assert checked.unknown == 0 and checked.rulesets == len(cases)
    seen = checked.seen
    for index, (_, expected) in enumerate(CLOUDSTACK_SHAPED):
        for (family, protocol, port), verdict in expected.items():
            assert seen[(index, family, protocol, port)] == verdict, (index, family, protocol, port)
