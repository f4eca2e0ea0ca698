"""The lab's CloudStack API, driven by the real `cs` client (library and command line)."""

import dataclasses
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import requests
from cs import CloudStack, CloudStackApiException

from csaudit.lab import Lab, default_topology
from csaudit.lab.signing import string_to_sign
from tests.conftest import FIXTURES

VERIFY_FAILED = "unable to verify user credentials and/or request signature"
REFUSED_401 = {"uuidList": [], "errorcode": 401, "errortext": VERIFY_FAILED}


@pytest.fixture(scope="module")
def lab():
    with Lab(default_topology()) as running:
        yield running


@pytest.fixture
def api(lab):
    return CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, timeout=5)


def _error(call):
    with pytest.raises(CloudStackApiException) as caught:
        call()
    return caught.value.response.status_code, caught.value.error


def _by_name(items):
    return {item["name"]: item for item in items}


# ------------------------------------------------------------------ the cs command line

def _cs(lab, *argv, key=True, endpoint=None, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSTACK_")}
    env.update(HOME=str(tmp_path), CLOUDSTACK_ENDPOINT=endpoint or lab.endpoint)
    if key:
        env.update(CLOUDSTACK_KEY=lab.key, CLOUDSTACK_SECRET=key if isinstance(key, str) else lab.secret)
    return subprocess.run([sys.executable, "-m", "cs", *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.root
def test_cs_cli_with_the_right_secret_gets_data(lab, tmp_path):
    result = _cs(lab, "listZones", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    zones = json.loads(result.stdout)
    assert zones["count"] == 2 and {z["name"] for z in zones["zone"]} == {"zone-east", "zone-west"}


@pytest.mark.root
def test_cs_cli_with_a_wrong_secret_gets_401(lab, tmp_path):
    result = _cs(lab, "listZones", key="not-the-secret", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "HTTP 401 response from CloudStack" in result.stderr
    assert json.loads(result.stdout) == {"listzonesresponse": {
        "uuidList": [], "errorcode": 401, "errortext": VERIFY_FAILED}}


@pytest.mark.root
def test_cs_cli_unsigned_against_the_integration_port_gets_data(lab, tmp_path):
    result = _cs(lab, "listManagementServers", key=False, endpoint=lab.integration_endpoint,
                 tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    servers = json.loads(result.stdout)["managementserver"]
    assert {s["serviceip"] for s in servers} == {m.address for m in lab.topology.management_servers}
    # ...while the same unsigned call on the signed port is refused
    refused = _cs(lab, "listManagementServers", key=False, tmp_path=tmp_path)
    assert refused.returncode != 0 and "401" in refused.stderr


@pytest.mark.root
def test_cs_cli_fetch_list_pages_through_hosts(lab, tmp_path):
    before = lab.requests["listHosts"]
    result = _cs(lab, "listHosts", "fetch_list=true", "pagesize=2", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)
    # 5 hypervisor hosts + the agent rows of 4 system VMs, in 5 pages of 2
    assert len(hosts) == 9 and len({h["id"] for h in hosts}) == 9
    assert lab.requests["listHosts"] - before == 5


# ------------------------------------------------------------------ shapes vs real responses

FIXTURE_CALLS = {  # fixture file -> how to ask the lab for comparable rows
    "listCapabilities": {},
    "listClusters": {},
    "listConfigurations": {"name": "allow.user.create.projects"},
    "listHosts": {"type": "Routing"},
    "listImageStores": {},
    "listStoragePools": {},
    "listVlanIpRanges": {},
}
# Free-form maps: their keys are data, not schema.
FREE_FORM = {"resourcedetails", "storagecapabilities"}


def _json_type(value):
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}[type(value)]


def _compare_fields(fixture_item, ours, where):
    for name, value in fixture_item.items():
        assert name in ours, f"{where}: field {name!r} missing"
        assert _json_type(ours[name]) == _json_type(value), f"{where}: {name!r} type differs"
        if isinstance(value, dict) and name not in FREE_FORM:
            _compare_fields(value, ours[name], f"{where}.{name}")


def test_fixture_list_covers_every_fixture_file():
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(FIXTURE_CALLS)


@pytest.mark.root
@pytest.mark.parametrize("command", sorted(FIXTURE_CALLS))
def test_envelopes_and_fields_match_real_responses(lab, command):
    fixture = json.loads((FIXTURES / f"{command}.json").read_text())
    raw = requests.get(lab.integration_endpoint, timeout=5,
                       params={"command": command, "response": "json", **FIXTURE_CALLS[command]})
    assert raw.status_code == 200
    assert raw.headers["Content-Type"] == "application/json; charset=UTF-8"
    ours = raw.json()
    assert list(ours) == list(fixture)  # same envelope key
    (envelope, fixture_body), = fixture.items()
    body = ours[envelope]
    assert set(body) == set(fixture_body)  # same count/list keys (or object key)
    for key, value in fixture_body.items():
        assert _json_type(body[key]) == _json_type(value)
        if isinstance(value, list):
            assert body[key], f"{command}: the lab returned no {key}"
            for item in body[key]:
                _compare_fields(value[0], item, f"{command}.{key}")
        elif isinstance(value, dict):
            _compare_fields(value, body[key], f"{command}.{key}")


# ------------------------------------------------------------------ pagination

@pytest.mark.root
@pytest.mark.parametrize("params, text, cserrorcode", [
    ({"page": 1, "pagesize": 501}, "Page size can't exceed max allowed page size value: 500", 4350),
    ({"page": 1}, '"pagesize" parameter is required when "page" is specified', 9999),
    ({"pagesize": 2}, '"page" parameter is required when "pagesize" is specified', 9999),
    ({"page": 1, "pagesize": -1}, "Can't specify page parameter when pagesize is -1 (Unlimited)", 4350),
])
def test_pagination_errors_are_431_with_the_real_bodies(lab, params, text, cserrorcode):
    # Raw HTTP: cs would add pagesize=500 whenever page is given.
    answer = requests.get(lab.integration_endpoint, timeout=5,
                          params={"command": "listHosts", "response": "json", **params})
    assert answer.status_code == 431
    assert answer.json() == {"listhostsresponse": {
        "uuidList": [], "errorcode": 431, "cserrorcode": cserrorcode, "errortext": text}}


@pytest.mark.root
def test_pagination_windows(api):
    everything = api.listHosts(pagesize=-1)
    assert everything["count"] == 9 and len(everything["host"]) == 9
    second = api.listHosts(page=2, pagesize=4)
    assert second["count"] == 9 and [h["id"] for h in second["host"]] == \
        [h["id"] for h in everything["host"][4:8]]
    assert api.listHosts(page=4, pagesize=4) == {"count": 9}  # past the end: no list key
    assert api.listHosts(name="no-such-host") == {}  # nothing at all: empty object


def test_without_paging_only_default_page_size_rows_come_back():
    small = dataclasses.replace(default_topology(), default_page_size=3, listeners=False,
                                settings={**default_topology().settings, "default.page.size": "3"})
    with Lab(small) as lab:
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, timeout=5)
        first = api.listHosts()
        assert first["count"] == 9 and len(first["host"]) == 3
        # cs's fetch_list asks for 500 rows a page: the server refuses, like a real one
        status, error = _error(lambda: api.listHosts(fetch_list=True))
        assert (status, error["errortext"]) == (431, "Page size can't exceed max allowed page size value: 3")
        assert len(api.listHosts(fetch_list=True, pagesize=3)) == 9


# ------------------------------------------------------------------ authentication

def test_signature_algorithm_matches_cs_for_awkward_values():
    params = {"command": "listHosts", "name": "a b+c/d:é*", "apiKey": "K", "Zeta": "1", "alpha": "2"}
    client = CloudStack(endpoint="http://127.0.0.1:9/client/api", key="K", secret="s")
    signed = dict(params)
    client._sign(signed)
    from csaudit.lab.signing import sign
    assert sign(params, "s") == signed["signature"]
    # Java's URLEncoder encodes "~" (Python's quote does not): a real server rejects cs here too
    assert "%7e" in string_to_sign({"name": "a~b"}) and quote("~") == "~"


@pytest.mark.root
def test_unknown_key_missing_signature_and_expired_requests_are_401(lab):
    wrong_key = CloudStack(endpoint=lab.endpoint, key="nobody", secret=lab.secret)
    assert _error(wrong_key.listZones) == (401, REFUSED_401)
    unsigned = CloudStack(endpoint=lab.endpoint, key=lab.key)
    assert _error(unsigned.listZones)[0] == 401
    signed = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
    expired = _error(lambda: signed.listZones(signatureVersion="3", expires="2020-01-01T00:00:00+0000"))
    assert expired[0] == 401
    # without signatureVersion=3 the expiry is ignored, as documented
    assert signed.listZones(expires="2020-01-01T00:00:00+0000")["count"] == 2
    legacy = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, expiration=-1)
    assert legacy.listZones()["count"] == 2


@pytest.mark.root
def test_post_form_body_is_accepted_on_the_signed_port(lab):
    post = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, method="post")
    assert post.listCapabilities()["capability"]["cloudstackversion"] == "4.19.1.0"


@pytest.mark.root
def test_unknown_command_is_401_signed_and_432_on_the_integration_port_in_errorresponse(api, lab):
    assert _error(api.listNothingAtAll) == (401, REFUSED_401)
    unsigned = CloudStack(endpoint=lab.integration_endpoint)
    assert _error(unsigned.listNothingAtAll) == (432, {
        "uuidList": [], "errorcode": 432, "errortext": "Unknown API command: listNothingAtAll"})
    # the envelope: errorresponse, not listnothingatallresponse (ApiServer.getSerializedApiError), in JSON and XML
    signed = requests.get(lab.endpoint, params=_signed_params(lab, command="listNothingAtAll", response="json"), timeout=5)
    assert signed.status_code == 401 and signed.json() == {"errorresponse": REFUSED_401}
    as_xml = requests.get(lab.endpoint, params=_signed_params(lab, command="listNothingAtAll"), timeout=5)
    root = ET.fromstring(as_xml.content)
    assert (root.tag, root.findtext("errorcode"), root.findtext("errortext")) == ("errorresponse", "401", VERIFY_FAILED)
    integration = requests.get(lab.integration_endpoint, params={"command": "listNothingAtAll", "response": "json"}, timeout=5)
    assert list(integration.json()) == ["errorresponse"]


def _signed_params(lab, **params):
    from csaudit.lab.signing import sign

    params = {**params, "apiKey": lab.key}
    return {**params, "signature": sign(params, lab.secret)}


@pytest.mark.root
def test_integration_port_speaks_xml_by_default_on_any_path_and_ignores_post_bodies(lab):
    base = lab.integration_endpoint.rsplit("/client/api", 1)[0]
    answer = requests.get(f"{base}/whatever?command=listZones", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == "listzonesresponse" and root.get("cloud-stack-version") == "4.19.1.0"
    assert root.findtext("count") == "2" and len(root.findall("zone")) == 2
    posted = requests.post(f"{base}/client/api", data={"command": "listZones", "response": "json"}, timeout=5)
    assert posted.status_code == 432 and b"Invalid request, no command sent" in posted.content


# ------------------------------------------------------------------ writes and counting

@pytest.mark.root
def test_writes_are_refused_counted_and_change_nothing(api, lab):
    zones_before = api.listZones()
    writes_before = lab.write_attempts
    # refused as CloudStack refuses a command the caller's role lacks, not with the 401 of a bad signature
    assert _error(lambda: api.deleteZone(id=zones_before["zone"][0]["id"])) == (432, {
        "uuidList": [], "errorcode": 432, "cserrorcode": 9999,
        "errortext": "The API [deleteZone] does not exist or is not available for the account admin."})
    assert _error(lambda: CloudStack(endpoint=lab.integration_endpoint).updateConfiguration(
        name="integration.api.port", value="0"))[0] == 432
    assert lab.write_attempts == writes_before + 2
    assert lab.requests["deleteZone"] >= 1 and lab.requests["updateConfiguration"] >= 1
    assert api.listZones() == zones_before
    assert api.listConfigurations(name="integration.api.port")["configuration"][0]["value"] == "8096"


@pytest.mark.root
def test_every_request_is_counted_per_command(api, lab):
    before = lab.requests
    api.listZones()
    api.listPods()
    _error(lambda: api.listHosts(page=1, pagesize=999))
    after = lab.requests
    assert after["listZones"] - before["listZones"] == 1
    assert after["listPods"] - before["listPods"] == 1
    assert after["listHosts"] - before["listHosts"] == 1  # errors count too


# ------------------------------------------------------------------ command semantics

@pytest.mark.root
def test_list_hosts_includes_system_vm_agents_unless_typed(api):
    rows = api.listHosts()["host"]
    assert {r["type"] for r in rows} == {"Routing", "SecondaryStorageVM", "ConsoleProxy"}
    routing = api.listHosts(type="Routing")["host"]
    assert {r["name"] for r in routing} == {"kvm01", "kvm02", "xen01", "esxi01", "esxi02"}
    kvm02 = _by_name(routing)["kvm02"]
    assert kvm02["state"] == "Up" and kvm02["ipaddress"] == _by_name(routing)["kvm02"]["ipaddress"]
    east = api.listZones(name="zone-east")["zone"][0]
    assert {r["name"] for r in api.listHosts(zoneid=east["id"], type="routing")["host"]} == \
        {"kvm01", "kvm02", "xen01"}
    status, error = _error(lambda: api.listHosts(zoneid="not-a-zone"))
    assert status == 431 and "Invalid parameter zoneid value=not-a-zone" in error["errortext"]


@pytest.mark.root
def test_system_vms_have_linklocal_except_on_vmware(api, lab):
    vms = _by_name(api.listSystemVms()["systemvm"])
    assert vms["s-1-VM"]["systemvmtype"] == "secondarystoragevm" and vms["s-1-VM"]["agentstate"] == "Up"
    assert vms["v-2-VM"]["systemvmtype"] == "consoleproxy" and "linklocalip" in vms["v-2-VM"]
    assert "linklocalip" not in vms["s-5-VM"] and vms["s-5-VM"]["hypervisor"] == "VMware"
    only_ssvm = api.listSystemVms(systemvmtype="secondarystoragevm")["systemvm"]
    assert {v["name"] for v in only_ssvm} == {"s-1-VM", "s-5-VM"}


@pytest.mark.root
def test_router_visibility_needs_listall_and_projectid(api):
    assert api.listRouters() == {}  # all routers belong to tenants
    listed = _by_name(api.listRouters(listall=True)["router"])
    assert set(listed) == {"r-3-VM", "r-4-VM", "r-7-VM", "r-9-VM", "r-10-VM"}
    project = api.listRouters(listall=True, projectid=-1)["router"]
    assert [r["name"] for r in project] == ["r-8-VM"] and project[0]["project"] == "proj-west"
    r7 = listed["r-7-VM"]
    assert r7["hypervisor"] == "VMware" and r7["linklocalip"].endswith(".2.107")  # a pod private IP
    assert {"guestipaddress", "publicip", "hostid"} <= set(r7)


@pytest.mark.root
def test_vmware_dcs_need_a_zone_and_use_a_numeric_zone_id(api):
    status, error = _error(api.listVmwareDcs)
    assert status == 431 and error["errortext"] == \
        "Unable to execute API command listvmwaredcs due to missing parameter zoneid"
    west = api.listZones(name="zone-west")["zone"][0]
    dcs = api.listVmwareDcs(zoneid=west["id"])
    assert list(dcs) == ["count", "VMwareDC"] and dcs["VMwareDC"][0]["zoneid"] == 2
    assert dcs["VMwareDC"][0]["vcenter"].endswith(".2.10")


@pytest.mark.root
def test_configurations_global_and_zone_scoped(api):
    hits = _by_name(api.listConfigurations(name="port")["configuration"])  # SQL LIKE, as for real
    assert {"port", "integration.api.port"} <= set(hits) and hits["port"]["value"] == "8250"
    host = api.listConfigurations(name="host")["configuration"][0]
    assert host["name"] == "host" and host["value"].count(",") == 1
    east = api.listZones(name="zone-east")["zone"][0]
    zoned = _by_name(api.listConfigurations(zoneid=east["id"])["configuration"])
    assert zoned["secstorage.encrypt.copy"]["scope"] == "zone"


@pytest.mark.root
def test_management_servers_and_database(api, lab):
    servers = _by_name(api.listManagementServers()["managementserver"])
    assert servers["ms2"]["serviceip"] == lab.topology.management_servers[1].address
    assert "ipaddress" not in servers["ms2"]  # 4.20.1+ only
    assert api.listDbMetrics()["dbMetrics"]["hostname"] == lab.topology.database.address


# ------------------------------------------------------------------ versions

def _api_only(version):
    return dataclasses.replace(default_topology(), version=version, listeners=False)


def test_version_4_11_has_no_management_servers_command_and_older_fields():
    with Lab(_api_only("4.11.3.0")) as lab:
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
        assert _error(api.listManagementServers) == (401, {
            "uuidList": [], "errorcode": 401, "errortext": VERIFY_FAILED})
        assert _error(CloudStack(endpoint=lab.integration_endpoint).listManagementServers)[0] == 432
        assert _error(api.listDbMetrics)[0] == 401
        vm = api.listSystemVms()["systemvm"][0]
        assert "agentstate" not in vm and "podname" not in vm
        host = api.listHosts(type="Routing")["host"][0]
        assert isinstance(host["managementserverid"], int) and "hasannotations" not in host


def test_version_4_20_1_reports_ipaddress_of_management_servers():
    with Lab(_api_only("4.20.1.0")) as lab:
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
        server = api.listManagementServers()["managementserver"][0]
        assert server["ipaddress"] == server["serviceip"] == lab.topology.management_servers[0].address
        assert api.listCapabilities()["capability"]["cloudstackversion"] == "4.20.1.0"


@pytest.mark.root
def test_rows_cut_to_the_parsed_fields_give_the_same_inventory(lab):
    """The API client keeps only inventory.ROW_FIELDS of each big listing's rows; parsed, nothing differs
    from the full rows the simulator sends (which carry every field of their version)."""
    from csaudit.collect.api import CloudStackApi, fetch_raw_cloud
    from csaudit.collect.config import ApiConfig
    from csaudit.collect.parse import ROW_FIELDS, ROW_TRIMS, parse_inventory

    api = CloudStackApi(ApiConfig(lab.endpoint, key=lab.key, secret=lab.secret))
    full, cut = fetch_raw_cloud(api), fetch_raw_cloud(api, fields=ROW_FIELDS, trims=ROW_TRIMS)
    assert sum(len(row) for row in cut["hosts"]) < sum(len(row) for row in full["hosts"])  # really cut down
    # the passed health checks shrink to one shared object; the failed one (r-3-VM's) stays whole
    checks = [c for row in cut["routers"] for c in row["healthcheckresults"]]  # (all passed: one shared tuple)
    assert len({id(c) for c in checks if c["success"]}) == 1 and [c["checkname"] for c in checks if not c["success"]] == [
        "gateways_check.py"]
    assert parse_inventory(cut, endpoint=lab.endpoint) == parse_inventory(full, endpoint=lab.endpoint)


def test_the_listings_of_the_named_services_by_version(lab, api):
    """Templates and ISOs with their URL (4.15+), physical networks, LDAP servers under the plugin's
    names, the usage server (4.17+) and a host's out-of-band management, through the real cs client."""
    templates = _by_name(api.listTemplates(templatefilter="all", listall=True)["template"])
    assert templates["debian-12"]["url"] == f"http://{lab.topology.templates[0].address}/templates/debian-12.qcow2"
    assert templates["debian-12"]["crossZones"] is True and "zoneid" not in templates["debian-12"]
    assert templates["rocky-9-west"]["zonename"] == "zone-west"
    assert [iso["name"] for iso in api.listIsos(isofilter="all")["iso"]] == ["virtio-win"]
    assert _error(api.listTemplates)[0] == 431  # templatefilter is required
    networks = {n["zonename"]: n["isolationmethods"] for n in api.listPhysicalNetworks()["physicalnetwork"]}
    assert networks == {"zone-east": "VLAN,VXLAN", "zone-west": "VLAN"}
    ldap = requests.get(lab.integration_endpoint, params={"command": "listLdapConfigurations", "response": "json"},
                        timeout=5).json()
    assert ldap["ldapconfigurationresponse"]["LdapConfiguration"] == [{"hostname": lab.topology.ldap_servers[0].hostname,
                                                                       "port": 389}]
    assert api.listUsageServerMetrics()["usageMetrics"]["hostname"] == "ms1"
    kvm01 = api.listHosts(name="kvm01")["host"][0]["outofbandmanagement"]
    assert (kvm01["enabled"], kvm01["driver"], kvm01["port"]) == (True, "ipmitool", "623")


def test_version_4_14_lists_templates_without_their_url_and_has_no_usage_metrics():
    with Lab(_api_only("4.14.0.0")) as lab:
        api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret)
        assert all("url" not in t for t in api.listTemplates(templatefilter="all")["template"])
        assert _error(api.listUsageServerMetrics)[0] == 401
