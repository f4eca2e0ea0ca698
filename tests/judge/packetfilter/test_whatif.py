"""A machine's flows judged against its ruleset, and two rulesets compared."""

import pathlib

from csaudit.collect.saved import load_inventory
from csaudit.judge.packetfilter.flowcheck import Side
from csaudit.judge.packetfilter.interfaces import parse_ip_addr_json
from csaudit.judge.packetfilter.load import load_ruleset
from csaudit.judge.packetfilter.whatif import check_machine, diff_checks, flows_of, summary
from csaudit.model.firewalls import RulesetText
from csaudit.plan.catalogue import load_catalogue
from csaudit.plan.derive import derive_flows

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "firewall"
FLOWS = derive_flows(load_catalogue(), load_inventory(str(DATA / "inventory.json")))


def cpvm(ruleset: str) -> Side:
    return Side("v-2-VM", load_ruleset([RulesetText(ruleset, (DATA / ruleset).read_text())]),
                parse_ip_addr_json((DATA / "cpvm-addr.json").read_text(), "cpvm-addr.json"))


def test_the_flows_of_a_machine_and_their_way():
    ways = {flow.id: way for flow, way in flows_of(FLOWS, "v-2-VM")}
    assert ways["F33:this machine->v-2-VM:8443/tcp"] == "in" and ways["F10:v-2-VM->ms1:8250/tcp"] == "out"
    assert all("v-2-VM" in flow_id for flow_id in ways)


def test_a_required_flow_dropped_fails_and_a_deny_rule_dropped_passes():
    checks = {c.flow.id: c for c in check_machine(FLOWS, cpvm("cpvm-after.save"))}
    websocket = checks["F33:this machine->v-2-VM:8443/tcp"]
    assert websocket.status == "fail" and websocket.reason.startswith("must be open, but dropped by the policy DROP of chain INPUT")
    assert checks["D06:this machine->v-2-VM:3922/tcp"].status == "pass"
    assert checks["F32:this machine->v-2-VM:443/tcp"].status == "pass"
    assert summary(checks.values())["fail"] == 1


def test_the_diff_names_the_flow_the_change_breaks_and_nothing_else():
    before, after = check_machine(FLOWS, cpvm("cpvm-before.save")), check_machine(FLOWS, cpvm("cpvm-after.save"))
    changes = diff_checks(before, after)
    assert [(c.kind, c.flow.id) for c in changes] == [("breaks", "F33:this machine->v-2-VM:8443/tcp")]
    assert [(c.kind, c.flow.id) for c in diff_checks(after, before)] == [("fixes", "F33:this machine->v-2-VM:8443/tcp")]
    assert diff_checks(before, before) == []
