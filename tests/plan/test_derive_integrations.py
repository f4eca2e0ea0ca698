"""The rules whose endpoints a listing or a setting names (F05, F25, F26, F37, F39, F42, F56-F60) and the
deny rules D07, D09, D11-D13, derived from API rows in the shape a real server sends."""

import json

import pytest

from csaudit.collect.parse import parse_inventory
from csaudit.plan.catalogue import load_catalogue
from csaudit.plan.derive import derive_flows
from tests.conftest import DATA

CATALOGUE = load_catalogue()


def with_integrations(raw_small_cloud: dict) -> dict:
    """The small cloud with the rows of raw_integrations.json (templates, LDAP, BMCs, settings...)."""
    extra = json.loads((DATA / "raw_integrations.json").read_text())
    cloud = dict(raw_small_cloud)
    for key in ("templates", "isos", "physicalnetworks", "ldapconfigurations", "usagemetrics"):
        cloud[key] = extra[key]
    cloud["hosts"] = [{**h, "outofbandmanagement": extra["outofbandmanagement"][h["name"]]}
                      if h["name"] in extra["outofbandmanagement"] else h for h in cloud["hosts"]]
    names = {c["name"] for c in extra["configurations"]}
    cloud["configurations"] = [c for c in cloud["configurations"] if c["name"] not in names] + extra["configurations"]
    # the CPVM is on VMware in this test, so F37 (CPVM -> legacy ESXi VNC) has a source in zone west
    cloud["systemvms"] = [*cloud["systemvms"], {"id": "v9", "name": "v-9-VM", "systemvmtype": "consoleproxy", "zoneid": "z2",
                                                "hypervisor": "VMware", "privateip": "127.60.2.109", "publicip": "127.60.212.9",
                                                "state": "Running", "agentstate": "Up"}]
    return cloud


@pytest.fixture
def raw(raw_small_cloud):
    return with_integrations(raw_small_cloud)


def flows_of(raw, rule):
    inventory = parse_inventory(raw, "http://127.60.0.11:8080/client/api", "signed")
    return {f.id: f for f in derive_flows(CATALOGUE, inventory) if f.rule == rule}


def test_f25_template_hosts_one_per_zone_and_host_with_the_urls_port_and_scheme(raw):
    flows = flows_of(raw, "F25")
    assert set(flows) == {"F25:s-1-VM->127.60.9.80:80/tcp", "F25:s-1-VM->127.60.9.43:443/tcp",
                          "F25:s-3-VM->127.60.9.80:80/tcp", "F25:s-1-VM->10.9.9.9:8000/tcp",
                          "F25:s-3-VM->10.9.9.9:8000/tcp"}
    assert flows["F25:s-1-VM->127.60.9.80:80/tcp"].probe == "http"
    assert flows["F25:s-1-VM->127.60.9.43:443/tcp"].probe == "tls"
    # a cross-zone template (no zoneid) is downloaded by every zone's SSVM; s3:// and upload-only are not URLs to fetch
    internal = flows["F25:s-1-VM->10.9.9.9:8000/tcp"]
    assert any("not in secstorage.allowed.internal.sites" in note for note in internal.notes)
    assert not any("allowed.internal.sites: the SSVM" in n for n in flows["F25:s-1-VM->127.60.9.80:80/tcp"].notes)


def test_f26_proxy_from_the_setting_never_shows_its_password(raw):
    flows = flows_of(raw, "F26")
    assert set(flows) == {"F26:s-1-VM->127.60.9.31:3128/tcp", "F26:s-3-VM->127.60.9.31:3128/tcp"}
    assert "s3cret" not in repr(flows) and "squid" not in repr(flows)
    assert parse_inventory(raw).services and "s3cret" not in repr(parse_inventory(raw))


def test_f05_usage_server_on_an_ms_node_to_the_database(raw):
    flow, = flows_of(raw, "F05").values()
    assert (flow.source.address, flow.target.address, flow.port, flow.probe) == ("127.60.0.11", "127.60.0.20", 3306, "mysql")
    raw["usagemetrics"] = None  # before 4.17, or a cloud without the usage server: no flow
    assert flows_of(raw, "F05") == {}


def test_f37_legacy_esxi_vnc_range_from_the_settings(raw):
    flow, = flows_of(raw, "F37").values()
    assert (flow.source.name, flow.target.name, flow.port, flow.port_end) == ("v-9-VM", "esxi01", 51000, 51199)
    assert any("51000-51199 from settings" in note for note in flow.notes)


