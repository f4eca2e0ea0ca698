"""Coverage where operators really run csaudit, in the realistic test cloud (tests/netns_cloud.py): network
namespaces with segments, a router and host firewalls (nft), real sshd on the MSs, hosts, system VMs and an
outside host, the services each port really has, and six planted faults.

csaudit runs as a program inside the cloud: from the workstation namespace (which owns none of the cloud's
addresses) with SSH to the MSs, hosts and the outside host; and from ms1 with nothing but ms1's own keys. Each
time: every planted fault is a failure seen from its true source, no other flow fails or errs, every verdict
comes from the flow's own source, the flows no vantage can judge stay unverified with their reason (from the
workstation: all but those, at least 95%), and every vantage costs one SSH login.

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
    # ms1's firewall opens 8096 to the management network; the router keeps the workstation out (its D01 passes)
    "integration-open": {"D01:ms2->ms1:8096/tcp": ("ssh:ms/ms2", "open"),
                         "D01:kvm01->ms1:8096/tcp": ("ssh:host/kvm01", "open"),
                         "D01:kvm02->ms1:8096/tcp": ("ssh:host/kvm02", "open"),
                         "D01:esxi01->ms1:8096/tcp": ("ssh:host/esxi01", "open")},
    # 5900 answers RFB; the other sampled ports of the range are dropped
    "vnc-partly-open": {"F34:v-2-VM->kvm01:5900-6100/tcp": ("ssh:systemvm/v-2-VM", "timeout")},
    "agent-published": {"D02:outside->ms1:8250/tcp": (f"ssh:outside/{OUTSIDE}", "open")},
    # the VMware SSVM opens only to the MS key: reached through an MS session, or from an MS itself
    "vcenter-dropped": {"F27:s-5-VM->vcenter-west:443/tcp": ("ssh:systemvm/s-5-VM", "timeout")},
}
# What no vantage can judge, and why: the only flows a run with every vantage may leave unverified.
NO_VANTAGE_CAN_JUDGE = {
    # qemu listens on the migration range only during a migration: a connect cannot tell a firewall from an idle port
    "F41:kvm01->kvm02:49152-49216/tcp": "not-judgeable",
    "F41:kvm02->kvm01:49152-49216/tcp": "not-judgeable",
    # the CPVM has bash and no python3: nothing there can send a DNS query over UDP (its TCP twin is verified)
    "F30:v-2-VM->east internaldns1:53/udp": "vantage-unavailable",
}
COVERAGE_AT_LEAST = 0.95
SYSTEM_VM_ROLES = ("ssvm", "cpvm", "vr")


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


class Run:
    """One csaudit run in a machine of the cloud: its JSON report and the SSH logins each sshd saw meanwhile."""

    def __init__(self, cloud, machine: str, *options: str):
        before = cloud.logins()
        done = cloud.csaudit(machine, "run", "--inventory", str(cloud.inventory_file), *PROBE_OPTIONS, *options)
        after = cloud.logins()
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        self.document = json.loads(done.stdout)
        self.flows = {flow["id"]: flow for flow in self.document["flows"]}
        self.logins = {machine: after[machine] - before[machine] for machine in after}
        self.last_login = {machine: (server.logins() or [""])[-1] for machine, server in cloud.sshds.items()}

    def seen(self, fid: str):
        flow = self.flows.get(fid)
        return (flow["status"], flow["vantage"], flow["observed"]) if flow else "no such flow"

    def unverified(self) -> dict[str, str]:
        return {fid: f.get("gap") for fid, f in self.flows.items() if f["status"] == "unverified"}


@pytest.fixture(scope="module")
def from_workstation(cloud, settings_file):
    # The workstation has no MS key: the VMware SSVM can be reached only from inside an MS session.
    assert [p for p in MS_SYSTEMVM_KEYS if os.path.exists(os.path.expanduser(p))] == [], "this machine holds an MS key"
    return Run(cloud, "ws", "--ssh-settings", str(settings_file), "--outside-host", f"root@{OUTSIDE}")


@pytest.fixture(scope="module")
def from_ms1(cloud):
    """csaudit on ms1 as its root: no --ssh-settings, no key option. ms1's own flows are probed locally; its peer,
    the hosts and the outside host over SSH with ms1's key; the VMware SSVM with the MS key at its default path."""
    return Run(cloud, "ms1", "--outside-host", f"root@{OUTSIDE}")


