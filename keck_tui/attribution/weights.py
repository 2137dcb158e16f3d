"""The attribution models: per-process, per-core signals → each process's share of the
busy CPU capacity.

A model turns what ran where (on-CPU seconds per process and core, per-core frequency)
into a *weight* per user process and one for ``(kernel)`` (kernel threads, irq and
softirq time), over a capacity; shares are weights over ``max(capacity, Σ weights)``.

* ``cpu-time``: weight = on-CPU seconds.
* ``frequency-weighted``: weight = Σ per-core seconds × that core's factor, the mean
  (f/fmax)³ while busy there (dynamic power ∝ C·V²·f with V roughly ∝ f).

Both are always computed: the spread between them is a bound term (uncertainty.py).
A new model (e.g. ``full``, from hardware counters) is one more ``*_weights`` function
giving :class:`Weights`, added to :func:`model_shares` and chosen in :func:`choose_model`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from keck_tui.samplers.types import CpuActivity, FrequencyReading, ProcessSample

MODEL_CPU_TIME = "cpu-time"
MODEL_FREQ = "frequency-weighted"
MODEL_FULL = "full"


@dataclass(frozen=True)
class CoreInfo:
    """What the models know of one logical CPU over the interval."""

    mhz: float | None
    nominal: bool
    factor: float  # mean (f/fmax)³ while busy on this core


@dataclass(frozen=True)
class Weights:
    """One model's weights: per user process (pid), for ``(kernel)``, and the capacity."""

    process: Mapping[int, float]
    kernel: float
    capacity: float


@dataclass(frozen=True)
class Shares:
    """Fractions of the busy capacity (Σ ≤ 1) per user process and for ``(kernel)``."""

    process: Mapping[int, float]
    kernel: float


def choose_model(requested: str, live_frequency: bool, hardware_counters: bool) -> tuple[str, str, list[str]]:
    """The model to run, why, and any warning about the request."""
    warnings: list[str] = []
    if requested == "auto":
        if hardware_counters:
            return MODEL_FREQ, "auto: hardware counters found, but the full model's IPC terms " \
                               "are not calibrated; using frequency-weighted", warnings
        if live_frequency:
            return MODEL_FREQ, "auto: live per-core frequency available", warnings
        return MODEL_CPU_TIME, "auto: no live per-core frequency (nominal only)", warnings
    if requested == MODEL_FULL:
        warnings.append("model 'full' needs hardware performance counters, which this node "
                        "does not expose; using frequency-weighted")
        return MODEL_FREQ, "full requested; no hardware counters", warnings
    if requested == MODEL_FREQ and not live_frequency:
        return MODEL_FREQ, "requested; no live frequency, so it equals cpu-time", warnings
    return requested, "requested", warnings


def core_infos(activity: CpuActivity, frequency: FrequencyReading | None) -> dict[int, CoreInfo]:
    """Per core: frequency (cpufreq, overridden by the activity sampler's own) and factor."""
    freqs: dict[int, tuple[float, bool, float | None]] = {}
    if frequency is not None and frequency.source.ok:
        for cf in frequency.cores:
            freqs[cf.cpu] = (cf.mhz, cf.nominal, cf.max_mhz)
    for core in activity.cores:
        if core.freq_mhz is not None:
            prev_max = freqs.get(core.cpu, (None, True, None))[2]
            freqs[core.cpu] = (core.freq_mhz, core.freq_nominal, prev_max)
    fmax = max([m for m, _, mx in freqs.values() if m] + [mx for _, _, mx in freqs.values() if mx],
               default=0.0)
    infos: dict[int, CoreInfo] = {}
    for core in activity.cores:
        mhz, nominal, _ = freqs.get(core.cpu, (None, True, None))
        if core.freq_cubed_weight is not None and core.busy_s > 0:
            factor = core.freq_cubed_weight / core.busy_s
        elif mhz and fmax and not nominal:
            factor = (mhz / fmax) ** 3
        else:
            factor = 1.0
        infos[core.cpu] = CoreInfo(mhz=mhz, nominal=nominal, factor=factor)
    return infos


def has_live_frequency(activity: CpuActivity, infos: Mapping[int, CoreInfo]) -> bool:
    """A measured per-core frequency (not nominal), or eBPF frequency residency."""
    return any(not i.nominal and i.mhz for i in infos.values()) or any(
        c.freq_cubed_weight is not None for c in activity.cores)


def cpu_time_weights(activity: CpuActivity, users: Sequence[ProcessSample],
                     kernels: Sequence[ProcessSample], busy_s: float) -> Weights:
    return Weights(process={p.pid: p.cpu_s for p in users},
                   kernel=math.fsum(p.cpu_s for p in kernels) + math.fsum(c.irq_s for c in activity.cores),
                   capacity=busy_s)


def frequency_weights(activity: CpuActivity, users: Sequence[ProcessSample],
                      kernels: Sequence[ProcessSample], infos: Mapping[int, CoreInfo],
                      busy_s: float) -> Weights:
    core_weight = {c.cpu: c.busy_s * infos[c.cpu].factor for c in activity.cores}
    mean_factor = (math.fsum(core_weight.values()) / busy_s) if busy_s > 0 else 1.0
    return Weights(
        process={p.pid: _process_weight(p, infos, mean_factor) for p in users},
        kernel=math.fsum(_process_weight(p, infos, mean_factor) for p in kernels) + math.fsum(
            c.irq_s * infos[c.cpu].factor for c in activity.cores),
        capacity=math.fsum(core_weight.values()))


def _process_weight(p: ProcessSample, infos: Mapping[int, CoreInfo], mean_factor: float) -> float:
    if not p.per_cpu_s:
        return p.cpu_s * mean_factor
    return math.fsum(s * (infos[c].factor if c in infos else mean_factor) for c, s in p.per_cpu_s.items())


def shares_of(weights: Weights) -> Shares:
    """Weights over ``max(capacity, Σ weights)``: processes never get more than ran."""
    denom = max(weights.capacity, math.fsum(weights.process.values()) + weights.kernel)
    if denom <= 0:
        return Shares({pid: 0.0 for pid in weights.process}, 0.0)
    return Shares({pid: v / denom for pid, v in weights.process.items()}, weights.kernel / denom)


def model_shares(activity: CpuActivity, infos: Mapping[int, CoreInfo], busy_s: float) -> dict[str, Shares]:
    """Every model's shares (the chosen one splits the watts; all of them bound it)."""
    users = [p for p in activity.processes if not p.kernel]
    kernels = [p for p in activity.processes if p.kernel]
    return {MODEL_CPU_TIME: shares_of(cpu_time_weights(activity, users, kernels, busy_s)),
            MODEL_FREQ: shares_of(frequency_weights(activity, users, kernels, infos, busy_s))}
