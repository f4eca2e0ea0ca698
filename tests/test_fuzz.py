"""Hypothesis feeds the inventory parser and the derivation random and malformed API answers:
missing keys, wrong types, nulls, unicode, long lists. Nothing may crash; bad input is a UsageError."""

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csaudit.collect.parse import parse_inventory
from csaudit.collect.saved import inventory_from_dict, inventory_to_dict
from csaudit.model.errors import UsageError
from csaudit.model.inventory import Inventory
from csaudit.plan.catalogue import load_catalogue
from csaudit.plan.derive import derive_flows

CATALOGUE = load_catalogue()
FIELDS = ["id", "name", "type", "zoneid", "podid", "clusterid", "hostid", "hypervisor", "hypervisortype", "ipaddress",
          "serviceip", "privateip", "publicip", "linklocalip", "guestipaddress", "systemvmtype", "url", "protocol",
          "scope", "state", "agentstate", "value", "dns1", "internaldns1", "vcenter", "cloudstackversion", "hostname"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                    st.sampled_from(["null", "KVM", "VMware", "XenServer", "Routing", "consoleproxy", "127.15.0.1",
                                     "nfs://127.15.0.2/x", "nfs://[::1", "z1", "c1", "h1", "CLUSTER", "RBD", "NetworkFilesystem"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)
rows = st.lists(st.one_of(st.dictionaries(st.sampled_from(FIELDS), values, max_size=10), values), max_size=8)
KEYS = ["capabilities", "zones", "pods", "clusters", "hosts", "systemvms", "routers", "managementservers", "dbmetrics",
        "imagestores", "storagepools", "configurations", "zoneconfigurations", "vmwaredcs", "zone_errors"]
raw_clouds = st.dictionaries(st.sampled_from(KEYS), st.one_of(rows, values, st.dictionaries(st.text(max_size=4), rows, max_size=3)), max_size=len(KEYS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(raw_clouds, values))
def test_parser_and_derivation_never_crash(raw):
    try:
        inventory = parse_inventory(raw, endpoint="http://127.15.0.1:8080/client/api", api_mode="signed")
    except UsageError as exc:
        assert exc.message  # a clear message, not a crash
        return
    assert isinstance(inventory, Inventory)
    flows = derive_flows(CATALOGUE, inventory)
    assert len({f.id for f in flows}) == len(flows)
    assert inventory_from_dict(inventory_to_dict(inventory)) == inventory  # the saved form loses nothing


SAVED_KEYS = ["hosts", "zones", "routers", "system_vms", "management_servers", "database", "settings", "zone_settings", "zone_errors"]
saved = st.fixed_dictionaries(
    {"schema": st.just("csaudit/inventory/v1"), "endpoint": st.one_of(st.none(), st.text(max_size=9)),
     "api_mode": st.one_of(st.none(), st.just("signed")), "version": st.one_of(st.none(), st.text(max_size=9))},
    optional={key: st.one_of(values, rows) for key in SAVED_KEYS},
)


@settings(max_examples=300, deadline=None)
@example({"schema": "csaudit/inventory/v1", "endpoint": None, "api_mode": None, "version": None, "settings": [1]})
@example({"schema": "csaudit/inventory/v1", "endpoint": None, "api_mode": None, "version": None,
          "hosts": [{"id": 1, "name": [1], "zone_id": None, "pod_id": None, "cluster_id": None, "hypervisor": 5, "address": None}]})
@given(document=st.one_of(saved, st.dictionaries(st.sampled_from(["schema"] + SAVED_KEYS), values, max_size=6)))
def test_saved_inventory_loader_never_crashes(document):
    try:
        inventory = inventory_from_dict(document)
    except UsageError as exc:
        assert exc.message
        return
    derive_flows(CATALOGUE, inventory)
