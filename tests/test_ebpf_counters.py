"""Per (process, core) counters through the real probe: needs root, bcc and kernel headers (CI has them).

Where there is no PMU (the development VM, most CI runners) the full BPF path is checked
with the software cpu-clock in the counter slots: read at every sched_switch exactly like
the hardware group, it counts nanoseconds, so a process's per-core "cycles" must equal its
on-CPU time from the same probe. What only a real PMU confirms (hardware counts, their
multiplexing) is checked where one answers, and said otherwise.
"""
from __future__ import annotations

import ctypes as ct
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_ebpf import SPINNER, _runtime, find

pytestmark = [pytest.mark.root]

# cpu-clock counts a span's wall time on the CPU; the scheduler's runtime leaves out the
# time the VM's host took from the vCPU meanwhile (steal, CONFIG_PARAVIRT_TIME_ACCOUNTING),
# so the counters run ahead by the steal. Measured on the development VM (2 vCPUs, Linux
# 6.18, other test runs alongside): counters / on-CPU time - 1 over 20 per-core spans of
# 1 s spins, -0.06 % to +1.74 % at load average 3.3 (steal ~1 %), up to +3.4 % at 5.6.
# So the bound above is 1 % plus the steal measured on the CPUs during the spin (/proc/stat,
# in 10 ms ticks: one tick of slack).
BELOW, ABOVE = 0.005, 0.01


def steal_s() -> float:
    """Seconds stolen from all CPUs so far (/proc/stat, USER_HZ ticks)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def close_to(counted: float, seconds: float, stolen: float = 0.0) -> bool:
    tick = 1 / os.sysconf("SC_CLK_TCK")
    return seconds * (1 - BELOW) <= counted <= seconds * (1 + ABOVE) + stolen + tick


@pytest.fixture(scope="module")
def stand_in():
    if os.geteuid() != 0:
        pytest.skip("eBPF tests need root")
    from keck_tui.probes.perfevent import CPU_CLOCK
    from keck_tui.samplers.ebpf import open_ebpf_sampler
    s, status = open_ebpf_sampler(counter_events={"cycles": CPU_CLOCK, "instructions": CPU_CLOCK})
    if s is None:
        pytest.skip(f"eBPF unavailable here: {status.detail}")
    if s.counters_why:
        pytest.skip(f"software perf events unavailable here: {s.counters_why}")
    s.sample()  # prime
    yield s
    s.close()


def wait_for(what: str, cond, timeout: float = 60.0, every: float = 0.005) -> None:
    """Poll ``cond`` until it holds: on a loaded machine a child gets its CPU time late, never
    a fixed share of the wall clock."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"{what}: not within {timeout} s"
        time.sleep(every)


