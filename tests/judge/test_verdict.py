import pytest

from csaudit.judge.verdict import judge, summarize
from csaudit.model.flows import Endpoint, Flow
from csaudit.model.probes import Observation


def flow(expect):
    return Flow("X", "F01", "t", None, Endpoint("user", "u", None), Endpoint("ms", "m", "127.0.0.1"), "tcp", 1, None, expect, "tcp", False, "c")


@pytest.mark.parametrize("expect,state,status", [
    ("open", "open", "pass"), ("open", "refused", "fail"), ("open", "timeout", "fail"), ("open", "error", "error"),
    ("closed", "open", "fail"), ("closed", "refused", "pass"), ("closed", "timeout", "pass"), ("closed", "error", "error"),
])
def test_verdict_table(expect, state, status):
    result = judge(flow(expect), Observation(state, "why", 1.0), "local")
    assert result.status == status and result.observed == state and result.vantage == "local"
    if status == "fail":
        assert result.reason.startswith(f"must be {expect}, but ")


def test_never_pass_without_a_probe():
    result = judge(flow("closed"), None, unverified_reason="no vantage for ssvm s-1-VM")
    assert (result.status, result.observed, result.reason) == ("unverified", None, "no vantage for ssvm s-1-VM")
    assert summarize([result]) == {"pass": 0, "fail": 0, "unverified": 1, "error": 0, "waived": 0,
                                   "coverage": {"verified": 0, "flows": 1, "unverified": {"not-probed": 1}}}


@pytest.mark.parametrize("expect, observation, failure", [
    ("open", Observation("open", "answered", 1.0), None),
    ("open", Observation("refused", "refused", 1.0), "refused"),
    ("open", Observation("timeout", "no answer", 1.0), "timeout"),
    ("open", Observation("open", "answered", 1.0, service="HTTP", mismatch="HTTP answers, not MySQL"), "wrong-service"),
    ("open", Observation("open", "answered", 1.0, service="TLS", problem="the certificate expired"), "service-problem"),
    ("open", Observation("error", "no route", None), "probe-error"),
    ("open", Observation("open|filtered", "no reply", None), None),  # unverified: its gap says why, not a failure
    ("closed", Observation("open", "accepted", 1.0), "exposed"),
    ("closed", Observation("open", "accepted", 1.0, danger="the integration API runs any command"), "exposed"),
    ("closed", Observation("refused", "refused", 1.0), None),
    ("closed", Observation("error", "no route", None), "probe-error"),
])
def test_every_failure_says_what_went_wrong_in_one_word(expect, observation, failure):
    result = judge(flow(expect), observation, "local")
    assert result.failure == failure
    assert (result.failure is None) == (result.status in ("pass", "unverified"))


def test_a_port_range_fails_with_the_failure_of_its_failing_port():
    from csaudit.judge.verdict import judge_range

    ranged = Flow("R", "F34", "t", "z", Endpoint("cpvm", "v", "127.0.0.2"), Endpoint("host", "h", "127.0.0.3"), "tcp", 5900, 6100,
                  "open", "tcp", False, "c")
    result = judge_range(ranged, ((5900, Observation("open", "ok", 1.0)), (6000, Observation("timeout", "dropped", None))), "local")
    assert (result.status, result.observed, result.failure) == ("fail", "timeout", "timeout")
