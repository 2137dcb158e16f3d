"""Profiles (minimal/standard/full) and the self-monitor that steps between them."""
from __future__ import annotations

import json
import math

import pytest

from keck_tui.agent.metrics import MetricsState
from keck_tui.clock import FakeClock
from keck_tui.config import PROFILES as PROFILE_NAMES, ConfigError, Settings, settings_from_mapping
from keck_tui.model import Row, Snapshot
from keck_tui.profiles import (PROFILES, apply_tiers, higher, interval_for, lower, model_for, profile_named,
                               trim_detail)
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.selfwatch import Budget, ProcSelfUsage, SelfWatch
from keck_tui.ui.header import profile_text


def test_profiles_are_named_in_config_cheapest_first():
    assert tuple(p.name for p in PROFILES) == PROFILE_NAMES == ("minimal", "standard", "full")
    assert [p.budget_cpu_pct for p in PROFILES] == sorted(p.budget_cpu_pct for p in PROFILES)
    assert lower(profile_named("minimal")) is None
    assert lower(profile_named("full")).name == "standard"
    assert higher(profile_named("minimal"), profile_named("standard")).name == "standard"
    assert higher(profile_named("standard"), profile_named("standard")) is None  # never above the one asked for
    with pytest.raises(ValueError, match="unknown profile"):
        profile_named("tiny")


def test_profile_in_config_and_agent_budgets():
    s = settings_from_mapping({"profile": "minimal", "agent": {"budget_cpu": 2.5, "budget_mem": 80}})
    assert s.profile == "minimal" and s.extra["agent"] == {"budget_cpu": 2.5, "budget_mem": 80}
    assert Settings().profile == "standard"
    with pytest.raises(ConfigError, match="profile must be one of minimal, standard, full"):
        settings_from_mapping({"profile": "cheap"})
    with pytest.raises(ConfigError, match=r"budget_cpu must be positive \(> 0 – 10000\), got 0"):
        settings_from_mapping({"agent": {"budget_cpu": 0}})


def test_interval_and_model_follow_the_user_unless_the_profile_is_cheaper():
    minimal, standard = profile_named("minimal"), profile_named("standard")
    assert interval_for(minimal, 1.0) == 5.0 and interval_for(minimal, 10.0) == 10.0
    assert interval_for(standard, 0.5) == 0.5
    assert model_for(minimal, "auto") == "cpu-time" and model_for(minimal, "frequency-weighted") == "frequency-weighted"
    assert model_for(profile_named("full"), "auto") == "full"


def test_tiers_reach_the_procfs_sampler(tmp_path):
    (tmp_path / "stat").write_text("cpu 0 0 0 0 0 0 0 0\n")
    s = ProcfsSampler(tmp_path)
    apply_tiers(s, profile_named("minimal"))
    assert (s.pss, s.refresh_every) == (False, 60)
    apply_tiers(s, profile_named("full"))
    assert (s.pss, s.pss_every, s.pss_top, s.refresh_every) == (True, 10, 8, 10)

    class Ebpf:  # an eBPF sampler enriches from a procfs one: the tiers go there
        enrich = ProcfsSampler(tmp_path)

    apply_tiers(Ebpf(), profile_named("minimal"))
    assert Ebpf.enrich.pss is False


def _leaf(level, rid, w, **kw):
    return Row(level=level, id=rid, name=rid, watts=w, watts_lo=w * 0.9, watts_hi=w * 1.1, joules=w * 10, **kw)


def _tree() -> Row:
    cores = (_leaf("core", "core-0", 1.0, cpu=0), _leaf("core", "core-1", 2.0, cpu=1))
    p1 = Row(level="process", id="pid-1", name="a", watts=3.0, watts_lo=2.7, watts_hi=3.3, joules=30.0,
             pid=1, cpu_util=50.0, children=cores)
    p2 = _leaf("process", "pid-2", 1.5, pid=2, cpu_util=10.0)
    svc = Row(level="service", id="x.service", name="x.service", watts=4.5, watts_lo=4.05, watts_hi=4.95,
              joules=45.0, children=(p1, p2))
    idle = _leaf("synthetic", "(idle)", 5.0)
    return Row(level="node", id="n", name="n", watts=9.5, watts_lo=9.05, watts_hi=9.95, joules=95.0,
               children=(svc, idle))


