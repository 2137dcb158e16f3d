"""The per-core counter sampler: a fake PMU at the system-call boundary (opener/reader),
the real kernel's failure on this machine, and real software events through the same code.

Only a machine with a PMU confirms the hardware counts themselves (scripts/pmu-check.sh).
"""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

from keck_tui.clock import FakeClock
from keck_tui.probes import perfevent as pe
from keck_tui.probes.perfevent import EventSpec, PerfEventError
from keck_tui.samplers.fileio import online_cpus, parse_cpu_list
from keck_tui.samplers.perfcounters import PerfCounterSampler, delta, scaled

S = 1_000_000_000


class FakePmu:
    """Counting events per (cpu, event): the test sets each one's (value, enabled, running)."""

    def __init__(self, lacks: tuple[str, ...] = (), err: int = errno.ENOENT) -> None:
        self.lacks = lacks
        self.err = err
        self.fds: dict[int, tuple[int, str]] = {}
        self.values: dict[tuple[int, str], tuple[int, int, int]] = {}
        self.closed: list[int] = []
        self.offline: set[int] = set()
        self._next = 100
        self.opens = 0  # perf_event_open calls

    def open(self, spec: EventSpec, cpu: int) -> int:
        self.opens += 1
        if spec.name in self.lacks:
            raise PerfEventError(pe.reason_for(self.err, spec, cpu, paranoid_value=2), self.err, spec, cpu)
        self._next += 1
        self.fds[self._next] = (cpu, spec.name)
        self.values.setdefault((cpu, spec.name), (0, 0, 0))
        return self._next

    def read(self, fd: int) -> tuple[int, int, int]:
        cpu, name = self.fds[fd]
        if cpu in self.offline:
            raise PerfEventError("short read of perf event fd: 0 bytes", errno.EIO)
        return self.values[(cpu, name)]

    def close(self, fd: int) -> None:
        self.closed.append(fd)
        self.fds.pop(fd, None)

    def add(self, cpu: int, name: str, value: int, enabled: int = S, running: int | None = None) -> None:
        v, e, r = self.values[(cpu, name)]
        self.values[(cpu, name)] = (v + value, e + enabled, r + (enabled if running is None else running))


def make(pmu: FakePmu, cpus=(0, 1), **kw) -> tuple[PerfCounterSampler, FakeClock, list[int]]:
    clock = FakeClock()
    online = list(cpus)
    sampler = PerfCounterSampler(cpus=lambda: online, opener=pmu.open, reader=pmu.read, closer=pmu.close,
                                 clock=clock, **kw)
    return sampler, clock, online


