"""keck-top run on real processes (in-process measure()): the whole tree is counted, measured energy, launch errors.

The tree's CPU time is compared with the kernel's own accounting of it: this test
process reaps everything ``measure()`` starts (it is the tree's subreaper), so the
growth of ``getrusage(RUSAGE_CHILDREN)`` over a run is exactly the tree's CPU time.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import pytest

from fakesys import FakeSys
from keck_tui.attribution.engine import AttributionConfig
from keck_tui.clock import SystemClock
from keck_tui.collector import Collector
from keck_tui.cost import Tariff
from keck_tui.hierarchy.grouping import make_grouper
from keck_tui.runmeter.launch import LaunchError
from keck_tui.runmeter.output import measurement_json, render_text
from keck_tui.runmeter.session import RunRequest, measure
from keck_tui.runmeter.forks import open_fork_tracker
from keck_tui.runmeter.tracking import TrackingUnavailable, choose_tracker
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.samplers.rapl import RaplSampler

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# A busy child for 2 s of CPU and, beside it, 20 grandchildren of 50 ms of CPU each
# (forked one after the other by a second child).
WORKLOAD = r"""
import os, sys, time
def burn(s):
    t = time.process_time()
    while time.process_time() - t < s:
        pass
busy, n, each = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
a = os.fork()
if a == 0:
    burn(busy)
    os._exit(0)
b = os.fork()
if b == 0:
    for i in range(n):
        g = os.fork()
        if g == 0:
            burn(each)
            os._exit(0)
        os.waitpid(g, 0)
        time.sleep(0.02)
    os._exit(0)
os.waitpid(a, 0)
os.waitpid(b, 0)
"""


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _activity(probes: str):
    if probes == "ebpf":
        if os.geteuid() != 0:
            pytest.skip("eBPF needs root")
        from keck_tui.samplers.ebpf import open_ebpf_sampler
        sampler, status = open_ebpf_sampler()
        if sampler is None:
            pytest.skip(f"eBPF unavailable here: {status.detail}")
        return sampler
    return ProcfsSampler("/proc")


def _collector(probes: str = "procfs", power=(), idle_watts: float | None = None) -> Collector:
    return Collector(activity=_activity(probes), grouper=make_grouper(), host="test-node",
                     power=list(power),
                     config=AttributionConfig(model="cpu-time", idle="separate", tick_s=0.0,
                                              idle_watts=idle_watts))


def _choose(track: str):
    def choose(method: str, name: str):
        try:
            return choose_tracker(track if method == "auto" else method, name, ebpf_opener=open_fork_tracker)
        except TrackingUnavailable as exc:
            pytest.skip(f"--track {track} unavailable here: {exc}")
    return choose


@pytest.mark.slow
@pytest.mark.parametrize("track,probes", [("cgroup", "procfs"), ("ppid", "procfs"), ("cgroup", "ebpf"),
                                          ("ebpf", "ebpf")])
def test_every_process_of_the_tree_is_counted(track, probes):
    collector = _collector(probes)
    before = _children_cpu()
    m = measure(RunRequest((PY, "-c", WORKLOAD, "2.0", "20", "0.05"), interval=0.1), lambda: collector,
                choose=_choose(track))
    kernel = _children_cpu() - before
    run = m.runs[0]
    e = run.energy
    assert run.exit_status == 0 and run.tracking == track
    assert kernel >= 3.0  # 2 s + 20 × 50 ms
    # the run's CPU time is the kernel's, to within a millisecond per process
    assert e.kernel_cpu_s == pytest.approx(kernel, abs=0.03)
    # and the energy follows it: the sampled rows plus the correction at the rows' own rate
    assert e.cpu_s + e.correction_cpu_s == pytest.approx(kernel, abs=0.03)
    if probes == "ebpf" and track in ("cgroup", "ebpf"):
        # eBPF keeps the time of processes that exit between samples, and the tracker knows them all
        assert e.processes == 23
        assert e.cpu_s == pytest.approx(kernel, rel=0.01)
    else:
        assert e.processes >= 3
    assert e.active.value > 0 and e.active.lo <= e.active.value <= e.active.hi
    assert run.snapshot is not None and run.snapshot.estimated  # no power sensor here


class SimulatedRapl:
    """A RAPL sampler over a fake powercap tree whose package counter follows a known truth:
    idle watts plus a fixed energy per busy CPU-second of the whole machine (/proc/stat).

    Real RAPL and /proc/stat are read microseconds apart; in a test on a loaded machine a
    separate read of /proc/stat came a procfs scan later (100 ms and more), and the simulated
    energy then covered another window than the busy time it is split by. So the truth is
    built from the collector's own reading: :meth:`activity` wraps the procfs sampler, each
    of its samples adds idle watts × its interval + energy per CPU-second × its cores' busy
    seconds, and the RAPL sampler's clock is that sample's own instant (its interval is the
    same one)."""

    name = "rapl"

    def __init__(self, sys_: FakeSys, idle_w: float, j_per_cpu_s: float) -> None:
        self.sys_, self.idle_w, self.k = sys_, idle_w, j_per_cpu_s
        self.joules = 0.0
        self.at = 0.0  # monotonic time of the activity sample the counter is up to date with
        self.inner = RaplSampler(sys_.root, clock=_At(self))

    def activity(self) -> "_Feeding":
        """The procfs sampler (on a clock that keeps its sample's instant) feeding this meter."""
        clock = _Recording()
        return _Feeding(ProcfsSampler("/proc", clock=clock), clock, self)

    def sample(self):
        self.sys_.set_energy("intel-rapl:0", int(self.joules * 1e6))
        return self.inner.sample()


class _At(SystemClock):
    """A clock whose monotonic time is the simulated meter's last reading instant."""

    def __init__(self, meter: SimulatedRapl) -> None:
        self.meter = meter

    def monotonic(self) -> float:
        return self.meter.at


class _Feeding:
    """The procfs sampler, feeding each sample's interval and busy CPU seconds to the meter."""

    def __init__(self, inner: ProcfsSampler, clock: "_Recording", meter: SimulatedRapl) -> None:
        self.inner, self.clock, self.meter, self.name = inner, clock, meter, inner.name

    def sample(self):
        act = self.inner.sample()
        self.meter.at = self.clock.last
        self.meter.joules += self.meter.idle_w * act.interval_s + self.meter.k * sum(c.busy_s for c in act.cores)
        return act

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class _Recording(SystemClock):
    """The system clock, remembering its last monotonic reading (the procfs sample's instant)."""

    last = 0.0

    def monotonic(self) -> float:
        self.last = super().monotonic()
        return self.last


@pytest.mark.slow
def test_with_a_fake_powercap_tree_the_energy_is_measured_and_the_bound_holds_the_truth(tmp_path):
    sys_ = FakeSys(tmp_path / "sys")
    sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    meter = SimulatedRapl(sys_, idle_w=8.0, j_per_cpu_s=12.0)
    collector = Collector(activity=meter.activity(), grouper=make_grouper(), host="test-node",
                          power=[meter], config=AttributionConfig(model="cpu-time", idle="separate", tick_s=0.0,
                                                                  idle_watts=8.0))
    before = _children_cpu()
    m = measure(RunRequest((PY, "-c", WORKLOAD, "1.0", "10", "0.05"), interval=0.1), lambda: collector,
                choose=_choose("auto"))
    kernel = _children_cpu() - before
    run = m.runs[0]
    assert not run.snapshot.estimated
    truth = 12.0 * kernel  # its CPU seconds at the simulated energy per CPU-second
    e = run.energy.active
    assert e.lo <= truth <= e.hi, (e, truth)
    assert e.value == pytest.approx(truth, rel=0.05)
    doc = measurement_json(m, "active", Tariff(price_per_kwh=0.3, co2e_g_per_kwh=300))
    assert doc["estimated"] is False
    r = doc["runs"][0]
    assert r["cost"] == pytest.approx(e.value / 3.6e6 * 0.3)
    assert r["co2e_g"] == pytest.approx(e.value / 3.6e6 * 300)
    assert "ESTIMATED" not in render_text(doc)


def test_a_command_that_cannot_start_is_a_launch_error(tmp_path):
    with pytest.raises(LaunchError) as err:
        measure(RunRequest(("no-such-command-keck",)), lambda: _collector())
    assert err.value.exit_status == 127 and "command not found" in str(err.value)
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)  # no x bit: exec fails with EACCES, even for root
    with pytest.raises(LaunchError) as err:
        measure(RunRequest((str(script),)), lambda: _collector(), choose=_choose("ppid"))
    assert err.value.exit_status == 126 and "Permission denied" in str(err.value)


