"""`csaudit firewall check|diff` through the command line: reports, exit codes, and bad input as
one line with exit 2. The rulesets in tests/data/firewall are real nft and iptables-nft output
(tests/data/firewall/README.md says how they were made)."""

import json
import pathlib

import pytest

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "firewall"
INVENTORY = str(DATA / "inventory.json")
CPVM = ("--as", "v-2-VM", "--inventory", INVENTORY, "--addresses", str(DATA / "cpvm-addr.json"))


def test_check_lists_the_flow_a_ruleset_would_break_and_exits_1(cli):
    result = cli("firewall", "check", "--ruleset", str(DATA / "cpvm-after.save"), *CPVM)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"== firewall check of v-2-VM against {DATA / 'cpvm-after.save'}"
    failing = [line for line in lines if " fail " in line]
    assert len(failing) == 1 and failing[0].startswith("F33 this machine->v-2-VM")
    assert "8443/tcp" in failing[0] and "must be open, but dropped by the policy DROP of chain INPUT (table ip filter, line 3)" in failing[0]
    # D06 from outside to its public 3922 passes; F39 (MS -> 8001) passes: the CPVM's own rules accept it on eth1
    assert lines[-1] == "summary: 12 flows: 9 pass, 1 fail, 2 unknown"
    assert "csaudit: 12 flows of v-2-VM through 9 rules" in result.stderr and "csaudit:" not in result.stdout


def test_check_as_json_names_the_rule_of_each_part(cli):
    result = cli("firewall", "check", "--ruleset", str(DATA / "kvm-host.json"), "--as", "kvm02", "--inventory", INVENTORY,
                 "--addresses", str(DATA / "kvm-addr.json"), "--format", "json")
    assert result.exit_code == 1
    document = result.json()
    assert document["schema"] == "csaudit/firewall-check/v1" and document["machine"] == "kvm02"
    # D01, D03 and D04 from kvm02 leave it: its accepting them decides nothing (the MS and the database must close them)
    assert document["summary"] == {"pass": 14, "fail": 1, "unknown": 7}
    elsewhere = [f for f in document["flows"] if f["status"] == "unknown" and f["reason"].startswith("decided elsewhere")]
    assert sorted(f["rule"] for f in elsewhere) == ["D01", "D03", "D04"]
    vnc = next(f for f in document["flows"] if f["id"] == "F34:v-2-VM->kvm02:5900-6100/tcp")
    assert (vnc["status"], vnc["direction"]) == ("fail", "in")
    assert [(p["ports"], p["verdict"]) for p in vnc["parts"]] == [("5900-5964", "accepted"), ("5965-6100", "dropped")]
    accepted, dropped = vnc["parts"]
    assert accepted["decided_by"]["rule"]["text"] == "ip saddr 10.1.1.0/24 tcp dport 5900-5964 accept"
    assert accepted["decided_by"]["rule"]["position"].startswith("handle ")
    assert dropped["decided_by"] == {"machine": "kvm02", "role": "target", "direction": "in", "packet": "request", "verdict": "drop",
                                     "reject": None, "interface": "arrives on cloudbr0: 10.1.1.102 is on the link of cloudbr0 (10.1.1.0/24)",
                                     "rule": {"origin": str(DATA / "kvm-host.json"), "family": "inet", "table": "filter", "chain": "input",
                                              "position": "policy", "text": "policy drop"}}


def test_check_passes_with_exit_0_and_strict_counts_unknown(cli, tmp_path):
    assert cli("firewall", "check", "--ruleset", str(DATA / "cpvm-before.save"), *CPVM).exit_code == 0
    assert cli("firewall", "check", "--ruleset", str(DATA / "cpvm-before.save"), *CPVM, "--strict").exit_code == 1
    output = tmp_path / "check.json"
    result = cli("firewall", "check", "--ruleset", str(DATA / "cpvm-before.save"), *CPVM, "--format", "json", "--output", str(output))
    assert result.exit_code == 0 and result.stdout == "" and json.loads(output.read_text())["summary"]["fail"] == 0


def test_diff_prints_the_flows_whose_verdict_changes(cli):
    result = cli("firewall", "diff", str(DATA / "cpvm-before.save"), str(DATA / "cpvm-after.save"), *CPVM)
    assert result.exit_code == 1, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("breaks", "exposes", "fixes", "changes"))]
    assert len(rows) == 1 and rows[0].split()[:8] == ["breaks", "F33", "this", "machine->v-2-VM", "8443/tcp", "open", "accepted", "dropped"]
    assert result.stdout.splitlines()[-1] == "summary: 1 breaks, 0 exposes, 0 fixes, 0 changes"
    back = cli("firewall", "diff", str(DATA / "cpvm-after.save"), str(DATA / "cpvm-before.save"), *CPVM, "--format", "json")
    assert back.exit_code == 0
    assert [(c["kind"], c["flow"]) for c in back.json()["changes"]] == [("fixes", "F33:this machine->v-2-VM:8443/tcp")]
    same = cli("firewall", "diff", str(DATA / "cpvm-before.save"), str(DATA / "cpvm-before.save"), *CPVM)
    assert same.exit_code == 0 and same.stdout.endswith("no flow's verdict changes\n")


@pytest.mark.parametrize(("make", "extra", "message"), [
    (lambda p: p.write_text("hello world\n"), (), ": neither `nft -j list ruleset` JSON nor iptables-save text"),
    (lambda p: p.write_text('{"nftables": '), (), ": not valid JSON (line 1: Expecting value)"),
    (lambda p: p.write_text("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport x:y -j ACCEPT\n"), (), ": table *filter has no COMMIT"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00"), (), ": not UTF-8 text"),
    (lambda p: None, (), "cannot read ruleset "),
    (lambda p: p.write_text((DATA / "cpvm-after.save").read_text()), ("--iface", "eth2"), "--iface 'eth2': expected NAME=ADDRESS[/LEN]"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, make, extra, message):
    path = tmp_path / "new.rules"
    make(path)
    result = cli("firewall", "check", "--ruleset", str(path), "--as", "v-2-VM", "--inventory", INVENTORY, *extra)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_machine_names_the_ones_with_flows(cli):
    result = cli("firewall", "check", "--ruleset", str(DATA / "cpvm-after.save"), "--as", "v-9-VM", "--inventory", INVENTORY)
    assert result.exit_code == 2
    assert "no flow enters or leaves 'v-9-VM'; --as takes an object's name: " in result.stderr and "kvm02" in result.stderr


def test_collect_firewall_needs_the_ssh_vantages(cli):
    result = cli("run", "--inventory", INVENTORY, "--collect-firewall", "--no-remote")
    assert result.exit_code == 2 and "--collect-firewall reads rulesets over the SSH vantages" in result.stderr


def test_the_flows_can_come_from_the_api(cli, tmp_path):
    """No --inventory: the machine's flows come from the CloudStack API (the embedded lab, read-only calls)."""
    from csaudit.lab import Lab, generate_topology

    with Lab(generate_topology(1, 3, 2)) as lab:
        lab.write_ini(tmp_path / "cloudstack.ini")
        host = lab.topology.zones[0].clusters[0].hosts[0]
        before = sum(lab.requests.values())
        result = cli("firewall", "check", "--ruleset", str(DATA / "kvm-host.json"), "--as", host.name, "--format", "json")
        assert sum(lab.requests.values()) > before
    assert result.exit_code in (0, 1), result.stderr
    document = result.json()
    assert document["machine"] == host.name and document["flows"]
    assert all(host.name in (f["source"]["name"], f["target"]["name"]) for f in document["flows"])
    assert "API requests" in result.stderr
