"""The inventory parser on real simulator responses and on hand-made quirks."""

import json

import pytest

from csaudit.collect.parse import ROW_FIELDS, parse_inventory, text
from csaudit.collect.saved import inventory_from_dict, inventory_to_dict
from csaudit.model.errors import UsageError
from tests.conftest import FIXTURES
from tests.plan.test_derive_integrations import with_integrations


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def rows(name, key):
    [envelope] = fixture(name).values()
    return envelope[key]


def fixture_raw():
    return {
        "capabilities": fixture("listCapabilities")["listcapabilitiesresponse"]["capability"],
        "clusters": rows("listClusters", "cluster"),
        "hosts": rows("listHosts", "host"),
        "imagestores": rows("listImageStores", "imagestore"),
        "storagepools": rows("listStoragePools", "storagepool"),
        "configurations": rows("listConfigurations", "configuration"),
    }


def test_real_fixtures_parse():
    inventory = parse_inventory(fixture_raw(), endpoint="http://127.0.0.1:8080/client/api", api_mode="signed")
    assert inventory.version == "4.15.2.0"
    [host] = inventory.hosts
    assert host.address == "172.16.15.5" and host.hypervisor == "Simulator" and host.state == "Up"
    assert {c.hypervisor for c in inventory.clusters} == {"Simulator", "KVM"}
    [store] = inventory.image_stores
    assert (store.protocol, store.address, store.port, store.path) == ("nfs", "10.70.4.150", 2049, "/export/testing/secondary2")
    [pool] = inventory.storage_pools
    assert (pool.protocol, pool.address, pool.cluster_id) == ("nfs", "10.1.1.2", "a73fb4a4-642b-4ea4-92b8-b74ec8908534")
    # allow.user.create.projects is not a setting that shapes flows
    assert inventory.settings == {}


def test_numeric_ids_and_null_strings():
    raw = {"hosts": [{"id": 42, "name": "h", "type": "Routing", "ipaddress": "null", "managementserverid": 345051509563,
                      "zoneid": 7, "clusterid": None, "hypervisor": "KVM"}]}
    [host] = parse_inventory(raw).hosts
    assert host.id == "42" and host.zone_id == "7" and host.address is None and host.cluster_id is None
    assert text({"a": "null"}, "a") is None and text({"a": 5}, "a") == "5" and text({}, "a") is None


def test_agent_state_comes_from_the_host_row_on_old_servers():
    raw = {
        "hosts": [{"id": "x", "name": "s-1-VM", "type": "SecondaryStorageVM", "state": "Disconnected"}],
        "systemvms": [{"id": "v", "name": "s-1-VM", "systemvmtype": "secondarystoragevm", "privateip": "127.1.1.1"}],
    }
    inventory = parse_inventory(raw)
    assert inventory.hosts == ()  # agent rows are not hypervisor hosts
    assert inventory.system_vms[0].agent_state == "Disconnected"
    assert inventory.system_vms[0].role == "ssvm"


def test_management_server_address_fallbacks():
    settings = [{"name": "host", "value": "127.5.0.1"}]
    one = parse_inventory({"managementservers": [{"id": "m", "name": "ms", "serviceip": "127.0.0.1"}], "configurations": settings})
    assert (one.management_servers[0].address, one.management_servers[0].address_source) == ("127.5.0.1", "host setting")
    new = parse_inventory({"managementservers": [{"id": "m", "name": "ms", "ipaddress": "127.5.0.9"}]})
    assert new.management_servers[0].address_source == "ipaddress"
    old = parse_inventory({"configurations": settings}, endpoint="http://127.6.0.1:8080/client/api")
    assert [(m.address, m.address_source) for m in old.management_servers] == [("127.5.0.1", "host setting")]
    bare = parse_inventory({}, endpoint="http://127.6.0.1:8080/client/api")
    assert [(m.address, m.address_source) for m in bare.management_servers] == [("127.6.0.1", "endpoint host")]


def test_database_address_sources():
    assert parse_inventory({"dbmetrics": {"hostname": "127.7.0.1"}}).database.address == "127.7.0.1"
    assert parse_inventory({"dbmetrics": {"hostname": "localhost"}}).database.address is None
    assert parse_inventory({}, db_host="127.7.0.2").database.address_source == "--db-host"


def test_zone_settings_override_global(raw_small_cloud):
    inventory = parse_inventory(raw_small_cloud)
    assert inventory.setting("consoleproxy.sslEnabled") == "false"
    assert inventory.setting("consoleproxy.sslEnabled", "z2") == "true"
    assert inventory.setting("consoleproxy.sslEnabled", "z1") == "false"


def test_malformed_raw_lists_are_rejected_or_tolerated():
    with pytest.raises(UsageError):
        parse_inventory({"hosts": "nope"})
    assert parse_inventory({"hosts": [None, 3, {"id": "h", "type": "Routing"}]}).hosts[0].id == "h"
    assert inventory_from_dict(inventory_to_dict(parse_inventory({}))) == parse_inventory({})


def test_rows_cut_to_the_parsed_fields_parse_the_same(raw_small_cloud):
    """ROW_FIELDS names every field the parser reads (the API client drops the others as pages arrive)."""
    for raw in (fixture_raw(), raw_small_cloud, with_integrations(raw_small_cloud)):
        cut = {key: [{k: v for k, v in row.items() if k in ROW_FIELDS[key]} for row in value] if key in ROW_FIELDS else value
               for key, value in raw.items()}
        assert parse_inventory(cut, endpoint="e") == parse_inventory(raw, endpoint="e")


def test_named_services_survive_a_saved_inventory(raw_small_cloud):
    inventory = parse_inventory(with_integrations(raw_small_cloud), endpoint="e")
    assert {s.role for s in inventory.services} == {"http-proxy", "smtp", "api-endpoint", "template-host", "ldap", "bmc", "usage"}
    assert inventory_from_dict(inventory_to_dict(inventory)) == inventory
    assert inventory.settings["secstorage.proxy"] == "http://127.60.9.31:3128"  # its user and password are dropped
