"""The attribution models: per-process, per-core signals → each process's share of the
busy CPU capacity.

A model turns what ran where (on-CPU seconds per process and core, per-core frequency)
into a *weight* per user process and one for ``(kernel)`` (kernel threads, irq and
softirq time), over a capacity; shares are weights over ``max(capacity, Σ weights)``.

* the model that splits the watts: ``θ·x`` over its features (features.py) with the
  coefficients its calibration learned (calibration.py), or its defaults before that:
  :func:`model_weights`, which also splits each process's weight over its cores;
* ``cpu-time`` (on-CPU seconds) and ``frequency-weighted`` (Σ per-core seconds × that
  core's factor, the mean (f/fmax)³ while busy there): until calibration measures the
  model's error, the spread between them is the bound's model term (uncertainty.py).

Which model runs is selection.py's choice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from keck_tui.attribution.features import (MODEL_CPU_TIME, MODEL_FREQ, MODEL_FULL, CoreInfo, ModelFeatures,
                                           Vector)
from keck_tui.samplers.types import CpuActivity, ProcessSample

__all__ = ["MODEL_CPU_TIME", "MODEL_FREQ", "MODEL_FULL", "Shares", "Weights", "model_shares", "model_weights",
           "shares_of"]


@dataclass(frozen=True)
class Weights:
    """One model's weights: per user process (pid), for ``(kernel)``, and the capacity;
    ``per_core``: each process's weight by core (where the model knows it)."""

    process: Mapping[int, float]
    kernel: float
    capacity: float
    per_core: Mapping[int, Mapping[int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Shares:
    """Fractions of the busy capacity (Σ ≤ 1) per user process and for ``(kernel)``."""

    process: Mapping[int, float]
    kernel: float


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


def model_weights(features: ModelFeatures, theta: Vector) -> Weights:
    """The model's weights: ``θ·x`` per (process, core), per process, for the kernel and the node."""
    def dot(v: Vector) -> float:
        return max(0.0, math.fsum(t * x for t, x in zip(theta, v)))

    per_core = {pid: {cpu: dot(v) for cpu, v in cores.items()} for pid, cores in features.rows.items()}
    return Weights(process={pid: math.fsum(c.values()) for pid, c in per_core.items()},
                   kernel=dot(features.kernel), capacity=dot(features.node), per_core=per_core)


def model_shares(activity: CpuActivity, infos: Mapping[int, CoreInfo], busy_s: float) -> dict[str, Shares]:
    """The two simple models' shares (their spread bounds an uncalibrated model)."""
    users = [p for p in activity.processes if not p.kernel]
    kernels = [p for p in activity.processes if p.kernel]
    return {MODEL_CPU_TIME: shares_of(cpu_time_weights(activity, users, kernels, busy_s)),
            MODEL_FREQ: shares_of(frequency_weights(activity, users, kernels, infos, busy_s))}
