"""The issue's goals on a simulated machine whose hidden truth keck-top does not share (tests/physsim.py).

Through the real Collector (RaplSampler on a fake powercap tree, the engine, the
calibrator): after calibration the full model's per-process error is ≤ 10 % while
cpu-time errs ≥ 2× on some process; the bounds contain the truth ≥ 95 % of the
time at a median half-width ≤ ±10 %; every level conserves energy within 1e-9;
a restart resumes the saved calibration. benchmarks/bench_model.py prints the table.
"""
from __future__ import annotations

import pytest

from physsim import (MAIN_KINDS, PhysSim, coverage, energy_errors, median_half_width, run_collector)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    return run_collector(tmp_path_factory.mktemp("full"), "auto", seed=5, steps=520, warmup=220)


def test_auto_picks_full_with_counters_and_a_measured_cpu_power(full_run):
    assert full_run.model == "full"
    assert full_run.reason.startswith("auto: per-core hardware counters, shared by on-CPU time and a measured CPU power")
    assert "calibrated against the measured CPU power" in full_run.reason
    cal = full_run.calibration
    assert cal["status"] == "calibrated" and cal["model"] == "full" and cal["samples"] >= 60
    assert cal["r2"] > 0.98 and cal["rmse_w"] < 1.0
    assert abs(full_run.idle_w - full_run.true_idle_w) / full_run.true_idle_w < 0.03


def test_full_is_within_10_percent_per_process_where_cpu_time_errs_2x(tmp_path, full_run):
    names = full_run.names
    full = energy_errors(full_run)
    main = [pid for pid in full if names[pid] in MAIN_KINDS]
    assert len(main) == 4
    assert max(abs(full[pid]) for pid in main) <= 0.10, {names[p]: round(e, 3) for p, e in full.items()}
    cpu_time = energy_errors(run_collector(tmp_path, "cpu-time", seed=5, steps=320, warmup=220))
    ratios = [1.0 + cpu_time[pid] for pid in main]
    assert max(ratios) >= 2.0 or min(ratios) <= 0.5, {names[p]: round(e, 3) for p, e in cpu_time.items()}


def test_bounds_contain_the_truth_95_percent_at_a_median_within_10_percent(full_run):
    busy = [s for s in full_run.scores if s.cpu_w > 0]  # (a process in an idle phase has no CPU watts)
    assert len(busy) > 1000 and all(s.model_kind == "measured" for s in busy)  # the model term was measured
    assert coverage(full_run) >= 0.95
    assert median_half_width(full_run) <= 0.10


def test_conservation_at_every_level_with_the_full_model(tmp_path):
    from test_attribution import check_tree

    kinds: list[str] = []

    def check(snap, truth) -> None:  # noqa: ANN001
        kinds.append(snap.extra["model_error"])
        check_tree(snap.root)  # children sum to their parent within 1e-9 at every level, lo ≤ W ≤ hi
        assert snap.root.watts == pytest.approx(truth.package_w + truth.dram_total_w, rel=1e-6)

    run = run_collector(tmp_path, "full", seed=6, steps=80, warmup=79, on_snapshot=check)
    assert run.model == "full"
    assert kinds[0] == "spread" and kinds[-1] == "measured"  # calibrating, then calibrated


def test_without_counters_auto_says_why_full_cannot_run(tmp_path):
    run = run_collector(tmp_path, "auto", seed=8, steps=30, warmup=29, counters=False)
    assert run.model == "frequency-weighted"
    assert "full needs hardware counters (no counter source)" in run.reason
    forced = run_collector(tmp_path / "forced", "full", seed=8, steps=5, warmup=4, counters=False)
    assert forced.model == "frequency-weighted"
    assert any("model 'full' needs hardware counters" in w for w in forced.warnings)


def test_a_restart_resumes_the_saved_calibration(tmp_path):
    state = tmp_path / "state"
    first = run_collector(tmp_path / "a", "full", seed=9, steps=130, warmup=129, state_dir=state)
    assert first.calibration["status"] == "calibrated" and not first.calibration["restored"]
    saved = list(state.glob("calibration-*.json"))
    assert len(saved) == 1 and oct(saved[0].stat().st_mode & 0o777) == "0o600"
    # the next run's very first interval already uses the calibrated model
    again = run_collector(tmp_path / "b", "full", seed=10, steps=1, warmup=0, state_dir=state)
    assert again.calibration["restored"] and again.calibration["status"] == "calibrated"
    assert again.calibration["samples"] == first.calibration["samples"] + 1
    assert all(s.model_kind == "measured" for s in again.scores)
    assert str(state) in again.calibration["saved"]


def test_without_a_measured_cpu_power_calibration_is_unavailable_not_calibrating(tmp_path):
    from keck_tui.clock import FakeClock
    from keck_tui.collector import Collector
    from keck_tui.ui.header import calibration_text
    from physsim import _Feed, _NoGroups

    feed = _Feed()
    clock = FakeClock()
    col = Collector(activity=feed, grouper=_NoGroups(), host="vm", clock=clock)  # no power source at all
    col.prime()
    feed.activity, _, _ = PhysSim(seed=11).step(1.0)
    clock.advance(1.0)
    snap = col.collect()
    cal = snap.extra["calibration"]
    assert cal["status"] == "unavailable" and "no measured CPU power" in cal["reason"]
    assert calibration_text(snap) is None  # the header does not claim it is calibrating
    assert "not calibrated: no measured CPU power" in snap.extra["model_reason"]
