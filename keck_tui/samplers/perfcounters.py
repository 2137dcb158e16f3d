"""Per-core hardware counters without eBPF: one ``perf_event_open`` counting event per CPU and event.

cycles, instructions, LLC misses and ref-cycles are opened on every online CPU
(``pid = -1``: everything that runs there), read once per interval, and turned
into :class:`CounterDelta` per core: deltas scaled by time_enabled/time_running
when the kernel multiplexed the PMU (the ratio is reported as ``running_ratio``
and in the source's detail). An event the PMU lacks is None, never 0. CPUs that
go offline are closed and those that come online are opened (their first reading
primes them). Where no event opens at all (no PMU: this VM, most cloud VMs; or
``perf_event_paranoid`` without CAP_PERFMON) the source ``counters`` is
``unavailable`` with the kernel's reason, and the model says why ``full`` cannot run.

The opener and reader are injected: tests stand a fake PMU at the system-call boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.probes import perfevent
from keck_tui.probes.perfevent import EventSpec, PerfEventError
from keck_tui.samplers.fileio import online_cpus
from keck_tui.samplers.types import CounterDelta, CounterReading, counting_state, multiplexed

NAME = "counters"
_WRAP = 1 << 64

Opener = Callable[[EventSpec, int], int]
Reader = Callable[[int], tuple[int, int, int]]


def delta(now: int, before: int) -> int | None:
    """``now - before`` of a 64-bit counter: a wrap past 2⁶⁴ is counted through; a value
    that went back from low down (a reset) gives None."""
    if now >= before:
        return now - before
    if before >= _WRAP // 2:  # near the top: it wrapped
        return now + _WRAP - before
    return None


@dataclass
class _Core:
    """One CPU's open events: field name -> (fd, last (value, enabled, running))."""

    fds: dict[str, int] = field(default_factory=dict)
    last: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def scaled(now: tuple[int, int, int], before: tuple[int, int, int]) -> tuple[float | None, float | None]:
    """(count scaled for multiplexing, running ratio) over one interval; (None, None) when
    the event never ran in it or its counter went backwards."""
    dv, de, dr = (delta(a, b) for a, b in zip(now, before))
    got = None if dv is None or de is None or dr is None else multiplexed(dv, de, dr)
    return (None, None) if got is None else got


