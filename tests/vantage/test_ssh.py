"""SSH vantages without root: settings, planning, real connection failures on loopback, the API
cross-check and how the report shows vantages and findings."""

import dataclasses
import json
import os
import socket
import time

import pytest

from csaudit.collect.saved import inventory_to_dict
from csaudit.judge.crosscheck import cross_check
from csaudit.judge.verdict import judge
from csaudit.model.errors import ConfigError
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.inventory import Cluster, Host, Inventory, ManagementServer, NamedService, Router, SystemVm, Zone
from csaudit.model.probes import Observation, ProbeOptions, ProbeTarget, VantageState
from csaudit.pipeline import vantages
from csaudit.report.document import render_table, report_document
from csaudit.vantage.local import LocalVantage
from csaudit.vantage.ssh import SshVantages
from csaudit.vantage.ssh_settings import RemoteSettings, load_settings_file
from tests.conftest import free_port

# Every address is loopback, per process (parallel runs never share one): these inventories are also
# run for real. The link-local control IPs are played by NET.2xx.
NET = f"127.77.{os.getpid() % 250}"


def _inventory(host_address=f"{NET}.21", host_state="Up", vm_state="Running"):
    return Inventory(
        endpoint=None, api_mode=None, version=None,
        zones=(Zone("z1", "east"),),
        clusters=(Cluster("c1", "kvm", "z1", None, "KVM"), Cluster("c2", "sim", "z1", None, "Simulator")),
        hosts=(Host("h1", "kvm01", "z1", None, "c1", "KVM", host_address, host_state),
               Host("h9", "sim01", "z1", None, "c2", "Simulator", f"{NET}.29", "Up")),
        management_servers=(ManagementServer("m1", "ms1", f"{NET}.10", "serviceip", "Up"),),
        system_vms=(SystemVm("s1", "s-1-VM", "ssvm", "z1", "h1", "KVM", f"{NET}.101", f"{NET}.201", None, vm_state, "Up"),
                    SystemVm("s5", "s-5-VM", "ssvm", "z1", "h5", "VMware", f"{NET}.105", None, None, "Running", "Up"),
                    SystemVm("s6", "s-6-VM", "ssvm", "z1", "h9", "Simulator", f"{NET}.106", None, None, "Running", "Up"),
                    SystemVm("s7", "s-7-VM", "ssvm", "z1", "gone", "KVM", f"{NET}.107", f"{NET}.207", None, "Running", "Up")),
        routers=(Router("r3", "r-3-VM", "z1", "h1", "KVM", f"{NET}.203", None, None, "Running"),),
        settings={"port": "8250"},
    )


def _flow(source_role, source_name, source_address, port=8250, protocol="tcp", target_address=f"{NET}.10", expect="open"):
    return Flow(f"X:{source_name}:{port}/{protocol}", "X", "test", "east", Endpoint(source_role, source_name, source_address),
                Endpoint("ms", "ms1", target_address), protocol, port, None, expect, "tcp", "test")


# ---------------------------------------------------------------- planning: who stands for which source
def test_the_usage_server_on_an_ms_probes_from_that_ms():
    inventory = dataclasses.replace(_inventory(), services=(
        NamedService("usage", "usage server ms1", f"{NET}.10", None, None, "listUsageServerMetrics"),
        NamedService("usage", "usage server elsewhere", f"{NET}.99", None, None, "listUsageServerMetrics")))
    fleet = SshVantages(inventory, RemoteSettings(), owns=lambda address: False)
    assert fleet.plan(_flow("usage", "usage server ms1", f"{NET}.10", 3306, target_address=f"{NET}.20"),
                      ProbeOptions()).via == "ssh:ms/ms1"
    assert fleet.plan(_flow("usage", "usage server elsewhere", f"{NET}.99", 3306), ProbeOptions()) == ""  # not an MS: no path


