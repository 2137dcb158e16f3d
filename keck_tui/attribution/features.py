"""What each attribution model sees of one interval: per (process, core) feature vectors.

Every model is linear in its features, so the node's modelled dynamic power is
the sum over (process, core) of ``θ·x`` and the same features, summed over the
node, are what the calibrator regresses the measured CPU power on. All features
are rates (per second of interval), so ``θ`` is in watts per unit:

* ``cpu-time``:            ``u``           (on-CPU seconds per second)
* ``frequency-weighted``:  ``u·φ³``         (φ = f / 1 GHz: dynamic power ∝ C·V²·f, V ∝ f)
* ``full``:                ``u``, ``u·φ³``, ``u·φ³·IPC``, ``misses``
  — busy time (leakage and uncore kept awake by a running core), switching at the
  core's frequency and voltage, extra switching per retired instruction (IPC),
  and LLC misses per 10⁸/s (the uncore and memory controller's work per miss,
  which does not scale with the core clock).

φ is the *effective* frequency where cycle counters exist (cycles ÷ on-CPU time of
that process on that core: what it really ran at, unlike ``scaling_cur_freq``
under HWP), else the core's mean frequency over the interval (eBPF residency or
cpufreq), else the nominal one (then φ is a constant and frequency-weighted
equals cpu-time). φ is relative to a fixed 1 GHz, not to the CPU's maximum, so a
coefficient learned and saved on one run keeps its meaning on the next.

Per-process counters come with the activity: measured at each context switch by
the eBPF probe, or the core's counters shared out by on-CPU time
(``samplers/counter_share.py``). Interrupt time gets its core's counters by time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from keck_tui.samplers.types import CounterDelta, CpuActivity, FrequencyReading, ProcessSample

MODEL_CPU_TIME = "cpu-time"
MODEL_FREQ = "frequency-weighted"
MODEL_FULL = "full"
MODELS = (MODEL_CPU_TIME, MODEL_FREQ, MODEL_FULL)

F_REF_MHZ = 1000.0
MISS_UNIT = 1e8  # LLC misses per second per unit of the miss feature
INSN_UNIT = 1e9  # instructions per second per unit (× φ²: u·φ³·IPC)
_MHZ_RANGE = (50.0, 10_000.0)  # effective frequencies outside this are counter trouble, not physics

FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    MODEL_CPU_TIME: ("cpu",),
    MODEL_FREQ: ("cpu*f3",),
    MODEL_FULL: ("cpu", "cpu*f3", "insn*f2", "llc_miss"),
}
#: The feature of each model that carries "busy time at the core's frequency": the
#: full model's fallback (its prior) is all dynamic power on it, i.e. frequency-weighted.
BASE_FEATURE = {MODEL_CPU_TIME: 0, MODEL_FREQ: 0, MODEL_FULL: 1}

COUNTERS_PROCESS = "process"  # per (process, core) counters (eBPF at sched_switch)
COUNTERS_CORE = "core"  # per-core counters shared by time
COUNTERS_NONE = "none"

Vector = tuple[float, ...]


@dataclass(frozen=True)
class CoreFreq:
    """A core's frequency over the interval, as the models see it."""

    mhz: float | None  # mean frequency (None: unknown)
    phi3: float  # mean (f / 1 GHz)³ while busy
    live: bool  # measured this interval (not the nominal value)


def core_frequencies(activity: CpuActivity, frequency: FrequencyReading | None) -> dict[int, CoreFreq]:
    """Each core's frequency: eBPF residency, else the activity sampler's or cpufreq's reading."""
    readings: dict[int, tuple[float, bool, float | None]] = {}
    if frequency is not None and frequency.source.ok:
        for cf in frequency.cores:
            readings[cf.cpu] = (cf.mhz, cf.nominal, cf.max_mhz)
    for core in activity.cores:
        if core.freq_mhz is not None:
            max_mhz = readings.get(core.cpu, (None, True, None))[2]
            readings[core.cpu] = (core.freq_mhz, core.freq_nominal, max_mhz)
    fmax = max([m for m, _, mx in readings.values() if m] + [mx for _, _, mx in readings.values() if mx],
               default=0.0)
    out: dict[int, CoreFreq] = {}
    for core in activity.cores:
        mhz, nominal, max_mhz = readings.get(core.cpu, (None, True, None))
        if core.freq_cubed_weight is not None and core.busy_s > 0 and (max_mhz or fmax):
            # eBPF integrates busy·(f/fmax)³ with fmax = this core's cpuinfo_max_freq
            ref = (max_mhz or fmax) / F_REF_MHZ
            out[core.cpu] = CoreFreq(mhz, core.freq_cubed_weight / core.busy_s * ref ** 3, True)
        elif mhz:
            out[core.cpu] = CoreFreq(mhz, (mhz / F_REF_MHZ) ** 3, not nominal)
        else:
            out[core.cpu] = CoreFreq(None, 1.0, False)
    return out


