"""Idle baseline learning, the CPU estimate and the session energy ledger."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from keck_tui.attribution.estimate import default_tdp, estimate_cpu_power
from keck_tui.attribution.idle import IdleLearner
from keck_tui.attribution.ledger import EnergyLedger
from keck_tui.model import Row


@given(st.floats(1, 200), st.floats(1, 300), st.lists(st.floats(0, 1), min_size=12, max_size=50))
@settings(max_examples=100, deadline=None)
def test_learned_idle_is_the_zero_utilisation_intercept(idle, slope, utils):
    learner = IdleLearner()
    for u in utils:
        learner.add(u, idle + slope * u)
    est = learner.estimate()
    if max(utils) - min(utils) >= 0.10:
        assert est.method == "learned"
        assert est.watts == pytest.approx(idle, rel=1e-6, abs=1e-6)
    else:
        assert est.method == "bootstrap" and est.watts <= min(idle + slope * u for u in utils)


def test_bootstrap_before_enough_spread():
    learner = IdleLearner()
    assert learner.estimate() is None
    learner.add(0.5, 40.0)
    est = learner.estimate()
    assert est.method == "bootstrap" and est.watts == pytest.approx(20.0) and est.error_w == pytest.approx(10.0)


def test_learner_ignores_impossible_points_and_is_bounded():
    learner = IdleLearner(capacity=5)
    learner.add(1.5, 10)
    learner.add(0.5, -1)
    assert len(learner) == 0
    for i in range(20):
        learner.add(0.1, 10)
    assert len(learner) == 5


def test_estimate_model():
    assert default_tdp(1) == 15.0 and default_tdp(8) == 80.0
    e = estimate_cpu_power(busy_s=1.0, capacity_s=2.0, logical_cpus=2)
    assert e.tdp == 20.0 and e.idle_watts == pytest.approx(6.0) and e.watts == pytest.approx(6.0 + 14.0 * 0.5)
    e = estimate_cpu_power(busy_s=5.0, capacity_s=2.0, logical_cpus=2, tdp=100, idle_watts=150)
    assert e.utilisation == 1.0 and e.idle_watts == 100 and e.watts == 100


def _row(w: float, kids=()) -> Row:
    return Row(level="x", id=f"r{len(kids)}", name="r", watts=w, watts_lo=w, watts_hi=w, children=tuple(kids))


def test_ledger_accumulates_per_id_path_and_forgets():
    ledger = EnergyLedger(forget_after=2)
    root = Row(level="node", id="n", name="n", watts=10, watts_lo=10, watts_hi=10,
               children=(Row(level="process", id="pid-1", name="a", watts=4, watts_lo=4, watts_hi=4),))
    out = ledger.apply(root, 0.5)
    out = ledger.apply(root, 2.0)
    assert out.joules == pytest.approx(25.0) and out.children[0].joules == pytest.approx(10.0)
    bare = Row(level="node", id="n", name="n", watts=0, watts_lo=0, watts_hi=0)
    for _ in range(64):
        ledger.apply(bare, 1.0)
    assert len(ledger) == 1  # pid-1 forgotten


def test_ledger_rows_are_the_rows_with_their_session_joules():
    from dataclasses import replace
    leaf = Row(level="process", id="pid-7", name="a\x1b[31m", cmd="x" * 50_000, watts=2, watts_lo=1, watts_hi=3,
               pid=7, extra={"bound": {"tick_w": 0.1}})
    root = Row(level="node", id="n", name="n", watts=2, watts_lo=1, watts_hi=3, children=(leaf,))
    out = EnergyLedger().apply(root, 3.0)
    assert out == replace(root, joules=6.0, children=(replace(leaf, joules=6.0),))
    assert out.to_json() == replace(root, joules=6.0, children=(replace(leaf, joules=6.0),)).to_json()
    assert root.joules == 0.0 and leaf.joules == 0.0  # the input is left as it was
    assert out.children[0].name == leaf.name and "\x1b" not in out.children[0].name  # checked text kept


def test_bootstrap_at_full_load_is_not_a_certain_zero():
    # A busy measured node (u ≈ 1): watts·(1-u) is ~0 W, but idle is not known to be 0 W:
    # under dynamic ≥ idle at full load, idle can be up to P / (1 + u) = 38 W here.
    learner = IdleLearner()
    learner.add(1.0, 76.0)
    est = learner.estimate()
    assert est.method == "bootstrap" and est.watts == pytest.approx(0.0)
    assert est.error_w == pytest.approx(38.0)
