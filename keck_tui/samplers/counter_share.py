"""Per-core hardware counters shared out to the processes that ran there, by on-CPU time.

Without eBPF the PMU is read per core (samplers/perfcounters.py), not per task. A
process then gets, on each core it ran on, the core's counts in proportion to its
on-CPU seconds there; the core's interrupt time (irq + softirq) gets its share the
same way (attribution/features.py asks :func:`irq_fraction`). The fractions on a
core are taken over the larger of its busy time and the time seen on it (processes +
interrupts): where the seen time covers the busy time — always with eBPF's measured
per-core times — the shares add up exactly to the core's counts; where it does not
(a process that ran and exited between two procfs reads, unseen), the unseen time's
counts stay unattributed, like its watts, rather than inflating the rate (cycles ÷
on-CPU time: the effective frequency) of the processes that were seen. With procfs's
per-core split (the last CPU a process ran on, not a measurement) a process's
per-core counts are only as good as that split; the node's totals stay exact.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from keck_tui.samplers.types import CoreSample, CounterDelta, CounterReading, CpuActivity, ProcessSample


def scale(d: CounterDelta, fraction: float) -> CounterDelta:
    """``d`` × ``fraction`` (None stays None; the running ratio is the core's)."""
    f = max(0.0, fraction)
    return CounterDelta(cycles=None if d.cycles is None else d.cycles * f,
                        instructions=None if d.instructions is None else d.instructions * f,
                        llc_misses=None if d.llc_misses is None else d.llc_misses * f,
                        ref_cycles=None if d.ref_cycles is None else d.ref_cycles * f,
                        running_ratio=d.running_ratio)


def seen_seconds(activity: CpuActivity) -> dict[int, float]:
    """Per core, the seconds its counts are shared over: the on-CPU seconds of every process
    there plus the core's interrupt time, or the core's busy time where that is larger."""
    seen: dict[int, float] = {c.cpu: max(0.0, c.irq_s) for c in activity.cores}
    for p in activity.processes:
        for cpu, s in p.per_cpu_s.items():
            if s > 0:
                seen[cpu] = seen.get(cpu, 0.0) + s
    for c in activity.cores:
        seen[c.cpu] = max(seen[c.cpu], c.busy_s)
    return seen


def irq_fraction(core: CoreSample, seen: Mapping[int, float]) -> float:
    """The share of ``core``'s counters that its interrupt time gets."""
    total = seen.get(core.cpu, 0.0)
    return core.irq_s / total if total > 0 and core.irq_s > 0 else 0.0


def _process_counters(p: ProcessSample, cores: Mapping[int, CounterDelta],
                      seen: Mapping[int, float]) -> dict[int, CounterDelta] | None:
    out = {cpu: scale(cores[cpu], s / seen[cpu]) for cpu, s in p.per_cpu_s.items()
           if s > 0 and cpu in cores and seen.get(cpu, 0.0) > 0}
    return out or None


def with_counters(activity: CpuActivity, reading: CounterReading) -> CpuActivity:
    """``activity`` with each core's counters and every process's time-share of them.

    Processes that already carry counters (measured per task by eBPF) keep theirs;
    cores the reading lacks keep what they had. An unavailable reading changes nothing.
    """
    if not reading.source.ok or not reading.cores:
        return activity
    cores = tuple(replace(c, counters=reading.cores[c.cpu]) if c.cpu in reading.cores else c
                  for c in activity.cores)
    if any(p.counters for p in activity.processes):
        return replace(activity, cores=cores)
    shared = replace(activity, cores=cores)
    seen = seen_seconds(shared)
    procs = tuple(replace(p, counters=_process_counters(p, reading.cores, seen)) if p.per_cpu_s else p
                  for p in activity.processes)
    return replace(shared, processes=procs)

