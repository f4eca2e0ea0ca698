"""End to end on the embedded cloud: the rules whose endpoints a listing or a setting names (F05, F25,
F26, F37, F39, F56-F60) and the deny rules for the public side (D07, D09, D11-D13). One run of the
healthy cloud, then one after a fault is planted for each rule, both from this machine standing
for the outside too (--outside): every rule shows a pass and a fail, each for the right reason."""

import dataclasses
import json

import pytest

from csaudit.lab import Lab, default_topology
from csaudit.lab.schema import FaultSpec

pytestmark = pytest.mark.root  # the embedded cloud listens on 127.x ports below 1024


def _topology():
    topology = default_topology()
    settings = {**topology.settings, "prometheus.exporter.allowed.ips": "127.42.0.11"}  # not this machine
    east = dataclasses.replace(topology.zones[0], settings={**topology.zones[0].settings,
                                                            "consoleproxy.url.domain": "console.lab.example"})
    return dataclasses.replace(topology, faults=(), settings=settings, zones=(east, *topology.zones[1:]))


@pytest.fixture(scope="module")
def lab():
    with Lab(_topology()) as running:
        yield running


def fault(kind, name, port, protocol="tcp", **more):
    return FaultSpec(kind=kind, objects=(name,), description=f"{kind} on {name}:{port}", port=port, protocol=protocol, **more)


def address(lab, text):
    """The lab's address for a demo address (the lab moves to another 127.N/16 when 127.42 is taken)."""
    octet = lab.topology.management_servers[0].address.split(".")[1]
    return text.replace("127.42.", f"127.{octet}.")


PLANTED = (  # rule: the fault that breaks it
    ("F05", lambda lab: fault("wrong-service", "db1", 3306)),
    ("F25", lambda lab: fault("filtered", "templates:rocky-9-west", 8000)),
    ("F26", lambda lab: fault("missing-listener", f"proxy@{address(lab, '127.42.0.31')}", 3128)),
    ("F37", lambda lab: fault("missing-listener", "esxi01", 50000)),
    ("F39", lambda lab: fault("missing-listener", "v-6-VM", 8001)),
    ("F56", lambda lab: fault("wrong-service", f"smtp@{address(lab, '127.42.0.25')}", 25, speaks="ssh")),
    ("F57", lambda lab: fault("missing-listener", f"ldap@{address(lab, '127.42.0.89')}", 389)),
    ("F58", lambda lab: fault("missing-listener", "kvm01-bmc", 623, "udp")),
    ("F42", lambda lab: fault("missing-listener", "kvm02", 8472, "udp")),
    ("F59", lambda lab: fault("missing-listener", "ms1", 9595)),
    ("D09", lambda lab: fault("wrong-service", "ms2", 9595)),
    ("D11", lambda lab: fault("exposed", "r-3-VM", 8080, address=address(lab, "127.42.211.3"))),  # its public IP
    ("D12", lambda lab: fault("exposed", "r-3-VM", 8081, address=address(lab, "127.42.211.3"))),
    ("D13", lambda lab: fault("missing-listener", "xen01", 80)),  # its fail is the healthy cloud's: 80 is open to all
    *(("D07", lambda lab, p=port: fault("missing-listener", "v-2-VM", p, address=address(lab, "127.42.211.2")))
       for port in (80, 443, 8080)),
)


def audit(cli, lab, tmp_path, *extra):
    lab.write_ini(tmp_path / "cloudstack.ini")
    result = cli("run", "--format", "json", "--timeout", "1", "--outside", *extra)
    assert result.exit_code in (0, 1), result.stderr
    return {f["id"]: f for f in result.json()["flows"]}


def by_rule(flows, rule):
    return {k: f for k, f in flows.items() if f["rule"] == rule}


