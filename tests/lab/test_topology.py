"""Topology files: the bundled demo cloud, validation errors, stable ids, relocation, generation."""

import dataclasses
import ipaddress
import re
import uuid
from importlib import resources

import pytest

from csaudit.lab import default_topology, generate_topology, load_topology, parse_topology, topology_to_toml
from csaudit.lab.relocate import relocate
from csaudit.lab.resolved import Inventory
from csaudit.lab.services import planned_services, planted_faults
from csaudit.model.errors import ConfigError


def _objects(topology):
    zones = {zone.name: zone for zone in topology.zones}
    hosts = {h.name: (c, h) for z in topology.zones for c in z.clusters for h in c.hosts}
    vms = {vm.name: vm for z in topology.zones for vm in z.system_vms}
    routers = {r.name: r for z in topology.zones for r in z.routers}
    return zones, hosts, vms, routers


def test_demo_is_the_briefed_cloud():
    demo = default_topology()
    assert demo.version == "4.19.1.0" and demo.default_page_size == 500 and demo.listeners
    assert [(m.name, m.address) for m in demo.management_servers] == [
        ("ms1", "127.42.0.11"), ("ms2", "127.42.0.12")]
    assert demo.database.address == "127.42.0.20"
    assert {k: demo.settings[k] for k in (
        "host", "port", "integration.api.port", "default.page.size", "consoleproxy.sslEnabled",
        "secstorage.ssl.cert.domain", "secstorage.encrypt.copy", "ntp.server.list",
        "control.cidr")} == {
        "host": "127.42.0.11,127.42.0.12", "port": "8250", "integration.api.port": "8096",
        "default.page.size": "500", "consoleproxy.sslEnabled": "false",
        "secstorage.ssl.cert.domain": "", "secstorage.encrypt.copy": "false",
        "ntp.server.list": "127.42.0.123", "control.cidr": "169.254.0.0/16"}

    zones, hosts, vms, routers = _objects(demo)
    east, west = zones["zone-east"], zones["zone-west"]
    assert (east.networktype, east.internaldns1, east.dns1) == ("Advanced", "127.42.1.53", "127.42.1.54")
    assert (west.networktype, west.internaldns1, west.dns1) == ("Advanced", "127.42.2.53", "127.42.2.54")
    assert [(p.name, p.gateway, p.netmask, p.startip, p.endip) for p in east.pods] == [
        ("pod-east-1", "127.42.1.1", "255.255.255.0", "127.42.1.100", "127.42.1.200")]
    assert [(p.name, p.gateway, p.startip, p.endip) for p in west.pods] == [
        ("pod-west-1", "127.42.2.1", "127.42.2.100", "127.42.2.200")]
    assert {name: (c.name, c.hypervisor, h.address) for name, (c, h) in hosts.items()} == {
        "kvm01": ("kvm-cluster-1", "KVM", "127.42.1.21"), "kvm02": ("kvm-cluster-1", "KVM", "127.42.1.22"),
        "xen01": ("xen-cluster-1", "XenServer", "127.42.1.31"),
        "esxi01": ("vmw-cluster-1", "VMware", "127.42.2.21"),
        "esxi02": ("vmw-cluster-1", "VMware", "127.42.2.22")}
    assert hosts["esxi01"][0].vcenter == "127.42.2.10"
    assert {n: (v.type, v.host, v.private, v.linklocal, v.public) for n, v in vms.items()} == {
        "s-1-VM": ("ssvm", "kvm01", "127.42.1.101", "127.42.201.1", "127.42.211.1"),
        "v-2-VM": ("cpvm", "kvm01", "127.42.1.102", "127.42.201.2", "127.42.211.2"),
        "s-5-VM": ("ssvm", "esxi01", "127.42.2.101", None, "127.42.212.5"),
        "v-6-VM": ("cpvm", "esxi01", "127.42.2.102", None, "127.42.212.6")}
    assert {n: (r.host, r.linklocal, r.guest, r.public) for n, r in routers.items()} == {
        "r-3-VM": ("kvm01", "127.42.201.3", "127.42.221.3", "127.42.211.3"),
        "r-4-VM": ("xen01", "127.42.201.4", "127.42.221.4", "127.42.211.4"),
        "r-7-VM": ("esxi01", "127.42.2.107", "127.42.222.7", "127.42.212.7"),
        "r-8-VM": ("esxi02", "127.42.2.108", "127.42.222.8", "127.42.212.8"),
        "r-9-VM": ("kvm01", "127.42.201.9", "127.42.221.9", "127.42.211.9"),
        "r-10-VM": ("kvm01", "127.42.201.10", "127.42.221.10", "127.42.211.10")}
    # One redundant pair: its two routers share tenant-e's guest network; the others are not redundant.
    assert {n: (r.network, r.redundantstate) for n, r in routers.items() if r.redundantstate} == {
        "r-9-VM": ("tenant-e-network", "MASTER"), "r-10-VM": ("tenant-e-network", "BACKUP")}
    assert [(s.name, s.url) for s in east.secondary_storage + west.secondary_storage] == [
        ("sec-nfs-east", "nfs://127.42.1.40/export/secondary"),
        ("sec-nfs-west", "nfs://127.42.2.40/export/secondary")]
    assert [(p.name, p.address, p.cluster, p.type) for z in (east, west) for p in z.primary_storage] == [
        ("ps-kvm-east", "127.42.1.41", "kvm-cluster-1", "NetworkFilesystem"),
        ("ps-xen-east", "127.42.1.42", "xen-cluster-1", "NetworkFilesystem"),
        ("ps-vmw-west", "127.42.2.41", "vmw-cluster-1", "NetworkFilesystem")]