def test_each_source_gets_its_own_remote_vantage_or_a_reason():
    fleet = SshVantages(_inventory(), RemoteSettings(), owns=lambda address: False)
    options = ProbeOptions()
    assert fleet.plan(_flow("host", "kvm01", f"{NET}.21"), options).via == "ssh:host/kvm01"
    assert fleet.plan(_flow("ssvm", "s-1-VM", f"{NET}.101"), options).via == "ssh:systemvm/s-1-VM"
    assert fleet.plan(_flow("vr", "r-3-VM", f"{NET}.203"), options).via == "ssh:systemvm/r-3-VM"
    assert fleet.plan(_flow("ssvm", "s-6-VM", f"{NET}.106"), options) == \
        "no SSH vantage: ssvm s-6-VM runs on the CloudStack simulator, which has no SSH"
    assert "runs on no host csaudit knows" in fleet.plan(_flow("ssvm", "s-7-VM", f"{NET}.107"), options)
    # A management server is a vantage of its own; VMware system VMs are reached from inside its session
    # (no MS key on this machine), with the key that stays on the MS.
    assert fleet.plan(_flow("ms", "ms1", f"{NET}.10", target_address=f"{NET}.20"), options).via == "ssh:ms/ms1"
    assert fleet.plan(_flow("ssvm", "s-5-VM", f"{NET}.105"), options).via == "ssh:systemvm/s-5-VM"
    vmware = fleet._remotes[("ssvm", "s-5-VM")]
    assert (vmware.kind, vmware.host_label, vmware.hop_address) == ("hop", "ssh:ms/ms1", f"{NET}.105")
    assert vmware.hop_keys[:2] == ("~cloud/.ssh/id_rsa", "/var/cloudstack/management/.ssh/id_rsa")
    # Run on that MS (it owns the address): its flows are local, and with no key here nothing reaches s-5-VM.
    on_ms = SshVantages(_inventory(), RemoteSettings(), owns=lambda address: address == f"{NET}.10")
    assert on_ms.plan(_flow("ms", "ms1", f"{NET}.10", target_address=f"{NET}.20"), options) == ""
    assert "key missing: no management-server key for system VMs on this machine" in \
        on_ms.plan(_flow("ssvm", "s-5-VM", f"{NET}.105"), options)
    # The outside vantage takes the flows whose source is "outside", once it is named.
    outside = _flow("outside", "outside", None, expect="closed")
    assert fleet.plan(outside, options) == ""  # the local vantage says what would verify it
    named = SshVantages(_inventory(), RemoteSettings(outside_host="probe@[::1]:2222"))
    target = named.plan(outside, options)
    assert target.via == "ssh:outside/::1" and named._remotes[("outside", "outside")].access.describe() == "probe@::1:2222"
    # XenServer: like KVM, from inside dom0's session; the key path is the one on dom0.
    xen = Inventory(None, None, None, hosts=(Host("x1", "xen01", "z1", None, None, "XenServer", f"{NET}.31", "Up"),),
                    routers=(Router("r4", "r-4-VM", "z1", "x1", "XenServer", f"{NET}.204", None, None, "Running"),))
    xen_fleet = SshVantages(xen, RemoteSettings(systemvm_key="/root/.ssh/other.cloud"))
    hop = xen_fleet._remotes[("vr", "r-4-VM")]
    assert (hop.kind, hop.host_label, hop.hop_address, hop.hop_keys) == ("hop", "ssh:host/xen01", f"{NET}.204", ("/root/.ssh/other.cloud",))
    # Not a remote source, or nothing a connect can judge: left to the local vantage without comment.
    assert fleet.plan(_flow("user", "this machine", None), options) == ""
    assert fleet.plan(_flow("host", "kvm01", f"{NET}.21", protocol="udp"), options) == ""


def test_local_wins_for_an_address_it_owns_unless_the_settings_name_the_object(tmp_path):
    flow = _flow("host", "kvm01", f"{NET}.21")
    owned = SshVantages(_inventory(), RemoteSettings(), owns=lambda address: True)
    assert owned.plan(flow, ProbeOptions()) == ""
    named = tmp_path / "ssh.toml"
    named.write_text('[host.kvm01]\nport = 2222\n')
    settings = RemoteSettings(file=load_settings_file(str(named)))
    assert SshVantages(_inventory(), settings, owns=lambda address: True).plan(flow, ProbeOptions()).via == "ssh:host/kvm01"
    # The registry: SSH first, then local, and only local when remote probing is off.
    assert [v.name for v in vantages(_inventory(), settings)] == ["ssh", "local"]
    assert [v.name for v in vantages(_inventory(), RemoteSettings(enabled=False))] == ["local"]


