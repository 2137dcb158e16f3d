"""CPU power estimate for machines with no power sensor (VMs, containers).

With a :class:`~keck_tui.estimate.profile.CpuPowerProfile` (the normal case: chosen from the
CPU model, its class and the data tables in keck_tui/data, see keck_tui/estimate/), the watts
and their bound at a utilisation come from that profile: a curve that is not linear where the
data say so, and a bound that spans the data's spread for the CPU's class.

Without one (library callers, tests), the old linear model remains:
``P = P_idle + (P_max - P_idle) · u`` where ``u`` is the busy fraction of all logical CPUs.
``P_max`` is ``--tdp``; without it, 10 W per logical CPU, at least 15 W. ``P_idle`` is
``--idle-watts`` or 30 % of ``P_max``, with a ±40 % relative bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keck_tui.estimate.profile import CpuPowerProfile

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
    error_w: float | None = None  # absolute bound of ``watts`` (None: watts × relative_error)
    idle_error_w: float | None = None  # absolute bound of ``idle_watts``

    @property
    def watts_error(self) -> float:
        return self.error_w if self.error_w is not None else self.watts * self.relative_error

    @property
    def idle_error(self) -> float:
        return self.idle_error_w if self.idle_error_w is not None else self.idle_watts * self.relative_error


def default_tdp(logical_cpus: int) -> float:
    return max(MIN_DEFAULT_TDP, DEFAULT_WATTS_PER_CPU * max(1, logical_cpus))


def estimate_cpu_power(busy_s: float, capacity_s: float, logical_cpus: int,
                       tdp: float | None = None, idle_watts: float | None = None,
                       profile: "CpuPowerProfile | None" = None) -> CpuEstimate:
    """Estimated CPU watts from busy seconds out of ``capacity_s`` CPU-seconds."""
    util = 0.0 if capacity_s <= 0 else min(1.0, max(0.0, busy_s / capacity_s))
    if profile is not None:
        watts, lo, hi = profile.at(util)
        idle, idle_lo, idle_hi = profile.at(0.0)
        err = max(watts - lo, hi - watts)
        return CpuEstimate(watts=watts, idle_watts=idle, tdp=profile.max_w, utilisation=util,
                           relative_error=(err / watts if watts > 0 else 0.0), error_w=err,
                           idle_error_w=max(idle - idle_lo, idle_hi - idle))
    p_max = tdp if tdp is not None and tdp > 0 else default_tdp(logical_cpus)
    p_idle = idle_watts if idle_watts is not None else DEFAULT_IDLE_FRACTION * p_max
    p_idle = min(max(0.0, p_idle), p_max)
    return CpuEstimate(watts=p_idle + (p_max - p_idle) * util, idle_watts=p_idle,
                       tdp=p_max, utilisation=util)
