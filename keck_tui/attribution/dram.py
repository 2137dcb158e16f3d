"""How DRAM watts are split between processes.

DRAM power is a background part (refresh, the DIMMs being powered: it follows
what memory is *held*, PSS) and an activity part (reads and writes: it follows
LLC misses). Keck splits it 60 % by PSS and 40 % by LLC-miss share; keck-top
does the same while nothing better is known, and learns the activity part where
a DRAM power domain is measured: the calibrator fits ``dram W = a + b·misses``
and the activity fraction is ``b·misses / dram W`` of this interval. Without
counters the split is by PSS alone. ``DramSplit.note`` says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

KECK_MISS_WEIGHT = 0.40

METHOD_PSS = "pss"
METHOD_KECK = "pss+llc"
METHOD_LEARNED = "pss+llc-learned"


@dataclass(frozen=True)
class DramSplit:
    shares: Mapping[int, float]  # pid -> fraction of DRAM watts (Σ ≤ 1)
    miss_weight: float  # the fraction split by LLC misses
    method: str
    note: str


def split_dram(memory: Mapping[int, float], misses: Mapping[int, float] | None,
               learned_weight: float | None = None) -> DramSplit:
    """``memory``: PSS (or RSS) bytes per pid; ``misses``: LLC misses per pid (None: no counters)."""
    mem_total = math.fsum(max(0.0, v) for v in memory.values())
    miss_total = math.fsum(max(0.0, v) for v in (misses or {}).values())
    if misses is None or miss_total <= 0:
        shares = {pid: max(0.0, v) / mem_total if mem_total > 0 else 0.0 for pid, v in memory.items()}
        return DramSplit(shares, 0.0, METHOD_PSS, "this process's share of DRAM power, by PSS")
    if learned_weight is not None and math.isfinite(learned_weight):
        w = min(1.0, max(0.0, learned_weight))
        method = METHOD_LEARNED
        note = (f"this process's share of DRAM power: {100 * (1 - w):.0f} % by PSS, {100 * w:.0f} % by LLC "
                "misses (the activity part learned from the measured DRAM power)")
    else:
        w = KECK_MISS_WEIGHT
        method = METHOD_KECK
        note = "this process's share of DRAM power: 60 % by PSS, 40 % by LLC misses (Keck's split)"
    if mem_total <= 0:
        w_mem, w = 0.0, 1.0
    else:
        w_mem = 1.0 - w
    pids = set(memory) | set(misses)
    shares = {pid: w_mem * max(0.0, memory.get(pid, 0.0)) / (mem_total or 1.0)
              + w * max(0.0, misses.get(pid, 0.0)) / miss_total for pid in pids}
    return DramSplit(shares, w, method, note)


def learned_miss_weight(intercept: float, coef: float, misses_feature: float, dram_watts: float) -> float | None:
    """Activity fraction of this interval's DRAM watts from a fitted ``a + b·misses`` (None: no use)."""
    if dram_watts <= 0 or coef < 0 or not math.isfinite(coef):
        return None
    return min(1.0, max(0.0, coef * misses_feature / dram_watts))