def test_settings_precedence_per_hypervisor_and_per_host(tmp_path):
    path = tmp_path / "ssh.toml"
    path.write_text(
        '[defaults]\nuser = "audit"\nkey = "~/keys/all"\nport = 22\n'
        '[KVM]\nuser = "root"\nsystemvm_key = "/root/.ssh/id_rsa.cloud.alt"\n'
        '[host.kvm01]\naddress = "10.0.0.99"\nport = 2222\n'
        '[VMware]\nsystemvm_key = "/srv/ms_key"\njump_host = "admin@ms1:2200"\n')
    settings = RemoteSettings(file=load_settings_file(str(path)))
    access = settings.host_access("kvm01", "10.0.0.21", "KVM")
    assert (access.address, access.port, access.user, access.key) == ("10.0.0.99", 2222, "root", os.path.expanduser("~/keys/all"))
    assert settings.host_access("kvm02", "10.0.0.22", "KVM").port == 22
    assert settings.host_access("xen01", "10.0.0.31", "XenServer").user == "audit"
    assert settings.systemvm_key_on_host("s-1-VM", "kvm") == "/root/.ssh/id_rsa.cloud.alt"
    direct = settings.direct_access("s-5-VM", "10.0.1.5", "VMware")
    assert (direct.address, direct.port, direct.user, direct.key, direct.jump_host, direct.check_host_key) == \
        ("10.0.1.5", 3922, "root", "/srv/ms_key", "admin@ms1:2200", False)
    jump = settings.jump_access("admin@ms1:2200")
    assert (jump.user, jump.address, jump.port) == ("admin", "ms1", 2200)
    # Options beat the file.
    cli = RemoteSettings(user="ops", port=2022, file=settings.file)
    assert (cli.host_access("kvm01", "10.0.0.21", "KVM").user, cli.host_access("kvm01", "10.0.0.21", "KVM").port) == ("ops", 2022)


def test_settings_for_management_servers_and_the_outside_vantage(tmp_path):
    path = tmp_path / "ssh.toml"
    path.write_text(
        '[defaults]\nuser = "audit"\nkey = "/keys/all"\n'
        '[ms]\nuser = "cloudadmin"\nsystemvm_key = "/var/lib/cloudstack/management/.ssh/id_rsa"\n'
        '[ms.ms2]\naddress = "10.0.0.12"\nport = 2222\nsystemvm_key = "/srv/ms2-key"\n'
        '[outside]\nuser = "probe"\nknown_hosts = "/keys/outside_known_hosts"\n')
    settings = RemoteSettings(file=load_settings_file(str(path)), outside_host="edge.example.org:2200")
    ms1, ms2 = settings.ms_access("ms1", "10.0.0.11"), settings.ms_access("ms2", "10.9.9.9")
    assert (ms1.address, ms1.port, ms1.user, ms1.key) == ("10.0.0.11", None, "cloudadmin", "/keys/all")
    assert (ms2.address, ms2.port, ms2.user) == ("10.0.0.12", 2222, "cloudadmin")
    assert settings.systemvm_keys_on_ms("ms1") == ("/var/lib/cloudstack/management/.ssh/id_rsa",)
    assert settings.systemvm_keys_on_ms("ms2") == ("/srv/ms2-key",)
    assert settings.named("ms", "ms2") and not settings.named("ms", "ms1")
    assert "no address known for management server ms3" in settings.ms_access("ms3", None)
    outside = settings.outside_access()
    assert (outside.address, outside.port, outside.user, outside.known_hosts) == \
        ("edge.example.org", 2200, "probe", "/keys/outside_known_hosts")
    # USER@ in --outside-host beats [outside] and --ssh-user; without the option there is no outside vantage.
    assert RemoteSettings(user="ops", outside_host="me@edge").outside_access().user == "me"
    assert RemoteSettings().outside_access() is None
    assert RemoteSettings().systemvm_keys_on_ms("ms1")[1] == "/var/cloudstack/management/.ssh/id_rsa"


@pytest.mark.parametrize(("text", "message"), [
    ('[nonsense]\nuser = "x"\n', "unknown section [nonsense]"),
    ('[outside]\nsystemvm_key = "x"\n', "[outside]: unknown key 'systemvm_key'"),
    ('[ms]\naddress = "10.0.0.1"\n', "[ms]: unknown key 'address'"),
    ('[ms.ms1]\npassword = "x"\n', "[ms.ms1]: unknown key 'password'"),
    ('[host]\nuser = "x"\n', "[host.user] must be a table"),
    ('[defaults]\npassword = "x"\n', "unknown key 'password'"),
    ('[defaults]\nport = 70000\n', "port must be a number from 1 to 65535"),
    ('[host.kvm01]\nuser = ""\n', "user must be a non-empty string"),
    ("[defaults\n", "not valid TOML"),
])
def test_settings_file_mistakes_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "ssh.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings_file(str(path))


