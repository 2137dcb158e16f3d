"""Non-negative Bayesian linear regression for a handful of features (pure Python).

The calibrator fits ``y = I + Σ_k θ_k·x_k`` (measured CPU watts against a model's
node-level features) over a sliding window of a few hundred samples and at most
a few features, so exact small-matrix algebra is enough: no numpy.

Each coefficient has a Gaussian prior ``θ_k ~ N(m_k, τ_k²)`` (``τ_k = inf``: flat)
and must be ≥ 0 (a negative coefficient would hand some process negative watts).
The intercept has a flat prior. The posterior mode under the sign constraint is
found exactly by trying every active set (2^m small solves, m ≤ 6): for a convex
quadratic the constrained optimum is the best feasible unconstrained optimum
over the faces of the orthant. The noise level σ is re-estimated from the
residuals a few times (σ enters the balance between data and prior).

``Fit.cov`` is the posterior covariance of θ on the chosen active set
(coefficients held at 0 by the constraint get 0 variance): it is what makes a
direction the data cannot see (two processes whose mix never changes) show up as
a wide bound rather than a confident guess.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

Matrix = list[list[float]]

MAX_FEATURES = 6
_SIGMA_ITERATIONS = 4


@dataclass(frozen=True)
class Fit:
    intercept: float
    coef: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]  # posterior covariance of coef
    intercept_se: float  # standard error of the intercept
    sigma: float  # residual standard deviation (in-sample, W)
    r2: float  # coefficient of determination (in-sample)
    n: int

    def predict(self, x: Sequence[float]) -> float:
        return self.intercept + math.fsum(c * v for c, v in zip(self.coef, x))

    def dynamic(self, x: Sequence[float]) -> float:
        """The modelled power of features ``x`` without the intercept."""
        return math.fsum(c * v for c, v in zip(self.coef, x))

    def variance(self, g: Sequence[float]) -> float:
        """``gᵀ·cov·g``: variance of a linear function ``g·θ`` of the coefficients."""
        m = len(self.coef)
        return max(0.0, math.fsum(g[i] * self.cov[i][j] * g[j] for i in range(m) for j in range(m)))


def _solve(a: Matrix, b: list[float]) -> list[float] | None:
    """Solve ``a·x = b`` by Gaussian elimination with partial pivoting (None: singular)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    scale = max((abs(v) for row in a for v in row), default=0.0) or 1.0
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) <= 1e-13 * scale:
            return None
        m[col], m[piv] = m[piv], m[col]
        p = m[col][col]
        for r in range(n):
            if r != col and m[r][col] != 0.0:
                f = m[r][col] / p
                row_r, row_c = m[r], m[col]
                for k in range(col, n + 1):
                    row_r[k] -= f * row_c[k]
    return [m[i][n] / m[i][i] for i in range(n)]


def _inverse(a: Matrix) -> Matrix | None:
    n = len(a)
    cols = []
    for j in range(n):
        e = [1.0 if i == j else 0.0 for i in range(n)]
        x = _solve(a, e)
        if x is None:
            return None
        cols.append(x)
    return [[cols[j][i] for j in range(n)] for i in range(n)]


def _constrained_mode(a: Matrix, b: list[float], nonneg: bool) -> tuple[list[float], list[int]]:
    """Minimise ½θᵀAθ − bᵀθ subject to θ ≥ 0 (A positive definite). Returns θ and its free set."""
    m = len(b)
    every = _solve(a, b)
    if every is not None and (not nonneg or all(v >= 0.0 for v in every)):
        return every, list(range(m))  # the unconstrained optimum is feasible: it is the answer
    best: tuple[float, list[float], list[int]] | None = None
    sizes = range(m, -1, -1) if nonneg else (m,)
    for size in sizes:
        for free in combinations(range(m), size):
            idx = list(free)
            theta = [0.0] * m
            if idx:
                sol = _solve([[a[i][j] for j in idx] for i in idx], [b[i] for i in idx])
                if sol is None:
                    continue
                if nonneg and any(v < 0.0 for v in sol):
                    continue
                for i, v in zip(idx, sol):
                    theta[i] = v
            obj = 0.5 * math.fsum(theta[i] * a[i][j] * theta[j] for i in idx for j in idx) - math.fsum(
                b[i] * theta[i] for i in idx)
            if best is None or obj < best[0] - 1e-15 * (abs(obj) + 1.0):
                best = (obj, theta, idx)
    assert best is not None  # the empty set is always feasible
    return best[1], best[2]