def test_trim_keeps_every_parent_whole():
    root = _tree()
    assert trim_detail(root, per_core_rows=True, process_rows=True) is root
    no_cores = trim_detail(root, per_core_rows=False, process_rows=True)
    assert no_cores.find(("n", "x.service", "pid-1")).children == ()
    assert no_cores.find(("n", "x.service", "pid-1")).watts == 3.0
    groups = trim_detail(root, per_core_rows=False, process_rows=False)
    svc = groups.find(("n", "x.service"))
    assert [c.id for c in svc.children] == ["(processes)"]
    agg = svc.children[0]
    assert (agg.watts, agg.watts_lo, agg.watts_hi, agg.joules, agg.cpu_util) == pytest.approx((4.5, 4.05, 4.95, 45.0, 60.0))
    assert "2 processes" in agg.note
    threads = (_leaf("thread", "tid-7", 1.0), _leaf("thread", "tid-8", 2.0))
    vm = Row(level="process", id="pid-7", name="qemu", watts=3.0, watts_lo=2.7, watts_hi=3.3, children=threads)
    assert trim_detail(vm, per_core_rows=False, process_rows=True).children == threads  # vCPU rows stay
    for _path, row in groups.walk():  # conservation at every level
        if row.children:
            assert math.isclose(sum(c.watts for c in row.children), row.watts)