def test_the_cgroup_is_removed_and_a_process_that_outlives_cmd_is_moved_out(tmp_path):
    pidfile = tmp_path / "pid"
    m = measure(RunRequest(("sh", "-c", f"sleep 30 & echo $! > {pidfile}; exit 0"), interval=0.1),
                lambda: _collector(), choose=_choose("cgroup"))
    run = m.runs[0]
    assert run.tracking == "cgroup" and run.leftover == 1
    pid = int(pidfile.read_text())
    try:
        path = next(line[3:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                    if line.startswith("0::"))
        assert "keck-top-run" not in path  # back in keck-top's own cgroup
        mount = next(line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                     if line.split()[2] == "cgroup2")
        assert not list(Path(mount).rglob("keck-top-run-*")) or all(
            str(os.getpid()) not in p.name for p in Path(mount).rglob("keck-top-run-*"))
    finally:
        os.kill(pid, 9)
        try:
            os.waitpid(pid, 0)  # keck-top's measure() made this process the orphans' subreaper
        except ChildProcessError:
            pass


@pytest.mark.slow
def test_repeats_keep_one_loaded_fork_probe():
    if os.geteuid() != 0:
        pytest.skip("eBPF needs root")
    opened = []

    def choose(method, name):
        def opener():
            tracker = open_fork_tracker()
            opened.append(tracker)
            return tracker
        try:
            return choose_tracker("ebpf", name, ebpf_opener=opener)
        except TrackingUnavailable as exc:
            pytest.skip(f"eBPF fork tracker unavailable: {exc}")

    m = measure(RunRequest(("sh", "-c", "sh -c true; sh -c true"), interval=0.1, repeat=2), lambda: _collector(),
                choose=choose)
    assert [r.tracking for r in m.runs] == ["ebpf", "ebpf"] and len(opened) == 1
    assert opened[0]._closed  # unloaded at the end
