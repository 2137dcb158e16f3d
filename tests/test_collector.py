"""The collector end to end: samplers → attribution → snapshot, with fake and real inputs."""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from fakesys import FakeProc, FakeSys
from spinner import HZ, cpu_ticks
from keck_tui.attribution.engine import AttributionConfig
from keck_tui.clock import FakeClock, SystemClock
from keck_tui.collector import Collector
from keck_tui.hierarchy.grouping import make_grouper
from keck_tui.model import Snapshot, SourceStatus
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.samplers.rapl import RaplSampler


def _tree_ok(snap: Snapshot) -> None:
    for _, row in snap.root.walk():
        assert row.watts >= 0 and row.watts_lo <= row.watts <= row.watts_hi
        if row.children:
            assert abs(sum(c.watts for c in row.children) - row.watts) <= 1e-9 * max(1.0, row.watts)


def test_fake_node_end_to_end(tmp_path):
    clock = FakeClock()
    sys_ = FakeSys(tmp_path / "sys")
    sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    sys_.add_rapl_zone("intel-rapl:0:0", "dram", energy_uj=0)
    proc = FakeProc(tmp_path / "proc", ncpu=2)
    proc.add_process(100, comm="worker", utime=0, stime=0, processor=0,
                     cgroup="0::/system.slice/worker.service")
    proc.add_process(200, comm="batch", utime=0, stime=0, processor=1, cgroup="0::/user.slice/x.scope")
    collector = Collector(activity=ProcfsSampler(proc.root, clock=clock), grouper=make_grouper(),
                          host="fake-1", power=[RaplSampler(sys_.root, clock=clock)],
                          config=AttributionConfig(model="cpu-time", idle_watts=10.0), clock=clock)
    collector.prime()
    # one second: worker 0.6 s on cpu0, batch 0.3 s on cpu1; package 40 J, dram 4 J
    clock.advance(1.0)
    proc.advance(1.0)
    proc.update_process(100, utime=60)
    proc.update_process(200, utime=30)
    proc.set_cpu_times(0, user=60, idle=40)
    proc.set_cpu_times(1, user=30, idle=70)
    sys_.set_energy("intel-rapl:0", 40_000_000)
    sys_.set_energy("intel-rapl:0:0", 4_000_000)
    snap = collector.collect()
    _tree_ok(snap)
    assert not snap.estimated and snap.model == "cpu-time"
    assert snap.root.watts == pytest.approx(44.0, rel=1e-3)
    worker = snap.root.find(["fake-1", "system.slice", "worker.service", "pid-100"])
    batch = snap.root.find(["fake-1", "user.slice", "x.scope", "pid-200"])
    assert worker is not None and batch is not None
    # active 30 W split 2:1 (plus DRAM by memory, equal here or absent)
    cpu_w = worker.components["cpu"], batch.components["cpu"]
    assert cpu_w[0] == pytest.approx(20.0, rel=1e-3) and cpu_w[1] == pytest.approx(10.0, rel=1e-3)
    assert snap.root.find(["fake-1", "(idle)"]).watts == pytest.approx(10.0)
    # joules accumulate per row across snapshots
    clock.advance(1.0)
    proc.advance(1.0)
    proc.update_process(100, utime=120)
    proc.update_process(200, utime=60)
    proc.set_cpu_times(0, user=120, idle=80)
    proc.set_cpu_times(1, user=60, idle=140)
    sys_.set_energy("intel-rapl:0", 80_000_000)
    sys_.set_energy("intel-rapl:0:0", 8_000_000)
    snap2 = collector.collect()
    assert snap2.root.joules == pytest.approx(88.0, rel=1e-3)
    assert Snapshot.loads(snap2.dumps()) == snap2


