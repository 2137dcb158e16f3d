"""How the attribution engine composes a row's error bound from its terms.

Every term is a ~95 % half-width in watts of one independent source of error on
the row's CPU watts; they combine as independent errors do, by root-sum-square,
not by adding worst cases (docs/model.md, "How a row's bound is composed"):

* ``sensor``: the CPU reading's accuracy on the row's share. A sensor's error is a
  gain error: where the idle baseline was learned from the same readings it carries
  the same gain, so the error lands on the split watts in proportion to them; a
  configured baseline does not, and the whole reading's error lands there. When CPU
  power and idle both come from the estimate model their errors move together: the
  split part carries the estimate's relative error (±40 % without a CPU profile).
* ``idle``: the idle baseline's error on the row's share (unless idle is shared
  proportionally: then it moves no watts between ``(idle)`` and the processes).
* ``model``: once the model is calibrated, its *measured* error on the row:
  ``z·sqrt(tracking² + coefficients²)`` — the out-of-sample tracking error in the
  interval's frequency band, split into node-level noise σ₀ (it lands on the rows by
  share, ``s·σ₀``) and a relative error per row (ε, rows erring independently) carried
  through the normalisation to the measured total, ``ε·w·sqrt(1 − 2s + Σ_r s_r²)``; and
  the fit's posterior covariance propagated to the row's share, ``gᵀ·Cov·g`` with
  ``g = A/Ŵ·(x_row − s·x_node)``. Before calibration: the split watts × the largest
  difference between the models' shares.
* ``tick``: procfs accounting granularity: the split watts × min(1, tick ÷ busy
  seconds) for a process that ran (0 when per-CPU time is exact, i.e. eBPF).

DRAM and GPU rows carry their reading's error on their share; a group sums its
children's bounds; ``(residual)`` is ±|residual| × the worse of the CPU and total
relative errors; the node carries the total's error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

from keck_tui.attribution.calibration import ModelError
from keck_tui.attribution.estimate import ESTIMATE_RELATIVE_ERROR
from keck_tui.attribution.power import Component

Z = 2.0  # half-widths are ~95 % (two standard deviations)
#: Idle baselines learned from the CPU reading itself (they share its gain error).
SAME_SENSOR_IDLE = ("learned", "calibrated", "bootstrap")


def rss(*terms: float) -> float:
    """Root-sum-square of independent error terms."""
    return math.sqrt(math.fsum(t * t for t in terms))


@dataclass(frozen=True)
class BoundTerms:
    """The ~95 % half-widths (W) that make up one row's CPU bound."""

    sensor: float = 0.0
    idle: float = 0.0
    model: float = 0.0
    tick: float = 0.0
    model_kind: str = "spread"  # "spread" (models disagree) | "measured" (calibrated tracking error)

    @property
    def half_width(self) -> float:
        return rss(self.sensor, self.idle, self.model, self.tick)

    def to_json(self) -> dict[str, object]:
        return {"sensor_w": _r(self.sensor), "idle_w": _r(self.idle), "model_w": _r(self.model),
                "tick_w": _r(self.tick), "model": self.model_kind}


def _r(v: float) -> float:
    return float(f"{v:.4g}")


def tick_share(tick_s: float, busy_s: float, per_cpu_exact: bool) -> float:
    """Share of the busy capacity that ±1 accounting tick per process can move (≤ 1)."""
    return min(1.0, tick_s / busy_s) if (busy_s > 0 and not per_cpu_exact) else 0.0


def sensor_error(split_w: float, cpu: Component, idle_method: str, idle_from_estimate: bool) -> float:
    """Error of the CPU watts being split between processes and ``(kernel)``, from the reading."""
    if idle_from_estimate:
        # Estimated total and idle come from one model (the same data): their errors move
        # together, so the active part carries the total's relative error, not the sum of both.
        return split_w * (cpu.rel_error if cpu.watts > 0 else ESTIMATE_RELATIVE_ERROR)
    return cpu.rel_error * split_w if idle_method in SAME_SENSOR_IDLE else cpu.error_w


def spread(shares: Sequence[float]) -> float:
    """How far the models disagree on one row's share: the largest pairwise difference."""
    return max((abs(a - b) for a, b in combinations(shares, 2)), default=0.0)


def measured_model_term(watts: float, share: float, sum_sq_shares: float, attributed: float,
                        capacity: float, x_row: Sequence[float], x_node: Sequence[float],
                        err: ModelError, z: float = Z) -> float:
    """~95 % half-width of the calibrated model's error on a row with ``watts`` (its CPU part).

    ``share``: the row's fraction of the modelled dynamic power; ``sum_sq_shares``: Σ of
    every row's share²; ``attributed``: the CPU watts split by the model (A);
    ``capacity``: the node's modelled dynamic power Ŵ (same units as ``θ·x``).
    """
    if watts <= 0 and share <= 0:
        return 0.0
    # node-level noise lands on the rows by share; their own errors (ε each, independent) are
    # carried through the normalisation to the measured total
    tracking_var = (share * err.noise_w) ** 2 + (err.rel_row * watts) ** 2 * max(
        0.0, 1.0 - 2.0 * share + sum_sq_shares)
    coef_var = 0.0
    if capacity > 0:
        scale = attributed / capacity
        g = [scale * (xr - share * xn) for xr, xn in zip(x_row, x_node)]
        coef_var = err.fit.variance(g)
    term = z * math.sqrt(tracking_var + coef_var)
    # a row can be anywhere between none and all of the split watts: the model cannot err by more
    return min(term, attributed) if math.isfinite(term) else attributed


@dataclass(frozen=True)
class CpuBounds:
    """The terms every CPU row's bound is built from, for one interval."""

    split_w: float  # CPU watts split between processes and (kernel)
    sensor_err: float  # their error from the reading (sensor_error)
    idle_err: float  # the idle baseline's error on them (0 when idle is shared proportionally)
    tick_share: float
    model_error: ModelError | None = None  # the calibrated model's measured error (None: use the spread)
    sum_sq_shares: float = 0.0  # Σ rows' shares² under the model
    capacity: float = 0.0  # the node's modelled dynamic power Ŵ
    x_node: tuple[float, ...] = ()  # the node's features

    @property
    def model_kind(self) -> str:
        return "measured" if self.model_error is not None else "spread"

    def row_terms(self, share: float, x_row: Sequence[float], model_shares: Sequence[float],
                  ran: bool) -> BoundTerms:
        """A process's (``ran``: it had CPU time) or ``(kernel)``'s CPU bound terms."""
        watts = self.split_w * share
        if self.model_error is not None:
            model = measured_model_term(watts, share, self.sum_sq_shares, self.split_w, self.capacity,
                                        x_row, self.x_node, self.model_error)
        else:
            model = self.split_w * spread(model_shares)
        return BoundTerms(sensor=share * self.sensor_err, idle=share * self.idle_err, model=model,
                          tick=self.split_w * self.tick_share if ran else 0.0, model_kind=self.model_kind)


def residual_error(residual_w: float, cpu: Component, total: Component) -> float:
    return abs(residual_w) * max(cpu.rel_error, total.rel_error)


def node_error(total: Component, idle_err: float, idle_included: bool) -> float:
    """The node's own bound: the total's error, plus the idle error when idle is left out."""
    return total.error_w + (idle_err if not idle_included else 0.0)
