"""Derivation: inventory in, flows out, compared with a golden file reviewed by hand."""

import dataclasses

import pytest

from csaudit.collect.parse import parse_inventory
from csaudit.model.errors import ConfigError, UsageError
from csaudit.model.inventory import Cluster, Host, Inventory, SystemVm, Zone
from csaudit.plan.catalogue import load_catalogue, parse_catalogue
from csaudit.plan.derive import derive_flows, select_zones
from tests.conftest import golden_flow_lines

CATALOGUE = load_catalogue()


def small(raw):
    return parse_inventory(raw, "http://127.60.0.11:8080/client/api", "signed")


def as_lines(flows):
    return [f"{f.zone or '-'}\t{f.id}\t{f.source.address}\t{f.target.address}\t{f.expect}" for f in flows]


def test_golden_flows(raw_small_cloud):
    assert as_lines(derive_flows(CATALOGUE, small(raw_small_cloud))) == golden_flow_lines()


def test_deterministic_and_unique(raw_small_cloud):
    first = derive_flows(CATALOGUE, small(raw_small_cloud))
    second = derive_flows(list(reversed(CATALOGUE)), small(raw_small_cloud))
    assert first == second
    assert len({f.id for f in first}) == len(first)


def test_zone_scope_keeps_management_tier(raw_small_cloud):
    inventory = small(raw_small_cloud)
    flows = derive_flows(CATALOGUE, inventory, select_zones(inventory, ["west"]))
    assert {f.zone for f in flows} == {None, "west"}
    assert any(f.rule == "F04" for f in flows)  # MS -> DB stays in
    by_id = derive_flows(CATALOGUE, inventory, select_zones(inventory, ["z1"]))
    assert {f.zone for f in by_id} == {None, "east"}


def test_unknown_zone_lists_the_real_ones(raw_small_cloud):
    with pytest.raises(UsageError) as caught:
        select_zones(small(raw_small_cloud), ["north"])
    assert "unknown zone 'north'" in caught.value.message and "east (z1)" in caught.value.message


def test_settings_switch_ports(raw_small_cloud):
    raw_small_cloud["configurations"].append({"name": "consoleproxy.sslEnabled", "value": "true"})
    raw_small_cloud["configurations"] = [c for c in raw_small_cloud["configurations"] if not (c["name"] == "consoleproxy.sslEnabled" and c["value"] == "false")]
    raw_small_cloud["zoneconfigurations"] = {}
    raw_small_cloud["configurations"].append({"name": "integration.api.port", "value": "8096"})
    flows = derive_flows(CATALOGUE, small(raw_small_cloud))
    console = {(f.rule, f.port) for f in flows if f.rule in ("F32", "F33")}
    assert console == {("F32", 443), ("F33", 8443)}
    assert {f.id for f in flows if f.rule == "F03"} == {"F03:ms1->ms1:8096/tcp", "F03:ms2->ms2:8096/tcp"}


def test_unknown_addresses_are_kept_and_said():
    inventory = parse_inventory({"managementservers": [{"id": "m", "name": "ms1", "serviceip": "127.8.0.1"}]})
    [flow] = [f for f in derive_flows(CATALOGUE, inventory) if f.rule == "F04"]
    assert flow.target.address is None
    assert "database address: unknown (pass --db-host)" in flow.notes


def test_simulator_hosts_get_no_hypervisor_flows():
    inventory = parse_inventory({"hosts": [{"id": "h", "name": "sim", "type": "Routing", "hypervisor": "Simulator", "ipaddress": "127.9.0.1", "zoneid": "z"}],
                                 "zones": [{"id": "z", "name": "z"}]})
    rules = {f.rule for f in derive_flows(CATALOGUE, inventory) if f.target.name == "sim" or f.source.name == "sim"}
    assert rules == {"D03", "D05"}  # only the deny rules that hold for any host (MySQL from a host; its ports from outside)


def test_pairings():
    catalogue = parse_catalogue("""
[[flow]]
id = "F90"
title = "ring"
source = "host"
target = "host"
pairing = "cluster-ring"
ports = [1]
protocol = "tcp"
expect = "open"
hypervisors = ["any"]
citation = "c"
remedy = { on = "the MS", check = "x", commands = ["ss -tln"], citation = "docs" }
""")
    hosts = [{"id": f"h{i}", "name": f"h{i}", "type": "Routing", "clusterid": "c1" if i < 3 else "c2", "zoneid": "z", "ipaddress": f"127.9.0.{i}"} for i in range(4)]
    flows = derive_flows(catalogue, parse_inventory({"hosts": hosts}))
    assert [(f.source.name, f.target.name) for f in flows] == [("h0", "h1"), ("h1", "h2"), ("h2", "h0")]
    assert all(dataclasses.is_dataclass(f) for f in flows)