def test_node_power_is_resolved_once_per_interval_and_handed_to_the_engine(tmp_path, monkeypatch):
    """The collector resolves node power for the idle learner and passes that same object to
    attribute(), which then does not resolve it again."""
    import keck_tui.attribution.engine as engine
    import keck_tui.collector as collector_mod
    from keck_tui.attribution.power import resolve_node_power

    calls = []

    def counting(power, gpus=()):
        calls.append(1)
        return resolve_node_power(power, gpus)

    monkeypatch.setattr(collector_mod, "resolve_node_power", counting)
    monkeypatch.setattr(engine, "resolve_node_power", counting)
    seen = []
    real_attribute = collector_mod.attribute

    def spy(inp, config):
        seen.append(inp.node_power)
        return real_attribute(inp, config)

    monkeypatch.setattr(collector_mod, "attribute", spy)
    clock = FakeClock()
    sys_ = FakeSys(tmp_path / "sys")
    sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    proc = FakeProc(tmp_path / "proc", ncpu=1)
    proc.add_process(100, comm="worker", utime=0, stime=0, processor=0)
    collector = Collector(activity=ProcfsSampler(proc.root, clock=clock), grouper=make_grouper(),
                          host="fake-1", power=[RaplSampler(sys_.root, clock=clock)], clock=clock)
    collector.prime()
    clock.advance(1.0)
    proc.advance(1.0)
    proc.update_process(100, utime=50)
    proc.set_cpu_times(0, user=50, idle=50)
    sys_.set_energy("intel-rapl:0", 20_000_000)
    snap = collector.collect()
    assert len(calls) == 1 and len(seen) == 1
    assert seen[0] is not None and seen[0].cpu is not None and seen[0].cpu.watts == pytest.approx(20.0)
    assert snap.root.watts == pytest.approx(20.0)


class _Flaky:
    """A sampler that raises on the calls listed in ``fail_on`` (1-based) and otherwise
    returns ``ok()``."""

    def __init__(self, name: str, ok, fail_on: set[int]) -> None:
        self.name, self._ok, self._fail_on, self.calls = name, ok, fail_on, 0

    def sample(self):
        self.calls += 1
        if self.calls in self._fail_on:
            raise OSError(f"{self.name} fell over")
        return self._ok()


def test_a_sampler_that_raises_reports_its_error_status_and_recovers(tmp_path):
    """Every kind of sampler that raises becomes its own error status in that snapshot (the
    others carry on), and is asked again next interval: the one after reads ok."""
    from keck_tui.samplers.types import (CoreFrequency, CoreSample, CpuActivity, FrequencyReading,
                                         GpuDevice, GpuReading, PowerDomain, PowerReading)

    clock = FakeClock()
    ok = SourceStatus
    activity = _Flaky("procfs", lambda: CpuActivity(ok("procfs", "ok"), 1.0, cores=(CoreSample(0, 0.5, 1.0),)),
                      {3})
    power = _Flaky("rapl", lambda: PowerReading(ok("rapl", "ok"), (PowerDomain("package-0", "package", 30.0, 1.0,
                                                                                0.05),)), {3})
    gpu = _Flaky("nvml", lambda: GpuReading(ok("nvml", "ok"), (GpuDevice(0, "g", "u", 50.0, 5.0),)), {3})
    freq = _Flaky("cpufreq", lambda: FrequencyReading(ok("cpufreq", "ok"), (CoreFrequency(0, 2000.0, False),)),
                  {3})
    collector = Collector(activity=activity, grouper=make_grouper(), host="h", power=[power], gpus=[gpu],
                          frequency=freq, clock=clock)
    collector.prime()
    assert collector.collect().root.watts == pytest.approx(80.0)  # call 2: all fine
    broken = collector.collect()  # call 3: every sampler raised
    for name in ("procfs", "rapl", "nvml", "cpufreq"):
        status = broken.source(name)
        assert status is not None and status.status == "error", name
        assert status.detail == f"OSError: {name} fell over"
    _tree_ok(broken)
    again = collector.collect()  # call 4: recovered
    assert all(again.source(n).ok for n in ("procfs", "rapl", "nvml", "cpufreq"))
    assert again.root.watts == pytest.approx(80.0)


def test_only_the_broken_power_sampler_is_an_error():
    from keck_tui.samplers.types import CpuActivity, PowerDomain, PowerReading

    good = _Flaky("hwmon", lambda: PowerReading(SourceStatus("hwmon", "ok"),
                                                (PowerDomain("package-0", "package", 20.0, 1.0, 0.05),)), set())
    bad = _Flaky("rapl", lambda: PowerReading(SourceStatus("rapl", "ok")), {1, 2})
    activity = _Flaky("procfs", lambda: CpuActivity(SourceStatus("procfs", "ok"), 1.0), set())
    collector = Collector(activity=activity, grouper=make_grouper(), host="h", power=[bad, good],
                          clock=FakeClock())
    snap = collector.collect()
    assert snap.source("rapl").status == "error" and snap.source("hwmon").ok
    assert snap.root.watts == pytest.approx(20.0)


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _half_of(pid: int, seconds: float) -> None:
    """Half the CPU time of ``pid``, however much the machine gives it: spin while behind
    half of its CPU time (from the kernel), sleep 2 ms while ahead. A fixed duty cycle in wall
    time is not half of a spinner's share on a loaded box."""
    end = time.monotonic() + seconds
    other0, mine0 = cpu_ticks(pid) / HZ, time.process_time()
    while time.monotonic() < end:
        if time.process_time() - mine0 < (cpu_ticks(pid) / HZ - other0) / 2:
            t = time.process_time() + 0.002
            while time.process_time() < t:
                pass
        else:
            time.sleep(0.002)


