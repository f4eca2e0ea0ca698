"""The API layer against `responses`: pagination, error bodies, transport failures, read-only guard."""

import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from csaudit.collect.api import READ_ONLY_COMMANDS, CloudStackApi, RoleRefusal, check_read_only, fetch_raw_cloud, role_refused
from csaudit.collect.config import ApiConfig
from csaudit.collect.parse import ROW_FIELDS
from csaudit.model.errors import ApiError
from csaudit.model.exitcodes import ExitStatus

ENDPOINT = "http://127.0.0.1:8080/client/api"
URL = re.compile(r"http://127\.0\.0\.1:8080/client/api.*")


def signed_api():
    return CloudStackApi(ApiConfig(ENDPOINT, key="test-key", secret="test-secret", timeout=2))


def params(call):
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def paged_hosts(total, limit=500):
    rows = [{"id": f"h{i}", "name": f"host{i}", "type": "Routing"} for i in range(total)]

    def callback(request):
        query = params(type("C", (), {"request": request}))
        pagesize, page = int(query["pagesize"]), int(query["page"])
        if pagesize > limit:
            body = {"listhostsresponse": {"uuidList": [], "errorcode": 431, "cserrorcode": 4350,
                                          "errortext": f"Page size can't exceed max allowed page size value: {limit}"}}
            return 431, {"Content-Type": "application/json"}, json.dumps(body)
        chunk = rows[(page - 1) * pagesize: page * pagesize]
        inner = {"count": total, "host": chunk} if chunk else {"count": total}
        return 200, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps({"listhostsresponse": inner})

    return callback


@responses.activate
def test_pagination_collects_every_row_beyond_500():
    responses.add_callback(responses.GET, URL, callback=paged_hosts(1234))
    api = signed_api()
    rows = api.list_all("listHosts", "host")
    assert len(rows) == 1234
    assert len({r["id"] for r in rows}) == 1234
    sent = [params(c) for c in responses.calls]
    assert [(p["page"], p["pagesize"]) for p in sent] == [("1", "500"), ("2", "500"), ("3", "500")]
    assert all("signature" in p and p["apiKey"] == "test-key" for p in sent)


@responses.activate
def test_page_size_lowered_when_the_server_allows_less():
    responses.add_callback(responses.GET, URL, callback=paged_hosts(250, limit=100))
    api = signed_api()
    assert len(api.list_all("listHosts", "host")) == 250
    sizes = [params(c)["pagesize"] for c in responses.calls]
    assert sizes == ["500", "100", "100", "100"]


@responses.activate
def test_integration_mode_sends_no_key_and_no_signature():
    responses.add_callback(responses.GET, URL, callback=paged_hosts(3))
    api = CloudStackApi(ApiConfig(ENDPOINT.replace("8080", "8080")))
    api.list_all("listHosts", "host")
    sent = params(responses.calls[0])
    assert not {"apiKey", "signature", "signatureVersion", "expires"} & set(sent)


@responses.activate
def test_short_result_against_count_is_reported(caplog):
    body = {"listhostsresponse": {"count": 5, "host": [{"id": "a"}, {"id": "b"}]}}
    responses.add(responses.GET, URL, json=body)
    responses.add(responses.GET, URL, json={"listhostsresponse": {"count": 5}})
    with caplog.at_level(logging.WARNING, logger="csaudit"):
        rows = signed_api().list_all("listHosts", "host")
    assert len(rows) == 2
    assert "count says 5" in caplog.text


