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

from keck_tui.samplers.counter_share import irq_fraction, scale, seen_seconds
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
class CoreInfo:
    """What the models know of one logical CPU over the interval."""

    mhz: float | None
    nominal: bool  # mhz is the nominal value (or unknown), not a live reading
    factor: float  # mean (f/fmax)³ while busy on this core
    phi3: float = 1.0  # mean (f / 1 GHz)³ while busy: the same against a fixed reference

    @property
    def live(self) -> bool:
        return bool(self.mhz) and not self.nominal


def core_infos(activity: CpuActivity, frequency: FrequencyReading | None) -> dict[int, CoreInfo]:
    """Per core: frequency (cpufreq, overridden by the activity sampler's own) and factors."""
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
        mhz, nominal, max_mhz = freqs.get(core.cpu, (None, True, None))
        if core.freq_cubed_weight is not None and core.busy_s > 0:
            # eBPF integrates busy·(f/fmax)³ with fmax = this core's cpuinfo_max_freq
            factor = core.freq_cubed_weight / core.busy_s
            ref = max_mhz or fmax
            phi3 = factor * (ref / F_REF_MHZ) ** 3 if ref else 1.0
        elif mhz and fmax and not nominal:
            factor, phi3 = (mhz / fmax) ** 3, (mhz / F_REF_MHZ) ** 3
        else:
            factor, phi3 = 1.0, ((mhz / F_REF_MHZ) ** 3 if mhz else 1.0)
        infos[core.cpu] = CoreInfo(mhz=mhz, nominal=nominal, factor=factor, phi3=phi3)
    return infos


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
    # the cores' own accounting (their busy time with their own counters), where it is complete:
    # what the calibration regresses the measured power on (None: incomplete, ``node`` instead)
    measured: Vector | None = None

    def process(self, pid: int) -> Vector:
        return _sum(self.rows.get(pid, {}).values(), len(self.names))

    @property
    def regressor(self) -> Vector:
        """The node's features the measured CPU power is fitted against.

        Not ``node``: that is never less than all rows together, so it can split the watts;
        but the rows' sum and the cores' busy time are two noisy readings of the same CPU
        time (read a few ms apart), and the larger of two noisy readings is biased upwards
        — an upward bias that pushes the fitted idle baseline down (−4 % on a quiet run of
        benchmarks/bench_hidden_linear.py). The cores' own accounting is one read of
        the whole CPU, what the measured power covers."""
        return self.measured if self.measured is not None else self.node


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


def effective_mhz(d: CounterDelta | None, seconds: float) -> float | None:
    """Cycles ÷ on-CPU seconds: the frequency it really ran at (None: not counted, or implausible)."""
    if d is not None and d.cycles and seconds > 0:
        mhz = d.cycles / seconds / 1e6
        if _MHZ_RANGE[0] <= mhz <= _MHZ_RANGE[1]:
            return mhz
    return None


def _effective(d: CounterDelta | None, seconds: float, core: CoreInfo) -> tuple[float, float]:
    """(φ, φ³) of one (process, core): from its cycles where counted, else the core's."""
    mhz = effective_mhz(d, seconds)
    if mhz is not None:
        phi = mhz / F_REF_MHZ
        return phi, phi ** 3
    phi3 = core.phi3
    return phi3 ** (1.0 / 3.0), phi3


def counter_source(activity: CpuActivity) -> str:
    """Where the interval's counters come from: per process (eBPF), per core, or nowhere."""
    if not any(p.counters for p in activity.processes) and all(c.counters is None for c in activity.cores):
        return COUNTERS_NONE
    return COUNTERS_PROCESS if getattr(activity, "per_process_counters", False) else COUNTERS_CORE


def extract(model: str, activity: CpuActivity, freqs: Mapping[int, CoreInfo],
            interval_s: float) -> ModelFeatures:
    """The features of every process, the kernel and the node for ``model``."""
    ex = _Extractor(model, activity, freqs, interval_s)
    rows, kernel_parts, ipc = ex.processes()
    kernel_parts.extend(ex.interrupts())
    own = ex.own()
    return ModelFeatures(model=model, names=ex.names, rows=rows, kernel=_sum(kernel_parts, ex.m), node=ex.node(own),
                         freq_mhz=ex.frequency(), counters=counter_source(activity), ipc=ipc,
                         measured=own if ex.own_complete() else None)


