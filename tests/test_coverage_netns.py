"""Coverage where operators really run csaudit, in the realistic test cloud (tests/netns_cloud.py): network
namespaces with segments, a router and host firewalls (nft), real sshd on the MSs, hosts, system VMs and an
outside host, the services each port really has, and planted faults.

csaudit runs as a program inside the cloud: from the workstation namespace (which owns none of the cloud's
addresses) with SSH to the MSs, hosts and the outside host; and from ms1 with nothing but ms1's own keys. Each
time: every planted fault is a failure seen from its true source, no other flow fails or errs, at least 95% of
the flows get a verdict and the others stay unverified only where no vantage can judge them, each with its
reason, and every vantage costs one SSH login.

Needs root, ip and tests.netns_cloud.PROGRAMS (`tests/run` installs them); without them these tests skip and
say why, and under CI (or CSAUDIT_TESTS_REQUIRE_ALL=1) they fail (tests/conftest.py).
"""

import json
import os

import pytest

from csaudit.vantage.ssh_settings import MS_SYSTEMVM_KEYS
from tests.netns_cloud import ADDRESS, PROGRAMS, RealisticCloud

pytestmark = [pytest.mark.netns, pytest.mark.programs(*PROGRAMS)]

OUTSIDE = ADDRESS["outside"]
PROBE_OPTIONS = ("--format", "json", "--timeout", "1", "--ssh-timeout", "3")

# Each planted fault (tests/netns_cloud.py) -> the flows it must fail, with the vantage that sees it and what it sees.
FAULTS = {
    "agent-dropped": {"F08:kvm02->ms2:8250/tcp": ("ssh:host/kvm02", "timeout")},
    "nfs-rejected": {"F23:s-1-VM->nfs-east:2049/tcp": ("ssh:systemvm/s-1-VM", "refused")},
    # ms1's firewall opens 8096 to the management network; the router keeps the workstation out (D01 from it passes)
    "integration-open": {"D01:ms2->ms1:8096/tcp": ("ssh:ms/ms2", "open"),
                         "D01:kvm01->ms1:8096/tcp": ("ssh:host/kvm01", "open"),
                         "D01:kvm02->ms1:8096/tcp": ("ssh:host/kvm02", "open"),
                         "D01:esxi01->ms1:8096/tcp": ("ssh:host/esxi01", "open")},
    # 5900 answers RFB; the other sampled ports of the range are dropped
    "vnc-partly-open": {"F34:v-2-VM->kvm01:5900-6100/tcp": ("ssh:systemvm/v-2-VM", "timeout")},
    "agent-published": {"D02:outside->ms1:8250/tcp": (f"ssh:outside/{OUTSIDE}", "open")},
    # the VMware SSVM is reached only with the MS key: through an MS session, or from an MS itself
    "vcenter-dropped": {"F27:s-5-VM->vcenter-west:443/tcp": ("ssh:systemvm/s-5-VM", "timeout")},
}
# What no vantage can judge, with why: the only flows a full run may leave unverified.
NO_VANTAGE_CAN_JUDGE = {
    # qemu listens on the migration range only during a migration: a connect cannot tell a firewall from an idle port
    "F41:kvm01->kvm02:49152-49216/tcp": "not-judgeable",
    "F41:kvm02->kvm01:49152-49216/tcp": "not-judgeable",
    # the CPVM has bash and no python3: nothing there can send a DNS query over UDP (its TCP twin is verified)
    "F30:v-2-VM->east internaldns1:53/udp": "vantage-unavailable",
}
COVERAGE_AT_LEAST = 0.95


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    built = RealisticCloud(tmp_path_factory.mktemp("realistic-cloud"))
    with built:
        built.inventory_file = built.workdir / "inventory.json"
        built.inventory_file.write_text(json.dumps(built.inventory()))
        yield built
    assert built.leftovers() == []


