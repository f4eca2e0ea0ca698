"""Routers' redundancy and health check fields, parsed from listRouters answers in the recorded shape
(tests/data/routers, see its README)."""

import json
import pathlib

from csaudit.collect.parse import ROW_FIELDS, ROW_TRIMS, parse_inventory
from csaudit.model.inventory import HealthCheck

DATA = pathlib.Path(__file__).parent.parent / "data" / "routers"


def routers(name: str) -> list[dict]:
    return json.loads((DATA / name).read_text())["listroutersresponse"]["router"]


def parsed(rows: list[dict]) -> dict:
    return {r.name: r for r in parse_inventory({"routers": rows}).routers}


def test_the_recorded_router_is_not_redundant_and_passed_its_one_check():
    [router] = parsed(routers("recorded.json")).values()
    assert (router.redundant, router.redundant_state) == (False, None)  # "UNKNOWN": read for redundant routers only
    assert (router.guest_network_name, router.vpc_id) == (None, None)  # read for redundant routers only
    assert (router.health_checks_run, router.health_checks_failed) == (1, ())


def test_pairs_keep_what_ties_them_and_only_failed_checks_are_kept():
    by_name = parsed(routers("pairs.json"))
    shop = by_name["r-11-VM"], by_name["r-12-VM"]
    assert {r.vpc_id for r in shop} == {"a1b2c3d4-0000-4000-8000-000000000200"} and shop[0].vpc_name == "vpc-shop"
    assert shop[0].guest_network_id != shop[1].guest_network_id  # tiers differ: the VPC is the tie
    assert [(r.redundant, r.redundant_state) for r in shop] == [(True, "PRIMARY"), (True, "BACKUP")]
    assert {by_name[n].guest_network_id for n in ("r-21-VM", "r-22-VM")} == {"a1b2c3d4-0000-4000-8000-000000000221"}
    failing = by_name["r-41-VM"]
    assert failing.health_checks_run == 2
    assert failing.health_checks_failed == (HealthCheck("gateways_check.py", "basic", "2024-06-01T10:00:00+0000",
                                                        "Unreachable gateways are: 198.51.100.254"),)


def test_rows_cut_and_trimmed_as_they_arrive_keep_redundancy_and_health():
    rows = routers("pairs.json")
    cut = [ROW_TRIMS["routers"]({k: v for k, v in row.items() if k in ROW_FIELDS["routers"]}) for row in rows]
    assert parse_inventory({"routers": cut}) == parse_inventory({"routers": rows})
    assert cut[-1]["healthcheckresults"][0] == {"success": True} and cut[-1]["healthcheckresults"][1]["success"] is False
    assert cut[0]["healthcheckresults"] is cut[1]["healthcheckresults"]  # all passed: one shared tuple
    assert "guestnetworkid" not in cut[-1] and cut[0]["vpcid"]  # ties kept for redundant routers only
    assert len(cut[-1]) <= 10  # a small dict (the recorded row has 26 keys)


def test_older_servers_and_odd_values():
    # Before 4.14 there are no results (None: not measured, unlike 0 checks run); booleans may come as text
    # (the XML answer); a check without its result proves nothing.
    old = {"id": "r1", "name": "r-1-VM", "isredundantrouter": "true", "redundantstate": "MASTER"}
    odd = {"id": "r2", "name": "r-2-VM", "isredundantrouter": "null",
           "healthcheckresults": [{"checkname": "a", "success": "false"}, {"checkname": "b"}, "junk",
                                  {"success": False, "checktype": "advanced", "details": "null"}]}
    by_name = parsed([old, odd])
    assert (by_name["r-1-VM"].redundant, by_name["r-1-VM"].health_checks_run) == (True, None)
    assert by_name["r-2-VM"].redundant is False and by_name["r-2-VM"].health_checks_run == 3
    assert [(c.name, c.type, c.details) for c in by_name["r-2-VM"].health_checks_failed] == [
        ("a", None, None), ("unnamed check", "advanced", None)]


def test_a_saved_inventory_keeps_redundancy_and_failed_checks(tmp_path):
    from csaudit.collect.saved import inventory_to_dict, load_inventory

    inventory = parse_inventory({"routers": routers("pairs.json")})
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    assert load_inventory(str(path)) == inventory
    assert any(r.health_checks_failed for r in inventory.routers) and any(r.redundant for r in inventory.routers)
