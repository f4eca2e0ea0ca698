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