@dataclass(frozen=True)
class ModelFeatures:
    """One interval's features under one model."""

    model: str
    names: tuple[str, ...]
    rows: Mapping[int, Mapping[int, Vector]]  # user pid -> cpu -> features
    kernel: Vector  # kernel threads, irq and softirq
    node: Vector  # every busy core-second: what the CPU power measures
    freq_mhz: float | None  # busy-weighted effective frequency of the node (its band); None: not live
    counters: str  # COUNTERS_*
    ipc: Mapping[int, float]  # user pid -> instructions per cycle (where counters exist)

    def process(self, pid: int) -> Vector:
        return _sum(self.rows.get(pid, {}).values(), len(self.names))


def _sum(vectors, m: int) -> Vector:
    vs = list(vectors)
    return tuple(math.fsum(v[k] for v in vs) for k in range(m))


def _vector(model: str, u: float, phi3: float, insn_rate: float | None, miss_rate: float | None,
            phi: float) -> Vector:
    if model == MODEL_CPU_TIME:
        return (u,)
    if model == MODEL_FREQ:
        return (u * phi3,)
    insn = (insn_rate or 0.0) / INSN_UNIT * phi * phi
    return (u, u * phi3, insn, (miss_rate or 0.0) / MISS_UNIT)


def _effective(d: CounterDelta | None, seconds: float, core: CoreFreq) -> tuple[float, float]:
    """(φ, φ³) of one (process, core): from its cycles where counted, else the core's."""
    if d is not None and d.cycles and seconds > 0:
        mhz = d.cycles / seconds / 1e6
        if _MHZ_RANGE[0] <= mhz <= _MHZ_RANGE[1]:
            phi = mhz / F_REF_MHZ
            return phi, phi ** 3
    phi3 = core.phi3
    return phi3 ** (1.0 / 3.0), phi3


def _scaled(d: CounterDelta | None, fraction: float) -> CounterDelta | None:
    if d is None:
        return None
    f = max(0.0, fraction)
    return CounterDelta(cycles=None if d.cycles is None else d.cycles * f,
                        instructions=None if d.instructions is None else d.instructions * f,
                        llc_misses=None if d.llc_misses is None else d.llc_misses * f,
                        ref_cycles=None if d.ref_cycles is None else d.ref_cycles * f,
                        running_ratio=d.running_ratio)


def counter_source(activity: CpuActivity) -> str:
    """Where the interval's counters come from: per process (eBPF), per core, or nowhere."""
    if not any(p.counters for p in activity.processes) and all(c.counters is None for c in activity.cores):
        return COUNTERS_NONE
    return COUNTERS_PROCESS if getattr(activity, "per_process_counters", False) else COUNTERS_CORE