def test_each_named_service_rule_passes_then_fails_when_its_fault_is_planted(cli, lab, tmp_path):
    before = audit(cli, lab, tmp_path)
    for rule in ("F05", "F25", "F26", "F37", "F39", "F56", "F57", "F58", "F59", "F60", "D09", "D11", "D12"):
        flows = by_rule(before, rule)
        assert flows and all(f["status"] == "pass" for f in flows.values()), (rule, {k: f["reason"] for k, f in flows.items()})
    # D07 and D13 fail on the healthy lab: everything listens to everyone on loopback
    d07 = {(f["target"]["name"], f["port"]): f["status"] for f in by_rule(before, "D07").values()}
    assert {d07[("v-2-VM", port)] for port in (80, 443, 8080)} == {"fail"} and d07[("v-2-VM", 8443)] == "pass"
    assert before["D13:outside->xen01:80/tcp"]["status"] == "fail"
    f59 = before["F59:this machine->ms1:9595/tcp"]
    assert "not in prometheus.exporter.allowed.ips" in f59["reason"] and f59["warnings"]
    assert "closed to this source by the service itself" in before["D09:outside->ms1:9595/tcp"]["reason"]
    f42 = by_rule(before, "F42")  # VXLAN answers nothing: the endpoint's silence is all a probe gets
    assert f42 and all((f["status"], f["gap"]) == ("unverified", "unconfirmed") for f in f42.values()), f42

    for _, planted in PLANTED:
        lab.plant(planted(lab))
    after = audit(cli, lab, tmp_path)
    expected_failures = {
        "F05:usage server ms1->database:3306/tcp": "not MySQL",
        "F25:s-5-VM->" + address(lab, "127.42.0.81") + ":8000/tcp": "no answer within",
        "F26:s-1-VM->" + address(lab, "127.42.0.31") + ":3128/tcp": "refused",
        "F37:v-6-VM->esxi01:50000-50999/tcp": "refused",
        "F39:ms1->v-6-VM:8001/tcp": "refused",
        "F56:ms1->" + address(lab, "127.42.0.25") + ":25/tcp": "it speaks SSH",
        "F57:ms2->" + address(lab, "127.42.0.89") + ":389/tcp": "refused",
        "F58:ms1->kvm01 BMC:623/udp": "port unreachable",
        "F42:kvm01->kvm02:8472/udp": "port unreachable",
        "F59:this machine->ms1:9595/tcp": "refused",
        "D09:outside->ms2:9595/tcp": "does not serve CloudStack's metrics",
        "D11:outside->r-3-VM:8080/tcp": "must be closed",
        "D12:outside->r-3-VM:8081/tcp": "must be closed",
    }
    for flow_id, words in expected_failures.items():
        assert after[flow_id]["status"] == "fail" and words in after[flow_id]["reason"], (flow_id, after[flow_id]["reason"])
    assert after["D13:outside->xen01:80/tcp"]["status"] == "pass"
    assert {f["status"] for f in by_rule(after, "D07").values() if f["target"]["name"] == "v-2-VM" and f["port"] != 8443} == {"pass"}
    # the other zone's SSVM still reaches the cross-zone template host: only the planted one fails
    assert after["F25:s-1-VM->" + address(lab, "127.42.0.80") + ":80/tcp"]["status"] == "pass"


def test_f60_endpoint_url_that_names_a_closed_port_fails(cli, lab, tmp_path):
    """endpoint.url is a setting: a saved inventory whose endpoint.url names a port where nothing listens
    is audited against the running cloud (the API port itself cannot be planted)."""
    lab.write_ini(tmp_path / "cloudstack.ini")
    assert cli("inventory", "--format", "json", "--output", str(tmp_path / "inv.json")).exit_code == 0
    inventory = json.loads((tmp_path / "inv.json").read_text())
    ms1 = lab.topology.management_servers[0].address
    inventory["settings"]["endpoint.url"] = f"http://{ms1}:8089/client/api"
    inventory["services"] = [s for s in inventory["services"] if s["role"] != "api-endpoint"] + [
        {"role": "api-endpoint", "name": ms1, "address": ms1, "port": 8089, "protocol": "http", "origin": "setting endpoint.url"}]
    (tmp_path / "inv.json").write_text(json.dumps(inventory))
    result = cli("run", "--inventory", str(tmp_path / "inv.json"), "--format", "json", "--timeout", "1", "--zone", "zone-west")
    flows = {f["id"]: f for f in result.json()["flows"]}
    flow = flows[f"F60:this machine->{ms1}:8089/tcp"]
    assert flow["status"] == "fail" and "refused" in flow["reason"]
