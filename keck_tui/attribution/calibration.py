"""Self-calibration of an attribution model against the measured CPU power.

Every interval with a measured CPU power (Σ RAPL packages, or a node meter minus
the other components) is a sample ``(y = CPU watts, x = the node's features)``.
The calibrator fits ``y ≈ I + θ·x`` over a sliding window (``regression.fit``),
so ``I`` is the idle baseline and ``θ·x`` the modelled dynamic power, the same
sum the attribution splits between processes. It works like SmartWatts
(PowerAPI): the fitted model is frozen and used; each new sample is first
*predicted* with it (an out-of-sample residual, the tracking error) and only
then added to the window; when the tracking error over the last
``track_window`` samples exceeds the threshold, the model is refitted.

Frequency bands: where live frequency exists, samples are binned by the node's
busy-weighted effective frequency (``band_mhz`` wide). Each band with enough
samples gets its own coefficients, fitted with the pooled coefficients as prior
(partial pooling: a sparse band stays close to the pool, a well-sampled band
follows its own data), and keeps its own tracking error for the bounds.

The full model's prior is the frequency-weighted model: all dynamic power on
``u·φ³`` (its scale from a one-feature fit), with a prior spread that lets any
feature explain all of it. What the window's data cannot separate (processes
whose mix never changes) stays at the prior and shows in ``Fit.cov``.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from keck_tui.attribution.features import BASE_FEATURE, FEATURE_NAMES, ModelFeatures
from keck_tui.attribution.idle import IdleEstimate
from keck_tui.attribution.regression import Fit, fit

STATUS_CALIBRATING = "calibrating"
STATUS_CALIBRATED = "calibrated"

_MAX_WATTS = 1e6
_MAX_FEATURE = 1e9
_MAX_BAND = 1000


@dataclass(frozen=True)
class CalibrationConfig:
    window: int = 600  # samples kept for the fit (sliding)
    min_samples: int = 60  # N of "calibrating n/N"
    min_spread: float = 0.10  # utilisation spread the window needs before the intercept is trusted
    track_window: int = 60  # out-of-sample residuals the tracking error is measured over
    threshold_rel: float = 0.05  # refit when tracking RMSE > max(rel × mean CPU W, abs, 1.5 × fit σ)
    threshold_abs: float = 1.0
    band_mhz: float = 400.0
    min_band_samples: int = 20  # a band's own coefficients and tracking error need this many
    band_prior_rel: float = 0.5  # a band's coefficients may differ from the pool by about this much


@dataclass(frozen=True)
class Sample:
    y: float  # measured CPU watts
    x: tuple[float, ...]  # the node's features
    band: int | None
    u: float  # utilisation 0..1


@dataclass(frozen=True)
class Residual:
    watts: float  # measured − predicted (out of sample)
    rows_sq: float  # Σ over rows (processes, kernel) of their modelled dynamic power², W²
    band: int | None


@dataclass(frozen=True)
class ModelError:
    """What the bound of a row needs from the calibration (one band)."""

    rel_row: float  # relative standard deviation of one row's modelled dynamic power (rows err independently)
    noise_w: float  # standard deviation of the node-level noise no row explains (timing, the sensor), W
    fit: Fit  # its covariance gives the coefficients' uncertainty
    band: int | None
    samples: int  # residuals behind rel_row and noise_w


@dataclass(frozen=True)
class ModelView:
    """What attribution needs from the calibration for one interval (frozen, pure data)."""

    model: str
    theta: tuple[float, ...] | None  # None: not calibrated yet (the model's default coefficients)
    error: ModelError | None  # None: no measured model error yet (bounds use the models' spread)
    idle: IdleEstimate | None  # the calibrated idle baseline
    progress: str  # for model_reason, e.g. "calibrating 12/60"
    dram_weight: float | None = None  # learned fraction of DRAM watts split by LLC misses


@dataclass(frozen=True)
class CalibrationState:
    model: str
    status: str
    samples: int
    needed: int
    reason: str  # what calibration is waiting for, or how the model fits
    rmse_w: float | None = None  # tracking error: out-of-sample RMSE over the last track_window
    r2: float | None = None  # in-sample R² of the current fit
    fit_rmse_w: float | None = None
    last_recalibration: float | None = None  # wall time
    recalibrations: int = 0
    idle_watts: float | None = None
    coefficients: Mapping[str, float] = field(default_factory=dict)
    bands: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    restored: bool = False  # resumed from a saved calibration

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(f"{v:.6g}")

        out: dict[str, Any] = {"model": self.model, "status": self.status, "samples": self.samples,
                               "needed": self.needed, "reason": self.reason,
                               "rmse_w": r(self.rmse_w), "r2": r(self.r2), "fit_rmse_w": r(self.fit_rmse_w),
                               "last_recalibration": self.last_recalibration,
                               "recalibrations": self.recalibrations, "idle_watts": r(self.idle_watts),
                               "restored": self.restored}
        # lists of objects with fixed keys (not maps keyed by data), so every key is a field name
        if self.coefficients:
            out["coefficients"] = [{"feature": k, "value": r(v)} for k, v in self.coefficients.items()]
        if self.bands:
            out["bands"] = [{"mhz": k, **{kk: r(vv) for kk, vv in v.items()}} for k, v in self.bands.items()]
        return out


def band_of(freq_mhz: float | None, band_mhz: float) -> int | None:
    if freq_mhz is None or not math.isfinite(freq_mhz) or freq_mhz <= 0 or band_mhz <= 0:
        return None
    return min(_MAX_BAND, int(freq_mhz // band_mhz))


def _rms(values: Iterable[float]) -> float | None:
    vs = list(values)
    return math.sqrt(math.fsum(v * v for v in vs) / len(vs)) if vs else None


class Calibrator:
    """Learns one model's coefficients and idle baseline online; measures its tracking error."""

    def __init__(self, model: str, config: CalibrationConfig = CalibrationConfig(), *,
                 feature_names: Sequence[str] | None = None, base_feature: int | None = None) -> None:
        self.model = model
        self.config = config
        self.names = tuple(feature_names if feature_names is not None else FEATURE_NAMES[model])
        self.base = base_feature if base_feature is not None else BASE_FEATURE.get(model, 0)
        self.window: deque[Sample] = deque(maxlen=config.window)
        self.residuals: deque[Residual] = deque(maxlen=max(config.track_window, 1) * 8)
        self.pooled: Fit | None = None
        self.band_fits: dict[int, Fit] = {}
        self.fitted_n = 0  # window size at the last fit
        self.since_fit = 0  # samples observed since the last fit
        self.recalibrations = 0  # refits because the tracking error exceeded the threshold
        self.fits = 0  # every fit (while collecting, when the window doubled, recalibrations)
        self.last_recalibration: float | None = None  # wall time of the last fit in use
        self.restored = False
        self._calibrated = False

    # ---- the model in use --------------------------------------------------------------
    @property
    def calibrated(self) -> bool:
        return self._calibrated and self.pooled is not None

    def fit_for(self, band: int | None) -> Fit | None:
        if band is not None and band in self.band_fits:
            return self.band_fits[band]
        return self.pooled

    def theta(self, band: int | None) -> tuple[float, ...] | None:
        f = self.fit_for(band) if self.calibrated else None
        return f.coef if f is not None else None

    def band(self, features: ModelFeatures) -> int | None:
        return band_of(features.freq_mhz, self.config.band_mhz)

    def idle(self) -> IdleEstimate | None:
        """The calibrated idle baseline (the fit's intercept) with a ~95 % error, once calibrated."""
        if not self.calibrated:
            return None
        f = self.pooled
        assert f is not None
        low = min((s.y for s in self.window), default=f.intercept)
        watts = min(max(0.0, f.intercept), max(0.0, low))
        return IdleEstimate(watts=watts, error_w=max(2.0 * f.intercept_se, 0.02 * watts), method="calibrated")

    def model_error(self, band: int | None) -> ModelError | None:
        """The measured error of one row's modelled power in ``band`` (None until calibrated)."""
        f = self.fit_for(band)
        if not self.calibrated or f is None:
            return None
        recent = list(self.residuals)[-self.config.track_window:]
        own = [r for r in self.residuals if r.band == band][-self.config.track_window:]
        values = own if band is not None and len(own) >= self.config.min_band_samples else recent
        if len(values) < 5:
            return None
        # both components at their one-sided 90 % upper confidence limits: an estimate from
        # k residuals is itself uncertain
        noise2, rel2 = _variance_components([r.watts ** 2 for r in values], [r.rows_sq for r in values])
        return ModelError(rel_row=math.sqrt(rel2), noise_w=math.sqrt(noise2), fit=f,
                          band=band if values is own else None, samples=len(values))

    # ---- learning ---------------------------------------------------------------------------
    def observe(self, y: float, features: ModelFeatures, utilisation: float, wall: float | None = None) -> Residual | None:
        """Add one interval's measurement; returns its out-of-sample residual (None before a fit)."""
        x = tuple(features.regressor)
        if (len(x) != len(self.names) or not math.isfinite(y) or not 0.0 <= y < _MAX_WATTS
                or not all(math.isfinite(v) and 0.0 <= v < _MAX_FEATURE for v in x)
                or not math.isfinite(utilisation)):
            return None
        band = self.band(features)
        residual: Residual | None = None
        current = self.fit_for(band)
        if current is not None and self.fitted_n >= max(2, self.config.min_samples // 2):
            err = y - current.predict(x)
            rows = [current.dynamic(features.process(pid)) for pid in features.rows]
            rows.append(current.dynamic(features.kernel))
            residual = Residual(err, math.fsum(w * w for w in rows), band)
            self.residuals.append(residual)
        self.window.append(Sample(y, x, band, min(1.0, max(0.0, utilisation))))
        self.since_fit += 1
        if not self.calibrated:
            # Refit every sample while collecting; once there are enough samples but the load
            # has not varied enough, every few (the fit is O(window)).
            if len(self.window) <= self.config.min_samples or self.since_fit >= 10:
                self._refit(wall, recalibration=False)
        elif self._tracking_exceeded():
            self._refit(wall, recalibration=True)
        elif self.fitted_n < self.config.window and len(self.window) >= min(2 * self.fitted_n, self.config.window):
            # the window has doubled since the fit (up to its size): use the new data
            self._refit(wall, recalibration=False)
        return residual

    def _tracking_exceeded(self) -> bool:
        cfg = self.config
        if self.since_fit < max(1, cfg.track_window // 2) or self.pooled is None:
            return False
        since = [r.watts for r in list(self.residuals)[-self.since_fit:]][-cfg.track_window:]
        rmse = _rms(since)
        if rmse is None:
            return False
        mean_y = math.fsum(s.y for s in self.window) / len(self.window)
        return rmse > max(cfg.threshold_abs, cfg.threshold_rel * mean_y, 1.5 * self.pooled.sigma)

    def spread(self) -> float:
        us = [s.u for s in self.window]
        return (max(us) - min(us)) if us else 0.0

    def _refit(self, wall: float | None, recalibration: bool) -> None:
        samples = list(self.window)
        if len(samples) < 3:
            return
        pooled = self._fit(samples, None, None)
        if pooled is None:
            return
        if recalibration and self.pooled is not None and 0 < self.since_fit < len(samples):
            # Did the machine change (a power profile, firmware, cooling) or did the load just
            # move somewhere new? The samples since the old model's errors jumped (the change
            # point of its squared residuals) are the candidate new regime; if the whole window
            # fits them clearly worse than they fit themselves, the older samples describe
            # another machine: drop them.
            since = samples[-self.since_fit:]
            old = [(s.y - (self.fit_for(s.band) or self.pooled).predict(s.x)) ** 2 for s in since]
            recent = since[_change_point(old):]
            own = self._fit(recent, None, None) if len(recent) >= 10 else None
            if own is not None:
                miss = _rms(s.y - pooled.predict(s.x) for s in recent) or 0.0
                if miss > max(1.5 * own.sigma, self.config.threshold_abs):
                    self.window = deque(recent, maxlen=self.config.window)
                    samples, pooled = recent, own
        self.pooled = pooled
        self.band_fits = {}
        by_band: dict[int, list[Sample]] = {}
        for s in samples:
            if s.band is not None:
                by_band.setdefault(s.band, []).append(s)
        if len(by_band) > 1:
            for band, group in by_band.items():
                if len(group) >= self.config.min_band_samples:
                    f = self._fit(group, pooled, band)
                    if f is not None:
                        self.band_fits[band] = f
        self.fitted_n = len(samples)
        self.since_fit = 0
        self.fits += 1
        self._calibrated = len(samples) >= self.config.min_samples and self.spread() >= self.config.min_spread
        if self._calibrated and wall is not None:
            self.last_recalibration = wall
        if recalibration:
            self.recalibrations += 1

    def _fit(self, samples: list[Sample], pooled: Fit | None, band: int | None) -> Fit | None:
        rows = [s.x for s in samples]
        ys = [s.y for s in samples]
        m = len(self.names)
        if pooled is not None:
            # a band: intercept from the pool (idle does not depend on frequency), coefficients
            # partially pooled.
            sd = [max(self.config.band_prior_rel * pooled.coef[k], 2.0 * math.sqrt(max(0.0, pooled.cov[k][k])),
                      1e-9) for k in range(m)]
            return fit(rows, ys, prior_mean=pooled.coef, prior_sd=sd, intercept=pooled.intercept)
        if m == 1:
            return fit(rows, ys)
        base = fit([(r[self.base],) for r in rows], ys)
        if base is None:
            return None
        dyn = max(1e-9, math.fsum(ys) / len(ys) - base.intercept)
        prior = [0.0] * m
        prior[self.base] = base.coef[0]
        sd = []
        for k in range(m):
            mean_x = math.fsum(r[k] for r in rows) / len(rows)
            # generous: feature k alone could explain all the dynamic power
            sd.append(dyn / mean_x if mean_x > 0 else math.inf)
        return fit(rows, ys, prior_mean=prior, prior_sd=sd)

    def view(self, features: ModelFeatures) -> ModelView:
        """The coefficients, measured error and idle baseline for this interval's band."""
        band = self.band(features)
        if not self.calibrated:
            st = self.state()
            fallback = " (frequency-weighted shares until then)" if self.model != "frequency-weighted" and \
                len(self.names) > 1 else ""
            return ModelView(self.model, None, None, None, f"calibrating: {st.reason}{fallback}")
        f = self.fit_for(band)
        assert f is not None
        err = self.model_error(band)
        rmse = _rms(r.watts for r in list(self.residuals)[-self.config.track_window:])
        where = f", {band * self.config.band_mhz:.0f}-{(band + 1) * self.config.band_mhz:.0f} MHz band" \
            if band is not None and band in self.band_fits else ""
        progress = (f"calibrated against the measured CPU power (tracking error "
                    f"{rmse if rmse is not None else f.sigma:.2f} W, R² {f.r2:.3f}{where})")
        return ModelView(self.model, f.coef, err, self.idle(), progress)

    # ---- what the snapshot shows ----------------------------------------------------------------
    def state(self) -> CalibrationState:
        cfg = self.config
        n = len(self.window)
        if self.calibrated:
            status, reason = STATUS_CALIBRATED, "fitted to the measured CPU power"
        else:
            status = STATUS_CALIBRATING
            if n < cfg.min_samples:
                reason = f"collecting samples ({n}/{cfg.min_samples})"
            else:
                reason = (f"needs varied load: utilisation spread {100 * self.spread():.0f} % "
                          f"< {100 * cfg.min_spread:.0f} %")
        f = self.pooled
        recent = [r.watts for r in list(self.residuals)[-cfg.track_window:]]
        bands: dict[str, dict[str, float]] = {}
        for band in sorted({s.band for s in self.window if s.band is not None}):
            own = [r.watts for r in self.residuals if r.band == band][-cfg.track_window:]
            lo = band * cfg.band_mhz
            entry: dict[str, float] = {"samples": float(sum(1 for s in self.window if s.band == band)),
                                       "own_fit": 1.0 if band in self.band_fits else 0.0}
            rmse = _rms(own)
            if rmse is not None:
                entry["rmse_w"] = rmse
            bands[f"{lo:.0f}-{lo + cfg.band_mhz:.0f}"] = entry
        idle = self.idle()
        return CalibrationState(
            model=self.model, status=status, samples=n, needed=cfg.min_samples, reason=reason,
            rmse_w=_rms(recent), r2=f.r2 if f else None, fit_rmse_w=f.sigma if f else None,
            last_recalibration=self.last_recalibration, recalibrations=self.recalibrations,
            idle_watts=idle.watts if idle else None,
            coefficients=({name: c for name, c in zip(self.names, f.coef)} if f else {}),
            bands=bands, restored=self.restored)

    # ---- persistence (see store.py for the file) -----------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The window and counters; the fit itself is recomputed from the window when loaded."""
        return {"model": self.model, "features": list(self.names),
                "samples": [[_g(s.y), [_g(v) for v in s.x], s.band, _g(s.u)] for s in self.window],
                "residuals": [[_g(r.watts), _g(r.rows_sq), r.band] for r in self.residuals],
                "recalibrations": self.recalibrations, "last_recalibration": self.last_recalibration}

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Resume from ``to_json`` output; raises ValueError on anything malformed (nothing is changed then)."""
        if data.get("model") != self.model or list(data.get("features") or []) != list(self.names):
            raise ValueError("saved calibration is for another model or feature set")
        samples = [_sample(item, len(self.names)) for item in _list(data.get("samples"), self.config.window)]
        residuals = [_residual(item) for item in _list(data.get("residuals"), self.residuals.maxlen or 0)]
        recals = data.get("recalibrations", 0)
        if not isinstance(recals, int) or isinstance(recals, bool) or not 0 <= recals < 10**9:
            raise ValueError("bad recalibration count")
        last = data.get("last_recalibration")
        if last is not None and (not isinstance(last, (int, float)) or isinstance(last, bool)
                                 or not math.isfinite(last)):
            raise ValueError("bad last_recalibration")
        self.window.clear()
        self.window.extend(samples)
        self.residuals.clear()
        self.residuals.extend(residuals)
        self.recalibrations = recals
        self.last_recalibration = float(last) if last is not None else None
        self._calibrated = False
        self.pooled = None
        self._refit(self.last_recalibration, recalibration=False)
        self.last_recalibration = float(last) if last is not None else self.last_recalibration
        self.restored = True


def _g(v: float) -> float:
    return float(f"{v:.9g}")


def _list(value: object, cap: int) -> list:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    if len(value) > cap:
        raise ValueError(f"too many entries ({len(value)} > {cap})")
    return value


def _number(v: object, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"bad number {v!r}")
    return float(v)


def _band(v: object) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _MAX_BAND:
        raise ValueError(f"bad band {v!r}")
    return v


def _sample(item: object, m: int) -> Sample:
    if not isinstance(item, list) or len(item) != 4 or not isinstance(item[1], list) or len(item[1]) != m:
        raise ValueError("bad sample")
    return Sample(_number(item[0], 0.0, _MAX_WATTS), tuple(_number(v, 0.0, _MAX_FEATURE) for v in item[1]),
                  _band(item[2]), _number(item[3], 0.0, 1.0))


def _residual(item: object) -> Residual:
    if not isinstance(item, list) or len(item) != 3:
        raise ValueError("bad residual")
    return Residual(_number(item[0], -_MAX_WATTS, _MAX_WATTS), _number(item[1], 0.0, _MAX_WATTS ** 2),
                    _band(item[2]))


def _change_point(values: Sequence[float]) -> int:
    """Index where the mean of ``values`` shifts most (binary segmentation; 0: no clear split)."""
    n = len(values)
    if n < 4:
        return 0
    total = math.fsum(values)
    best, at, left = 0.0, 0, 0.0
    for k in range(1, n):
        left += values[k - 1]
        m1, m2 = left / k, (total - left) / (n - k)
        score = k * (n - k) / n * (m2 - m1) ** 2
        if m2 > m1 and score > best:
            best, at = score, k
    return at


def _variance_components(r2: Sequence[float], s2: Sequence[float], z: float = 1.2816) -> tuple[float, float]:
    """(a, b) ≥ 0 of ``E[r²] = a + b·S²``: the residual variance as node-level noise no row
    explains (a, W²) plus every row erring independently by the same relative amount (b),
    each at its one-sided 90 % upper confidence limit (``z`` standard errors above the fit).

    A nearly idle node's residual is noise, not the (tiny) rows' error; fitting both keeps
    it from inflating the rows' relative error. Least squares; where one component comes
    out negative, the other alone."""
    n = len(r2)
    mr, ms = math.fsum(r2) / n, math.fsum(s2) / n
    sxx = math.fsum((x - ms) ** 2 for x in s2)
    up2 = _upper_factor(n, z) ** 2 if z > 0 else 1.0  # a mean square's upper limit (χ²)
    if sxx <= 0 or n < 3:
        return mr * up2, 0.0
    b = math.fsum((x - ms) * (y - mr) for x, y in zip(s2, r2)) / sxx
    a = mr - b * ms
    if b <= 0:  # no dependence on the rows: all node noise
        return mr * up2, 0.0
    if a < 0:  # through the origin: all the rows' own error
        b = math.fsum(x * y for x, y in zip(s2, r2)) / math.fsum(x * x for x in s2)
        resid = [y - b * x for x, y in zip(s2, r2)]
        se_b = math.sqrt(math.fsum(e * e for e in resid) / (n - 1) / math.fsum(x * x for x in s2))
        return 0.0, b + z * se_b
    resid = [y - a - b * x for x, y in zip(s2, r2)]
    sigma = math.sqrt(math.fsum(e * e for e in resid) / (n - 2))
    return a + z * sigma * math.sqrt(1.0 / n + ms * ms / sxx), b + z * sigma / math.sqrt(sxx)


def _upper_factor(k: int, z: float = 1.2816) -> float:
    """√(k / χ²_α(k)) for the lower α-quantile of χ² with k degrees of freedom (z: its normal quantile).

    The one-sided upper confidence factor of an RMS estimated from k samples (α = 0.10: 1.14 at k = 60)."""
    c = 2.0 / (9.0 * k)
    q = k * (1.0 - c - z * math.sqrt(c)) ** 3
    return math.sqrt(k / q) if q > 0 else 2.0
