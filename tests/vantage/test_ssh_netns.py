"""Remote vantages end to end: csaudit run --inventory against a zone of network namespaces with
real OpenSSH sshd on the host (22) and the system VMs (3922), real listeners and nft faults.

Needs root, ip and the programs of tests.netns_lab.PROGRAMS: nft, sshd, ssh, ... (`tests/run` installs them).
The marks below say so: without them these tests skip and say why; under CI (or CSAUDIT_TESTS_REQUIRE_ALL=1)
they fail instead, so a broken CI machine cannot hide them (tests/conftest.py).
"""

import json

import pytest

from csaudit.lab import sshd
from tests.netns_lab import PROGRAMS, NetnsCloud

pytestmark = [pytest.mark.netns, pytest.mark.programs(*PROGRAMS)]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    lab = NetnsCloud(tmp_path_factory.mktemp("netns-cloud"))
    with lab:
        lab.inventory_file = lab.workdir / "inventory.json"
        lab.inventory_file.write_text(json.dumps(lab.inventory()))
        yield lab
    assert lab.leftovers() == []


@pytest.fixture(autouse=True)
def no_agent(monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # only the keys a test names


def audit(cli, cloud, *extra):
    result = cli("run", "--inventory", str(cloud.inventory_file), "--format", "json", "--timeout", "1",
                 "--ssh-timeout", "2", "--ssh-user", "root", "--ssh-key", cloud.client_key,
                 "--ssh-known-hosts", str(cloud.known_hosts), "--vmware-systemvm-key", cloud.ms_key, *extra)
    assert result.exit_code in (0, 1), result.stderr
    return result


def logins(cloud) -> dict[str, int]:
    return {node: len(server.logins()) for node, server in cloud.sshds.items()}


def flows(document) -> dict[str, dict]:
    return {flow["id"]: flow for flow in document["flows"]}


def test_each_flow_is_probed_from_its_true_source_with_one_connection_per_vantage(cli, cloud):
    before = logins(cloud)
    result = audit(cli, cloud)
    document = result.json()
    by_id = flows(document)
    seen = {fid: (f["vantage"], f["status"], f["observed"]) for fid, f in by_id.items()}
    expected = {
        # host -> MS 8250: the MS drops kvm01's SYNs (nft), seen from kvm01 itself
        "F08:kvm01->ms1:8250/tcp": ("ssh:host/kvm01", "fail", "timeout"),
        # host -> its system VMs on 3922, over the link-local bridge only kvm01 has
        "F18:kvm01->s-1-VM:3922/tcp": ("ssh:host/kvm01", "pass", "open"),
        "F18:kvm01->v-2-VM:3922/tcp": ("ssh:host/kvm01", "pass", "open"),
        "F18:kvm01->r-3-VM:3922/tcp": ("ssh:host/kvm01", "fail", "timeout"),  # the router is gone
        "F47:kvm01->nfs-east:2049/tcp": ("ssh:host/kvm01", "pass", "open"),  # NFS rejects only the SSVM
        # SSVM -> NFS and -> MS, from inside the SSVM (through kvm01's session)
        "F23:s-1-VM->nfs-east:2049/tcp": ("ssh:systemvm/s-1-VM", "fail", "refused"),
        "F23:s-1-VM->nfs-east:111/tcp": ("ssh:systemvm/s-1-VM", "pass", "open"),
        "F09:s-1-VM->ms1:8250/tcp": ("ssh:systemvm/s-1-VM", "pass", "open"),
        # CPVM -> host VNC, from inside the CPVM (bash engine: no python3 there)
        "F34:v-2-VM->kvm01:5900-6100/tcp": ("ssh:systemvm/v-2-VM", "pass", "open"),
        "F34:v-2-VM->kvm02:5900-6100/tcp": ("ssh:systemvm/v-2-VM", "fail", "timeout"),
        "F10:v-2-VM->ms1:8250/tcp": ("ssh:systemvm/v-2-VM", "pass", "open"),
        # VMware SSVM, straight on its private IP:3922 with the MS key
        "F09:s-5-VM->ms1:8250/tcp": ("ssh:systemvm/s-5-VM", "pass", "open"),
        "F01:this machine->ms1:8080/tcp": ("local", "pass", "open"),
    }
    assert {fid: seen.get(fid) for fid in expected} == expected
    assert result.exit_code == 1

    # Protocol probes ran remotely (answers read here): with python3, and under bash for what bash can read.
    assert by_id["F09:s-1-VM->ms1:8250/tcp"]["service"] == "TLS"
    assert by_id["F18:kvm01->s-1-VM:3922/tcp"]["service"] == "SSH"
    udp = [f for f in document["flows"] if f["vantage"] == "ssh:systemvm/s-1-VM" and f["protocol"] == "udp" and f["port"] == 111]
    assert udp and all((f["status"], f["service"]) == ("pass", "rpcbind") for f in udp)
    assert by_id["F34:v-2-VM->kvm01:5900-6100/tcp"]["service"] == "VNC"  # v-2-VM has bash only
    # The range is probed on its sample and on the consoles that listen on kvm01, read from kvm01's
    # /proc/net/tcp over the same SSH connection that carries kvm01's own probes.
    vnc = {p["port"]: p["observed"] for p in by_id["F34:v-2-VM->kvm01:5900-6100/tcp"]["sampled_ports"]}
    assert vnc == {5900: "open", 5907: "open", 5950: "refused", 6000: "refused", 6050: "refused", 6100: "refused"}
    assert {p["port"] for p in by_id["F34:v-2-VM->kvm02:5900-6100/tcp"]["sampled_ports"]} == {5900, 5950, 6000, 6050, 6100}

    # kvm02 and the router r-3-VM cannot be reached: their flows are unverified with the reason, never failed.
    unreachable = [f for f in document["flows"] if f["source"]["name"] in ("kvm02", "r-3-VM") and f["protocol"] == "tcp"
                   and f["rule"] != "F41"]  # F41: a connect cannot judge it, from anywhere
    assert unreachable and all(f["status"] == "unverified" and f["vantage"] is None for f in unreachable)
    assert all("unreachable" in f["reason"] for f in unreachable)
    assert "ssh:host/kvm02 unreachable: host unreachable: no answer from root@" in by_id["F08:kvm02->ms1:8250/tcp"]["reason"]
    assert "ssh:systemvm/r-3-VM unreachable: root@169.254.1.3:3922 from kvm01" in by_id["F53:r-3-VM->east dns1:53/tcp"]["reason"]

    # The vantage summary: state, engine, and one probe per distinct target it ran (each sampled port of a range).
    vantages = {v["name"]: v for v in document["vantages"]}
    for name in ("ssh:host/kvm01", "ssh:systemvm/s-1-VM", "ssh:systemvm/v-2-VM", "ssh:systemvm/s-5-VM", "local"):
        targets = {(f["target"]["address"], port, f["protocol"]) for f in document["flows"] if f["vantage"] == name
                   for port in ([p["port"] for p in f["sampled_ports"]] if "sampled_ports" in f else [f["port"]])}
        assert vantages[name]["state"] == "ok" and vantages[name]["probes"] == len(targets) > 0, name
    assert vantages["ssh:systemvm/v-2-VM"]["engine"] == "bash"
    assert vantages["ssh:systemvm/s-1-VM"]["engine"] == vantages["ssh:host/kvm01"]["engine"] == "python3"
    assert vantages["ssh:host/kvm02"]["state"] == vantages["ssh:systemvm/r-3-VM"]["state"] == "unreachable"

    # The API says both are Up/Running: findings. And it says kvm01's agent is Up, while from kvm01 itself
    # the MS drops its 8250: the agent's state is stale (a finding from a real host's own probe).
    assert {(f["kind"], f["object"]["name"]) for f in document["findings"]} >= {
        ("api-up-unreachable", "kvm02"), ("api-up-unreachable", "r-3-VM"), ("agent-up-unconnected", "kvm01")}

    # The MS is a vantage too: its flows (to kvm01 22, to the NFS store, ...) are probed from there.
    assert (by_id["F11:ms1->kvm01:22/tcp"]["vantage"], by_id["F11:ms1->kvm01:22/tcp"]["status"]) == ("ssh:ms/ms1", "pass")
    assert vantages["ssh:ms/ms1"]["state"] == "ok"

    # One SSH connection per vantage: kvm01's carries its own probes and both system VMs' hops; the MS's
    # serves the management tier and both zones.
    after = logins(cloud)
    assert {node: after[node] - before[node] for node in after} == {"kvm01": 1, "ssvm": 1, "cpvm": 1, "vmssvm": 1, "ms": 1}


def test_jump_host_carries_the_connections_to_hosts_and_vmware_system_vms(cli, cloud):
    before = logins(cloud)
    document = audit(cli, cloud, "--jump-host", f"root@{cloud.ip['ms']}").json()
    by_id = flows(document)
    assert (by_id["F09:s-5-VM->ms1:8250/tcp"]["vantage"], by_id["F09:s-5-VM->ms1:8250/tcp"]["status"]) == ("ssh:systemvm/s-5-VM", "pass")
    assert by_id["F08:kvm01->ms1:8250/tcp"]["observed"] == "timeout"
    after = logins(cloud)
    # One login to ms for the whole run, though it goes zone by zone (east: kvm01; west: the VMware SSVM):
    # the jump host is also the MS vantage.
    assert {node: after[node] - before[node] for node in after} == {"kvm01": 1, "ssvm": 1, "cpvm": 1, "vmssvm": 1, "ms": 1}
    # The jump host (ms) is where the host and the VMware SSVM saw the connection come from.
    for node in ("kvm01", "vmssvm"):
        assert f" from {cloud.ip['ms']} " in cloud.sshds[node].logins()[-1]


def _another_key(cloud):
    path = cloud.workdir / "stranger_id"
    if not path.exists():
        sshd.make_key(str(path))
    return str(path)


def _empty_known_hosts(cloud):
    path = cloud.workdir / "empty_known_hosts"
    path.write_text("")
    return str(path)


@pytest.mark.parametrize(("options", "who", "reason"), [
    (lambda c: ["--systemvm-key", "/root/.ssh/absent"], "vms",
     "ssh:systemvm/s-1-VM unusable: key missing: /root/.ssh/absent does not exist on kvm01"),
    (lambda c: ["--systemvm-key", "/root/.ssh/not-the-cloud-key"], "vms",
     "ssh:systemvm/s-1-VM denied: auth refused by root@169.254.1.1:3922 from kvm01"),
    (lambda c: ["--ssh-key", _another_key(c)], "host", "ssh:host/kvm01 denied: auth refused by root@"),
    (lambda c: ["--ssh-key", str(c.workdir / "no-such-key")], "host", "ssh:host/kvm01 unusable: key missing: "),
    (lambda c: ["--ssh-known-hosts", _empty_known_hosts(c)], "host", "ssh:host/kvm01 denied: host key of root@"),
], ids=["systemvm-key-missing", "systemvm-auth-refused", "host-auth-refused", "host-key-missing", "host-key-untrusted"])
def test_a_vantage_csaudit_cannot_use_leaves_its_flows_unverified_with_the_reason(cli, cloud, options, who, reason):
    document = audit(cli, cloud, *options(cloud)).json()
    by_id = flows(document)
    ssvm_flow = by_id["F23:s-1-VM->nfs-east:2049/tcp"]
    assert ssvm_flow["status"] == "unverified" and ssvm_flow["vantage"] is None
    if who == "vms":
        assert ssvm_flow["reason"] == reason or ssvm_flow["reason"].startswith(reason)
        assert by_id["F08:kvm01->ms1:8250/tcp"]["observed"] == "timeout"  # the host itself was reached
    else:
        host_flow = by_id["F08:kvm01->ms1:8250/tcp"]
        assert host_flow["status"] == "unverified" and host_flow["reason"].startswith(reason)
        assert ssvm_flow["reason"].startswith("ssh:systemvm/s-1-VM not-run: only its host kvm01 can reach it")
    # Nothing of kvm01 or of its VMs is failed for a vantage problem, and refusal is no API disagreement;
    # where kvm01 itself was reached, its agent's port dropped by the MS is (agent-up-unconnected).
    mine = [f for f in document["flows"] if f["source"]["name"] in ("kvm01", "s-1-VM", "v-2-VM")]
    assert all(f["status"] != "fail" for f in mine if f["vantage"] is None)
    assert [(f["kind"], f["object"]["name"]) for f in document["findings"] if f["object"]["name"] in ("kvm01", "s-1-VM", "v-2-VM")] \
        == ([("agent-up-unconnected", "kvm01")] if who == "vms" else [])
    assert by_id["F09:s-5-VM->ms1:8250/tcp"]["status"] == "pass"  # other vantages go on


def test_no_remote_and_dry_run_open_no_ssh_connection(cli, cloud):
    before = logins(cloud)
    document = audit(cli, cloud, "--no-remote").json()
    assert flows(document)["F08:kvm01->ms1:8250/tcp"]["reason"] == f"no vantage for host kvm01 ({cloud.ip['kvm01']})"
    assert [v["name"] for v in document["vantages"]] == ["local"]
    plan = cli("run", "--inventory", str(cloud.inventory_file), "--dry-run", "--vmware-systemvm-key", cloud.ms_key)
    assert plan.exit_code == 0
    assert "ssh:host/kvm01" in plan.stdout and "ssh:systemvm/s-1-VM" in plan.stdout and "ssh:systemvm/s-5-VM" in plan.stdout
    assert logins(cloud) == before


def test_a_jump_connection_lost_between_zones_is_opened_again(cloud):
    """The run keeps its jump-host connection from zone to zone; if the jump host dropped it in
    between, the next zone logs in again instead of failing its vantages."""
    from csaudit.cli.arguments import build_parser, run_request
    from csaudit.collect.saved import load_inventory
    from csaudit.pipeline import vantages
    from csaudit.plan.catalogue import load_catalogue
    from csaudit.plan.derive import audit_units, derive_unit_flows
    from csaudit.vantage import run_vantages

    args = build_parser().parse_args(
        ["run", "--inventory", str(cloud.inventory_file), "--timeout", "1", "--ssh-timeout", "2", "--ssh-user", "root",
         "--ssh-key", cloud.client_key, "--ssh-known-hosts", str(cloud.known_hosts), "--vmware-systemvm-key", cloud.ms_key,
         "--jump-host", f"root@{cloud.ip['ms']}"])
    request = run_request(args)
    inventory = load_inventory(str(cloud.inventory_file))
    registry = vantages(inventory, request.remote)
    rules = tuple(load_catalogue())
    before = logins(cloud)
    try:
        for zone_id, part in audit_units(inventory)[1:]:  # east, then west
            run = run_vantages(derive_unit_flows(rules, part, zone_id), registry, request.probe)
            assert all(s.state == "ok" for s in run.vantages if s.name in ("ssh:host/kvm01", "ssh:systemvm/s-5-VM"))
            for opened in registry[0]._kept._open.values():
                opened.result().close()  # the jump host drops the connection
    finally:
        for vantage in registry:
            vantage.close()
    assert logins(cloud)["ms"] - before["ms"] == 2