@pytest.fixture(scope="module")
def settings_file(cloud):
    """The operator's SSH settings: one key and known_hosts for every login; ESXi named (csaudit asks SSH of an
    ESXi host only when told); the MSs keep their system VM key where CloudStack does (the default paths)."""
    path = cloud.workdir / "ssh-settings.toml"
    path.write_text(f'[defaults]\nuser = "root"\nkey = "{cloud.operator_key}"\nknown_hosts = "{cloud.known_hosts}"\n\n'
                    f'[host.esxi01]\naddress = "{ADDRESS["esxi01"]}"\n\n[ms]\n\n[outside]\n')
    return path


def audit(cloud, machine: str, *options: str) -> dict:
    done = cloud.csaudit(machine, "run", "--inventory", str(cloud.inventory_file), *PROBE_OPTIONS, *options)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def by_id(document: dict) -> dict[str, dict]:
    return {flow["id"]: flow for flow in document["flows"]}


def planted(*leave_out: str) -> dict[str, tuple[str, str]]:
    return {fid: seen for fault, flows in FAULTS.items() for fid, seen in flows.items() if fid not in leave_out}


def assert_faults_found_and_nothing_else(document: dict, expected: dict[str, tuple[str, str]], may_stay_unverified) -> None:
    flows = by_id(document)
    # every planted fault, from its true source
    assert {fid: (flows[fid]["status"], flows[fid]["vantage"], flows[fid]["observed"]) if fid in flows else "missing"
            for fid in expected} == {fid: ("fail", vantage, observed) for fid, (vantage, observed) in expected.items()}
    # no false verdict: whatever is not planted passes, or stays unverified where it may, with its reason
    others = {fid: (f["status"], f.get("gap"), f["reason"]) for fid, f in flows.items()
              if fid not in expected and f["status"] != "pass"}
    unexpected = {fid: seen for fid, seen in others.items() if seen[0] != "unverified" or not may_stay_unverified(flows[fid])}
    assert unexpected == {}
    assert all(reason for _, _, reason in others.values())


def assert_coverage(document: dict, at_least: float = COVERAGE_AT_LEAST) -> dict:
    coverage = document["summary"]["coverage"]
    statuses = [f["status"] for f in document["flows"]]
    assert coverage["flows"] == len(statuses)
    assert coverage["verified"] == sum(s in ("pass", "fail", "waived") for s in statuses)
    assert coverage["verified"] / coverage["flows"] >= at_least, coverage
    return coverage


def test_from_the_workstation_every_fault_is_found_from_its_true_source_with_one_login_per_vantage(cloud, settings_file):
    # The workstation has no MS key: the VMware SSVM can be reached only from inside an MS session.
    assert [p for p in MS_SYSTEMVM_KEYS if os.path.exists(os.path.expanduser(p))] == [], "this machine holds an MS key"
    before = cloud.logins()
    document = audit(cloud, "ws", "--ssh-settings", str(settings_file), "--outside-host", f"root@{OUTSIDE}")
    after = cloud.logins()

    assert_faults_found_and_nothing_else(document, planted(),
                                         lambda flow: NO_VANTAGE_CAN_JUDGE.get(flow["id"]) == flow.get("gap"))
    coverage = assert_coverage(document)
    assert coverage["flows"] - coverage["verified"] == len(NO_VANTAGE_CAN_JUDGE)
    flows = by_id(document)
    # The workstation's own D01 passes: the router keeps it away from 8096, which only the peers and hosts reach.
    assert (flows["D01:this machine->ms1:8096/tcp"]["status"], flows["D01:this machine->ms1:8096/tcp"]["vantage"]) == ("pass", "local")
    assert flows["D02:outside->ms2:8250/tcp"]["status"] == "pass"  # the router publishes ms1's agent port only
    assert [p["port"] for p in flows["F34:v-2-VM->kvm01:5900-6100/tcp"]["sampled_ports"]] == [5900, 5950, 6000, 6050, 6100]

    vantages = {v["name"]: v for v in document["vantages"]}
    assert {name: v["state"] for name, v in vantages.items()} == dict.fromkeys(
        ("ssh:ms/ms1", "ssh:ms/ms2", "ssh:host/kvm01", "ssh:host/kvm02", "ssh:host/esxi01", f"ssh:outside/{OUTSIDE}",
         "ssh:systemvm/s-1-VM", "ssh:systemvm/v-2-VM", "ssh:systemvm/r-3-VM", "ssh:systemvm/s-5-VM", "local"), "ok")
    # One login per vantage; the system VMs' sessions ride on their host's (KVM) or an MS's (VMware) login.
    assert {machine: after[machine] - before[machine] for machine in after} == dict.fromkeys(after, 1)
    assert any(f" from {ADDRESS[ms]} " in cloud.sshds["s-5-VM"].logins()[-1] for ms in ("ms1", "ms2"))