def test_f39_ms_to_cpvm_command_port_follows_its_setting(raw):
    raw["configurations"].append({"name": "consoleproxy.cmd.port", "value": "8011"})
    flows = flows_of(raw, "F39")
    assert {(f.source.name, f.target.address, f.port) for f in flows.values()} == {
        ("ms1", "127.60.1.102", 8011), ("ms2", "127.60.1.102", 8011), ("ms1", "127.60.2.109", 8011), ("ms2", "127.60.2.109", 8011)}


def test_f42_vxlan_only_where_a_physical_network_uses_it(raw):
    flows = flows_of(raw, "F42")
    assert set(flows) == {"F42:kvm01->kvm02:8472/udp", "F42:kvm02->kvm01:8472/udp"}
    assert all(f.probe == "vxlan" and "exists because the zone's isolation methods include VXLAN" in f.notes for f in flows.values())
    raw["physicalnetworks"][0]["isolationmethods"] = "VLAN"
    assert flows_of(raw, "F42") == {}


def test_f56_f57_f58_named_services_with_their_own_ports_and_probes(raw):
    smtp = flows_of(raw, "F56")  # from each of the two MSs
    assert {(f.source.name, f.target.address, f.port, f.probe) for f in smtp.values()} == {
        ("ms1", "127.60.9.25", 25, "smtp"), ("ms2", "127.60.9.25", 25, "smtp")}
    ldap = {(f.target.address, f.port, f.probe) for f in flows_of(raw, "F57").values()}
    assert ldap == {("127.60.9.89", 389, "ldap"), ("127.60.9.90", 636, "tls")}
    bmc = {(f.target.name, f.target.address, f.port, f.protocol, f.probe, f.zone) for f in flows_of(raw, "F58").values()}
    assert bmc == {("kvm01 BMC", "127.60.9.121", 623, "udp", "ipmi", "east"), ("kvm02 BMC", "127.60.9.122", 443, "tcp", "tls", "east")}
    raw["configurations"] = [c for c in raw["configurations"] if c["name"] != "alert.smtp.port"]
    assert {(f.port, f.probe) for f in flows_of(raw, "F56").values()} == {(465, "tls")}  # the default port starts with TLS


def test_f59_d09_prometheus_only_when_the_exporter_is_enabled(raw):
    f59, d09 = flows_of(raw, "F59"), flows_of(raw, "D09")
    assert set(f59) == {"F59:this machine->ms1:9595/tcp", "F59:this machine->ms2:9595/tcp"}
    assert set(d09) == {"D09:outside->ms1:9595/tcp", "D09:outside->ms2:9595/tcp"}
    assert all(f.probe == "prometheus" for f in (*f59.values(), *d09.values()))
    assert "exists because setting 'prometheus.exporter.enable' is 'true'" in next(iter(f59.values())).notes
    raw["configurations"] = [c for c in raw["configurations"] if c["name"] != "prometheus.exporter.enable"]
    assert flows_of(raw, "F59") == {} and flows_of(raw, "D09") == {}


def test_f60_endpoint_url_and_a_localhost_default_names_no_flow(raw):
    flow, = flows_of(raw, "F60").values()
    assert (flow.target.address, flow.port, flow.probe) == ("127.60.9.8", 8443, "tls")
    for entry in raw["configurations"]:
        if entry["name"] == "endpoint.url":
            entry["value"] = "http://localhost:8080/client/api"
    assert flows_of(raw, "F60") == {}


def test_deny_rules_for_the_public_side(raw):
    d07 = flows_of(raw, "D07")
    assert {(f.target.name, f.port) for f in d07.values()} >= {("v-2-VM", 443), ("v-9-VM", 8080)}
    assert not any(f.target.role == "ssvm" for f in d07.values())  # secstorage.ssl.cert.domain is empty
    for entry in raw["configurations"]:
        if entry["name"] == "consoleproxy.url.domain":
            entry["value"] = "*.console.example.org"  # a wildcard: browsers reach each CPVM directly
    assert flows_of(raw, "D07") == {}
    d11 = flows_of(raw, "D11")
    assert {(f.port, f.protocol) for f in d11.values()} == {(80, "tcp"), (8080, "tcp"), (53, "tcp"), (53, "udp")}
    raw["configurations"].append({"name": "expose.dns.externally", "value": "true"})
    assert {f.port for f in flows_of(raw, "D11").values()} == {80, 8080}
    assert {f.port for f in flows_of(raw, "D12").values()} == {8081}
    assert {(f.target.role, f.port) for f in flows_of(raw, "D13").values()} == {("host", 443), ("host", 902), ("vcenter", 443)}
