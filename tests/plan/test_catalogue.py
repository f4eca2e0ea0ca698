"""The flow catalogue: it loads, it says what the researched catalogue says, and bad files are refused."""

import pytest

from csaudit.model.errors import ConfigError
from csaudit.plan.catalogue import load_catalogue, parse_catalogue

CATALOGUE = load_catalogue()


def rules(rule_id):
    return [r for r in CATALOGUE if r.id == rule_id]


def test_loads_with_open_flows_and_the_required_deny_rules():
    ids = {r.id for r in CATALOGUE}
    assert {"D01", "D02", "D03", "D04", "D05", "D06", "D08"} <= ids
    assert len([i for i in ids if i.startswith("F")]) >= 35
    assert all(r.citation for r in CATALOGUE)


def test_seed_corrections():
    # S1: 8096 is not a user flow; it must be closed to users.
    # D01 is probed from every place but the MS itself: this machine, the peer MSs, the hosts, the outside.
    assert {r.expect for r in rules("D01")} == {"closed"} and {r.ports[0].first for r in rules("D01")} == {8096}
    assert sorted(r.sources for r in rules("D01")) == [("host",), ("ms",), ("outside",), ("user",)]
    assert next(r for r in rules("D01") if r.sources == ("ms",)).pairing == "peers"
    assert not any(r.sources == ("user",) and r.expect == "open" and 8096 in [p.first for p in r.ports] for r in CATALOGUE)
    # S14: there is no VR -> secondary storage flow.
    assert not any("vr" in r.sources and "secondary-storage" in r.targets for r in CATALOGUE)
    # S8: the CPVM reaches hosts on VNC / 443, never SSH.
    cpvm_to_host = [r for r in CATALOGUE if r.sources == ("cpvm",) and r.targets == ("host",)]
    assert cpvm_to_host and all(22 not in [p.first for p in r.ports] for r in cpvm_to_host)
    assert any(str(p) == "5900-6100" for r in cpvm_to_host for p in r.ports)
    # S6: 3922 on KVM/Xen runs from the host, on VMware from the MS.
    [kvm] = rules("F18")
    assert kvm.sources == ("host",) and kvm.pairing == "local" and kvm.hypervisors == ("kvm", "lxc")
    assert rules("F20")[0].sources == ("ms",) and rules("F20")[0].hypervisors == ("vmware",)


REMEDY = 'remedy = { on = "the MS", check = "x", commands = ["ss -tln"], citation = "docs" }'
VALID = """
[[flow]]
id = "F99"
title = "t"
source = "ms"
target = "db"
ports = [3306]
protocol = "tcp"
expect = "open"
hypervisors = ["any"]
citation = "c"
remedy = { on = "the MS", check = "x", commands = ["ss -tln"], citation = "docs" }
"""


def test_a_minimal_entry_parses():
    [rule] = parse_catalogue(VALID)
    assert rule.pairing == "zone" and rule.probe == "tcp"


@pytest.mark.parametrize("change,message", [
    (('hypervisors = ["any"]', 'hypervisors = ["any"]\ncolour = "red"'), "unknown key(s) ['colour']"),
    (('target = "db"', 'target = "mainframe"'), "unknown target role ['mainframe']"),
    (('hypervisors = ["any"]', 'hypervisors = ["any"]\nself_allowed = true'), "self_allowed = true is for deny rules"),
    (('hypervisors = ["any"]', 'hypervisors = ["any"]\noutside = true'), "'outside = true' is now written source = \"outside\""),
    (('protocol = "tcp"', 'protocol = "sctp"'), "unknown protocol ['sctp']"),
    (('expect = "open"', 'expect = "maybe"'), "expect must be 'open' or 'closed'"),
    (('ports = [3306]', 'ports = [70000]'), "is not a port"),
    (('id = "F99"', 'id = "X1"'), "id must look like"),
    (('hypervisors = ["any"]', 'hypervisors = ["Bhyve"]'), "unknown hypervisor"),
    (('citation = "c"\n', ''), "missing key(s) ['citation']"),
    (('expect = "open"', 'expect = "open"\nwhen = { setting = "x", bigger = 1 }'), "when needs exactly one of"),
    ((REMEDY, ''), "missing key(s) ['remedy']"),
    ((REMEDY, 'remedy = "restart it"'), "remedy must be a table"),
    ((REMEDY, 'remedy = { on = "db", check = "x" }'), "lacks ['citation']"),
    ((REMEDY, 'remedy = { on = "db", check = "x", citation = "c", commands = "ls" }'), "remedy.commands must be a list"),
    ((REMEDY, 'remedy = { on = " ", check = "x", citation = "c" }'), "remedy.on must be a non-empty string"),
    (('expect = "open"', 'expect = "open"\nwhen = { zone = "cpu", includes = "x" }'), "when.zone must be one of"),
    (('expect = "open"', 'expect = "open"\nwhen = { setting = "x", pattern = "[" }'), "when.pattern is not a regular"),
    (('expect = "open"', 'expect = "open"\nwhen = { setting = "x", zone = "isolation_methods", set = true }'),
     "when must be a table with a 'setting' name"),
    (('ports = [3306]', 'ports = [3306, 3307]\nport_from = "target"'), "port_from needs exactly one port"),
    (('ports = [3306]', 'ports = [3306]\nport_from = "range:a:b"'), "needs exactly one range"),
    (('ports = [3306]', 'ports = [3306]\nport_from = "url:x"'), "port_from must be"),
    (('[[flow]]', '[[flows]]'), "unknown top-level key"),
    (('title = "t"', 'title = "t'), "not valid TOML"),
])
def test_bad_entries_are_refused_with_a_clear_message(change, message):
    old, new = change
    with pytest.raises(ConfigError) as caught:
        parse_catalogue(VALID.replace(old, new), "my.toml")
    assert message in caught.value.message
    assert caught.value.message.startswith("my.toml")