def test_from_an_ms_with_only_its_own_keys_the_same_faults_are_found(cloud):
    """csaudit on ms1, as its root: no --ssh-settings, no key option. ms1's own flows are probed locally, its peer,
    the hosts and the outside host over SSH with ms1's key, the VMware SSVM with the MS key at its default path."""
    before = cloud.logins()
    document = audit(cloud, "ms1", "--outside-host", f"root@{OUTSIDE}")
    after = cloud.logins()

    # ESXi is no vantage without settings: its flows stay unverified (no-vantage), its D01 is not seen from there.
    def may_stay_unverified(flow):
        esxi = flow["source"]["name"] == "esxi01" and flow.get("gap") == "no-vantage"
        return esxi or NO_VANTAGE_CAN_JUDGE.get(flow["id"]) == flow.get("gap")

    assert_faults_found_and_nothing_else(document, planted("D01:esxi01->ms1:8096/tcp"), may_stay_unverified)
    flows = by_id(document)
    assert flows["F04:ms1->db:3306/tcp"]["vantage"] == "local" and flows["F04:ms2->db:3306/tcp"]["vantage"] == "ssh:ms/ms2"
    assert flows["F03:ms1->ms1:8096/tcp"]["status"] == "pass"  # the integration API is open to ms1's own tooling
    assert_coverage(document, at_least=0.9)
    logins = {machine: after[machine] - before[machine] for machine in after}
    assert logins == {**dict.fromkeys(after, 1), "ms1": 0, "esxi01": 0}  # csaudit is on ms1; ESXi is not asked
    assert f" from {ADDRESS['ms1']} " in cloud.sshds["s-5-VM"].logins()[-1]  # ms1 opened 3922 itself


def test_without_an_outside_vantage_the_outside_deny_rules_stay_unverified_and_say_so(cloud):
    document = audit(cloud, "ws", "--ssh-user", "root", "--ssh-key", str(cloud.operator_key),
                     "--ssh-known-hosts", str(cloud.known_hosts))
    outside = [f for f in document["flows"] if f["source"]["role"] == "outside"]
    assert {f["rule"] for f in outside} >= {"D01", "D02", "D03", "D04", "D05", "D06", "D08"}
    assert {(f["status"], f.get("gap")) for f in outside} == {("unverified", "needs-outside")}
    assert document["summary"]["coverage"]["unverified"]["needs-outside"] == len(outside)
    # the other faults are still found, from the same vantages
    flows = by_id(document)
    assert {fid: flows[fid]["status"] for fid in planted("D02:outside->ms1:8250/tcp", "D01:esxi01->ms1:8096/tcp")} == \
        dict.fromkeys(planted("D02:outside->ms1:8250/tcp", "D01:esxi01->ms1:8096/tcp"), "fail")


def test_the_plan_names_every_vantage_and_sends_nothing(cloud, settings_file):
    before = cloud.logins()
    done = cloud.csaudit("ws", "run", "--inventory", str(cloud.inventory_file), "--dry-run",
                         "--ssh-settings", str(settings_file), "--outside-host", f"root@{OUTSIDE}")
    assert done.returncode == 0, done.stderr
    for vantage in ("ssh:ms/ms1", "ssh:ms/ms2", f"ssh:outside/{OUTSIDE}", "ssh:host/esxi01", "ssh:systemvm/s-5-VM"):
        assert vantage in done.stdout
    assert cloud.logins() == before