def fit(rows: Sequence[Sequence[float]], y: Sequence[float], *,
        prior_mean: Sequence[float] | None = None, prior_sd: Sequence[float] | None = None,
        intercept: float | None = None, nonneg: bool = True) -> Fit | None:
    """Fit ``y ≈ I + rows·θ``; ``intercept`` given: it is held fixed (not fitted).

    Returns None with fewer than 2 samples or no features.
    """
    n = len(y)
    if n < 2 or not rows or len(rows) != n:
        return None
    m = len(rows[0])
    if m == 0 or m > MAX_FEATURES:
        return None
    cols = [[float(r[k]) for r in rows] for k in range(m)]
    ys = [float(v) for v in y]
    mean = [0.0] * m if intercept is not None else [math.fsum(c) / n for c in cols]
    ybar = intercept if intercept is not None else math.fsum(ys) / n
    xc = [[v - mu for v in c] for c, mu in zip(cols, mean)]
    yc = [v - ybar for v in ys]
    # Sufficient statistics, each a C-speed dot product; the residual sum of squares of any θ
    # is then a quadratic form (no pass over the samples per iteration).
    xtx = [[math.fsum(map(operator.mul, xc[i], xc[j])) for j in range(m)] for i in range(m)]
    xty = [math.fsum(map(operator.mul, xc[i], yc)) for i in range(m)]
    yty = math.fsum(map(operator.mul, yc, yc))

    def ss_res(theta: list[float]) -> float:
        quad = math.fsum(theta[i] * xtx[i][j] * theta[j] for i in range(m) for j in range(m))
        return max(0.0, yty - 2.0 * math.fsum(t * v for t, v in zip(theta, xty)) + quad)

    pm = list(prior_mean) if prior_mean is not None else [0.0] * m
    inv_tau2 = [0.0 if (s is None or not math.isfinite(s) or s <= 0) else 1.0 / (s * s)
                for s in (prior_sd if prior_sd is not None else [math.inf] * m)]
    ss_tot = yty
    sigma2 = max(ss_tot / max(1, n - 1), 1e-12)
    theta: list[float] = [0.0] * m
    free: list[int] = []

    def system(s2: float) -> tuple[Matrix, list[float]]:
        # A flat prior on a feature that never varies would leave A singular: a tiny ridge
        # keeps it solvable without pulling identified coefficients.
        a = [[xtx[i][j] / s2 + ((inv_tau2[i] + 1e-9 * (xtx[i][i] / s2 + 1.0)) if i == j else 0.0)
              for j in range(m)] for i in range(m)]
        return a, [xty[i] / s2 + inv_tau2[i] * pm[i] for i in range(m)]

    for _ in range(_SIGMA_ITERATIONS):
        a, b = system(sigma2)
        theta, free = _constrained_mode(a, b, nonneg)
        dof = n - len(free) - (0 if intercept is not None else 1)
        new = max(ss_res(theta) / max(1, dof), 1e-12 * (ss_tot / n + 1.0))
        converged = abs(new - sigma2) <= 1e-6 * sigma2
        sigma2 = new
        if converged:
            break
    a, _ = system(sigma2)
    cov = [[0.0] * m for _ in range(m)]
    if free:
        sub = _inverse([[a[i][j] for j in free] for i in free])
        if sub is not None:
            for p, i in enumerate(free):
                for q, j in enumerate(free):
                    cov[i][j] = sub[p][q]
    # R² against the samples' own mean (with a fixed intercept, yty is not centred on it)
    centred = yty - n * (math.fsum(yc) / n) ** 2 if intercept is not None else yty
    r2 = 1.0 - ss_res(theta) / centred if centred > 0 else 1.0
    icpt = ybar - math.fsum(t * mu for t, mu in zip(theta, mean))
    if intercept is not None:
        icpt_se = 0.0
    else:
        var_mean = math.fsum(mean[i] * cov[i][j] * mean[j] for i in range(m) for j in range(m))
        icpt_se = math.sqrt(max(0.0, sigma2 / n + var_mean))
    return Fit(intercept=icpt, coef=tuple(theta), cov=tuple(tuple(r) for r in cov), intercept_se=icpt_se,
               sigma=math.sqrt(sigma2), r2=r2, n=n)