def planted(*leave_out: str) -> dict[str, tuple[str, str]]:
    return {fid: seen for flows in FAULTS.values() for fid, seen in flows.items() if fid not in leave_out}


def true_source(flow: dict, here: str) -> str:
    """The vantage that stands for a flow's source: the machine itself, over SSH, unless csaudit runs there."""
    source = flow["source"]
    if source["role"] == "user" or source["name"] == here:
        return "local"
    if source["role"] == "outside":
        return f"ssh:outside/{OUTSIDE}"
    kind = "systemvm" if source["role"] in SYSTEM_VM_ROLES else source["role"]
    return f"ssh:{kind}/{source['name']}"


def false_verdicts(run: Run, faults: dict, may_stay_unverified) -> dict:
    """Every flow that is neither planted nor passes, unless it may stay unverified (with a reason)."""
    return {fid: (f["status"], f.get("gap"), f["reason"]) for fid, f in run.flows.items()
            if fid not in faults and f["status"] != "pass"
            and not (f["status"] == "unverified" and f["reason"] and may_stay_unverified(f))}


# ---------------------------------------------------------------- from the workstation, with SSH to every vantage

def test_from_the_workstation_every_planted_fault_is_found_from_its_true_source(from_workstation):
    faults = planted()
    assert {fid: from_workstation.seen(fid) for fid in faults} == \
        {fid: ("fail", vantage, observed) for fid, (vantage, observed) in faults.items()}
    flows = from_workstation.flows
    # The workstation's own D01 passes: the router keeps it away from 8096, which only the peers and hosts reach.
    assert from_workstation.seen("D01:this machine->ms1:8096/tcp")[:2] == ("pass", "local")
    assert from_workstation.seen("D02:outside->ms2:8250/tcp")[0] == "pass"  # the router publishes ms1's agent port only
    assert from_workstation.seen("F34:v-2-VM->kvm02:5900-6100/tcp")[0] == "pass"  # kvm02 opens the whole range
    # the spread sample, and 5901: a console listening on kvm01 (csaudit read it there, over kvm01's session)
    assert [(p["port"], p["observed"]) for p in flows["F34:v-2-VM->kvm01:5900-6100/tcp"]["sampled_ports"]] == [
        (5900, "open"), (5901, "open"), (5950, "timeout"), (6000, "timeout"), (6050, "timeout"), (6100, "timeout")]
    assert flows["F34:v-2-VM->kvm01:5900-6100/tcp"]["service"] == "VNC"  # what answers 5900, read under bash


def test_from_the_workstation_no_false_verdict_and_every_verdict_from_the_flows_source(from_workstation):
    assert false_verdicts(from_workstation, planted(), lambda f: NO_VANTAGE_CAN_JUDGE.get(f["id"]) == f.get("gap")) == {}
    assert {fid: f["vantage"] for fid, f in from_workstation.flows.items() if f["vantage"] != true_source(f, "ws")
            and f["status"] != "unverified"} == {}


def test_from_the_workstation_all_but_what_no_vantage_can_judge_is_verified(from_workstation):
    coverage = from_workstation.document["summary"]["coverage"]
    assert from_workstation.unverified() == NO_VANTAGE_CAN_JUDGE
    assert coverage["flows"] == len(from_workstation.flows)
    assert coverage["verified"] == coverage["flows"] - len(NO_VANTAGE_CAN_JUDGE)
    assert coverage["verified"] / coverage["flows"] >= COVERAGE_AT_LEAST, coverage
    assert coverage["unverified"] == {"not-judgeable": 2, "vantage-unavailable": 1}


def test_from_the_workstation_one_ssh_login_per_vantage(from_workstation):
    states = {v["name"]: v["state"] for v in from_workstation.document["vantages"]}
    assert states == dict.fromkeys(
        ("ssh:ms/ms1", "ssh:ms/ms2", "ssh:host/kvm01", "ssh:host/kvm02", "ssh:host/esxi01", f"ssh:outside/{OUTSIDE}",
         "ssh:systemvm/s-1-VM", "ssh:systemvm/v-2-VM", "ssh:systemvm/r-3-VM", "ssh:systemvm/s-5-VM", "local"), "ok")
    # One login each, though the run goes zone by zone; the system VMs' sessions ride on their host's (KVM) or an
    # MS's (VMware: the workstation cannot reach its 3922, and holds no MS key) login.
    assert from_workstation.logins == dict.fromkeys(from_workstation.logins, 1)
    assert any(f" from {ADDRESS[ms]} " in from_workstation.last_login["s-5-VM"] for ms in ("ms1", "ms2"))