class FakeUsage:
    """This process's CPU seconds and RSS, as a test sets them."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.rss = 40 * 2**20

    def __call__(self) -> tuple[float, int]:
        return self.cpu_s, self.rss


def _watch(budget: Budget, configured: str = "standard", **kw):
    clock, usage, applied = FakeClock(now=0.0), FakeUsage(), []
    w = SelfWatch(profile_named(configured), budget, applied.append, usage=usage, clock=clock,
                  sustain_s=30.0, recover_s=300.0, window_s=10.0, **kw)
    return w, clock, usage, applied


def _run(w, clock, usage, seconds: int, cpu_pct: float) -> list:
    steps = []
    for _ in range(seconds):
        clock.advance(1.0)
        usage.cpu_s += cpu_pct / 100.0
        step = w.check()
        if step is not None:
            steps.append(step)
    return steps


def test_over_the_cpu_budget_for_the_sustain_time_steps_down_once_then_again():
    w, clock, usage, applied = _watch(Budget(cpu_pct=5.0, mem_mib=100.0), configured="full")
    assert _run(w, clock, usage, 25, cpu_pct=8.0) == []  # over, but not for 30 s yet
    steps = _run(w, clock, usage, 10, cpu_pct=8.0)
    assert [(s.from_profile, s.to_profile) for s in steps] == [("full", "standard")]
    assert "CPU 8.0 % > budget 5 %" in steps[0].reason
    assert [p.name for p in applied] == ["standard"]
    steps = _run(w, clock, usage, 45, cpu_pct=8.0)  # still over: one more step, then the bottom
    assert [s.to_profile for s in steps] == ["minimal"]
    assert _run(w, clock, usage, 100, cpu_pct=8.0) == []  # nothing below minimal
    state = w.state()
    assert state["name"] == "minimal" and state["configured"] == "full" and state["stepped_down"]
    assert state["steps"] == 2 and state["last_step"]["to"] == "minimal"


def test_a_short_burst_does_not_step():
    w, clock, usage, applied = _watch(Budget(cpu_pct=5.0, mem_mib=100.0))
    _run(w, clock, usage, 20, cpu_pct=50.0)
    assert _run(w, clock, usage, 60, cpu_pct=1.0) == [] and applied == []


def test_memory_over_budget_steps_down():
    w, clock, usage, _ = _watch(Budget(cpu_pct=50.0, mem_mib=30.0))
    usage.rss = 45 * 2**20
    steps = _run(w, clock, usage, 35, cpu_pct=1.0)
    assert [s.to_profile for s in steps] == ["minimal"] and "RSS 45 MiB > budget 30 MiB" in steps[0].reason


def test_steps_back_up_after_a_long_time_well_under_but_not_above_the_configured():
    w, clock, usage, applied = _watch(Budget(cpu_pct=5.0, mem_mib=100.0))
    _run(w, clock, usage, 40, cpu_pct=9.0)
    assert w.current.name == "minimal"
    assert _run(w, clock, usage, 200, cpu_pct=3.0) == []  # under budget but not well under: stay
    assert _run(w, clock, usage, 200, cpu_pct=1.0) == []  # well under, not yet 300 s
    steps = _run(w, clock, usage, 150, cpu_pct=1.0)
    assert [(s.from_profile, s.to_profile) for s in steps] == [("minimal", "standard")]
    assert _run(w, clock, usage, 1000, cpu_pct=0.5) == []  # standard was asked for: no higher
    assert [p.name for p in applied] == ["minimal", "standard"]


def test_unreadable_usage_is_reported_not_raised():
    def broken():
        raise OSError("gone")

    w = SelfWatch(profile_named("standard"), Budget(1.0, 1.0), lambda p: None, usage=broken, clock=FakeClock())
    assert w.check() is None and "cannot read own usage" in w.state()["error"]


def test_real_usage_reader():
    cpu, rss = ProcSelfUsage()()
    assert cpu > 0 and rss > 1_000_000


def _snap(profile: dict) -> Snapshot:
    return Snapshot(time=1.0, interval_s=1.0, host="h", model="cpu-time", sources=(), root=_tree(),
                    extra={"profile": profile})


def test_profile_in_snapshot_header_and_metrics():
    w, clock, usage, _ = _watch(Budget(cpu_pct=5.0, mem_mib=100.0))
    _run(w, clock, usage, 40, cpu_pct=9.0)
    snap = Snapshot.from_json(json.loads(_snap(w.state()).dumps()))  # through JSON, as an agent sends it
    text, stepped = profile_text(snap)
    assert stepped and text.startswith("profile minimal ↓ from standard (CPU 9.0 % > budget 5 %")
    assert profile_text(_snap({"name": "standard", "configured": "standard"})) == ("profile standard", False)
    m = MetricsState()
    m.update(snap)
    from prometheus_client import generate_latest

    from keck_tui.agent.metrics import make_registry
    body = generate_latest(make_registry(m)).decode()
    assert 'keck_profile_info{configured="standard",node="h",profile="minimal"} 1.0' in body
    assert 'keck_budget_cpu_percent{node="h"} 5.0' in body
    assert 'keck_profile_steps{node="h"} 1.0' in body
    assert 'keck_self_cpu_percent{node="h"} 9.0' in body


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="no /proc on this system")
def test_real_agent_feed_steps_down_on_a_tiny_budget_and_trims_what_it_serves():
    """The real collector and this process's real usage, with a budget nothing can meet."""
    import time

    from keck_tui.wiring import LocalSources, SelfLimit, build_local_feed

    settings = Settings(probes="procfs", interval=0.2)
    feed = build_local_feed(settings, LocalSources(gpu=False),
                            limit=SelfLimit(budget=Budget(cpu_pct=0.001, mem_mib=1.0), upstream=True,
                                            sustain_s=0.0))
    produce = feed._produce
    try:
        first = produce()
        assert first.extra["profile"]["name"] == "standard" and feed.interval == 0.2
        assert any(r.level == "process" for _, r in first.root.walk())  # standard serves process rows
        time.sleep(0.2)
        second = produce()
        info = second.extra["profile"]
        assert info["name"] == "minimal" and info["stepped_down"] and info["configured"] == "standard"
        assert info["rss_mib"] > 1.0 and "budget" in info["last_step"]["reason"]
        assert feed.interval == 5.0  # the minimal profile's interval, at once
        time.sleep(0.2)
        third = produce()
        assert third.model == "cpu-time"
        assert not any(r.level == "process" for _, r in third.root.walk())
        assert any(r.id == "(processes)" for _, r in third.root.walk())
    finally:
        produce.collector.close()
