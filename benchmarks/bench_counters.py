#!/usr/bin/env python3
"""CPU cost of one per-CPU hardware-counter read (samplers/perfcounters.py), next to cpufreq's.

Without a PMU (this VM) the four events are software cpu-clock stand-ins opened per
CPU through the same code: a read of a per-CPU event on another CPU costs the same
cross-CPU call whether the event is hardware or software, so the cost per read is
representative; only a machine with a PMU confirms it with real events. The peer
is the CpufreqSampler cycle that runs every interval anyway. Samplers alternate
cycle by cycle so machine drift hits both; reports CPU time (user + system of this
process, getrusage) per cycle, medians, and the ratio.

    .venv/bin/python benchmarks/bench_counters.py [--cycles 200]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keck_tui.probes import perfevent as pe  # noqa: E402
from keck_tui.samplers.cpufreq import CpufreqSampler  # noqa: E402
from keck_tui.samplers.perfcounters import PerfCounterSampler  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stand_ins() -> tuple[pe.EventSpec, ...]:
    """The four hardware events where the PMU has them, else cpu-clock under their names."""
    try:
        pe.close(pe.open_counter(pe.CYCLES, 0))
        return pe.HARDWARE_EVENTS
    except pe.PerfEventError:
        return tuple(pe.EventSpec(s.name, pe.PERF_TYPE_SOFTWARE, pe.PERF_COUNT_SW_CPU_CLOCK)
                     for s in pe.HARDWARE_EVENTS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=200)
    args = ap.parse_args()
    events = stand_ins()
    counters = PerfCounterSampler(events=events)
    first = counters.sample()
    if not first.source.ok:
        print(f"bench_counters: no per-CPU events here: {first.source.detail}")
        return 0
    freq = CpufreqSampler()
    freq.sample()
    costs: dict[str, list[float]] = {"counters": [], "cpufreq": []}
    for _ in range(args.cycles):
        for name, sampler in (("counters", counters), ("cpufreq", freq)):
            t0 = cpu()
            sampler.sample()
            costs[name].append(cpu() - t0)
    counters.close()
    kind = "hardware" if events is pe.HARDWARE_EVENTS else "software cpu-clock stand-ins"
    print(f"events: {len(events)} per CPU on {len(counters.cores) or first.source.extra.get('cpus')} CPUs ({kind}); "
          f"{args.cycles} cycles each, alternating")
    for name, xs in costs.items():
        print(f"  {name:<9} median {1e6 * statistics.median(xs):8.1f} µs CPU  "
              f"(min {1e6 * min(xs):.1f}, max {1e6 * max(xs):.1f})")
    ratio = statistics.median(costs["counters"]) / max(1e-9, statistics.median(costs["cpufreq"]))
    print(f"  ratio counters / cpufreq (medians): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
