"""The lab plays along with real clients: listApis (what cloudmonkey's `sync` and `cs listApis` read), API keys
with roles, and CloudStack's answers to a command the role lacks, a write, and an unknown command."""

import json
import os
import subprocess
import sys

import pytest
import requests
from cs import CloudStack, CloudStackApiException

from csaudit.lab import Lab, default_topology
from csaudit.lab.commands import COMMANDS
from csaudit.lab.roles import Role
from csaudit.lab.versions import at_least, parse_version

VERIFY_FAILED = "unable to verify user credentials and/or request signature"
READER = Role("reader", (("listZones", "allow"), ("listPods", "allow"), ("listApis", "allow"), ("list*", "deny"),
                         ("*", "deny")))


def _refused(call):
    with pytest.raises(CloudStackApiException) as caught:
        call()
    return caught.value.response.status_code, caught.value.error


def _role_unavailable(command, account):
    return {"uuidList": [], "errorcode": 432, "cserrorcode": 9999,
            "errortext": f"The API [{command}] does not exist or is not available for the account {account}."}


@pytest.fixture(scope="module")
def lab():
    with Lab(default_topology()) as running:
        running.reader = running.add_api_key(READER, account="reader")
        yield running


# ------------------------------------------------------------------ roles, without a server

def test_the_first_matching_rule_decides_and_an_admin_role_allows_what_no_rule_names():
    role = Role("r", (("listHosts", "deny"), ("list*", "allow"), ("deleteZone", "deny")))
    assert not role.allows("listHosts") and role.allows("listZones") and role.allows("LISTZONES")
    assert not role.allows("deleteZone")
    assert role.allows("createAccount")  # type Admin: authorised by the commands' annotations
    assert not Role("r", (("listZones", "allow"),), type="User").allows("createAccount")
    assert not Role("r", (("*", "deny"),)).allows("listZones")


def test_a_role_reads_import_role_parameters_in_index_order():
    params = {"name": "r", "type": "Admin", "rules[1].rule": "*", "rules[1].permission": "deny",
              "rules[0].rule": "listZones", "rules[0].permission": "allow", "rules[0].description": "zones"}
    assert Role.from_import(params) == Role("r", (("listZones", "allow"), ("*", "deny")))


def test_a_bad_rule_or_role_type_is_refused():
    with pytest.raises(ValueError):
        Role("r", (("list Zones", "allow"),))
    with pytest.raises(ValueError):
        Role("r", (("listZones", "maybe"),))
    with pytest.raises(ValueError):
        Role("r", type="Superuser")


# ------------------------------------------------------------------ through the lab's HTTP API

@pytest.mark.root
def test_list_apis_describes_every_served_command_as_cloudmonkey_sync_reads_it(lab):
    admin = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, timeout=5)
    answer = admin.listApis()
    names = {api["name"] for api in answer["api"]}
    assert answer["count"] == len(answer["api"]) == len(names)
    version = parse_version(lab.topology.version)
    assert names == {"listApis"} | {name for name, spec in COMMANDS.items() if at_least(version, spec.since)}
    assert {"listApis", "listZones", "listHosts", "listConfigurations"} <= names
    for api in answer["api"]:
        # the fields and types cloudmonkey's UpdateCache asserts (config/cache.go); a wrong one panics `sync`
        assert isinstance(api["name"], str) and isinstance(api["isasync"], bool) and isinstance(api["description"], str)
        assert isinstance(api["params"], list) and isinstance(api["response"], list) and isinstance(api.get("related", ""), str)
        for param in api["params"]:
            assert isinstance(param["name"], str) and isinstance(param["type"], str)
            assert isinstance(param["required"], bool) and isinstance(param["description"], str)
            assert isinstance(param.get("related", ""), str)
        assert set(api) <= {"name", "description", "since", "isasync", "related", "params", "response", "type"}
    by_name = {api["name"]: api for api in answer["api"]}
    zone_param = {p["name"]: p for p in by_name["listPods"]["params"]}["zoneid"]
    assert zone_param["type"] == "uuid" and zone_param["related"] == "listZones"
    assert {p["name"]: p["required"] for p in by_name["listVmwareDcs"]["params"]}["zoneid"] is True
    assert {"id", "name", "ipaddress", "type", "state"} <= {field["name"] for field in by_name["listHosts"]["response"]}
    assert admin.listApis(name="listZones")["api"][0]["name"] == "listZones"


@pytest.mark.root
def test_list_apis_shows_a_role_only_what_it_may_call_and_the_cs_command_line_reads_it(lab, tmp_path):
    key, secret = lab.reader
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSTACK_")}
    env.update(HOME=str(tmp_path), CLOUDSTACK_ENDPOINT=lab.endpoint, CLOUDSTACK_KEY=key, CLOUDSTACK_SECRET=secret)
    result = subprocess.run([sys.executable, "-m", "cs", "listApis"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert {api["name"] for api in json.loads(result.stdout)["api"]} == {"listApis", "listZones", "listPods"}


@pytest.mark.root
def test_a_role_key_gets_what_its_role_allows_and_the_role_error_for_the_rest(lab):
    key, secret = lab.reader
    reader = CloudStack(endpoint=lab.endpoint, key=key, secret=secret, timeout=5)
    assert reader.listZones()["count"] == 2
    before = lab.write_attempts
    assert _refused(reader.listHosts) == (432, _role_unavailable("listHosts", "reader"))
    assert _refused(lambda: reader.deleteZone(id="x")) == (432, _role_unavailable("deleteZone", "reader"))
    assert lab.write_attempts == before + 1
    assert _refused(reader.listNothingAtAll) == (401, {"uuidList": [], "errorcode": 401, "errortext": VERIFY_FAILED})
    # the role is checked before the signature, as ApiServer.verifyRequest does; a bad signature is the 401
    wrong = CloudStack(endpoint=lab.endpoint, key=key, secret="not-the-secret", timeout=5)
    assert _refused(wrong.listZones)[0] == 401
    assert _refused(wrong.listHosts)[0] == 432
    assert lab.commands_of("reader")["listHosts"] == 2
    # the role error's envelope is errorresponse (UNSUPPORTED_ACTION_ERROR in getSerializedApiError), in XML too
    from csaudit.lab.signing import sign

    params = {"command": "listHosts", "apiKey": key}
    answer = requests.get(lab.endpoint, params={**params, "signature": sign(params, secret)}, timeout=5)
    assert answer.status_code == 432 and answer.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?><errorresponse ')


@pytest.mark.root
def test_the_lab_key_is_root_admin_but_writes_get_the_role_error_not_a_401(lab):
    admin = CloudStack(endpoint=lab.endpoint, key=lab.key, secret=lab.secret, timeout=5)
    assert admin.listHosts()["count"] > 0
    assert _refused(lambda: admin.updateConfiguration(name="x", value="y")) == (
        432, _role_unavailable("updateConfiguration", "admin"))
