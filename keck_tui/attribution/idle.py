"""Learning the CPU idle baseline from history.

When ``--idle-watts`` is not given and power is measured, the idle baseline is
the intercept at zero utilisation of a least-squares line through recent
(utilisation, CPU watts) points. It needs spread: at least ``min_points``
points whose utilisation spans ``min_spread``. Until then, the baseline is the
lowest ``watts · (1 - u)`` seen (an upper estimate of idle that assumes the
dynamic part is at least as large as the idle part at full load), with a wide
error. The result is clamped to [0, lowest CPU watts seen].
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class IdleEstimate:
    watts: float
    error_w: float  # absolute uncertainty of the baseline
    method: str  # "configured" | "learned" | "bootstrap" | "estimate-model"


class IdleLearner:
    def __init__(self, capacity: int = 600, min_points: int = 10, min_spread: float = 0.10) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=capacity)
        self._min_points = min_points
        self._min_spread = min_spread

    def add(self, utilisation: float, watts: float) -> None:
        if 0.0 <= utilisation <= 1.0 and watts >= 0.0:
            self._points.append((utilisation, watts))

    def __len__(self) -> int:
        return len(self._points)

    def estimate(self) -> IdleEstimate | None:
        pts = list(self._points)
        if not pts:
            return None
        floor = min(w for _, w in pts)
        bootstrap = min(w * (1.0 - u) for u, w in pts)
        us = [u for u, _ in pts]
        if len(pts) >= self._min_points and max(us) - min(us) >= self._min_spread:
            n = len(pts)
            mu = sum(us) / n
            mw = sum(w for _, w in pts) / n
            sxx = sum((u - mu) ** 2 for u in us)
            sxy = sum((u - mu) * (w - mw) for u, w in pts)
            slope = sxy / sxx if sxx > 0 else 0.0
            intercept = mw - slope * mu
            resid = [w - (intercept + slope * u) for u, w in pts]
            rmse = (sum(r * r for r in resid) / max(1, n - 2)) ** 0.5
            # Standard error of the intercept, widened ×2 for a ~95 % band.
            se = rmse * (1.0 / n + mu * mu / sxx) ** 0.5 if sxx > 0 else rmse
            watts = min(max(0.0, intercept), floor)
            return IdleEstimate(watts=watts, error_w=max(2.0 * se, 0.02 * watts), method="learned")
        watts = min(max(0.0, bootstrap), floor)
        # The stated assumption (dynamic part ≥ idle part at full load: P = I + D·u with D ≥ I)
        # bounds idle by P / (1 + u). Near full load ``watts`` tends to 0, so ±50 % of it alone
        # would claim an exactly known 0 W idle; the error reaches that bound instead.
        ceiling = min(w / (1.0 + u) for u, w in pts)
        return IdleEstimate(watts=watts, error_w=max(0.5 * watts, ceiling - watts), method="bootstrap")
