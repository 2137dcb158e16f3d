"""How a row's bound is composed from independent error terms.

Every term is a ~95 % half-width in watts of one independent source of error on
the row's CPU watts; they combine as independent errors do, by root-sum-square,
not by adding worst cases:

* ``sensor``: the CPU power reading's accuracy (RAPL ±5 %, a BMC's ``Accuracy``) on
  the row's share: the measurement totals, so its error moves every row in proportion.
* ``idle``: the idle baseline's uncertainty on the row's share (with idle kept
  separate, watts move between ``(idle)`` and the processes).
* ``model``: once the model is calibrated, the *measured* error of the model on one
  row: ``z·sqrt(tracking² + coefficients²)`` where

  - tracking: the out-of-sample tracking error of the node prediction in the
    interval's frequency band, expressed per row (``ε``: residual ÷ √Σ rows'
    predicted², i.e. the relative error each row would have if rows erred
    independently) and carried through the normalisation to the measured total:
    ``ε·w·sqrt(1 − 2s + Σ_r s_r²)`` (s: the row's share; a row holding everything
    has no model error, conservation fixes it);
  - coefficients: the fit's posterior covariance propagated to the row's share,
    ``gᵀ·Cov·g`` with ``g = A/Ŵ·(x_row − s·x_node)``: what the window's data
    could not pin down (a mix that never changed) stays wide.

  Before calibration it is the spread between the models that can run.
* ``tick``: procfs accounting granularity (±1 tick per process and interval).

The estimate (no sensor) is different: one model gives total and idle, so the
attributed part is ±40 % of itself (see estimate.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from keck_tui.attribution.calibration import ModelError

Z = 2.0  # half-widths are ~95 % (two standard deviations)


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

    def scaled(self, f: float) -> "BoundTerms":
        return BoundTerms(self.sensor * f, self.idle * f, self.model * f, self.tick * f, self.model_kind)

    def to_json(self) -> dict[str, object]:
        return {"sensor_w": _r(self.sensor), "idle_w": _r(self.idle), "model_w": _r(self.model),
                "tick_w": _r(self.tick), "model": self.model_kind}


def _r(v: float) -> float:
    return float(f"{v:.4g}")


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
    tracking_var = (err.rel_row * watts) ** 2 * max(0.0, 1.0 - 2.0 * share + sum_sq_shares)
    coef_var = 0.0
    if capacity > 0:
        scale = attributed / capacity
        g = [scale * (xr - share * xn) for xr, xn in zip(x_row, x_node)]
        coef_var = err.fit.variance(g)
    return z * math.sqrt(tracking_var + coef_var)
