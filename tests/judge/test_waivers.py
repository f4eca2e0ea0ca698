"""Waivers: the file format (bad files name their line), matching, expiry, and a run that uses them."""

import collections
import datetime
import json
import os

import pytest

from csaudit.collect.parse import parse_inventory
from csaudit.collect.saved import inventory_to_dict
from csaudit.judge.waivers import parse_waivers, waive, warn_expired
from csaudit.model.errors import ConfigError
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.results import FlowResult
from tests.faultserver import FaultServer, integration_api, signed_api

TODAY = datetime.date(2025, 6, 1)
MS = f"127.13.{os.getpid() % 250}.1"  # per process: parallel runs never share 8080/8096

GOOD = """\
# accepted exceptions
[[waiver]]
rule = "D01"
reason = "integration API kept for the billing bridge (CHG-1)"
expires = 2025-12-31

[[waiver]]
flow = "F12:*->xen01:443/tcp"
reason = "xen01 is being retired"
expires = "2025-05-31"
"""


def result(rule, target="ms1", status="fail"):
    flow = Flow(f"{rule}:ms1->{target}:443/tcp", rule, "t", None, Endpoint("ms", "ms1", "127.0.0.1"),
                Endpoint("host", target, "127.0.0.2"), "tcp", 443, None, "open", "tcp", False, "c")
    return FlowResult(flow, status, "refused", "must be open, but refused", "local")


def test_good_file_parses_both_date_forms():
    first, second = parse_waivers(GOOD, "w.toml")
    assert (first.rule, first.flow, first.expires, first.where) == ("D01", None, datetime.date(2025, 12, 31), "w.toml:2")
    assert (second.rule, second.flow, second.expires, second.where) == (None, "F12:*->xen01:443/tcp", datetime.date(2025, 5, 31), "w.toml:7")


