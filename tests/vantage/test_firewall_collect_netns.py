"""`csaudit run --collect-firewall` end to end: a zone of network namespaces with real sshd
(tests/netns_lab.py), planted nft faults, and the failed flows' reports naming the rule that drops
them, on which machine and which way, read over the SSH vantages with nft itself.

Planted here, beyond the lab's own faults (ms drops kvm01's 8250, read over the MS vantage; nfs rejects
s-1-VM's 2049, on a machine no vantage stands for): kvm01 drops VNC 5950-6100 (input), as an ESXi-like firewall that
opens only part of the range; the VMware SSVM s-5-VM drops its own 8250 to the MS (output).
"""

import json

import pytest

from bench.netns import run
from tests.netns_lab import PROGRAMS, NetnsCloud

pytestmark = [pytest.mark.netns, pytest.mark.programs(*PROGRAMS)]


def plant(namespace: str, hook: str, rule: str) -> None:
    run("ip", "netns", "exec", namespace, "nft", "-f", "-",
        stdin=f"table inet csaudit_fault {{\n chain {hook} {{\n  type filter hook {hook} priority -10; policy accept;\n  {rule}\n }}\n}}\n")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    lab = NetnsCloud(tmp_path_factory.mktemp("netns-firewall"))
    with lab:
        lab.inventory_file = lab.workdir / "inventory.json"
        lab.inventory_file.write_text(json.dumps(lab.inventory()))
        plant(lab.ns["kvm01"], "input", "tcp dport 5950-6100 drop")
        plant(lab.ns["vmssvm"], "output", f"ip daddr {lab.ip['ms']} tcp dport 8250 drop")
        yield lab
    assert lab.leftovers() == []


@pytest.fixture(autouse=True)
def no_agent(monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def test_the_failed_flows_name_the_rule_that_drops_them(cli, cloud):
    report = cloud.workdir / "report.json"
    before = {node: len(server.logins()) for node, server in cloud.sshds.items()}
    result = cli("run", "--inventory", str(cloud.inventory_file), "--timeout", "1", "--ssh-timeout", "2", "--ssh-user", "root",
                 "--ssh-key", cloud.client_key, "--ssh-known-hosts", str(cloud.known_hosts), "--vmware-systemvm-key", cloud.ms_key,
                 "--collect-firewall", "--json", str(report), "--all")
    assert result.exit_code == 1, result.stderr
    flows = {flow["id"]: flow for flow in json.loads(report.read_text())["flows"]}

    vnc = flows["F34:v-2-VM->kvm01:5900-6100/tcp"]
    assert (vnc["status"], vnc["vantage"]) == ("fail", "ssh:systemvm/v-2-VM")
    assert vnc["firewall"].startswith("port 5950, 6000, 6050, 6100: dropped by `tcp dport 5950-6100 drop` (table inet csaudit_fault, "
                                      "chain input, handle ")
    assert f"on kvm01 (target, input, arrives on eth1: {cloud.ip['v-2-VM']} is on the link of eth1" in vnc["firewall"]

    own_output = flows["F09:s-5-VM->ms1:8250/tcp"]
    assert own_output["status"] == "fail" and own_output["observed"] == "timeout"
    assert own_output["firewall"].startswith(f"dropped by `ip daddr {cloud.ip['ms']} tcp dport 8250 drop` (table inet csaudit_fault, "
                                             "chain output, handle ")
    assert "on s-5-VM (source, output, leaves by eth1" in own_output["firewall"]
    assert "no SSH vantage" not in own_output["firewall"]  # ms1 is a vantage: its ruleset was read, and accepts it

    # The MS's own drop, read on the MS over its vantage's connection.
    assert flows["F08:kvm01->ms1:8250/tcp"]["firewall"].startswith(
        f"dropped by `ip saddr {cloud.ip['kvm01']} tcp dport 8250 drop` (table inet csaudit_lab, chain input, handle ")
    assert "on ms1 (target, input, arrives on eth1" in flows["F08:kvm01->ms1:8250/tcp"]["firewall"]
    # The NFS server's reject: no vantage stands for it; s-1-VM's rulesets do not explain it, and say so.
    assert flows["F23:s-1-VM->nfs-east:2049/tcp"]["firewall"] == (
        "accepted by the rulesets read on s-1-VM (source): no rule read explains the failure "
        "[nfs-east (target): no SSH vantage stands for secondary-storage nfs-east]")
    # Only failed flows carry it.
    assert all(("firewall" in f) == (f["status"] == "fail") for f in flows.values())

    # The per-flow table (--all) shows it in the flow's detail.
    row = next(line for line in result.stdout.splitlines() if line.startswith("F34 ") and "kvm01" in line)
    assert "[firewall: port 5950, 6000, 6050, 6100: dropped by `tcp dport 5950-6100 drop`" in row
    # Each machine read once, over its own way in: kvm01 (its own session), s-5-VM (straight), s-1-VM and v-2-VM (through kvm01).
    after = {node: len(server.logins()) for node, server in cloud.sshds.items()}
    # (ms1: one login for its probes and its read, the MS vantage's connection being kept for the run)
    assert after["vmssvm"] - before["vmssvm"] == 2 and after["ms"] - before["ms"] == 1  # probes, then the read
    assert "csaudit: reading the rulesets of" in result.stderr