def test_demo_plants_eight_faults_each_described_in_one_sentence():
    demo = default_topology()
    assert [(f.kind, f.objects, f.port) for f in demo.faults] == [
        ("exposed", ("ms1", "ms2"), 8096), ("missing-listener", ("sec-nfs-west",), 2049),
        ("filtered", ("xen01",), 443), ("api-state-mismatch", ("kvm02",), None), ("wrong-service", ("db1",), 3306),
        ("filtered", ("templates:rocky-9-west",), 8000),
        ("redundant-state", ("r-9-VM", "r-10-VM"), None), ("health-check-failed", ("r-3-VM",), None)]
    assert (demo.faults[6].state, demo.faults[7].check) == ("MASTER", "gateways_check.py")
    for fault in demo.faults:
        assert fault.description.endswith(".") and fault.description.count(". ") == 0
    # Expanded to probe-able targets: fault 1 touches both management servers.
    targets = {(f.fault_id, f.object_name, f.address, f.port) for f in planted_faults(demo)}
    assert targets == {(1, "ms1", "127.42.0.11", 8096), (1, "ms2", "127.42.0.12", 8096),
                       (2, "sec-nfs-west", "127.42.2.40", 2049), (3, "xen01", "127.42.1.31", 443),
                       (4, "kvm02", "127.42.1.22", None), (5, "db1", "127.42.0.20", 3306),
                       (6, "templates:rocky-9-west", "127.42.0.81", 8000),
                       (7, "r-9-VM", "127.42.211.9", None), (7, "r-10-VM", "127.42.211.10", None),
                       (8, "r-3-VM", "127.42.211.3", None)}
    # The last two change only what the API says: no probe lands on them.
    assert {f.fault_id for f in planted_faults(demo) if f.api_only} == {7, 8}


def test_every_demo_address_is_loopback():
    for service in planned_services(default_topology(), apply_faults=False):
        assert ipaddress.IPv4Address(service.address).is_loopback, service


def test_ids_are_uuid5_and_stable_across_loads():
    first, second = Inventory(default_topology()), Inventory(default_topology())
    ids_first = [r.id for r in first.hosts.records] + [r.id for r in first.zones.records]
    assert ids_first == [r.id for r in second.hosts.records] + [r.id for r in second.zones.records]
    assert all(uuid.UUID(i).version == 5 for i in ids_first)
    assert len(set(ids_first)) == len(ids_first)


MINIMAL = """
[cloud]
version = "4.19.1.0"
[[management_server]]
name = "ms1"
address = "127.50.0.11"
[database]
name = "db"
address = "127.50.0.20"
[[zone]]
name = "z"
dns1 = "127.50.1.54"
internaldns1 = "127.50.1.53"
[[zone.pod]]
name = "p"
gateway = "127.50.1.1"
netmask = "255.255.255.0"
startip = "127.50.1.100"
endip = "127.50.1.200"
[[zone.cluster]]
name = "c"
pod = "p"
hypervisor = "KVM"
[[zone.cluster.host]]
name = "h1"
address = "127.50.1.21"
"""