class PerfCounterSampler:
    """The ``counters`` source: per-core :class:`CounterDelta` over each interval."""

    name = NAME

    def __init__(self, *, events: Sequence[EventSpec] = perfevent.HARDWARE_EVENTS,
                 cpus: Callable[[], Iterable[int]] | None = None, opener: Opener | None = None,
                 reader: Reader | None = None, closer: Callable[[int], None] = perfevent.close,
                 clock: Clock | None = None, sysfs_root: str | Path = "/sys") -> None:
        self.events = tuple(events)
        self._cpus = cpus or (lambda: online_cpus(sysfs_root))
        self._open = opener or (lambda spec, cpu: perfevent.open_counter(spec, cpu))
        self._read = reader or perfevent.read_counter
        self._close = closer
        self.clock = clock or SystemClock()
        self.cores: dict[int, _Core] = {}
        self.missing: dict[str, str] = {}  # event -> why it is missing (first CPU's reason)
        self._last_t: float | None = None
        self._failure: PerfEventError | None = None
        self._none: SourceStatus | None = None  # set for good where the CPU has no PMU

    # ---- opening and closing ------------------------------------------------------------
    def _open_cpu(self, cpu: int) -> _Core:
        core = _Core()
        for spec in self.events:
            try:
                core.fds[spec.name] = self._open(spec, cpu)
            except PerfEventError as exc:
                self.missing.setdefault(spec.name, exc.reason)
                if self._failure is None:
                    self._failure = exc
        return core

    def _close_cpu(self, cpu: int) -> None:
        core = self.cores.pop(cpu, None)
        for fd in (core.fds.values() if core else ()):
            self._close(fd)

    def close(self) -> None:
        """Close every event fd."""
        for cpu in list(self.cores):
            self._close_cpu(cpu)

    def _sync_cpus(self) -> None:
        """Open newly online CPUs, close those gone offline."""
        online = set(self._cpus())
        for cpu in [c for c in self.cores if c not in online]:
            self._close_cpu(cpu)
        for cpu in sorted(online - set(self.cores)):
            self.cores[cpu] = self._open_cpu(cpu)

    # ---- reading ------------------------------------------------------------------------
    def _read_core(self, cpu: int, core: _Core) -> CounterDelta | None:
        """This core's deltas since its last read (None on its first read); a CPU whose
        read fails (it went offline meanwhile) is closed and reopened next interval."""
        values: dict[str, float | None] = {}
        ratios: list[float] = []
        now: dict[str, tuple[int, int, int]] = {}
        for name, fd in core.fds.items():
            try:
                now[name] = self._read(fd)
            except PerfEventError:
                self._close_cpu(cpu)
                return None
        primed = bool(core.last)
        for name, reading in now.items():
            before = core.last.get(name)
            value, ratio = scaled(reading, before) if before is not None else (None, None)
            values[name] = value
            if ratio is not None:
                ratios.append(ratio)
        core.last = now
        if not primed:
            return None
        return CounterDelta(cycles=values.get("cycles"), instructions=values.get("instructions"),
                            llc_misses=values.get("llc_misses"), ref_cycles=values.get("ref_cycles"),
                            running_ratio=min(ratios, default=1.0))

    def sample(self) -> CounterReading:
        if self._none is not None:  # no PMU: the hardware will not grow one, ask the kernel once
            return CounterReading(self._none)
        self._sync_cpus()
        opened = sorted({n for c in self.cores.values() for n in c.fds})
        if not opened:  # no event on any CPU: unavailable, and why (tried again next interval …)
            self.close()
            fix = perfevent.fix_for(self._failure.errno) if self._failure else ""
            status = SourceStatus(NAME, STATUS_UNAVAILABLE,
                                  self._failure.reason if self._failure else "no online CPU to count on",
                                  extra={"missing": dict(self.missing), **({"fix": fix} if fix else {})})
            if self._failure is not None and self._failure.no_pmu:
                self._none = status  # … unless the PMU lacks them all: that is for good
            return CounterReading(status)
        t = self.clock.monotonic()
        deltas = {cpu: d for cpu, core in list(self.cores.items()) if (d := self._read_core(cpu, core)) is not None}
        interval = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        return CounterReading(self._status(opened, deltas), interval_s=interval, cores=deltas)

    def _status(self, opened: list[str], deltas: dict[int, CounterDelta]) -> SourceStatus:
        ratio, state = counting_state(deltas)
        what = f"perf_event_open per CPU: {', '.join(opened)} on {len(self.cores)} CPUs" + state
        absent = [f"no {n} ({why})" for n, why in self.missing.items() if n not in opened]
        detail = "; ".join([what, *absent])
        return SourceStatus(NAME, STATUS_OK, detail,
                            extra={"events": opened, "cpus": len(self.cores), "running_ratio": round(ratio, 4),
                                   "missing": {n: why for n, why in self.missing.items() if n not in opened},
                                   "per_core": per_core_json(deltas)})


def per_core_json(deltas: dict[int, CounterDelta]) -> list[dict[str, float]]:
    """Each core's counts over the interval, for the snapshot (the agent's per-core metrics)."""
    out = []
    for cpu in sorted(deltas):
        d = deltas[cpu]
        entry: dict[str, float] = {"cpu": cpu, "running_ratio": round(d.running_ratio, 4)}
        for name in ("cycles", "instructions", "llc_misses", "ref_cycles"):
            value = getattr(d, name)
            if value is not None:
                entry[name] = round(value)
        out.append(entry)
    return out


def error_counters(status: SourceStatus) -> CounterReading:
    return CounterReading(status)
