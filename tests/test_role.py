"""The least-privilege role, end to end: csaudit runs against the embedded cloud with an API key whose role is exactly
what `csaudit role` prints, sends nothing that role does not allow and uses every rule of it; with one rule
missing, it says which rule to add."""

import pytest

from csaudit.lab import Lab, default_topology
from csaudit.lab.roles import Role

pytestmark = pytest.mark.root  # the embedded cloud listens on 127.x ports below 1024

# Commands csaudit sends only in some clouds or modes; the demo cloud (4.19, a VMware zone) has them all, so a full
# run there must use every rule of the role:
#   listVmwareDcs           only for zones with VMware clusters
#   listManagementServers   only from 4.13 on; listDbMetrics only from 4.17 on; listImageStores from 4.2 on
SOME_CLOUDS_ONLY = {"listVmwareDcs", "listManagementServers", "listDbMetrics", "listImageStores"}


@pytest.fixture(scope="module")
def lab():
    with Lab(default_topology()) as running:
        yield running


def printed_role(cli, without=()):
    """The role `csaudit role --format json` prints (importRole's name, type and rules), less some rules."""
    document = cli("role", "--format", "json").json()
    rules = tuple((r["rule"], r["permission"]) for r in document["rules"] if r["rule"] not in without)
    return Role(document["name"], rules, document["type"])


def use_key(lab, tmp_path, role, account):
    key, secret = lab.add_api_key(role, account=account)
    lab.write_ini(tmp_path / "cloudstack.ini", key=key, secret=secret)  # ./cloudstack.ini, as an operator has it


def test_a_full_run_sends_only_what_the_role_allows_and_needs_every_rule_of_it(cli, tmp_path, lab):
    role = printed_role(cli)
    use_key(lab, tmp_path, role, "auditor")
    result = cli("run", "--no-remote", "--format", "json", "--timeout", "1")
    assert result.exit_code == 1, result.stderr  # the demo's planted faults fail; nothing was refused
    assert "refused" not in result.stderr and "role" not in result.stderr
    report = result.json()
    assert {z["name"] for z in report["zones"]} == {"zone-east", "zone-west"}
    sent = set(lab.commands_of("auditor"))
    allowed = {rule for rule, permission in role.rules if permission == "allow"}
    assert sent <= allowed and all(role.allows(command) for command in sent)
    assert allowed - sent == set(), f"rules csaudit did not use: {allowed - sent}"
    assert SOME_CLOUDS_ONLY <= sent
    assert role.rules[-1] == ("*", "deny") and not role.allows("deleteZone")


def test_a_missing_rule_is_one_message_naming_the_rule_and_exit_3(cli, tmp_path, lab):
    use_key(lab, tmp_path, printed_role(cli, without={"listHosts"}), "no-hosts")
    result = cli("run", "--no-remote", "--format", "json", "--timeout", "1")
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "csaudit: listHosts refused: the API key's role lacks it; add the rule `listHosts allow` "
        "(above any `*` deny; `csaudit role` prints them all)")
    assert "Traceback" not in result.stderr
    assert lab.commands_of("no-hosts")["listStoragePools"] == 1  # the reading went on, to name every missing rule


def test_a_missing_rule_for_an_optional_listing_is_a_warning_and_the_audit_goes_on(cli, tmp_path, lab):
    use_key(lab, tmp_path, printed_role(cli, without={"listManagementServers"}), "no-ms")
    result = cli("inventory", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert ("csaudit: listManagementServers refused: the API key's role lacks it; add the rule "
            "`listManagementServers allow` (above any `*` deny; `csaudit role` prints them all); going on without "
            "listManagementServers") in result.stderr
    assert result.json()["zones"]
