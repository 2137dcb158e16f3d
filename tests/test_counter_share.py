"""Per-core counters shared by on-CPU time (no eBPF), and what the collector makes of them.

A fake counter sampler stands where perf_event_open is (the PMU is the library
boundary); the no-PMU case runs against this machine's real kernel.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from fakesys import FakeProc, FakeSys
from keck_tui.attribution.engine import AttributionConfig
from keck_tui.attribution.features import MODEL_FULL, core_infos, extract
from keck_tui.clock import FakeClock
from keck_tui.collector import Collector
from keck_tui.hierarchy.grouping import make_grouper
from keck_tui.model import Snapshot, SourceStatus
from keck_tui.samplers.counter_share import irq_fraction, seen_seconds, with_counters
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.samplers.rapl import RaplSampler
from keck_tui.samplers.types import CoreSample, CounterDelta, CounterReading, CpuActivity, ProcessSample

OK = SourceStatus("counters", "ok")
FIELDS = ("cycles", "instructions", "llc_misses", "ref_cycles")

seconds = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
count = st.floats(min_value=0.0, max_value=1e10, allow_nan=False)


@st.composite
def activities(draw):
    ncpu = draw(st.integers(1, 4))
    cores = tuple(CoreSample(cpu=c, busy_s=draw(st.floats(0.2, 1.2)), total_s=1.2, irq_s=draw(seconds) * 0.2)
                  for c in range(ncpu))
    procs = []
    for pid in range(1, draw(st.integers(0, 6)) + 1):
        per = {c: draw(seconds) for c in draw(st.sets(st.integers(0, ncpu - 1), max_size=ncpu))}
        procs.append(ProcessSample(pid=pid, name=f"p{pid}", cmd="", cpu_s=sum(per.values()), per_cpu_s=per))
    deltas = {c: CounterDelta(cycles=draw(count), instructions=draw(count),
                              llc_misses=draw(st.none() | count), ref_cycles=None) for c in range(ncpu)}
    return CpuActivity(SourceStatus("procfs", "ok"), 1.0, tuple(procs), cores), CounterReading(OK, 1.0, deltas)


@settings(max_examples=200, deadline=None)
@given(activities())
def test_shares_conserve_every_cores_counts_exactly(pair) -> None:
    activity, reading = pair
    out = with_counters(activity, reading)
    seen = seen_seconds(out)
    for core in out.cores:
        total = reading.cores[core.cpu]
        assert core.counters == total
        for name in FIELDS:
            whole = getattr(total, name)
            parts = [getattr(p.counters[core.cpu], name) for p in out.processes
                     if p.counters and core.cpu in p.counters]
            if whole is None:
                assert all(x is None for x in parts)  # a counter the PMU lacks stays None, never 0
                continue
            shared = math.fsum(parts) + whole * irq_fraction(core, seen)
            on_core = core.irq_s + math.fsum(p.per_cpu_s.get(core.cpu, 0.0) for p in out.processes)
            if on_core >= core.busy_s:  # the time seen covers the core's busy time: exactly its counts
                assert shared == pytest.approx(whole, rel=1e-9, abs=1e-6)
            else:  # busy time no sample holds keeps its counts, like its watts
                assert shared == pytest.approx(whole * on_core / core.busy_s, rel=1e-9, abs=1e-6)
            rate = whole / core.busy_s  # no share runs faster than the core did
            for p in out.processes:
                s = p.per_cpu_s.get(core.cpu, 0.0)
                if s > 0:
                    assert getattr(p.counters[core.cpu], name) <= rate * s * (1 + 1e-9) + 1e-6


def test_shares_follow_time_and_keep_the_cores_rate() -> None:
    cores = (CoreSample(cpu=0, busy_s=1.0, total_s=1.0, irq_s=0.1),)
    procs = (ProcessSample(pid=1, name="a", cmd="a", cpu_s=0.6, per_cpu_s={0: 0.6}),
             ProcessSample(pid=2, name="b", cmd="b", cpu_s=0.3, per_cpu_s={0: 0.3}))
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, procs, cores)
    reading = CounterReading(OK, 1.0, {0: CounterDelta(cycles=3e9, instructions=6e9, llc_misses=None)})
    out = with_counters(activity, reading)
    a, b = (p.counters[0] for p in out.processes)
    assert a.cycles == pytest.approx(1.8e9) and b.cycles == pytest.approx(0.9e9)
    assert a.instructions == pytest.approx(3.6e9) and a.llc_misses is None and a.ipc == pytest.approx(2.0)
    assert irq_fraction(out.cores[0], seen_seconds(out)) == pytest.approx(0.1)
    # the features see cycles ÷ on-CPU time: 3 GHz, the core's rate
    feats = extract(MODEL_FULL, out, core_infos(out, None), 1.0)
    assert feats.counters == "core" and feats.ipc[1] == pytest.approx(2.0)
    assert feats.rows[1][0][1] == pytest.approx(0.6 * 3.0 ** 3)  # u·φ³ with φ = 3 GHz / 1 GHz


def test_unavailable_reading_and_measured_process_counters_are_left_alone() -> None:
    cores = (CoreSample(cpu=0, busy_s=1.0, total_s=1.0),)
    own = {0: CounterDelta(cycles=1.0)}
    procs = (ProcessSample(pid=1, name="a", cmd="a", cpu_s=0.5, per_cpu_s={0: 0.5}, counters=own),)
    activity = CpuActivity(SourceStatus("ebpf", "ok"), 1.0, procs, cores)
    assert with_counters(activity, CounterReading(SourceStatus("counters", "unavailable", "no PMU"))) is activity
    out = with_counters(activity, CounterReading(OK, 1.0, {0: CounterDelta(cycles=9.0)}))
    assert out.processes[0].counters is own and out.cores[0].counters == CounterDelta(cycles=9.0)


class FakeCounters:
    """A counter sampler that hands out per-core deltas (the PMU's side is tested in test_perfcounters)."""

    name = "counters"

    def __init__(self, per_core: dict[int, CounterDelta]) -> None:
        self.per_core = per_core
        self.calls = 0
        self.closed = False

    def sample(self) -> CounterReading:
        self.calls += 1
        if self.calls == 1:
            return CounterReading(SourceStatus("counters", "ok", "warming up"))
        return CounterReading(SourceStatus("counters", "ok", "perf_event_open per CPU"), 1.0, self.per_core)

    def close(self) -> None:
        self.closed = True


def _node(tmp_path: Path, counters) -> tuple[Collector, FakeProc, FakeSys, FakeClock]:
    clock = FakeClock()
    sys_ = FakeSys(tmp_path / "sys")
    sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    proc = FakeProc(tmp_path / "proc", ncpu=2)
    proc.add_process(100, comm="compute", utime=0, stime=0, processor=0, cgroup="0::/a.slice/c.service")
    proc.add_process(200, comm="memory", utime=0, stime=0, processor=1, cgroup="0::/a.slice/m.service")
    collector = Collector(activity=ProcfsSampler(proc.root, clock=clock), grouper=make_grouper(), host="n1",
                          power=[RaplSampler(sys_.root, clock=clock)], counters=counters,
                          config=AttributionConfig(model="auto", idle_watts=10.0), clock=clock,
                          state_dir=None)
    collector.prime()
    return collector, proc, sys_, clock


def _step(proc: FakeProc, sys_: FakeSys, clock: FakeClock, n: int) -> None:
    clock.advance(1.0)
    proc.advance(1.0)
    proc.update_process(100, utime=50 * n)
    proc.update_process(200, utime=50 * n)
    proc.set_cpu_times(0, user=50 * n, idle=50 * n)
    proc.set_cpu_times(1, user=50 * n, idle=50 * n)
    sys_.set_energy("intel-rapl:0", 40_000_000 * n)


def test_collector_gives_core_and_process_rows_their_counters(tmp_path: Path) -> None:
    fake = FakeCounters({0: CounterDelta(cycles=1.5e9, instructions=4.5e9, llc_misses=1e4),
                         1: CounterDelta(cycles=1.0e9, instructions=0.5e9, llc_misses=4e7)})
    collector, proc, sys_, clock = _node(tmp_path, fake)
    _step(proc, sys_, clock, 1)
    snap = collector.collect()
    assert snap.model == MODEL_FULL and "per-core hardware counters" in snap.extra["model_reason"]
    assert snap.source("counters").ok
    compute = snap.root.find(["n1", "a.slice", "c.service", "pid-100"])
    memory = snap.root.find(["n1", "a.slice", "m.service", "pid-200"])
    assert compute.ipc == pytest.approx(3.0) and memory.ipc == pytest.approx(0.5)
    core = compute.find(["pid-100", "core-0"])
    # the only process on core 0 for 0.5 s gets all of its counts: 1.5e9 cycles / 0.5 s = 3 GHz
    assert core.instructions == pytest.approx(4.5e9) and core.llc_misses == pytest.approx(1e4)
    assert core.freq_mhz == pytest.approx(3000.0) and core.freq_source == "cycles" and core.ipc == pytest.approx(3.0)
    assert compute.freq_source == "cycles"
    group = snap.root.find(["n1", "a.slice"])
    assert group.instructions == pytest.approx(5.0e9) and group.llc_misses == pytest.approx(1e4 + 4e7)
    # the node row: its cores' totals (idle and kernel time included), from the per-core reading
    assert snap.root.instructions == pytest.approx(5.0e9) and snap.root.ipc == pytest.approx(2.0)
    # and its MHz: every core's cycles ÷ their busy time (2.5e9 cycles in 1.0 busy second)
    assert snap.root.freq_mhz == pytest.approx(2500.0) and snap.root.freq_source == "cycles"
    per_core = snap.source("counters").extra.get("per_core")
    assert per_core is None  # the fake reports none; the real sampler's per_core feeds /metrics
    back = Snapshot.loads(snap.dumps())
    assert back.root.find(["n1", "a.slice", "c.service", "pid-100", "core-0"]).ipc == pytest.approx(3.0)
    collector.close()
    assert fake.closed


def test_without_a_pmu_the_model_says_why_full_cannot_run(tmp_path: Path) -> None:
    """The real perf_event_open on this machine: no PMU → counters unavailable, and the model's reason."""
    from keck_tui.probes import perfevent
    from keck_tui.samplers.perfcounters import PerfCounterSampler

    if not perfevent.supported() or Path("/sys/bus/event_source/devices/cpu").exists():
        pytest.skip("needs a machine without a CPU PMU (a VM like this one)")
    collector, proc, sys_, clock = _node(tmp_path, PerfCounterSampler(cpus=lambda: [0, 1]))
    _step(proc, sys_, clock, 1)
    snap = collector.collect()
    status = snap.source("counters")
    assert status.status == "unavailable"
    assert snap.model != MODEL_FULL
    assert f"full needs hardware counters ({status.detail})" in snap.extra["model_reason"]
    if "no PMU" in status.detail:
        assert status.detail == "no PMU: this CPU (or VM) exposes no hardware counter cycles"
    compute = snap.root.find(["n1", "a.slice", "c.service", "pid-100"])
    assert compute.ipc is None and compute.instructions is None
    collector.close()


def test_counters_flag_and_config_choose_the_sampler(tmp_path: Path) -> None:
    from keck_tui.cli import build_parser
    from keck_tui.commands.base import settings_from_args
    from keck_tui.config import ConfigError, Settings, settings_from_mapping
    from keck_tui.samplers.perfcounters import PerfCounterSampler
    from keck_tui.wiring import build_counters

    assert Settings().counters == "auto"
    assert settings_from_mapping({"counters": "off"}).counters == "off"
    with pytest.raises(ConfigError, match="counters must be one of auto, off"):
        settings_from_mapping({"counters": "maybe"})
    cfg = tmp_path / "c.toml"
    cfg.write_text('counters = "off"\n')
    args = build_parser().parse_args(["--config", str(cfg), "--once"])
    assert settings_from_args(args).counters == "off"
    args = build_parser().parse_args(["--config", str(cfg), "--once", "--counters", "auto"])
    assert settings_from_args(args).counters == "auto"  # the flag wins over the file
    sampler, notes = build_counters(Settings(counters="off"), FakeClock())
    assert sampler is None and notes[0].name == "counters" and notes[0].status == "unavailable"
    assert "--counters off" in notes[0].detail and "--counters auto" in notes[0].extra["fix"]
    sampler, notes = build_counters(Settings(), FakeClock())
    assert isinstance(sampler, PerfCounterSampler) and notes == []
    sampler.close()


def test_counters_off_is_the_models_reason(tmp_path: Path) -> None:
    collector, proc, sys_, clock = _node(tmp_path, None)
    collector.extra_sources = (SourceStatus("counters", "unavailable", "turned off (--counters off)"),)
    _step(proc, sys_, clock, 1)
    snap = collector.collect()
    assert "full needs hardware counters (turned off (--counters off))" in snap.extra["model_reason"]


class CountingActivity:
    """An activity sampler that measures counters itself (as the eBPF probe does with a PMU)."""

    name = "ebpf"

    def __init__(self) -> None:
        self.calls = 0

    def sample(self) -> CpuActivity:
        self.calls += 1
        counted = self.calls > 1  # the probe's first read primes
        cores = tuple(CoreSample(cpu=c, busy_s=0.5, total_s=1.0,
                                 counters=CounterDelta(cycles=1e9, instructions=2e9) if counted else None)
                      for c in (0, 1))
        procs = (ProcessSample(pid=7, name="w", cmd="w", cpu_s=1.0, per_cpu_s={0: 0.5, 1: 0.5},
                               counters={0: CounterDelta(cycles=1e9, instructions=2e9)} if counted else None),)
        return CpuActivity(SourceStatus("ebpf", "ok"), 1.0 if self.calls > 1 else 0.0, procs, cores,
                           per_cpu_exact=True)


def test_per_cpu_events_are_closed_where_the_activity_sampler_counts_itself() -> None:
    from keck_tui.samplers.perfcounters import PerfCounterSampler

    opened: list[int] = []
    closed: list[int] = []

    def opener(spec, cpu):
        opened.append(len(opened) + 3)
        return opened[-1]

    own = PerfCounterSampler(cpus=lambda: [0, 1], opener=opener, reader=lambda fd: (fd, 1, 1),
                             closer=closed.append, clock=FakeClock())
    collector = Collector(activity=CountingActivity(), grouper=make_grouper(), host="n1", counters=own,
                          config=AttributionConfig(model="auto"), clock=FakeClock(), state_dir=None)
    collector.prime()
    assert len(opened) == 8 and not closed  # the probe has not counted yet
    snap = collector.collect()
    assert sorted(closed) == opened and collector.counters is None
    status = snap.source("counters")
    assert status.ok and "from the ebpf sampler" in status.detail
    assert [e["cpu"] for e in status.extra["per_core"]] == [0, 1]
    assert snap.root.instructions == pytest.approx(4e9) and snap.root.ipc == pytest.approx(2.0)
    assert snap.root.freq_mhz == pytest.approx(2000.0) and not snap.root.freq_nominal
    proc = next(r for _, r in snap.root.walk() if r.pid == 7)
    assert proc.instructions == pytest.approx(2e9)  # the probe's own, not a time share of the core's


def test_a_counter_source_that_reads_the_activity_samplers_own_events_is_kept() -> None:
    """The eBPF sampler's counters source (no events of its own) stays: nothing is opened twice."""
    fake = FakeCounters({0: CounterDelta(cycles=1e9, instructions=2e9), 1: CounterDelta(cycles=1e9)})
    collector = Collector(activity=CountingActivity(), grouper=make_grouper(), host="n1", counters=fake,
                          config=AttributionConfig(model="auto"), clock=FakeClock(), state_dir=None)
    collector.prime()
    snap = collector.collect()
    assert collector.counters is fake and not fake.closed and fake.calls == 2
    assert snap.source("counters").detail == "perf_event_open per CPU"  # its own status, not ours
    proc = next(r for _, r in snap.root.walk() if r.pid == 7)
    assert proc.instructions == pytest.approx(2e9)  # measured per process: not replaced by a time share
