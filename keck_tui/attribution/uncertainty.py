"""How the attribution engine composes a row's error bound from its terms.

Today every term is a worst case and they add. The CPU part of a row's bound is:

* its share of the error of the watts being split: the CPU reading's (sensor) plus,
  unless idle is shared proportionally, the idle baseline's, which moves watts between
  ``(idle)`` and the processes. When CPU power and idle both come from the estimate
  model, their errors move together: the split part carries the estimate's relative
  error (±40 % without a CPU profile);
* the model spread: the split watts × the largest difference between the models' shares;
* procfs tick granularity: the split watts × min(1, tick ÷ busy seconds), for a process
  that ran (0 when per-CPU time is exact, i.e. eBPF).

DRAM and GPU rows carry their reading's error on their share; a group sums its
children's bounds; ``(residual)`` is ±|residual| × the worse of the CPU and total
relative errors; the node carries the total's error.

This module is the seam for other compositions (e.g. a measured model error from a
calibrated model replacing the spread, or root-sum-square of independent terms).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

from keck_tui.attribution.estimate import ESTIMATE_RELATIVE_ERROR
from keck_tui.attribution.power import Component


def tick_share(tick_s: float, busy_s: float, per_cpu_exact: bool) -> float:
    """Share of the busy capacity that ±1 accounting tick per process can move (≤ 1)."""
    return min(1.0, tick_s / busy_s) if (busy_s > 0 and not per_cpu_exact) else 0.0


def split_error(split_w: float, cpu: Component, idle_err: float, idle_from_estimate: bool,
                proportional: bool) -> float:
    """Error of the CPU watts being split between processes and ``(kernel)``."""
    if idle_from_estimate:
        # Estimated total and idle come from one model (the same data): their errors move
        # together, so the active part carries the total's relative error, not the sum of both.
        return split_w * (cpu.rel_error if cpu.watts > 0 else ESTIMATE_RELATIVE_ERROR)
    return cpu.error_w + (idle_err if not proportional else 0.0)


def spread(shares: Sequence[float]) -> float:
    """How far the models disagree on one row's share: the largest pairwise difference."""
    return max((abs(a - b) for a, b in combinations(shares, 2)), default=0.0)


@dataclass(frozen=True)
class CpuBounds:
    """The terms every CPU row's bound is built from, for one interval."""

    split_w: float  # CPU watts split between processes and (kernel)
    split_err: float  # their error (split_error)
    tick_share: float

    def process_error(self, share: float, model_shares: Sequence[float], ran: bool) -> float:
        tick_err = self.split_w * self.tick_share if ran else 0.0
        return share * self.split_err + self.split_w * spread(model_shares) + tick_err

    def kernel_error(self, share: float, model_shares: Sequence[float]) -> float:
        return share * self.split_err + self.split_w * spread(model_shares)


def residual_error(residual_w: float, cpu: Component, total: Component) -> float:
    return abs(residual_w) * max(cpu.rel_error, total.rel_error)


def node_error(total: Component, idle_err: float, idle_included: bool) -> float:
    """The node's own bound: the total's error, plus the idle error when idle is left out."""
    return total.error_w + (idle_err if not idle_included else 0.0)
