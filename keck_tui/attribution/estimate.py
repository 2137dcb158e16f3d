"""CPU power estimate for machines with no power sensor (VMs, containers).

The model is the usual linear one: ``P = P_idle + (P_max - P_idle) · u`` where
``u`` is the busy fraction of all logical CPUs over the interval. ``P_max`` is
``--tdp`` (or ``tdp`` in the config); without it, 10 W per logical CPU, at
least 15 W. ``P_idle`` is ``--idle-watts`` or 30 % of ``P_max`` (typical of
server CPUs with C-states). Nothing here is measured, so every watt derived
from it carries a ±40 % relative bound and ``estimated: true``.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WATTS_PER_CPU = 10.0
MIN_DEFAULT_TDP = 15.0
DEFAULT_IDLE_FRACTION = 0.30
ESTIMATE_RELATIVE_ERROR = 0.40


@dataclass(frozen=True)
class CpuEstimate:
    watts: float
    idle_watts: float
    tdp: float
    utilisation: float  # 0..1 over all logical CPUs
    relative_error: float = ESTIMATE_RELATIVE_ERROR


def default_tdp(logical_cpus: int) -> float:
    return max(MIN_DEFAULT_TDP, DEFAULT_WATTS_PER_CPU * max(1, logical_cpus))


def estimate_cpu_power(busy_s: float, capacity_s: float, logical_cpus: int,
                       tdp: float | None = None, idle_watts: float | None = None) -> CpuEstimate:
    """Estimated CPU watts from busy seconds out of ``capacity_s`` CPU-seconds."""
    p_max = tdp if tdp is not None and tdp > 0 else default_tdp(logical_cpus)
    p_idle = idle_watts if idle_watts is not None else DEFAULT_IDLE_FRACTION * p_max
    p_idle = min(max(0.0, p_idle), p_max)
    util = 0.0 if capacity_s <= 0 else min(1.0, max(0.0, busy_s / capacity_s))
    return CpuEstimate(watts=p_idle + (p_max - p_idle) * util, idle_watts=p_idle,
                       tdp=p_max, utilisation=util)