def test_settings_file_mistake_is_exit_2(cli, tmp_path):
    (tmp_path / "inv.json").write_text(json.dumps(inventory_to_dict(_inventory())))
    (tmp_path / "ssh.toml").write_text("[defaults]\npasword = 'x'\n")
    result = cli("run", "--inventory", str(tmp_path / "inv.json"), "--ssh-settings", str(tmp_path / "ssh.toml"))
    assert result.exit_code == 2 and "unknown key 'pasword'" in result.stderr


# ---------------------------------------------------------------- real connection failures on loopback
def _run_against(cli, tmp_path, port, *extra):
    """kvm01 named in the settings at a loopback address and port, so SSH is tried even though this
    machine owns every 127.x address."""
    (tmp_path / "inv.json").write_text(json.dumps(inventory_to_dict(_inventory())))
    (tmp_path / "ssh.toml").write_text(f'[host.kvm01]\nport = {port}\n[systemvm.s-1-VM]\n')
    result = cli("run", "--inventory", str(tmp_path / "inv.json"), "--ssh-settings", str(tmp_path / "ssh.toml"),
                 "--format", "json", "--timeout", "0.5", *extra)
    assert all(f["target"]["address"].startswith(f"{NET}.") for f in result.json()["flows"] if f["observed"])
    return result


def test_a_host_without_sshd_is_unreachable_unverified_and_a_finding(cli, tmp_path):
    port = free_port(f"{NET}.21")
    document = _run_against(cli, tmp_path, port, "--ssh-timeout", "2").json()
    host_flows = [f for f in document["flows"] if f["source"]["name"] == "kvm01" and f["protocol"] == "tcp"]
    assert host_flows and all(f["status"] == "unverified" for f in host_flows)
    assert {f["reason"] for f in host_flows} == {
        f"ssh:host/kvm01 unreachable: host unreachable: {NET}.21:{port} refused the connection (no sshd listening?)"}
    ssvm = next(f for f in document["flows"] if f["source"]["name"] == "s-1-VM" and f["protocol"] == "tcp")
    assert ssvm["reason"].startswith("ssh:systemvm/s-1-VM not-run: only its host kvm01 can reach it, and ssh:host/kvm01 is unreachable")
    assert {f["gap"] for f in [*host_flows, ssvm]} == {"vantage-unavailable"}  # coverage counts them so
    assert document["summary"]["coverage"]["unverified"]["vantage-unavailable"] >= len(host_flows) + 1
    kvm01 = [f["kind"] for f in document["findings"] if f["object"]["name"] == "kvm01"]
    assert kvm01 == ["api-up-unreachable"]


def test_a_host_that_never_speaks_ssh_times_out_within_the_ssh_timeout(cli, tmp_path, listener):
    port = listener(f"{NET}.21")  # accepts (kernel backlog), never sends a banner
    began = time.monotonic()
    document = _run_against(cli, tmp_path, port, "--ssh-timeout", "1").json()
    assert time.monotonic() - began < 20
    vantage = next(v for v in document["vantages"] if v["name"] == "ssh:host/kvm01")
    assert vantage["state"] == "unreachable" and vantage["reason"] == f"host unreachable: no answer from {NET}.21:{port} within 1 s"


def test_the_deadline_stops_remote_vantages_and_keeps_the_report(cli, tmp_path, listener):
    port = listener(f"{NET}.21")
    began = time.monotonic()
    result = _run_against(cli, tmp_path, port, "--ssh-timeout", "30", "--deadline", "1")
    assert time.monotonic() - began < 15
    flow = next(f for f in result.json()["flows"] if f["source"]["name"] == "kvm01" and f["protocol"] == "tcp")
    assert flow["status"] == "unverified" and flow["reason"] == "the --deadline passed before this probe ran"