def test_a_remedy_parses_into_its_parts():
    [rule] = parse_catalogue(VALID)
    assert (rule.remedy.on, rule.remedy.commands, rule.remedy.citation) == ("the MS", ("ss -tln",), "docs")


def test_conditions_in_words_and_how_they_hold():
    def condition(text):
        [rule] = parse_catalogue(VALID.replace('expect = "open"', f'expect = "open"\nwhen = {text}'))
        return rule.when

    vxlan = condition('{ zone = "isolation_methods", includes = "VXLAN" }')
    assert vxlan.describe() == "the zone's isolation methods include VXLAN"
    assert vxlan.holds("VLAN,vxlan") and not vxlan.holds("VLAN") and not vxlan.holds(None)
    domain = condition('{ setting = "consoleproxy.url.domain", pattern = "[^*].*" }')
    assert domain.holds("console.example.org") and not domain.holds("*.example.org") and not domain.holds("")
    assert condition('{ setting = "a", equals = "true" }').describe() == "setting 'a' is 'true'"


def test_duplicate_entries_are_refused():
    with pytest.raises(ConfigError, match="defined twice"):
        parse_catalogue(VALID + VALID)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read catalogue"):
        load_catalogue("/nonexistent/catalogue.toml")


def test_every_built_in_rule_says_what_to_do_when_it_fails():
    """The loader refuses a rule without a remedy (above); here each built-in one also names a
    machine, a check, a citation and at least one command to run there."""
    assert CATALOGUE
    for rule in CATALOGUE:
        remedy = rule.remedy
        assert remedy is not None and remedy.on and remedy.check and remedy.citation, rule.id
        assert remedy.commands and all(command.strip() for command in remedy.commands), rule.id


def test_the_remedies_cover_the_failures_operators_report_most():
    """ssvm-check.sh and host= for the system VM agents, libvirtd's listen settings for migration,
    the integration port's setting for 8096, MySQL's bind-address and grants."""
    def remedy_text(rule_id):
        return " ".join(" ".join((r.remedy.on, r.remedy.check, *r.remedy.commands)) for r in rules(rule_id))
    assert "ssvm-check.sh" in remedy_text("F09") and "host=" in remedy_text("F09")
    assert "host=" in remedy_text("F10") and "host=" in remedy_text("F08")
    assert "ssvm-check.sh" in remedy_text("F23")
    assert "vnc_listen" in remedy_text("F34")
    assert "cloud0" in remedy_text("F18") and "id_rsa.cloud" in remedy_text("F18")
    assert "listen_tls" in remedy_text("F40") and "listen_tcp" in remedy_text("D05") and "libvirtd-tcp.socket" in remedy_text("D05")
    assert "eth2" in remedy_text("F29")
    assert "bind-address" in remedy_text("F04") and "mysql.user" in remedy_text("F04")
    assert "integration.api.port" in remedy_text("D01") and "to 0" in remedy_text("D01")
    assert "8443" in remedy_text("F33") and "iptables" in remedy_text("F33")