@pytest.mark.parametrize(
    "status,body,expected",
    [
        (401, {"listzonesresponse": {"uuidList": [], "errorcode": 401, "errortext": "unable to verify user credentials and/or request signature"}},
         "HTTP 401: unable to verify user credentials and/or request signature"),
        (431, {"listzonesresponse": {"uuidList": [], "errorcode": 431, "cserrorcode": 4350, "errortext": "\"page\" parameter is required when \"pagesize\" is specified"}},
         "HTTP 431: \"page\" parameter is required"),
        (530, {"listzonesresponse": {"uuidList": [], "errorcode": 530, "cserrorcode": 4250, "errortext": "Internal error executing command, please contact your system administrator"}},
         "HTTP 530: Internal error executing command"),
    ],
)
@responses.activate
def test_cloudstack_error_bodies_become_one_clear_message(status, body, expected):
    responses.add(responses.GET, URL, json=body, status=status)
    with pytest.raises(ApiError) as caught:
        signed_api().list_all("listZones", "zone")
    assert expected in caught.value.message
    assert caught.value.message.startswith("listZones:")
    assert caught.value.exit_status == ExitStatus.API
    error = body["listzonesresponse"]  # what the server said travels as fields, for code to decide on
    assert (caught.value.http_status, caught.value.error_code, caught.value.cs_error_code, caught.value.error_text) == (
        status, error["errorcode"], error.get("cserrorcode"), error["errortext"])


@responses.activate
def test_html_error_page():
    responses.add(responses.GET, URL, body="<html><body><h1>502 Bad Gateway</h1></body></html>", status=502, content_type="text/html")
    with pytest.raises(ApiError) as caught:
        signed_api().call("listCapabilities")
    assert "HTTP 502" in caught.value.message and "unusable answer" in caught.value.message


@responses.activate
def test_truncated_json():
    responses.add(responses.GET, URL, body='{"listzonesresponse": {"count": 1, "zone": [', content_type="application/json")
    with pytest.raises(ApiError) as caught:
        signed_api().call("listZones")
    assert "Malformed JSON" in caught.value.message


@responses.activate
def test_wrong_envelope():
    responses.add(responses.GET, URL, json={"a": 1, "b": 2})
    with pytest.raises(ApiError) as caught:
        signed_api().call("listZones")
    assert "single top-level key" in caught.value.message


@responses.activate
def test_list_key_that_is_not_a_list():
    responses.add(responses.GET, URL, json={"listzonesresponse": {"count": 1, "zone": "oops"}})
    with pytest.raises(ApiError) as caught:
        signed_api().list_all("listZones", "zone")
    assert "malformed" in caught.value.message


@responses.activate
def test_timeout():
    responses.add(responses.GET, URL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ApiError) as caught:
        signed_api().call("listZones")
    assert "no answer from http://127.0.0.1:8080/client/api within 2 s" in caught.value.message