def test_a_missing_client_key_is_reported_before_connecting(cli, tmp_path):
    with socket.socket() as never_contacted:
        never_contacted.bind((f"{NET}.21", 0))
        never_contacted.listen(1)
        port = never_contacted.getsockname()[1]
        document = _run_against(cli, tmp_path, port, "--ssh-key", str(tmp_path / "absent")).json()
        never_contacted.setblocking(False)
        with pytest.raises(BlockingIOError):
            never_contacted.accept()
    vantage = next(v for v in document["vantages"] if v["name"] == "ssh:host/kvm01")
    assert (vantage["state"], vantage["reason"]) == ("unusable", f"key missing: {tmp_path / 'absent'} does not exist on this machine")
    # csaudit could not try: that is no disagreement with the API (other probes may still show one).
    assert "api-up-unreachable" not in {f["kind"] for f in document["findings"]}


# ---------------------------------------------------------------- cross-check and report
def _result(flow, state, vantage="local"):
    return judge(flow, Observation(state, "r"), vantage)


def test_cross_check_findings():
    inventory = _inventory(host_state="Up", vm_state="Stopped")
    to_ssvm = Flow("F18:kvm01->s-1-VM:3922/tcp", "F18", "t", "east", Endpoint("host", "kvm01", f"{NET}.21"),
                   Endpoint("ssvm", "s-1-VM", f"{NET}.201"), "tcp", 3922, None, "open", "tcp", False, "c")
    results = (_result(to_ssvm, "open", "ssh:host/kvm01"),)
    unreachable = VantageState("ssh:host/kvm01", "unreachable", 0, "host unreachable: x", "host", "kvm01")
    kinds = {(f.kind, f.name) for f in cross_check(inventory, results, (unreachable,))}
    assert kinds == {("api-up-unreachable", "kvm01"), ("api-down-answers", "s-1-VM")}
    denied = VantageState("ssh:host/kvm01", "denied", 0, "auth refused", "host", "kvm01")
    assert {(f.kind, f.name) for f in cross_check(inventory, results, (denied,))} == {("api-down-answers", "s-1-VM")}
    # Down in the API, but csaudit logged in: a finding even without an open port.
    down = _inventory(host_state="Disconnected")
    ok = VantageState("ssh:host/kvm01", "ok", 3, "", "host", "kvm01")
    [finding] = cross_check(down, (), (ok,))
    assert finding.kind == "api-down-answers" and "csaudit logged in to it (ssh:host/kvm01)" in finding.message


def test_cross_check_silent_host_counts_only_flows_that_must_be_open():
    inventory = _inventory()
    to_host = lambda port, expect: Flow(f"T:{port}", "T", "t", "east", Endpoint("user", "this machine", None),  # noqa: E731
                                        Endpoint("host", "kvm01", f"{NET}.21"), "tcp", port, None, expect, "tcp", False, "c")
    only_deny = (_result(to_host(16509, "closed"), "refused"),)
    assert cross_check(inventory, only_deny, ()) == ()
    silent = (_result(to_host(22, "open"), "refused"), _result(to_host(16514, "open"), "timeout"))
    [finding] = cross_check(inventory, silent, ())
    assert finding.kind == "api-up-silent" and "2 probed that must be open" in finding.message
    assert cross_check(inventory, (*silent, _result(to_host(5900, "open"), "open")), ()) == ()


def test_report_shows_vantage_per_flow_a_vantage_summary_and_findings():
    flow = _flow("host", "kvm01", f"{NET}.21")
    results = (_result(flow, "timeout", "ssh:host/kvm01"),)
    states = (VantageState("ssh:host/kvm01", "ok", 1, "", "host", "kvm01", "python3"),
              VantageState("ssh:host/kvm02", "unreachable", 0, "host unreachable: no answer", "host", "kvm02"))
    findings = cross_check(_inventory(), results, states)
    table = render_table(results, vantages=states, findings=findings)
    header = next(line for line in table.splitlines() if line.startswith("flow"))
    assert header.split() == ["flow", "source", "target", "port/proto", "expect", "vantage", "result", "detail"]
    assert "ssh:host/kvm01" in next(line for line in table.splitlines() if line.startswith("X test"))
    assert "== vantages" in table and "ran with python3" in table and "host unreachable: no answer" in table
    assert table.rstrip().splitlines()[-1].startswith("summary: ")
    document = report_document(results, _inventory(), vantages=states, findings=findings)
    assert document["flows"][0]["vantage"] == "ssh:host/kvm01"
    assert document["vantages"][1] == {"name": "ssh:host/kvm02", "state": "unreachable", "probes": 0,
                                       "reason": "host unreachable: no answer", "object": {"role": "host", "name": "kvm02"},
                                       "engine": None}
    assert isinstance(document["findings"], list)