def extract(model: str, activity: CpuActivity, freqs: Mapping[int, CoreFreq],
            interval_s: float) -> ModelFeatures:
    """The features of every process, the kernel and the node for ``model``."""
    names = FEATURE_NAMES[model]
    m = len(names)
    dt = interval_s if interval_s > 0 else (activity.interval_s or 1.0)
    source = counter_source(activity)
    busy = math.fsum(c.busy_s for c in activity.cores if c.cpu in freqs)
    # A process with no per-core times ran "somewhere": at the node's busy-weighted mean.
    default = CoreFreq(None, (math.fsum(c.busy_s * freqs[c.cpu].phi3 for c in activity.cores if c.cpu in freqs)
                              / busy) if busy > 0 else 1.0, False)

    def counters_of(p: ProcessSample, cpu: int) -> CounterDelta | None:
        return p.counters.get(cpu) if p.counters else None

    def row(p: ProcessSample, cpu: int, seconds: float) -> Vector:
        d = counters_of(p, cpu) if model != MODEL_CPU_TIME else None
        phi, phi3 = _effective(d, seconds, freqs.get(cpu, default))
        insn = d.instructions / dt if d is not None and d.instructions is not None else None
        miss = d.llc_misses / dt if d is not None and d.llc_misses is not None else None
        return _vector(model, seconds / dt, phi3, insn, miss, phi)

    rows: dict[int, dict[int, Vector]] = {}
    ipc: dict[int, float] = {}
    kernel_parts: list[Vector] = []
    per_core: dict[int, list[Vector]] = {}
    for p in activity.processes:
        per = p.per_cpu_s or ({} if p.cpu_s <= 0 else {-1: p.cpu_s})
        vecs: dict[int, Vector] = {}
        cycles = insns = 0.0
        for cpu, seconds in per.items():
            if seconds <= 0:
                continue
            vec = row(p, cpu, seconds)
            vecs[cpu] = vec
            per_core.setdefault(cpu, []).append(vec)
            d = counters_of(p, cpu)
            if d is not None and d.cycles and d.instructions is not None:
                cycles += d.cycles
                insns += d.instructions
        if p.kernel:
            kernel_parts.extend(vecs.values())
        else:
            rows[p.pid] = vecs
            if cycles > 0:
                ipc[p.pid] = insns / cycles
    for core in activity.cores:
        if core.irq_s > 0:
            share = (_scaled(core.counters, core.irq_s / core.busy_s)
                     if core.counters is not None and core.busy_s > 0 else None)
            phi, phi3 = _effective(share, core.irq_s, freqs.get(core.cpu, default))
            vec = _vector(model, core.irq_s / dt, phi3,
                          None if share is None or share.instructions is None else share.instructions / dt,
                          None if share is None or share.llc_misses is None else share.llc_misses / dt, phi)
            kernel_parts.append(vec)
            per_core.setdefault(core.cpu, []).append(vec)
    # The node: each core's busy time (counters of the whole core where they exist), never
    # less than what its processes add up to (a process can run on a core not listed).
    node_parts: list[Vector] = []
    for core in activity.cores:
        d = core.counters if model != MODEL_CPU_TIME else None
        phi, phi3 = _effective(d, core.busy_s, freqs.get(core.cpu, default))
        own = _vector(model, core.busy_s / dt, phi3,
                      None if d is None or d.instructions is None else d.instructions / dt,
                      None if d is None or d.llc_misses is None else d.llc_misses / dt, phi)
        summed = _sum(per_core.get(core.cpu, ()), m)
        node_parts.append(tuple(max(a, b) for a, b in zip(own, summed)))
    known = {c.cpu for c in activity.cores}
    for cpu, vecs in per_core.items():
        if cpu not in known:
            node_parts.append(_sum(vecs, m))
    node = _sum(node_parts, m)

    live = [c for c in activity.cores if c.busy_s > 0]
    freq_mhz: float | None = None
    num = den = 0.0
    for c in live:
        if c.counters is not None and c.counters.cycles and model != MODEL_CPU_TIME:
            mhz = c.counters.cycles / c.busy_s / 1e6
            if _MHZ_RANGE[0] <= mhz <= _MHZ_RANGE[1]:
                num, den = num + mhz * c.busy_s, den + c.busy_s
                continue
        info = freqs.get(c.cpu)
        if info is not None and info.live and info.mhz:
            num, den = num + info.mhz * c.busy_s, den + c.busy_s
    if den > 0:
        freq_mhz = num / den
    return ModelFeatures(model=model, names=names, rows=rows, kernel=_sum(kernel_parts, m), node=node,
                         freq_mhz=freq_mhz, counters=source, ipc=ipc)


@dataclass(frozen=True)
class Weights:
    """Modelled dynamic power (W, before scaling to the measurement) per process and core."""

    process: Mapping[int, float]
    per_core: Mapping[int, Mapping[int, float]]
    kernel: float
    capacity: float  # the node's modelled dynamic power (≥ processes + kernel)

    def shares(self) -> tuple[dict[int, float], float]:
        """Each process's and the kernel's fraction of the node's dynamic power."""
        denom = max(self.capacity, math.fsum(self.process.values()) + self.kernel)
        if denom <= 0:
            return {pid: 0.0 for pid in self.process}, 0.0
        return {pid: w / denom for pid, w in self.process.items()}, self.kernel / denom


def weights(features: ModelFeatures, theta: tuple[float, ...]) -> Weights:
    def dot(v: Vector) -> float:
        return max(0.0, math.fsum(t * x for t, x in zip(theta, v)))

    per_core = {pid: {cpu: dot(v) for cpu, v in cores.items()} for pid, cores in features.rows.items()}
    return Weights(process={pid: math.fsum(c.values()) for pid, c in per_core.items()}, per_core=per_core,
                   kernel=dot(features.kernel), capacity=dot(features.node))


def default_theta(model: str) -> tuple[float, ...]:
    """Coefficients before any calibration: all dynamic power on the model's base feature."""
    theta = [0.0] * len(FEATURE_NAMES[model])
    theta[BASE_FEATURE[model]] = 1.0
    return tuple(theta)