# ---------------------------------------------------------------- from ms1, with nothing but its own keys

def ms1_may_leave_unverified(flow: dict) -> bool:
    """ESXi is no vantage without settings (csaudit asks SSH of ESXi only when told). D01 from this machine to ms1
    is ms1's own admin tooling reaching its own integration API, which is allowed: no verdict to give."""
    esxi = flow["source"]["name"] == "esxi01" and flow.get("gap") == "no-vantage"
    return esxi or flow["id"] == "D01:this machine->ms1:8096/tcp" or NO_VANTAGE_CAN_JUDGE.get(flow["id"]) == flow.get("gap")


def test_from_an_ms_with_only_its_own_keys_the_same_faults_are_found(from_ms1):
    faults = planted("D01:esxi01->ms1:8096/tcp")  # ESXi is no vantage from there
    assert {fid: from_ms1.seen(fid) for fid in faults} == \
        {fid: ("fail", vantage, observed) for fid, (vantage, observed) in faults.items()}
    assert from_ms1.seen("F03:ms1->ms1:8096/tcp")[:2] == ("pass", "local")  # ms1's own tooling reaches its integration API
    assert f" from {ADDRESS['ms1']} " in from_ms1.last_login["s-5-VM"]  # ms1 opened 3922 itself, with its key


def test_from_an_ms_no_false_verdict_and_every_verdict_from_the_flows_source(from_ms1):
    assert false_verdicts(from_ms1, planted(), ms1_may_leave_unverified) == {}
    assert {fid: f["vantage"] for fid, f in from_ms1.flows.items() if f["vantage"] != true_source(f, "ms1")
            and f["status"] != "unverified"} == {}
    assert set(from_ms1.unverified()) >= set(NO_VANTAGE_CAN_JUDGE)


def test_from_an_ms_one_ssh_login_per_vantage(from_ms1):
    # csaudit is on ms1 (no login there); ESXi is not asked
    assert from_ms1.logins == {**dict.fromkeys(from_ms1.logins, 1), "ms1": 0, "esxi01": 0}


# ---------------------------------------------------------------- without an outside vantage; the plan

def test_without_an_outside_vantage_the_outside_deny_rules_stay_unverified_and_say_so(cloud):
    run = Run(cloud, "ws", "--ssh-user", "root", "--ssh-key", str(cloud.operator_key), "--ssh-known-hosts", str(cloud.known_hosts))
    outside = [f for f in run.document["flows"] if f["source"]["role"] == "outside"]
    assert {f["rule"] for f in outside} == {"D01", "D02", "D03", "D04", "D05", "D06", "D08", "D11", "D12", "D13"}
    assert {(f["status"], f["gap"]) for f in outside} == {("unverified", "needs-outside")}
    assert run.document["summary"]["coverage"]["unverified"]["needs-outside"] == len(outside)
    # the other faults are still found, from the same vantages (ESXi is not asked without settings)
    faults = planted("D02:outside->ms1:8250/tcp", "D01:esxi01->ms1:8096/tcp")
    assert {fid: run.seen(fid) for fid in faults} == {fid: ("fail", vantage, observed) for fid, (vantage, observed) in faults.items()}


def test_the_plan_names_every_vantage_and_sends_nothing(cloud, settings_file):
    before = cloud.logins()
    done = cloud.csaudit("ws", "run", "--inventory", str(cloud.inventory_file), "--dry-run",
                         "--ssh-settings", str(settings_file), "--outside-host", f"root@{OUTSIDE}")
    assert done.returncode == 0, done.stderr
    for vantage in ("ssh:ms/ms1", "ssh:ms/ms2", f"ssh:outside/{OUTSIDE}", "ssh:host/esxi01", "ssh:systemvm/s-5-VM"):
        assert vantage in done.stdout
    assert cloud.logins() == before