def test_minimal_topology_gets_defaults():
    topology = parse_topology(MINIMAL, "mini.toml")
    assert topology.listeners and topology.default_page_size == 500
    assert topology.settings == {"default.page.size": "500"}
    assert topology.zones[0].clusters[0].hosts[0].state == "Up"
    assert topology.integration_port == 0


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('address = "127.50.0.11"', 'address = "10.0.0.11"'),
     r"mini\.toml: management_server\[1\]: 'address': 10\.0\.0\.11 is outside 127\.0\.0\.0/8"),
    (lambda t: t.replace('[cloud]\n', '[cloud]\nverison = "4.19"\n'),
     r"mini\.toml: cloud: unknown key\(s\): verison"),
    (lambda t: t.replace('version = "4.19.1.0"', ''), r"cloud: missing required key 'version'"),
    (lambda t: t.replace('hypervisor = "KVM"', 'hypervisor = "VMware"'),
     r"zone 'z'\.cluster\[1\]: VMware clusters need 'vcenter'"),
    (lambda t: t.replace('hypervisor = "KVM"', 'hypervisor = "Hyper-V"'),
     r"'hypervisor' = 'Hyper-V' is not one of KVM, XenServer, VMware"),
    (lambda t: t + '[[zone.router]]\nname="r-1-VM"\nhost="nope"\nlinklocal="127.50.3.1"\n'
     'guest="127.50.4.1"\npublic="127.50.5.1"\n', r"zone 'z'\.router\[1\]: host 'nope' is not a host"),
    (lambda t: t + '[[zone.systemvm]]\ntype="ssvm"\nname="s-1-VM"\nhost="h1"\nprivate="127.50.1.101"\n'
     'public="127.50.5.1"\n', r"system VMs on KVM need 'linklocal'"),
    (lambda t: t + '[[fault]]\nkind="filtered"\nobject="h1"\nport=443\ndescription="x."\n',
     r"fault\[1\]: h1 does not serve 443/tcp"),
    (lambda t: t + '[[fault]]\nkind="filtered"\nobject="ghost"\nport=22\ndescription="x."\n',
     r"fault\[1\]: object 'ghost' is not a management server"),
    (lambda t: t + '[settings]\n"port" = 8250\n', r"settings\.'port' must be a string"),
    (lambda t: t + '[settings]\n"default.page.size" = "100"\n', r"contradicts cloud\.default_page_size"),
    (lambda t: t.replace('name = "h1"', 'name = "ms1"'), r"duplicate name 'ms1'"),
    (lambda t: t + "[[zone]\n", r"mini\.toml: invalid TOML"),
])
def test_bad_topologies_raise_one_config_error(change, message):
    with pytest.raises(ConfigError) as caught:
        parse_topology(change(MINIMAL), "mini.toml")
    assert re.search(message, caught.value.message), caught.value.message
    assert caught.value.message.startswith("mini.toml: ")


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read topology"):
        load_topology(tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_topology(tmp_path / "bin.toml")


def test_relocation_rewrites_every_address_and_keeps_identity():
    demo = default_topology()
    moved = relocate(demo, 7)
    assert moved.management_servers[0].address == "127.49.0.11"
    assert moved.settings["host"] == "127.49.0.11,127.49.0.12"
    assert moved.zones[1].secondary_storage[0].url == "nfs://127.49.2.40/export/secondary"
    assert moved.zones[1].clusters[0].vcenter == "127.49.2.10"
    assert moved.settings["control.cidr"] == "169.254.0.0/16"  # not loopback: untouched
    text = topology_to_toml(moved)
    assert "127.42." not in text
    assert [r.id for r in Inventory(moved).hosts.records] == [r.id for r in Inventory(demo).hosts.records]
    assert {(f.object_name, f.port) for f in planted_faults(moved)} == \
        {(f.object_name, f.port) for f in planted_faults(demo)}


def test_generated_topology_round_trips_through_toml():
    generated = generate_topology(2, 45, 30, version="4.20.1.0")
    assert not generated.listeners and not generated.faults
    zone = generated.zones[0]
    assert sum(len(c.hosts) for c in zone.clusters) == 45 and len(zone.clusters) == 3
    assert len(zone.routers) == 30 and {v.type for v in zone.system_vms} == {"ssvm", "cpvm"}
    assert {c.hypervisor for c in zone.clusters} == {"KVM", "XenServer"}
    addresses = [h.address for z in generated.zones for c in z.clusters for h in c.hosts]
    assert len(set(addresses)) == len(addresses)
    assert parse_topology(topology_to_toml(generated), "gen.toml") == generated
    assert parse_topology(topology_to_toml(default_topology()), "demo.toml") == default_topology()


def test_generating_ten_zones_of_seven_thousand_objects_writes_every_router():
    # its speed is measured by bench/ (python -m bench.scale), not asserted here
    text = topology_to_toml(generate_topology(10, 2000, 5000))
    assert text.count("name = \"r-") == 50_000


def test_generate_rejects_impossible_sizes():
    from csaudit.model.errors import UsageError
    with pytest.raises(UsageError):
        generate_topology(0, 1, 1)
    with pytest.raises(UsageError, match="addresses per zone"):
        generate_topology(1, 10, 30_000)


def test_frozen_topology():
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_topology().version = "4.11.0.0"


def test_wrong_service_faults_must_change_what_answers():
    demo_text = resources.files("csaudit.lab").joinpath("demo.toml").read_text("utf-8")

    def with_fault(lines):
        return parse_topology(demo_text + "\n[[fault]]\nkind = \"wrong-service\"\ndescription = \"x.\"\n" + lines, "t.toml")

    speaks_ssh = with_fault('object = "ms1"\nport = 8250\nspeaks = "ssh"\n')
    (service,) = [s for s in planned_services(speaks_ssh) if (s.object_name, s.port) == ("ms1", 8250)]
    assert service.kind == "ssh"
    with pytest.raises(ConfigError, match="already speaks tls"):
        with_fault('object = "ms1"\nport = 8250\nspeaks = "tls"\n')
    with pytest.raises(ConfigError, match="only tcp ports can be wrong-service"):
        with_fault('object = "sec-nfs-east"\nport = 111\nprotocol = "udp"\n')
    with pytest.raises(ConfigError, match="'speaks' only applies to wrong-service"):
        parse_topology(demo_text + '\n[[fault]]\nkind = "filtered"\nobject = "ms1"\nport = 8250\nspeaks = "ssh"\ndescription = "x."\n')