class _Extractor:
    """One interval's feature extraction under one model (see :func:`extract`)."""

    def __init__(self, model: str, activity: CpuActivity, freqs: Mapping[int, CoreInfo], interval_s: float) -> None:
        self.model, self.activity, self.freqs = model, activity, freqs
        self.names = FEATURE_NAMES[model]
        self.m = len(self.names)
        self.dt = interval_s if interval_s > 0 else (activity.interval_s or 1.0)
        busy = math.fsum(c.busy_s for c in activity.cores if c.cpu in freqs)
        # A process with no per-core times ran "somewhere": at the node's busy-weighted mean.
        mean = math.fsum(c.busy_s * freqs[c.cpu].phi3 for c in activity.cores if c.cpu in freqs) / busy \
            if busy > 0 else 1.0
        self.default = CoreInfo(None, True, 1.0, mean)
        self.per_core: dict[int, list[Vector]] = {}  # cpu -> every row's vector there

    def vector(self, d: CounterDelta | None, seconds: float, cpu: int) -> Vector:
        """The features of ``seconds`` on ``cpu`` with counters ``d`` (None: none)."""
        if self.model == MODEL_CPU_TIME:
            d = None
        phi, phi3 = _effective(d, seconds, self.freqs.get(cpu, self.default))
        insn = d.instructions / self.dt if d is not None and d.instructions is not None else None
        miss = d.llc_misses / self.dt if d is not None and d.llc_misses is not None else None
        return _vector(self.model, seconds / self.dt, phi3, insn, miss, phi)

    def processes(self) -> tuple[dict[int, dict[int, Vector]], list[Vector], dict[int, float]]:
        """User processes' vectors per core, kernel threads' vectors, and IPC per user process."""
        rows: dict[int, dict[int, Vector]] = {}
        kernel: list[Vector] = []
        ipc: dict[int, float] = {}
        for p in self.activity.processes:
            if p.cpu_s <= 0 and not p.per_cpu_s:
                continue  # did not run: no features (most processes, most intervals)
            vecs: dict[int, Vector] = {}
            cycles = insns = 0.0
            for cpu, seconds in (p.per_cpu_s or {-1: p.cpu_s}).items():
                if seconds <= 0:
                    continue
                d = p.counters.get(cpu) if p.counters else None
                vecs[cpu] = self.vector(d, seconds, cpu)
                self.per_core.setdefault(cpu, []).append(vecs[cpu])
                if d is not None and d.cycles and d.instructions is not None:
                    cycles, insns = cycles + d.cycles, insns + d.instructions
            if p.kernel:
                kernel.extend(vecs.values())
                continue
            rows[p.pid] = vecs
            if cycles > 0:
                ipc[p.pid] = insns / cycles
        return rows, kernel, ipc

    def interrupts(self) -> list[Vector]:
        """irq and softirq time per core, with the core's counters shared by time."""
        out = []
        seen = seen_seconds(self.activity)
        for core in self.activity.cores:
            if core.irq_s > 0:
                share = scale(core.counters, irq_fraction(core, seen)) if core.counters is not None else None
                vec = self.vector(share, core.irq_s, core.cpu)
                out.append(vec)
                self.per_core.setdefault(core.cpu, []).append(vec)
        return out

    def own(self) -> Vector:
        """Every core's busy time with the whole core's counters where they exist."""
        return _sum([self.vector(core.counters, core.busy_s, core.cpu) for core in self.activity.cores], self.m)

    def own_complete(self) -> bool:
        """Do the cores account for what the rows saw? Not without core times, nor (for a model
        with counter features) where a busy core lacks the counters its processes have."""
        cores = self.activity.cores
        if not cores or (not any(c.busy_s > 0 for c in cores) and self.per_core):
            return False
        if self.model == MODEL_CPU_TIME or not any(p.counters for p in self.activity.processes):
            return True
        return all(c.counters is not None for c in cores if c.busy_s > 0)

    def node(self, own: Vector) -> Vector:
        """``own``, feature by feature never less than all rows together (procfs's per-core split
        is a guess, so the rows on one core can exceed its busy time while another's is
        unaccounted: compare totals), so the shares of the watts never add up past them. Call
        after :meth:`processes` and :meth:`interrupts`."""
        every_row = _sum([v for vecs in self.per_core.values() for v in vecs], self.m)
        return tuple(max(a, b) for a, b in zip(own, every_row))

    def frequency(self) -> float | None:
        """The node's busy-weighted effective frequency (its band); None when none is live."""
        num = den = 0.0
        for c in self.activity.cores:
            if c.busy_s <= 0:
                continue
            mhz = effective_mhz(c.counters, c.busy_s) if self.model != MODEL_CPU_TIME else None
            if mhz is not None:
                num, den = num + mhz * c.busy_s, den + c.busy_s
                continue
            info = self.freqs.get(c.cpu)
            if info is not None and info.live and info.mhz:
                num, den = num + info.mhz * c.busy_s, den + c.busy_s
        return num / den if den > 0 else None


def default_theta(model: str) -> tuple[float, ...]:
    """Coefficients before any calibration: all dynamic power on the model's base feature."""
    theta = [0.0] * len(FEATURE_NAMES[model])
    theta[BASE_FEATURE[model]] = 1.0
    return tuple(theta)