def blocked(pid: int) -> bool:
    """The kernel has the process asleep (on its stdin here): off every CPU, nothing in flight."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"


def spin(sampler, secs: float, cpu: int | None = None, mid: float | None = None):
    """Samples around a child's spin of ``secs`` CPU seconds; (the child's sample, the activity,
    its sample mid-spin once it has had ``mid`` CPU seconds of the spin, with the kernel's count
    of the child's spin CPU seconds just before and just after that sample, and the seconds
    stolen from the CPUs meanwhile)."""
    args = [sys.executable, "-c", SPINNER, str(secs)] + ([str(cpu)] if cpu is not None else [])
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()
        wait_for("the spinner blocking on its stdin", lambda: blocked(p.pid))
        ran0 = _runtime(p.pid)  # before the baseline (which should not see it run again)
        sampler.sample()  # the child is blocked on stdin: baseline
        stolen0 = steal_s()
        p.stdin.write("go\n")
        p.stdin.flush()
        during = None
        if mid is not None:
            wait_for(f"{mid} s of CPU for the spinner", lambda: _runtime(p.pid) - ran0 >= mid)
            before = _runtime(p.pid) - ran0
            sample = find(sampler.sample(), p.pid)
            during = (sample, before, _runtime(p.pid) - ran0)
        p.stdout.readline()
        wait_for("the spinner blocking again", lambda: blocked(p.pid))  # switched out
        act = sampler.sample()
        stolen = steal_s() - stolen0
    finally:
        p.stdin.write("x\n")
        p.stdin.flush()
        p.wait(timeout=60)
    return find(act, p.pid), act, during, stolen


def test_counters_per_process_and_core_match_its_on_cpu_time(stand_in):
    p, act, _, stolen = spin(stand_in, 1.0)
    assert act.per_process_counters and p is not None and p.counters
    assert p.cpu_s == pytest.approx(1.0, rel=0.01)
    assert set(p.counters) == {cpu for cpu, s in p.per_cpu_s.items() if s > 0.001} | set(p.counters)
    for cpu, seconds in p.per_cpu_s.items():
        if seconds < 0.01:
            continue  # a few ms: a stray span, dominated by where exactly the switch fell
        d = p.counters[cpu]
        assert close_to(d.cycles / 1e9, seconds, stolen), (cpu, d, seconds, stolen)
        assert close_to(d.instructions / 1e9, seconds, stolen), (cpu, d, seconds)  # a group member
        assert d.llc_misses is None and d.ref_cycles is None  # not installed: absent, never 0
        assert d.running_ratio == pytest.approx(1.0, abs=0.01)  # software events are never multiplexed
    extra = act.source.extra
    assert extra["counters"] == "cycles=cpu_clock,instructions=cpu_clock"
    assert extra["counter_overflow"] == 0 and extra["counter_used"] > 0


def test_counters_of_a_pinned_process_are_on_its_core(stand_in):
    cpu = max(os.sched_getaffinity(0))
    p, _, _, stolen = spin(stand_in, 0.5, cpu=cpu)
    assert close_to(p.counters[cpu].cycles / 1e9, p.per_cpu_s[cpu], stolen), (p.counters, p.per_cpu_s)
    other = sum(d.cycles for c, d in p.counters.items() if c != cpu)
    assert other < 0.005 * p.counters[cpu].cycles


def test_a_running_task_has_its_counters_in_flight(stand_in):
    secs = 1.5
    _, _, (during, before, after), stolen = spin(stand_in, secs, mid=0.3)
    assert after < secs, "the spin ended before the mid sample: nothing was in flight"
    assert during is not None and during.cpu_s > 0.2
    # the time's in-flight part is the scheduler's runtime, up to a tick (4 ms at HZ=250) behind
    # (and both sides are sums of ns / 1e9: a rounding's slack)
    assert before - 0.01 <= during.cpu_s <= after + 1e-9, (during.cpu_s, before, after)
    counted = sum(d.cycles for d in during.counters.values()) / 1e9
    # the counters' in-flight part is exact
    assert during.cpu_s * (1 - BELOW) <= counted <= during.cpu_s * (1 + ABOVE) + stolen + 0.01, \
        (during.counters, during.cpu_s, stolen)


def test_core_counters_come_from_the_same_events(stand_in, monkeypatch):
    read, spans = stand_in.probe.read, []

    def timed_read():  # the probe reads the events inside: the wall clock around each read
        t0 = time.monotonic()
        got = read()
        spans.append((t0, time.monotonic()))
        return got

    monkeypatch.setattr(stand_in.probe, "read", timed_read)
    stand_in.sample()
    time.sleep(0.3)
    act = stand_in.sample()
    (a0, a1), (b0, b1) = spans[-2:]
    for core in act.cores:
        # cpu-clock counts every nanosecond the CPU exists, idle included: the wall time
        # between the two reads (the sampler's own interval starts before its procfs scan,
        # which a loaded machine stretches)
        assert core.counters is not None
        assert (b0 - a1) * (1 - BELOW) <= core.counters.cycles / 1e9 <= (b1 - a0) * (1 + ABOVE), \
            (core.cpu, core.counters.cycles, b0 - a1, b1 - a0, act.interval_s)
    reading = stand_in.counter_sampler().sample()  # the counters source, from the same events
    assert reading.source.ok and reading.cores == {c.cpu: c.counters for c in act.cores}
    assert "per process at every context switch" in reading.source.detail


def test_hardware_counters_where_a_pmu_answers_else_the_kernels_reason_and_the_probe_runs_on():
    if os.geteuid() != 0:
        pytest.skip("eBPF tests need root")
    from keck_tui.probes.counters import open_counters
    from keck_tui.samplers.ebpf import open_ebpf_sampler
    probe_only = open_counters([0])
    pmu = bool(probe_only.slots)
    probe_only.close()
    s, status = open_ebpf_sampler()
    if s is None:
        pytest.skip(f"eBPF unavailable here: {status.detail}")
    try:
        s.sample()
        p, act, _, _ = spin(s, 0.5)
        assert p is not None and p.cpu_s == pytest.approx(0.5, rel=0.05)  # the probe runs on either way
        if not pmu:  # this VM: perf_event_open(cycles) fails with ENOENT
            assert not act.per_process_counters
            assert "no hardware counters: " in status.detail and "perf_event_open: E" in status.detail
            assert act.source.ok and act.source.extra["counters"] == "none"
            assert all(q.counters is None for q in act.processes)
        else:  # only a machine with a PMU gets here: a spinner's real counts
            assert act.per_process_counters and "cycles" in act.source.extra["counters"]
            cycles = sum(d.cycles for d in p.counters.values() if d.cycles)
            insns = sum(d.instructions for d in p.counters.values() if d.instructions)
            assert 200 <= cycles / p.cpu_s / 1e6 <= 10_000  # an effective clock in MHz a CPU can have
            assert 0.05 <= insns / cycles <= 8  # an IPC a CPU can have
            assert all(0 < d.running_ratio <= 1 for d in p.counters.values())
    finally:
        s.close()


def test_perf_array_entries_go_with_the_fd_they_were_inserted_through(stand_in):
    """The kernel behaviour the design rests on (Linux 6.18 here): entries put into a perf
    event array through one fd of the map are removed when that fd closes, even with other
    fds of the map open. So the long-lived process inserts, and keeps its fd."""
    from keck_tui.probes import bpfsys
    from keck_tui.probes.perfevent import CPU_CLOCK, open_counter
    probe = stand_in.probe
    pin = getattr(probe.bpf, "pin_dir", None)
    if pin is None:
        pytest.skip("probe loaded in-process (no pins): nothing to open a second fd from")
    cpu = max(os.sched_getaffinity(0))
    second = bpfsys.obj_get(str(pin / "maps" / "ctr_instructions"))  # a second fd of a pinned array
    fd = open_counter(CPU_CLOCK, cpu)
    try:
        bpfsys.update(second, ct.c_int(cpu), ct.c_int(fd))
        p, _, _, _ = spin(stand_in, 0.3, cpu=cpu)
        assert p.counters[cpu].instructions > 0  # the event put in through the second fd counts
        os.close(second)  # the entry goes with it ...
        second = -1
        p, _, _, _ = spin(stand_in, 0.3, cpu=cpu)
        assert p.counters[cpu].cycles > 0
        assert p.counters[cpu].instructions is None  # ... so that slot reads as absent on that CPU
    finally:
        if second >= 0:
            os.close(second)
        os.close(fd)
        probe.counters.install(probe.bpf)  # put the module's events back for the other tests
        stand_in.sample()
