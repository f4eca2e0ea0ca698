"""The evaluator against the kernel: hypothesis makes rulesets (tests/judge/packetfilter/generators.py),
the real nft, iptables-nft-restore and iptables-legacy-restore load them into namespaces, and every
probe through them must get the evaluator's verdict (kernel_oracle.py). Within the modelled subset
the evaluator may never say unknown; beyond it, whatever it says must be the kernel's.

Each hypothesis example is a batch of rulesets, one per namespace pair, probed at once (a drop costs
one wait for the whole batch). The number of examples bounds the run; each test also requires that
it checked at least MINIMUM rulesets, so a run cut short by a time budget fails instead of passing
quietly.
"""

import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.judge.packetfilter.generators import PORTS, iptables_cases, nft_cases
from tests.judge.packetfilter.kernel_oracle import Checked, check_batch
from tests.netns_pairs import PairLab

BATCH = 8
pytestmark = [pytest.mark.netns, pytest.mark.programs("nft")]
IPTABLES = pytest.mark.programs("iptables-nft-restore", "ip6tables-nft-restore")
LEGACY = pytest.mark.programs("iptables-legacy-restore", "ip6tables-legacy-restore")
BUDGET = {"nft": 60.0, "iptables-nft": 40.0, "iptables-legacy": 30.0}  # seconds: a bound, far above what a run takes


@pytest.fixture(scope="module")
def lab():
    with PairLab(BATCH, "oracle", PORTS) as pairs:
        yield pairs
    assert pairs.leftovers() == []


def differential(lab, strategy, batches: int, modelled: bool, budget: float):
    checked = Checked()
    started = time.monotonic()

    # No shrinking: a batch takes a second, and a failure prints its whole ruleset anyway.
    @settings(max_examples=batches, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
    @given(cases=st.lists(strategy, min_size=BATCH, max_size=BATCH))
    def run(cases):
        if time.monotonic() - started > budget:
            return  # out of time: the count below says how far it got
        mismatches = check_batch(lab, cases, modelled, checked)
        assert not mismatches, "\n\n".join(str(m) for m in mismatches[:3])

    run()
    return checked


def test_nft_rulesets_in_the_modelled_subset_get_the_kernels_verdict_on_every_probe(lab):
    checked = differential(lab, nft_cases(modelled=True), batches=25, modelled=True, budget=BUDGET["nft"])
    assert checked.rulesets >= 200 and checked.unknown == 0
    assert all(checked.verdicts.get(v, 0) > 0 for v in ("accept", "drop", "reject"))  # the generator reaches every verdict


@IPTABLES
def test_iptables_nft_rulesets_get_the_kernels_verdict_on_every_probe(lab):
    checked = differential(lab, iptables_cases("iptables-nft", modelled=True), batches=12, modelled=True, budget=BUDGET["iptables-nft"])
    assert checked.rulesets >= 96 and checked.unknown == 0
    assert all(checked.verdicts.get(v, 0) > 0 for v in ("accept", "drop", "reject"))


@LEGACY
def test_iptables_legacy_rulesets_get_the_kernels_verdict_on_every_probe(lab):
    checked = differential(lab, iptables_cases("iptables-legacy", modelled=True), batches=8, modelled=True,
                           budget=BUDGET["iptables-legacy"])
    assert checked.rulesets >= 64 and checked.unknown == 0


def test_nft_rulesets_with_unmodelled_features_are_unknown_never_wrong(lab):
    checked = differential(lab, nft_cases(modelled=False), batches=6, modelled=False, budget=BUDGET["nft"])
    assert checked.rulesets >= 48 and checked.unknown > 0


@IPTABLES
def test_iptables_rulesets_with_unmodelled_features_are_unknown_never_wrong(lab):
    checked = differential(lab, iptables_cases("iptables-nft", modelled=False), batches=4, modelled=False,
                           budget=BUDGET["iptables-nft"])
    assert checked.rulesets >= 32 and checked.unknown > 0