@responses.activate
def test_connection_refused():
    responses.add(responses.GET, URL, body=requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(ApiError) as caught:
        signed_api().call("listZones")
    assert "cannot connect" in caught.value.message and "connection refused" in caught.value.message


WRITE_COMMANDS = ["deployVirtualMachine", "destroySystemVm", "updateConfiguration", "deleteHost", "stopRouter",
                  "rebootSystemVm", "createZone", "registerTemplate", "getUserKeys", "queryAsyncJobResult", "listUsers"]


@pytest.mark.parametrize("command", WRITE_COMMANDS)
@responses.activate
def test_read_only_guard_refuses_before_sending(command):
    api = signed_api()
    with pytest.raises(ApiError) as caught:
        api.call(command)
    assert "refusing to send" in caught.value.message
    assert len(responses.calls) == 0
    assert api.requests_sent == 0


def test_allowlist_holds_only_reads():
    assert all(c.startswith("list") for c in READ_ONLY_COMMANDS)
    check_read_only("listHosts")


def test_allowlist_holds_the_reads_of_the_named_services():
    """Template and ISO URLs, physical networks, LDAP servers and the usage server: read commands only."""
    added = {"listTemplates", "listIsos", "listUsageServerMetrics", "listLdapConfigurations", "listPhysicalNetworks"}
    assert added <= READ_ONLY_COMMANDS


@responses.activate
def test_templates_and_isos_of_every_account_and_the_ldap_plugins_object_name():
    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": {"cloudstackversion": "4.19.1.0"}}}
        if command == "listTemplates":
            assert query["templatefilter"] == "all" and query["listall"] == "true"
            return 200, {"listtemplatesresponse": {"count": 1, "template": [{"id": "t1", "url": "http://x/t", "ostypeid": "o"}]}}
        if command == "listIsos":
            assert query["isofilter"] == "all"
        if command == "listLdapConfigurations":
            return 200, {"ldapconfigurationresponse": {"count": 1, "LdapConfiguration": [{"hostname": "ldap1", "port": 389}]}}
        if command == "listUsageServerMetrics":
            return 200, {"listusageservermetricsresponse": {"usageMetrics": {"hostname": "ms1", "state": "Up"}}}
        return 200, {command.lower() + "response": {}}

    callback, _ = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    raw = fetch_raw_cloud(signed_api(), fields=ROW_FIELDS)
    assert raw["templates"] == [{"id": "t1", "url": "http://x/t"}]  # only the fields the inventory reads
    assert raw["ldapconfigurations"] == [{"hostname": "ldap1", "port": 389}]
    assert raw["usagemetrics"] == {"hostname": "ms1", "state": "Up"}


def fake_server(answers):
    """A callback that answers per command, and records every command it was asked."""
    asked = []

    def callback(request):
        query = params(type("C", (), {"request": request}))
        command = query["command"]
        asked.append(query)
        status, body = answers(command, query)
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    return callback, asked


@responses.activate
def test_fetch_skips_commands_the_version_lacks_and_makes_no_per_object_calls():
    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": {"cloudstackversion": "4.11.3.0"}}}
        if command == "listZones":
            return 200, {"listzonesresponse": {"count": 1, "zone": [{"id": "z1", "name": "one"}]}}
        return 200, {command.lower() + "response": {}}

    callback, asked = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    raw = fetch_raw_cloud(signed_api())
    commands = [q["command"] for q in asked]
    assert "listManagementServers" not in commands and "listDbMetrics" not in commands
    assert "listUsageServerMetrics" not in commands  # 4.17 and later
    assert raw["managementservers"] is None and raw["usagemetrics"] is None
    assert commands.count("listConfigurations") == 2  # global + the one zone
    assert len(commands) == 16


@responses.activate
def test_optional_command_refused_with_401_is_skipped():
    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": {}}}  # version unknown: try everything
        if command == "listManagementServers":
            return 401, {"listmanagementserversresponse": {"uuidList": [], "errorcode": 401, "errortext": "unable to verify user credentials and/or request signature"}}
        return 200, {command.lower() + "response": {}}

    callback, asked = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    raw = fetch_raw_cloud(signed_api())
    assert raw["managementservers"] is None
    assert "listManagementServers" in [q["command"] for q in asked]


@responses.activate
def test_routers_are_listed_with_listall_and_project_routers_merged():
    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": {"cloudstackversion": "4.19.0.0"}}}
        if command == "listRouters" and query.get("projectid") == "-1":
            return 200, {"listroutersresponse": {"count": 2, "router": [{"id": "r1"}, {"id": "r2"}]}}
        if command == "listRouters":
            assert query["listall"] == "true"
            return 200, {"listroutersresponse": {"count": 1, "router": [{"id": "r1"}]}}
        return 200, {command.lower() + "response": {}}

    callback, _ = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    raw = fetch_raw_cloud(signed_api())
    assert sorted(r["id"] for r in raw["routers"]) == ["r1", "r2"]


def _role_refusal(command):
    """CloudStack's answer to a command the key's role lacks (UnavailableCommandException, 4.15 on)."""
    return 432, {"errorresponse": {"uuidList": [], "errorcode": 432, "cserrorcode": 9999,
                                   "errortext": f"The API [{command}] does not exist or is not available for the account csaudit."}}


@responses.activate
def test_commands_the_role_refuses_are_named_all_at_once_with_the_rules_to_add():
    refused = {"listHosts", "listRouters"}

    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": {"cloudstackversion": "4.19.0.0"}}}
        if command in refused:
            return _role_refusal(command)
        return 200, {command.lower() + "response": {}}

    callback, asked = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    with pytest.raises(RoleRefusal) as caught:
        fetch_raw_cloud(signed_api())
    assert caught.value.commands == ("listHosts", "listRouters")
    assert caught.value.message == ("the API key's role refuses 2 commands csaudit sends: add the rules `listHosts allow`, "
                                    "`listRouters allow` (above any `*` deny; `csaudit role` prints them all)")
    assert caught.value.exit_status == ExitStatus.API
    commands = [q["command"] for q in asked]
    assert "listConfigurations" in commands and "listStoragePools" in commands  # the reading went on
    assert commands.count("listRouters") == 1  # no project-router call for a refused command


@responses.activate
def test_one_refused_command_is_named_with_its_rule():
    responses.add(responses.GET, URL, status=432, json=_role_refusal("listZones")[1])
    with pytest.raises(RoleRefusal) as caught:
        signed_api().list_all("listZones", "zone")
    assert caught.value.message == ("listZones refused: the API key's role lacks it; add the rule `listZones allow` "
                                    "(above any `*` deny; `csaudit role` prints them all)")


@responses.activate
def test_an_optional_command_the_role_refuses_is_a_warning_naming_its_rule(caplog):
    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": {"cloudstackversion": "4.19.0.0"}}}
        if command in ("listManagementServers", "listDbMetrics"):
            return _role_refusal(command)
        return 200, {command.lower() + "response": {}}

    callback, _ = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    with caplog.at_level(logging.WARNING, logger="csaudit"):
        raw = fetch_raw_cloud(signed_api())
    assert raw["managementservers"] is None and raw["dbmetrics"] is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("`listManagementServers allow`" in w and w.endswith("going on without listManagementServers") for w in warnings)
    assert any("`listDbMetrics allow`" in w for w in warnings)


@responses.activate
def test_an_unknown_command_or_a_bad_key_is_not_taken_for_a_role_refusal():
    responses.add(responses.GET, URL, status=401, json={"errorresponse": {
        "uuidList": [], "errorcode": 401, "errortext": "unable to verify user credentials and/or request signature"}})
    with pytest.raises(ApiError) as caught:
        signed_api().call("listZones")
    assert not isinstance(caught.value, RoleRefusal)
    responses.replace(responses.GET, URL, status=432, json={"errorresponse": {
        "uuidList": [], "errorcode": 432, "cserrorcode": 9999, "errortext": "Unknown API command: listZones"}})
    with pytest.raises(ApiError) as caught:
        CloudStackApi(ApiConfig(ENDPOINT)).call("listZones")
    assert not isinstance(caught.value, RoleRefusal)


@pytest.mark.parametrize("status, text", [
    (432, "The API [listHosts] does not exist or is not available for the account csaudit."),
    (401, "The given command 'listHosts' either does not exist, is not available for user."),
])
def test_both_wordings_of_a_role_refusal_are_recognised(status, text):
    assert role_refused(ApiError("x", status, status, text, 9999))
    assert not role_refused(ApiError("x", 431, 431, "Page size can't exceed max allowed page size value: 100", 4350))
@pytest.mark.parametrize(("version", "asked"), [("4.13.1.0", False), ("4.14.0.0", True), ("4.19.1.0", True), (None, True)])
@responses.activate
def test_router_health_checks_ride_on_the_router_listings_from_4_14(version, asked):
    """fetchhealthcheckresults is one more parameter on the two listRouters pagings, not a call per router;
    an unknown version is asked too (an older server ignores a parameter it does not know)."""
    capability = {"cloudstackversion": version} if version else {}

    def answers(command, query):
        if command == "listCapabilities":
            return 200, {"listcapabilitiesresponse": {"capability": capability}}
        return 200, {command.lower() + "response": {}}

    callback, sent = fake_server(answers)
    responses.add_callback(responses.GET, URL, callback=callback)
    fetch_raw_cloud(signed_api())
    listings = [q for q in sent if q["command"] == "listRouters"]
    assert len(listings) == 2 and {q.get("projectid") for q in listings} == {None, "-1"}
    assert all(q.get("fetchhealthcheckresults") == ("true" if asked else None) for q in listings)
    assert all("healthchecksfailed" not in q for q in listings)  # a filter would hide the healthy routers