@pytest.mark.parametrize("text,message", [
    ('[[waiver]]\nrule = "D01\n', r"^w\.toml:2: not valid TOML"),
    ('[[waiver]]\nrule = "D01"\nreason = "r"\nexpires = 2025-01-01\n\n[waivers]\nx = 1\n', r"^w\.toml:6: unknown top-level key 'waivers'"),
    ('[[waiver]]\nrule = "D01"\nexpires = 2025-01-01\n', r"^w\.toml:1: waiver #1: has no 'reason'"),
    (GOOD + '\n[[waiver]]\nrule = "F11"\nreason = "r"\n', r"^w\.toml:12: waiver #3: has no 'expires' date"),
    ('[[waiver]]\nreason = "r"\nexpires = 2025-01-01\n', r"^w\.toml:1: waiver #1: says nothing to match"),
    (GOOD + '\n[[waiver]]\nrule = "F11"\nreason = "r"\nexpires = 2025-01-01\nzone = "east"\n', r"^w\.toml:16: waiver #3: unknown key 'zone'"),
    (GOOD + '\n[[waiver]]\nrule = "F11"\nreason = "r"\nexpires = "next week"\n', r"^w\.toml:15: waiver #3: 'expires' = 'next week' is not a date"),
    ('[[waiver]]\nrule = "F11"\nreason = "r"\nexpires = 2025-01-01T10:00:00\n', r"^w\.toml:4: waiver #1: 'expires' must be a date"),
    ('[[waiver]]\nrule = "F11"\nreason = "  "\nexpires = 2025-01-01\n', r"^w\.toml:3: waiver #1: 'reason' must be a non-empty string"),
    ('[[waiver]]\nrule = 11\nreason = "r"\nexpires = 2025-01-01\n', r"^w\.toml:2: waiver #1: 'rule' must be a non-empty string"),
])
def test_bad_files_name_the_line_at_fault(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_waivers(text, "w.toml")


def test_only_failures_are_waived_first_match_wins_and_expired_waivers_warn():
    waivers = parse_waivers(GOOD, "w.toml")
    results = [result("D01"), result("D01", status="pass"), result("F12", "xen01"), result("F11"), result("D01", status="error")]
    warnings, expired_hits = [], collections.Counter()
    out = waive(results, waivers, TODAY, expired_hits)
    warn_expired(waivers, TODAY, expired_hits, warnings.append)
    assert [r.status for r in out] == ["waived", "pass", "fail", "fail", "error"]  # the F12 waiver expired on 2025-05-31
    assert out[0].waiver is waivers[0] and out[0].observed == "refused" and out[0].reason == results[0].reason
    assert warnings == ["csaudit: warning: w.toml:7: the waiver for flow F12:*->xen01:443/tcp expired on 2025-05-31 "
                        "and no longer applies (1 failure it matches count again)"]
    on_last_day = waive(results, waivers, datetime.date(2025, 5, 31), collections.Counter())
    assert on_last_day[2].status == "waived"  # the expiry date is the last day it applies


def write_inventory(tmp_path):
    inventory = parse_inventory({"managementservers": [{"id": "m1", "name": "ms1", "serviceip": MS}]},
                                endpoint=f"http://{MS}:8080/client/api", api_mode="signed")
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    return str(path)


@pytest.fixture
def exposed_ms(tmp_path):
    """An MS whose signed API (8080) and unauthenticated integration port (8096) answer: D01 fails for real."""
    with FaultServer(signed_api, MS, port=8080), FaultServer(integration_api, MS, port=8096):
        yield write_inventory(tmp_path)


def test_run_with_a_waiver_shows_waived_and_exits_0(cli, tmp_path, exposed_ms):
    (tmp_path / "w.toml").write_text('[[waiver]]\nrule = "D0?"\nreason = "billing bridge needs it (CHG-1)"\nexpires = 2999-12-31\n')
    result = cli("run", "--inventory", exposed_ms, "--timeout", "0.5", "--waivers", str(tmp_path / "w.toml"),
                 "--format", "json", "--junit", str(tmp_path / "r.xml"))
    assert result.exit_code == 0, result.stderr
    report = result.json()
    d01 = next(f for f in report["flows"] if f["id"].startswith("D01:this machine->"))
    assert (d01["status"], d01["observed"]) == ("waived", "open")
    assert d01["waiver"] == {"reason": "billing bridge needs it (CHG-1)", "expires": "2999-12-31", "rule": "D0?", "flow": None}
    assert report["summary"]["waived"] == 1 and report["summary"]["fail"] == 0
    assert 'message="waived until 2999-12-31: billing bridge needs it (CHG-1)' in (tmp_path / "r.xml").read_text()
    table = cli("run", "--inventory", exposed_ms, "--timeout", "0.5", "--waivers", str(tmp_path / "w.toml"))
    assert "waived until 2999-12-31: billing bridge needs it (CHG-1)" in table.stdout
    assert table.stdout.splitlines()[-1].endswith("1 waived")


def test_expired_waiver_no_longer_applies_and_the_run_warns(cli, tmp_path, exposed_ms):
    (tmp_path / "w.toml").write_text('[[waiver]]\nrule = "D01"\nreason = "was fine"\nexpires = 2000-01-01\n')
    result = cli("run", "--inventory", exposed_ms, "--timeout", "0.5", "--waivers", str(tmp_path / "w.toml"), "--format", "json")
    assert result.exit_code == 1
    assert "w.toml:1: the waiver for rule D01 expired on 2000-01-01 and no longer applies (1 failure" in result.stderr
    assert next(f for f in result.json()["flows"] if f["id"].startswith("D01:this machine->"))["status"] == "fail"


def test_bad_waiver_file_exits_2_before_anything_is_probed(cli, tmp_path, exposed_ms):
    (tmp_path / "w.toml").write_text('[[waiver]]\nrule = "D01"\nreason = "r"\n')
    result = cli("run", "--inventory", exposed_ms, "--waivers", str(tmp_path / "w.toml"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"csaudit: {tmp_path / 'w.toml'}:1: waiver #1: has no 'expires' date: every waiver must end, e.g. expires = 2025-12-31\n"
    missing = cli("run", "--inventory", exposed_ms, "--waivers", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and "cannot read waivers" in missing.stderr
