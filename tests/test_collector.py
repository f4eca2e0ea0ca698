"""The collector pause around a zone's work, and SSH sessions running with it on."""

import gc

from csaudit.collector import collector_paused, collector_running
from csaudit.model.probes import VantageState
from csaudit.vantage import merge_states


def test_paused_then_running_inside_then_restored():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_running():
            assert gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_pause_is_lifted_on_an_exception():
    try:
        with collector_paused():
            raise ValueError
    except ValueError:
        pass
    assert gc.isenabled()


def test_vantage_states_of_each_zone_merge_into_one_per_vantage():
    states = [VantageState("local", "ok", 5), VantageState("ssh:host/b", "unreachable", 0, "refused"),
              VantageState("local", "not-run", 0), VantageState("ssh:host/a", "ok", 3), VantageState("local", "ok", 7)]
    assert merge_states(states) == (VantageState("ssh:host/a", "ok", 3), VantageState("ssh:host/b", "unreachable", 0, "refused"),
                                    VantageState("local", "ok", 12))
    # a failure wins over not-run, and ok over a failure
    assert merge_states([VantageState("local", "not-run", 0), VantageState("local", "error", 0, "x")]) == (VantageState("local", "error", 0, "x"),)