def test_local_vantage_summary_counts_its_probes(listener):
    from csaudit.vantage import run_vantages

    port = listener()
    flow = Flow("U", "F01", "t", None, Endpoint("user", "this machine", None), Endpoint("ms", "ms1", "127.0.0.1"),
                "tcp", port, None, "open", "tcp", False, "c")
    run = run_vantages([flow], [LocalVantage()], ProbeOptions(timeout=1))
    assert run.vantages == (VantageState("local", "ok", 1),)
    assert run.observed["U"][0] == "local" and run.observed["U"][1].state == "open"
    assert ProbeTarget("127.0.0.1", port) in {ProbeTarget("127.0.0.1", port, via=None)}


# ---------------------------------------------------------------- the demo
@pytest.mark.root
def test_demo_shows_remote_vantages_or_says_why_not(cli):
    from csaudit.lab import sshd

    result = cli("demo", "--format", "json")
    assert result.exit_code == 1
    document = result.json()
    states = {v["name"]: v["state"] for v in document["vantages"]}
    if sshd.available() is not None:
        assert list(states) == ["local"] and "Remote vantages: not shown" in result.stderr
        return
    assert "Remote vantages (real OpenSSH sshd on 127.x):" in result.stderr
    assert {name: states.get(name) for name in ("ssh:host/kvm01", "ssh:systemvm/s-1-VM", "ssh:systemvm/v-2-VM",
                                                "ssh:systemvm/r-3-VM", "ssh:systemvm/s-5-VM", "ssh:host/kvm02")} == {
        "ssh:host/kvm01": "ok", "ssh:systemvm/s-1-VM": "ok", "ssh:systemvm/v-2-VM": "ok", "ssh:systemvm/r-3-VM": "ok",
        "ssh:systemvm/s-5-VM": "ok", "ssh:host/kvm02": "unreachable"}
    by_id = {f["id"]: f for f in document["flows"]}
    # Planted faults seen from the true source: the CPVM meets xen01's filtered 443, the VMware SSVM the missing NFS.
    assert (by_id["F35:v-2-VM->xen01:443/tcp"]["vantage"], by_id["F35:v-2-VM->xen01:443/tcp"]["observed"]) == \
        ("ssh:systemvm/v-2-VM", "timeout")
    assert (by_id["F23:s-5-VM->sec-nfs-west:2049/tcp"]["vantage"], by_id["F23:s-5-VM->sec-nfs-west:2049/tcp"]["observed"]) == \
        ("ssh:systemvm/s-5-VM", "refused")
    assert by_id["F18:kvm01->s-1-VM:3922/tcp"]["vantage"] == "ssh:host/kvm01"
    assert ("api-up-unreachable", "kvm02") in {(f["kind"], f["object"]["name"]) for f in document["findings"]}
    assert "finding: the API says host kvm02 is Up" in result.stderr and "NOT FOUND" not in result.stderr


def test_an_esxi_host_is_an_ssh_vantage_only_when_the_settings_name_it(tmp_path):
    """CloudStack needs no SSH to ESXi: csaudit tries none (no 'API says Up but unreachable' for each ESXi),
    unless the operator names the host, or all ESXi hosts, in --ssh-settings."""
    esxi = Inventory(None, None, None, hosts=(Host("e1", "esxi01", "z1", None, None, "VMware", f"{NET}.41", "Up"),))
    flow = _flow("host", "esxi01", f"{NET}.41")
    plan = SshVantages(esxi, RemoteSettings(), owns=lambda address: False).plan(flow, ProbeOptions())
    assert plan == ("no SSH vantage: ESXi host esxi01: CloudStack needs no SSH to ESXi, so csaudit does not try it; "
                    "name it in --ssh-settings ([host.esxi01] or [vmware]) to probe from it")
    for section in ("[host.esxi01]\nuser = \"root\"\n", "[vmware]\nuser = \"root\"\n"):
        path = tmp_path / "ssh.toml"
        path.write_text(section)
        named = SshVantages(esxi, RemoteSettings(file=load_settings_file(str(path))), owns=lambda address: False)
        assert named.plan(flow, ProbeOptions()).via == "ssh:host/esxi01"
