"""Why a probed flow failed, from what was read on its machines (run --collect-firewall)."""

import pathlib

from csaudit.judge.packetfilter.explain import explain, failing_ports
from csaudit.model.firewalls import MachineFirewall, RulesetText
from csaudit.model.results import FlowResult
from csaudit.model.vocabulary import State, Status
from tests.judge.packetfilter.helpers import flow

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "firewall"


def read(name: str, ruleset: str, addresses: str) -> MachineFirewall:
    return MachineFirewall("host", name, f"ssh:host/{name}", (RulesetText(f"{name}: nft -j list ruleset", (DATA / ruleset).read_text()),),
                           (DATA / addresses).read_text())


def test_the_dropping_rule_is_named_with_its_machine_and_direction():
    vnc = flow("10.1.1.102", "10.1.1.22", 5900, port_end=6100, source_name="v-2-VM", target_name="kvm02")
    result = FlowResult(vnc, Status.FAIL, State.OPEN, "port 6100: must be open, but timeout",
                        ports=((5900, State.OPEN), (5950, State.REFUSED), (6000, State.TIMEOUT), (6100, State.TIMEOUT)))
    assert failing_ports(result) == [6000, 6100]
    text = explain(result, "no SSH vantage stands for cpvm v-2-VM", read("kvm02", "kvm-host.json", "kvm-addr.json"))
    assert text.startswith("port 6000, 6100: dropped by the policy drop of chain input (table inet filter) on kvm02 (target, input, "
                           "arrives on cloudbr0")
    assert text.endswith("[v-2-VM (source): no SSH vantage stands for cpvm v-2-VM]")


def test_a_failure_no_rule_read_explains_says_so():
    ssh = flow("10.1.0.11", "10.1.1.22", 22, source_name="ms1", target_name="kvm02")
    result = FlowResult(ssh, Status.FAIL, State.REFUSED, "must be open, but refused")
    text = explain(result, None, read("kvm02", "kvm-host.json", "kvm-addr.json"))
    assert text == "accepted by the rulesets read on kvm02 (target): no rule read explains the failure [ms1 (source): not read]"


def test_nothing_read_says_why():
    result = FlowResult(flow("10.1.0.11", "10.1.1.22", 22), Status.FAIL, State.TIMEOUT, "timeout")
    unreadable = MachineFirewall("host", "dst", "ssh:host/dst", problems=("`nft -j list ruleset` failed: Operation not permitted "
                                                                          "(reading the ruleset needs root; csaudit does not use sudo)",))
    assert explain(result, None, unreadable) == ("no ruleset could be read: src (source): not read; dst (target): `nft -j list ruleset` "
                                                 "failed: Operation not permitted (reading the ruleset needs root; csaudit does not use sudo)")
