"""The lab's routers as each release serves them: redundancy, the pair's shared network, health check results
(fetchhealthcheckresults 4.14+, the healthchecksfailed field and filter 4.16+, MASTER renamed PRIMARY in 4.16),
compared with the recorded answer in tests/data/routers, through the real `cs` client."""

import dataclasses
import json
import pathlib
import re

import pytest
from cs import CloudStack

from csaudit.lab import Lab, default_topology, parse_topology, topology_to_toml
from csaudit.lab.schema import FaultSpec
from csaudit.model.errors import ConfigError
from tests.lab.test_topology import MINIMAL

RECORDED = json.loads((pathlib.Path(__file__).parent.parent / "data" / "routers" / "recorded.json").read_text())
RECORDED_ROUTER = RECORDED["listroutersresponse"]["router"][0]


def routers(lab, **params) -> dict[str, dict]:
    api = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, timeout=5)
    return {r["name"]: r for r in api.listRouters(listall=True, **params).get("router", [])}


@pytest.fixture(scope="module", params=["4.13.1.0", "4.15.2.0", "4.19.1.0"])
def lab(request):
    with Lab(dataclasses.replace(default_topology(), version=request.param, listeners=False)) as running:
        yield running


def test_each_release_serves_the_fields_it_has(lab):
    version = tuple(int(n) for n in lab.topology.version.split("."))
    plain, checked = routers(lab), routers(lab, fetchhealthcheckresults=True)
    assert not any("healthcheckresults" in r for r in plain.values())  # only when asked
    assert all(("healthcheckresults" in r) == (version >= (4, 14)) for r in checked.values())
    assert all(("healthchecksfailed" in r) == (version >= (4, 16)) for r in checked.values())
    master = "PRIMARY" if version >= (4, 16) else "MASTER"
    assert {n: (r["isredundantrouter"], r["redundantstate"]) for n, r in checked.items()} == {
        "r-3-VM": (False, "UNKNOWN"), "r-4-VM": (False, "UNKNOWN"), "r-7-VM": (False, "UNKNOWN"),
        "r-9-VM": (True, master), "r-10-VM": (True, master)}  # the demo's planted split brain


def test_the_pair_shares_its_guest_network_and_one_router_fails_a_check(lab):
    checked = routers(lab, fetchhealthcheckresults=True)
    pair = checked["r-9-VM"], checked["r-10-VM"]
    assert pair[0]["guestnetworkid"] == pair[1]["guestnetworkid"] != checked["r-3-VM"]["guestnetworkid"]
    assert {r["guestnetworkname"] for r in pair} == {"tenant-e-network"} and "vpcid" not in pair[0]
    if "healthcheckresults" not in checked["r-3-VM"]:
        return  # before 4.14
    failed = {n: [c["checkname"] for c in r["healthcheckresults"] if not c["success"]] for n, r in checked.items()}
    assert failed == {"r-3-VM": ["gateways_check.py"], "r-4-VM": [], "r-7-VM": [], "r-9-VM": [], "r-10-VM": []}
    if "healthchecksfailed" in checked["r-3-VM"]:
        assert {n for n, r in checked.items() if r["healthchecksfailed"]} == {"r-3-VM"}


def test_the_fields_have_the_recorded_names_and_types(lab):
    served = routers(lab, fetchhealthcheckresults=True)["r-3-VM"]
    for key in ("isredundantrouter", "redundantstate", "healthchecksfailed", "healthcheckresults", "guestnetworkname"):
        if key in served:
            assert type(served[key]) is type(RECORDED_ROUTER[key]), key
    for check in served.get("healthcheckresults", []):
        assert {k: type(v) for k, v in check.items()} == {k: type(v) for k, v in RECORDED_ROUTER["healthcheckresults"][0].items()}


def test_the_healthchecksfailed_filter_came_in_4_16(lab):
    version = tuple(int(n) for n in lab.topology.version.split("."))
    failing = routers(lab, healthchecksfailed=True)
    assert set(failing) == ({"r-3-VM"} if version >= (4, 16) else {"r-3-VM", "r-4-VM", "r-7-VM", "r-9-VM", "r-10-VM"})


def test_api_faults_are_given_in_the_topology_not_planted_at_run_time(lab):
    fault = FaultSpec("health-check-failed", ("r-4-VM",), "r-4-VM fails its DNS check.", check="dns_check.py")
    with pytest.raises(ConfigError, match="changes what the API says, which stays as it was"):
        lab.plant(fault)


PAIR = MINIMAL + """
[[zone.router]]
name = "r-1-VM"
host = "h1"
linklocal = "127.50.201.1"
guest = "127.50.221.1"
public = "127.50.211.1"
vpc = "shop"
redundantstate = "PRIMARY"
[[zone.router]]
name = "r-2-VM"
host = "h1"
linklocal = "127.50.201.2"
guest = "127.50.221.2"
public = "127.50.211.2"
"""


def test_a_topology_with_api_faults_round_trips_through_toml():
    topology = parse_topology(PAIR + """
[[fault]]
kind = "redundant-state"
object = "r-1-VM"
state = "BACKUP"
description = "r-1-VM reports BACKUP."
[[fault]]
kind = "health-check-failed"
object = "r-2-VM"
description = "r-2-VM fails its gateways check."
""")
    assert [(f.state, f.check) for f in topology.faults] == [("BACKUP", None), (None, "gateways_check.py")]
    assert parse_topology(topology_to_toml(topology)) == topology


@pytest.mark.parametrize(("text", "message"), [
    (PAIR.replace('vpc = "shop"\n', ""), "a redundant router needs 'network' or 'vpc'"),
    (PAIR.replace('"PRIMARY"', '"LEADER"'), "'redundantstate' = 'LEADER' is not one of"),
    (PAIR + '[[fault]]\nkind = "redundant-state"\nobject = "r-2-VM"\nstate = "MASTER"\ndescription = "x."\n',
     "router r-2-VM is not redundant"),
    (PAIR + '[[fault]]\nkind = "redundant-state"\nobject = "r-1-VM"\ndescription = "x."\n',
     "redundant-state faults, and only they, need a 'state'"),
    (PAIR + '[[fault]]\nkind = "health-check-failed"\nobject = "h1"\ndescription = "x."\n',
     "health-check-failed faults apply to routers: 'h1' is not a router"),
    (PAIR + '[[fault]]\nkind = "health-check-failed"\nobject = "r-1-VM"\nport = 22\ndescription = "x."\n',
     "health-check-failed faults name no port"),
    (PAIR + '[[fault]]\nkind = "health-check-failed"\nobject = "r-1-VM"\ncheck = "ping.py"\ndescription = "x."\n',
     "'check' = 'ping.py' is not one of"),
])
def test_bad_router_evidence_in_a_topology_is_one_config_error(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_topology(text)