def test_deltas_per_core_and_first_read_primes() -> None:
    pmu = FakePmu()
    sampler, clock, _ = make(pmu)
    first = sampler.sample()
    assert first.source.ok and "warming up" in first.source.detail and first.cores == {}
    for name, v in (("cycles", 3_000_000_000), ("instructions", 6_000_000_000), ("llc_misses", 40_000),
                    ("ref_cycles", 2_000_000_000)):
        pmu.add(0, name, v)
        pmu.add(1, name, v // 2)
    clock.advance(1.0)
    r = sampler.sample()
    assert r.interval_s == 1.0 and set(r.cores) == {0, 1}
    c0 = r.cores[0]
    assert (c0.cycles, c0.instructions, c0.llc_misses, c0.ref_cycles) == (3e9, 6e9, 4e4, 2e9)
    assert c0.ipc == 2.0 and c0.running_ratio == 1.0
    assert r.cores[1].cycles == 1.5e9
    assert r.source.extra["events"] == ["cycles", "instructions", "llc_misses", "ref_cycles"]
    assert r.source.extra["cpus"] == 2 and "multiplexed" not in r.source.detail
    assert r.source.extra["per_core"][0] == {"cpu": 0, "running_ratio": 1.0, "cycles": 3_000_000_000,
                                             "instructions": 6_000_000_000, "llc_misses": 40_000,
                                             "ref_cycles": 2_000_000_000}


def test_multiplexed_counts_are_scaled_and_the_ratio_reported() -> None:
    pmu = FakePmu()
    sampler, clock, _ = make(pmu, cpus=(0,))
    sampler.sample()
    pmu.add(0, "cycles", 1_000_000, enabled=S, running=S // 4)  # ran a quarter of the time
    pmu.add(0, "instructions", 500_000, enabled=S, running=S // 2)
    pmu.add(0, "llc_misses", 10, enabled=S)
    pmu.add(0, "ref_cycles", 10, enabled=S)
    clock.advance(1.0)
    r = sampler.sample()
    d = r.cores[0]
    assert d.cycles == pytest.approx(4_000_000) and d.instructions == pytest.approx(1_000_000)
    assert d.running_ratio == pytest.approx(0.25)
    assert "multiplexed: counted 25 % of the time" in r.source.detail
    assert r.source.extra["running_ratio"] == 0.25


def test_an_event_the_pmu_lacks_is_none_never_zero() -> None:
    pmu = FakePmu(lacks=("llc_misses", "ref_cycles"))
    sampler, clock, _ = make(pmu, cpus=(0,))
    sampler.sample()
    pmu.add(0, "cycles", 100)
    pmu.add(0, "instructions", 50)
    clock.advance(1.0)
    r = sampler.sample()
    d = r.cores[0]
    assert d.llc_misses is None and d.ref_cycles is None and d.cycles == 100 and d.ipc == 0.5
    assert "llc_misses" not in r.source.extra["per_core"][0]
    assert r.source.ok
    assert "no llc_misses (no PMU: this CPU (or VM) exposes no hardware counter llc_misses)" in r.source.detail
    assert set(r.source.extra["missing"]) == {"llc_misses", "ref_cycles"}


def test_an_event_that_did_not_run_this_interval_is_none() -> None:
    pmu = FakePmu()
    sampler, clock, _ = make(pmu, cpus=(0,))
    sampler.sample()
    pmu.add(0, "cycles", 0, enabled=S, running=0)  # multiplexed out the whole interval
    clock.advance(1.0)
    assert sampler.sample().cores[0].cycles is None


def test_wrap_is_counted_through_and_a_reset_is_none() -> None:
    top = (1 << 64) - 1000
    assert delta(500, top) == 1500
    assert delta(10, 5_000) is None  # went back from low down: a reset, not a wrap
    assert delta(7, 7) == 0
    assert scaled((500, 2 * S, 2 * S), (top, S, S)) == (1500, 1.0)
    pmu = FakePmu()
    sampler, clock, _ = make(pmu, cpus=(0,))
    pmu.values[(0, "cycles")] = (top, 0, 0)
    sampler.sample()
    pmu.values[(0, "cycles")] = (2_000, S, S)
    clock.advance(1.0)
    assert sampler.sample().cores[0].cycles == 3_000


def test_hotplug_closes_offline_and_opens_online_cpus() -> None:
    pmu = FakePmu()
    sampler, clock, online = make(pmu, cpus=(0, 1))
    sampler.sample()
    assert len(pmu.fds) == 8
    online.remove(1)
    clock.advance(1.0)
    r = sampler.sample()
    assert set(r.cores) == {0} and len(pmu.closed) == 4 and len(pmu.fds) == 4
    online.append(2)
    clock.advance(1.0)
    r = sampler.sample()
    assert set(r.cores) == {0}  # cpu 2 primes this interval
    pmu.add(2, "cycles", 10)
    clock.advance(1.0)
    assert sampler.sample().cores[2].cycles == 10


def test_a_cpu_whose_read_fails_is_closed_and_reopened() -> None:
    pmu = FakePmu()
    sampler, clock, _ = make(pmu, cpus=(0, 1))
    sampler.sample()
    pmu.offline.add(1)
    clock.advance(1.0)
    r = sampler.sample()
    assert set(r.cores) == {0} and len(pmu.closed) == 4
    pmu.offline.clear()
    clock.advance(1.0)
    sampler.sample()  # reopened: primes
    clock.advance(1.0)
    assert set(sampler.sample().cores) == {0, 1}


def test_close_closes_every_fd() -> None:
    pmu = FakePmu()
    sampler, _, _ = make(pmu, cpus=(0, 1, 2))
    sampler.sample()
    sampler.close()
    assert pmu.fds == {} and len(pmu.closed) == 12


def test_permission_denied_names_paranoid_and_cap_perfmon() -> None:
    pmu = FakePmu(lacks=("cycles", "instructions", "llc_misses", "ref_cycles"), err=errno.EACCES)
    sampler, _, _ = make(pmu)
    r = sampler.sample()
    assert r.source.status == "unavailable" and r.cores == {}
    assert "kernel.perf_event_paranoid is 2" in r.source.detail and "CAP_PERFMON" in r.source.detail


def test_real_kernel_without_a_pmu_makes_the_source_unavailable_with_its_reason() -> None:
    """No fake: this machine's perf_event_open answers (a VM without a PMU here)."""
    if not pe.supported():
        pytest.skip("perf_event_open number unknown here")
    if Path("/sys/bus/event_source/devices/cpu").exists():
        pytest.skip("this machine has a CPU PMU")
    sampler = PerfCounterSampler()
    try:
        r = sampler.sample()
    finally:
        sampler.close()
    assert r.source.name == "counters" and r.source.status == "unavailable"
    if pe.paranoid() is not None and pe.paranoid() > 0 and not _root():
        assert "perf_event_paranoid" in r.source.detail
    else:
        assert r.source.detail == "no PMU: this CPU (or VM) exposes no hardware counter cycles"
    assert sampler.cores == {}


def _root() -> bool:
    import os

    return os.geteuid() == 0


def test_software_events_run_through_the_real_plumbing() -> None:
    """cpu-clock counts nanoseconds per CPU: the real open/read/scale path gives ≈ 1 s per second."""
    if not pe.supported():
        pytest.skip("perf_event_open number unknown here")
    clock = FakeClock()
    sampler = PerfCounterSampler(events=(EventSpec("cycles", pe.PERF_TYPE_SOFTWARE, pe.PERF_COUNT_SW_CPU_CLOCK),),
                                 clock=clock)
    try:
        first = sampler.sample()
        if not first.source.ok:
            pytest.skip(f"per-CPU software events not allowed: {first.source.detail}")
        import time

        time.sleep(0.2)
        clock.advance(0.2)
        r = sampler.sample()
    finally:
        sampler.close()
    assert set(r.cores) == set(online_cpus())
    for d in r.cores.values():
        assert d.cycles == pytest.approx(2e8, rel=0.5) and d.instructions is None and d.running_ratio == 1.0


def test_cpu_list_parsing(tmp_path: Path) -> None:
    assert parse_cpu_list("0-3,8\n") == [0, 1, 2, 3, 8]
    assert parse_cpu_list("") == [] and parse_cpu_list("x-1") == []
    d = tmp_path / "devices" / "system" / "cpu"
    d.mkdir(parents=True)
    (d / "online").write_text("0,2-3\n")
    assert online_cpus(tmp_path) == [0, 2, 3]
    assert online_cpus(tmp_path / "nowhere") == []


def test_no_pmu_is_asked_once_a_denial_every_interval() -> None:
    pmu = FakePmu(lacks=("cycles", "instructions", "llc_misses", "ref_cycles"))
    sampler, _, _ = make(pmu)
    first = sampler.sample()
    assert pmu.opens == 8 and first.source.status == "unavailable"
    assert sampler.sample().source == first.source and pmu.opens == 8
    denied = FakePmu(lacks=("cycles", "instructions", "llc_misses", "ref_cycles"), err=errno.EACCES)
    sampler, _, _ = make(denied)
    sampler.sample()
    denied.lacks = ()  # the admin lowered perf_event_paranoid
    sampler.sample()
    assert sampler.sample().source.ok
