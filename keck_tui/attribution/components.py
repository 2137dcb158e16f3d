"""DRAM and GPU watts per process.

* DRAM power is a background part (refresh, the DIMMs being powered: it follows what
  memory is *held*, PSS — RSS where PSS is unreadable) and an activity part (reads and
  writes: it follows LLC misses). Keck splits it 60 % by PSS and 40 % by LLC-miss share;
  keck-top does the same while nothing better is known, and learns the activity part
  where a DRAM domain is measured (the collector's DRAM calibrator fits ``dram W = a +
  b·misses``; the activity fraction is ``b·misses / dram W`` of this interval). Without
  counters the split is by PSS alone. ``DramSplit.note`` says which.
* GPU watts are split by each process's SM-utilisation share of the device (shares
  normalised when they add up to more than 1); what no process used is the device's
  idle/unattributed power, which goes to ``(idle)``. Shares of processes that are not
  user processes here are used but not attributed (they end in ``(residual)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from keck_tui.attribution.power import Component
from keck_tui.samplers.types import GpuReading, ProcessSample


KECK_MISS_WEIGHT = 0.40
METHOD_PSS = "pss"
METHOD_KECK = "pss+llc"
METHOD_LEARNED = "pss+llc-learned"


@dataclass(frozen=True)
class DramSplit:
    watts: float  # the DRAM component's watts (0 without one)
    rel_error: float
    sources: tuple[str, ...]
    shares: Mapping[int, float]  # pid -> fraction of the DRAM watts (Σ ≤ 1)
    miss_weight: float  # the fraction split by LLC misses
    method: str
    note: str
    estimated: bool = False  # the DRAM watts are estimated (from the memory size)

    def part(self, pid: int) -> float:
        return self.watts * self.shares.get(pid, 0.0)


def process_misses(users: Sequence[ProcessSample]) -> dict[int, float] | None:
    """LLC misses per process over the interval (None: no counters)."""
    out: dict[int, float] = {}
    for p in users:
        if p.counters:
            vals = [d.llc_misses for d in p.counters.values() if d.llc_misses is not None]
            if vals:
                out[p.pid] = math.fsum(vals)
    return out or None


def split_dram(dram: Component | None, users: Sequence[ProcessSample],
               learned_weight: float | None = None) -> DramSplit:
    """Each user process's share of the DRAM watts (by PSS, and by LLC misses where counted)."""
    memory = {p.pid: float(p.pss_bytes if p.pss_bytes is not None else (p.rss_bytes or 0)) for p in users}
    shares, weight, method, note = dram_shares(memory, process_misses(users), learned_weight)
    return DramSplit(watts=dram.watts if dram else 0.0, rel_error=dram.rel_error if dram else 0.0,
                     sources=dram.sources if dram else (), shares=shares, miss_weight=weight, method=method,
                     note=note, estimated=bool(dram and dram.estimated))


def dram_shares(memory: Mapping[int, float], misses: Mapping[int, float] | None,
                learned_weight: float | None = None) -> tuple[dict[int, float], float, str, str]:
    """(pid -> share, miss weight, method, note) for memory held and LLC misses per process."""
    mem_total = math.fsum(max(0.0, v) for v in memory.values())
    miss_total = math.fsum(max(0.0, v) for v in (misses or {}).values())
    if misses is None or miss_total <= 0:
        shares = {pid: max(0.0, v) / mem_total if mem_total > 0 else 0.0 for pid, v in memory.items()}
        return shares, 0.0, METHOD_PSS, "this process's share of DRAM power, by PSS"
    if learned_weight is not None and math.isfinite(learned_weight):
        w = min(1.0, max(0.0, learned_weight))
        method = METHOD_LEARNED
        note = (f"this process's share of DRAM power: {100 * (1 - w):.0f} % by PSS, {100 * w:.0f} % by LLC "
                "misses (the activity part learned from the measured DRAM power)")
    else:
        w, method = KECK_MISS_WEIGHT, METHOD_KECK
        note = "this process's share of DRAM power: 60 % by PSS, 40 % by LLC misses (Keck's split)"
    w_mem = 1.0 - w if mem_total > 0 else 0.0
    if mem_total <= 0:
        w = 1.0
    shares = {pid: w_mem * max(0.0, memory.get(pid, 0.0)) / (mem_total or 1.0)
              + w * max(0.0, misses.get(pid, 0.0)) / miss_total for pid in set(memory) | set(misses)}
    return shares, w, method, note


def learned_miss_weight(coef: float, misses_feature: float, dram_watts: float) -> float | None:
    """Activity fraction of this interval's DRAM watts from a fitted ``a + b·misses`` (None: no use)."""
    if dram_watts <= 0 or coef < 0 or not math.isfinite(coef):
        return None
    return min(1.0, max(0.0, coef * misses_feature / dram_watts))


@dataclass(frozen=True)
class GpuSplit:
    per_process: Mapping[int, Mapping[int, tuple[float, float]]] = field(default_factory=dict)
    unattributed_w: float = 0.0  # device power no process used
    unattributed_err: float = 0.0
    sources: tuple[str, ...] = ()  # the GPU readings that answered


def split_gpus(gpus: Sequence[GpuReading], user_pids: set[int]) -> GpuSplit:
    """pid -> device index -> (watts, error), and the power no process used."""
    gpu_of: dict[int, dict[int, tuple[float, float]]] = {}
    unattributed = 0.0
    unattributed_err = 0.0
    for reading in gpus:
        if not reading.source.ok:
            continue
        for dev in reading.devices:
            total_share = math.fsum(max(0.0, gp.sm_share) for gp in dev.processes)
            scale = 1.0 / total_share if total_share > 1.0 else 1.0
            used = 0.0
            for gp in dev.processes:
                fraction = max(0.0, gp.sm_share) * scale
                w = dev.watts * fraction
                used += fraction
                if gp.pid in user_pids:
                    prev = gpu_of.setdefault(gp.pid, {}).get(dev.index, (0.0, 0.0))
                    gpu_of[gp.pid][dev.index] = (prev[0] + w, prev[1] + dev.accuracy_w * fraction)
            rest_fraction = max(0.0, 1.0 - used)
            unattributed += dev.watts * rest_fraction
            unattributed_err += dev.accuracy_w * rest_fraction
    return GpuSplit(gpu_of, unattributed, unattributed_err,
                    tuple(r.source.name for r in gpus if r.source.ok))