class _TicksAtSample:
    """The procfs sampler, and the kernel's CPU ticks of ``pids`` read right after each of its
    samples: the test's independent figure covers the collector's own window."""

    def __init__(self, inner: ProcfsSampler, pids: tuple[int, ...]) -> None:
        self.inner, self.pids, self.name = inner, pids, inner.name
        self.ticks: dict[int, int] = {}

    def sample(self):
        out = self.inner.sample()
        self.ticks = {pid: cpu_ticks(pid) for pid in self.pids}
        return out

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _wait_for_ticks(*pids: int, timeout: float = 60.0) -> None:
    """Until each child has run a little (forked children can be slow to be scheduled)."""
    deadline = time.monotonic() + timeout
    while any(cpu_ticks(pid) < 2 for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs a Linux /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for the two children")
def test_real_processes_are_attributed_about_two_to_one(tmp_path):
    """A busy child and a half-duty child, real procfs, fake RAPL: ~2:1."""
    clock = SystemClock()
    sys_ = FakeSys(tmp_path / "sys")
    sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    ctx = mp.get_context("fork")
    busy = ctx.Process(target=_busy, args=(120.0,))  # both run until terminated, however slow the start
    busy.start()
    half = ctx.Process(target=_half_of, args=(busy.pid, 120.0))
    half.start()
    try:
        procfs = _TicksAtSample(ProcfsSampler("/proc", clock=clock), (busy.pid, half.pid))
        collector = Collector(activity=procfs, grouper=make_grouper(),
                              host="real", power=[RaplSampler(sys_.root, clock=clock)],
                              config=AttributionConfig(model="cpu-time", idle_watts=0.0), clock=clock)
        _wait_for_ticks(busy.pid, half.pid)
        collector.prime()
        before = procfs.ticks
        time.sleep(2.0)
        sys_.set_energy("intel-rapl:0", 100_000_000)
        snap = collector.collect()
        used = {pid: procfs.ticks[pid] - before[pid] for pid in (busy.pid, half.pid)}
    finally:
        for p in (busy, half):
            p.terminate()
            p.join()
    rows = {r.pid: r for _, r in snap.root.walk() if r.level == "process"}
    wb, wh = rows[busy.pid].watts, rows[half.pid].watts
    assert wh > 0
    # The attribution follows the CPU time the kernel charged (read independently here)…
    truth = used[busy.pid] / used[half.pid]
    assert wb / wh == pytest.approx(truth, rel=0.15), (wb, wh, used)
    # …and that is close to 2:1 (the half child paces itself on the busy one's CPU time).
    assert 1.4 <= wb / wh <= 3.0, (wb, wh)
    _tree_ok(snap)


def test_slow_sources_share_one_wait():
    """--once/doctor wait for slow pollers (BMC, kubelet) once, in parallel, not one after another."""
    import threading

    from keck_tui.clock import SystemClock
    from keck_tui.collector import Collector

    class Slow:
        def __init__(self) -> None:
            self.started = threading.Event()

        def wait_for_first(self, timeout: float) -> bool:
            self.started.set()
            time.sleep(min(timeout, 0.6))
            return False

        def group_of(self, process):  # also serves as the grouper
            return ()

    a, b, g = Slow(), Slow(), Slow()
    c = Collector(activity=None, grouper=g, host="h", power=[a, b], clock=SystemClock())  # type: ignore[arg-type]
    t0 = time.monotonic()
    c.wait_for_slow_sources(timeout=0.6)
    took = time.monotonic() - t0
    assert a.started.is_set() and b.started.is_set() and g.started.is_set()
    assert took < 1.2, f"waited {took:.2f} s for a 0.6 s budget"
