"""Mean and 95 % confidence interval over repeated runs (Student's t).

The half-width is ``t(0.975, n-1) · s / √n`` with ``s`` the sample standard
deviation. t quantiles: exact to the printed digits for 1–30 degrees of
freedom (the standard table), beyond that the Cornish–Fisher expansion around
the normal quantile (error < 1e-5 for df > 30).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

#: t(0.975, df) for df = 1..30.
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
         2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
         2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
         2.048407, 2.045230, 2.042272)


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = NormalDist().inv_cdf(0.975)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    stdev: float | None  # sample standard deviation (None for one run)
    ci95: float | None  # half-width of the 95 % confidence interval of the mean
    minimum: float
    maximum: float

    def to_json(self) -> dict[str, float | int | None]:
        return {"n": self.n, "mean": self.mean, "stdev": self.stdev, "ci95": self.ci95,
                "min": self.minimum, "max": self.maximum}


def summarise(values: Sequence[float]) -> Summary:
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    n = len(vals)
    mean = math.fsum(vals) / n
    if n < 2:
        return Summary(n, mean, None, None, vals[0], vals[0])
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    sd = math.sqrt(var)
    return Summary(n, mean, sd, t975(n - 1) * sd / math.sqrt(n), min(vals), max(vals))