def test_ports_from_settings_and_options(raw_small_cloud):
    raw_small_cloud["configurations"].append({"name": "port", "value": "8251"})
    inventory = small(raw_small_cloud)
    flows = derive_flows(CATALOGUE, inventory, port_options={"db-port": 3307})
    agent = [f for f in flows if f.rule in ("F08", "F09", "F10", "F07")]
    assert agent and {f.port for f in agent} == {8251}
    assert "port 8251 from setting 'port'" in agent[0].notes
    [db] = [f for f in flows if f.id == "F04:ms1->database:3307/tcp"]
    assert "port 3307 from --db-port" in db.notes
    [cluster] = [f for f in flows if f.id == "F06:ms1->ms2:9090/tcp"]
    assert any("the API cannot tell it (set --cluster-port)" in n for n in cluster.notes)


def test_port_from_is_validated():
    bad = """
[[flow]]
id = "F98"
title = "t"
source = "ms"
target = "db"
ports = [1, 2]
port_from = "option:db-port"
protocol = "tcp"
expect = "open"
hypervisors = ["any"]
citation = "c"
remedy = { on = "the MS", check = "x", commands = ["ss -tln"], citation = "docs" }
"""
    with pytest.raises(ConfigError, match="exactly one port"):
        parse_catalogue(bad)
    with pytest.raises(ConfigError, match="port_from must be"):
        parse_catalogue(bad.replace("[1, 2]", "[1]").replace("option:db-port", "option:ssh-port"))


def test_a_run_goes_part_by_part_management_tier_first_then_zones_by_name(raw_small_cloud):
    from csaudit.plan.derive import audit_units, derive_unit_flows

    inventory = small(raw_small_cloud)
    units = audit_units(inventory)
    names = {z.id: z.name for z in inventory.zones}
    assert units[0][0] is None and [names[z] for z, _ in units[1:]] == sorted(z.name for z in inventory.zones)
    for zone_id, part in units:
        assert {h.zone_id for h in part.hosts} <= {zone_id, None}  # a part holds its own zone's objects
        assert part.system_vms == inventory.system_vms  # and every system VM (cross-zone template copies)
        flows = derive_unit_flows(tuple(CATALOGUE), part, zone_id)
        assert {f.zone for f in flows} <= {names.get(zone_id)}
    # The parts, one after the other, are the whole derivation, in its order.
    parts = [f for zone_id, part in units for f in derive_unit_flows(tuple(CATALOGUE), part, zone_id)]
    assert parts == list(derive_flows(CATALOGUE, inventory))
    assert any(f.rule == "F28" for f in parts)  # SSVM to the other zone's SSVM: its part still sees the target


def test_only_the_chosen_zones_are_parts(raw_small_cloud):
    from csaudit.plan.derive import audit_units

    inventory = small(raw_small_cloud)
    first = inventory.zones[0]
    assert [z for z, _ in audit_units(inventory, frozenset({first.id}))] == [None, first.id]


def test_a_mixed_zone_pairs_the_vmware_ssvm_with_esxi_hosts_only():
    """F27 names VMware on both sides: in a zone with KVM and VMware clusters, the VMware SSVM reaches
    the ESXi hosts on 443, never the KVM hosts (and a KVM SSVM reaches none)."""
    inventory = Inventory(
        endpoint=None, api_mode=None, version=None, zones=(Zone("z1", "mixed"),),
        clusters=(Cluster("c1", "kvm", "z1", None, "KVM"), Cluster("c2", "vmw", "z1", None, "VMware")),
        hosts=(Host("h1", "kvm01", "z1", None, "c1", "KVM", "127.61.0.21", "Up"),
               Host("h2", "esxi01", "z1", None, "c2", "VMware", "127.61.0.31", "Up")),
        system_vms=(SystemVm("s1", "s-1-VM", "ssvm", "z1", "h2", "VMware", "127.61.0.101", None, None, "Running", "Up"),
                    SystemVm("s2", "s-2-VM", "ssvm", "z1", "h1", "KVM", "127.61.0.102", "169.254.1.2", None, "Running", "Up")))
    to_hosts = {(f.source.name, f.target.name) for f in derive_flows(CATALOGUE, inventory)
                if f.rule == "F27" and f.target.role == "host"}
    assert to_hosts == {("s-1-VM", "esxi01")}
