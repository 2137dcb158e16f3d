"""A simulated machine with a hidden physical ground truth, for validating the attribution models.

keck-top's models are linear in ``u``, ``u·φ³``, ``u·φ³·IPC`` and LLC misses. The
truth here is a different functional form, unknown to keck-top:

* a core's dynamic power is ``C·V(f)²·f·a(IPC)`` with an affine voltage curve
  ``V(f) = V0 + kv·f`` (so not ∝ f³) and an activity factor that *saturates* in IPC,
  ``a = a0 + a1·(1 − exp(−IPC/ipc_knee))`` (not linear);
* leakage of a running core grows as ``V^2.5``;
* each LLC miss costs uncore energy with bandwidth saturation, ``e·R / (1 + R/R_sat)``;
* the uncore draws ``k·sqrt(utilisation)`` more when anything runs (shared by busy time);
* every process's power has ±2 % unmodelled noise per interval (data-dependent switching),
  every counter a little measurement noise;
* DRAM: a background (refresh) owned by PSS, and energy per missed line that depends on
  how many lines a process writes back dirty (which no LLC-miss counter sees), ±3 % noise.

Processes of equal mean CPU time but different kinds run on their own core pairs:
compute-bound (high IPC, turbo), memory-bound (low IPC, many misses), the same
mid-IPC code at a low and at a turbo frequency, and small background processes.
Their CPU use wanders (an AR(1) walk with idle phases) so the mix changes over
time, which is what lets a node-level measurement tell them apart.

The package (and DRAM) energy advance fake powercap counters in a :class:`FakeSys`
tree, read by the real ``RaplSampler``; activity and counters come as the
``CpuActivity`` the eBPF sampler would return. ``Truth`` holds each process's true
CPU-package and DRAM watts for the interval just produced.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from keck_tui.model import SourceStatus
from keck_tui.samplers.types import (CoreFrequency, CoreSample, CounterDelta, CpuActivity, FrequencyReading,
                                     ProcessSample)

# ---- the hidden physics ------------------------------------------------------------------------
V0, KV = 0.62, 0.19e-3  # volts, volts per MHz
C_DYN = 2.1  # W per (V²·GHz) at activity factor 1
A0, A1, IPC_KNEE = 0.32, 0.95, 1.25
LEAK = 1.4  # W at 1 V, × V^2.5
E_MISS = 45e-9  # J per LLC miss in the package (uncore, mesh, IMC)
R_SAT = 2.5e8  # misses/s where the uncore saturates
UNCORE_W = 2.5  # × sqrt(utilisation)
IDLE_W = 14.0  # package with every core in deep C-states
DRAM_IDLE_W = 3.5  # DRAM background (refresh), owned by PSS
DRAM_E_MISS = 15e-9  # J per line read in the DRAM, × (1 + the kind's write-back fraction)
NOISE_REL = 0.02


def core_power(mhz: float, ipc: float) -> float:
    """True power of one running core (W): dynamic + leakage."""
    v = V0 + KV * mhz
    a = A0 + A1 * (1.0 - math.exp(-ipc / IPC_KNEE))
    return C_DYN * v * v * (mhz / 1000.0) * a + LEAK * v ** 2.5


def miss_power(rate: float) -> float:
    return E_MISS * rate / (1.0 + rate / R_SAT)


# ---- the workload ------------------------------------------------------------------------------
@dataclass
class Kind:
    pid: int
    name: str
    ipc: float
    mpki: float  # LLC misses per 1000 instructions
    cores: tuple[int, int]
    mean_u: float  # mean CPU-seconds per second
    pss_mb: int
    writeback: float = 0.2  # fraction of missed lines written back dirty (costs DRAM energy, no LLC-miss count)
    u: float = 0.0


@dataclass
class Truth:
    cpu_w: dict[int, float]  # pid -> true package watts (dynamic + leakage + misses + uncore share)
    dram_w: dict[int, float]  # pid -> true DRAM watts
    kernel_w: float
    idle_w: float
    package_w: float
    dram_total_w: float


MAIN_KINDS = ("compute", "memory", "lowfreq", "turbo")


def default_kinds(mean_u: float = 0.7) -> list[Kind]:
    return [
        Kind(101, "compute", ipc=2.7, mpki=0.3, cores=(0, 1), mean_u=mean_u, pss_mb=300),
        Kind(102, "memory", ipc=0.35, mpki=40.0, cores=(2, 3), mean_u=mean_u, pss_mb=6000, writeback=0.7),
        Kind(103, "lowfreq", ipc=1.4, mpki=2.0, cores=(4, 5), mean_u=mean_u, pss_mb=800),
        Kind(104, "turbo", ipc=1.4, mpki=2.0, cores=(0, 1), mean_u=mean_u, pss_mb=800),
        Kind(201, "bg-a", ipc=1.0, mpki=3.0, cores=(6, 7), mean_u=0.04, pss_mb=150),
        Kind(202, "bg-b", ipc=0.8, mpki=5.0, cores=(6, 7), mean_u=0.03, pss_mb=120),
    ]


@dataclass
class PhysSim:
    """One simulated 8-CPU machine; ``step(dt)`` produces the next interval."""

    sys_root: Path | None = None  # a FakeSys root to drive (None: no powercap files)
    seed: int = 1
    kinds: list[Kind] = field(default_factory=default_kinds)
    n_cpus: int = 8
    fmax: float = 3600.0
    noise: float = NOISE_REL
    dram: bool = True

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fakesys = None
        if self.sys_root is not None:
            from fakesys import FakeSys

            self.fakesys = FakeSys(self.sys_root)
            self.fakesys.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0, max_power_uw=400_000_000)
            if self.dram:
                self.fakesys.add_rapl_zone("intel-rapl:0:1", "dram", energy_uj=0)
        for k in self.kinds:
            k.u = k.mean_u
        self.t = 0

    def policy(self, cpu: int) -> str:
        return {0: "turbo", 1: "turbo", 4: "low", 5: "low"}.get(cpu, "normal")

    def _walk(self, k: Kind) -> float:
        """AR(1) CPU use around the kind's mean, with idle phases; capped at its two cores."""
        rng = self.rng
        if rng.random() < 0.04:
            return 0.0  # an idle phase (waiting on I/O, a lock, the next request)
        k.u = max(0.0, min(1.9, k.mean_u + 0.85 * (k.u - k.mean_u) + rng.gauss(0.0, 0.28 * k.mean_u)))
        return k.u

    def step(self, dt: float = 1.0) -> tuple[CpuActivity, FrequencyReading, Truth]:
        rng = self.rng
        self.t += 1
        busy = [0.0] * self.n_cpus
        placed: list[tuple[Kind, dict[int, float]]] = []
        for k in self.kinds:
            want = self._walk(k) * dt
            split = rng.uniform(0.35, 0.65)
            per = {k.cores[0]: want * split, k.cores[1]: want * (1 - split)}
            for c in list(per):  # a core has dt seconds; what does not fit is lost (the process waits)
                take = max(0.0, min(per[c], 0.97 * dt - busy[c]))
                per[c] = take
                busy[c] += take
            placed.append((k, {c: s for c, s in per.items() if s > 1e-6}))
        irq = 0.006 * dt
        busy[0] += irq
        util = sum(busy) / (self.n_cpus * dt)
        # frequencies: turbo cores drop from 3.6 GHz as the package gets busy (all-core turbo),
        # low cores are capped, the rest follow their load (a governor)
        mhz = []
        for c in range(self.n_cpus):
            pol = self.policy(c)
            if pol == "turbo":
                f = self.fmax - 700.0 * util
            elif pol == "low":
                f = 1200.0
            else:
                f = 1500.0 + 1300.0 * min(1.0, busy[c] / dt) - 300.0 * util
            mhz.append(f * rng.uniform(0.99, 1.01))
        procs: list[ProcessSample] = []
        cpu_w: dict[int, float] = {}
        dram_w: dict[int, float] = {}
        core_cycles = [0.0] * self.n_cpus
        core_insn = [0.0] * self.n_cpus
        core_miss = [0.0] * self.n_cpus
        pss_total = sum(k.pss_mb for k in self.kinds)
        for k, per in placed:
            counters: dict[int, CounterDelta] = {}
            energy = 0.0
            misses_p = 0.0
            phase_ipc = k.ipc * rng.uniform(0.93, 1.07)
            for c, s in per.items():
                cycles = mhz[c] * 1e6 * s
                insn = phase_ipc * cycles
                misses = k.mpki * insn / 1000.0 * rng.uniform(0.9, 1.1)
                rate = misses / s if s > 0 else 0.0
                energy += (core_power(mhz[c], phase_ipc) + miss_power(rate)) * s
                misses_p += misses
                noisy = CounterDelta(cycles=cycles * rng.gauss(1.0, 0.003),
                                     instructions=insn * rng.gauss(1.0, 0.003),
                                     llc_misses=misses * rng.gauss(1.0, 0.01), ref_cycles=2400e6 * s)
                counters[c] = noisy
                core_cycles[c] += noisy.cycles or 0.0
                core_insn[c] += noisy.instructions or 0.0
                core_miss[c] += noisy.llc_misses or 0.0
            cpu_w[k.pid] = energy / dt * (1.0 + rng.gauss(0.0, self.noise))
            dram_w[k.pid] = DRAM_E_MISS * (1.0 + k.writeback) * misses_p / dt * (1.0 + rng.gauss(0.0, 0.03))
            procs.append(ProcessSample(pid=k.pid, name=k.name, cmd=k.name, cpu_s=sum(per.values()), per_cpu_s=per,
                                       pss_bytes=k.pss_mb << 20, rss_bytes=k.pss_mb << 20,
                                       counters=counters or None, start_time=float(k.pid)))
        # irq/softirq on core 0 (kernel)
        irq_cycles = mhz[0] * 1e6 * irq
        kernel_w = core_power(mhz[0], 1.0) * irq / dt
        core_cycles[0] += irq_cycles
        core_insn[0] += irq_cycles * 1.0
        # the uncore's extra power while anything runs: shared by busy time
        uncore = UNCORE_W * math.sqrt(util)
        total_busy = sum(busy)
        if total_busy > 0:
            for k, per in placed:
                cpu_w[k.pid] += uncore * sum(per.values()) / total_busy
            kernel_w += uncore * irq / total_busy
        for k in self.kinds:
            dram_w[k.pid] += DRAM_IDLE_W * k.pss_mb / pss_total
        package = IDLE_W + math.fsum(cpu_w.values()) + kernel_w
        dram_total = math.fsum(dram_w.values())
        cores = tuple(CoreSample(cpu=c, busy_s=busy[c], total_s=dt, irq_s=irq if c == 0 else 0.0,
                                 freq_mhz=mhz[c], freq_nominal=False,
                                 counters=CounterDelta(cycles=core_cycles[c], instructions=core_insn[c],
                                                       llc_misses=core_miss[c], ref_cycles=2400e6 * busy[c]))
                      for c in range(self.n_cpus))
        activity = CpuActivity(SourceStatus("ebpf", "ok", "simulated"), dt, processes=tuple(procs), cores=cores,
                               per_cpu_exact=True)
        freq = FrequencyReading(SourceStatus("cpufreq", "ok", "simulated"),
                                tuple(CoreFrequency(c, mhz[c], False, self.fmax) for c in range(self.n_cpus)))
        if self.fakesys is not None:
            self.fakesys.add_energy("intel-rapl:0", package * dt)
            if self.dram:
                self.fakesys.add_energy("intel-rapl:0:1", dram_total * dt)
        return activity, freq, Truth(cpu_w, dram_w, kernel_w, IDLE_W, package, dram_total)


def without_counters(activity: CpuActivity) -> CpuActivity:
    """The same interval as a machine without a PMU sees it."""
    return replace(activity, processes=tuple(replace(p, counters=None) for p in activity.processes),
                   cores=tuple(replace(c, counters=None) for c in activity.cores))


# ---- the real collector over the simulated machine ---------------------------------------------
@dataclass
class RowScore:
    """One process in one interval: keck-top's figures beside the truth."""

    pid: int
    cpu_w: float  # attributed CPU watts (components["cpu"])
    cpu_lo: float
    cpu_hi: float
    true_cpu_w: float
    dram_w: float
    true_dram_w: float
    model_kind: str  # the bound's model term: "measured" | "spread"


@dataclass
class SimRun:
    model: str  # the model keck-top ran
    reason: str
    scores: list[RowScore]
    calibration: dict
    warnings: tuple[str, ...]
    names: dict[int, str]
    true_idle_w: float
    idle_w: float


class _Feed:
    """Fake activity and frequency samplers: hand the collector what the simulation produced."""

    def __init__(self) -> None:
        self.activity: CpuActivity | None = None
        self.freq: FrequencyReading | None = None
        self.name = "ebpf"

    def sample(self) -> CpuActivity:
        return self.activity if self.activity is not None else CpuActivity(SourceStatus("ebpf", "ok", "warming up"), 0.0)


class _FreqFeed:
    name = "cpufreq"

    def __init__(self, feed: _Feed) -> None:
        self.feed = feed

    def sample(self) -> FrequencyReading:
        return self.feed.freq if self.feed.freq is not None else FrequencyReading(SourceStatus("cpufreq", "ok"))


class _NoGroups:
    def group_of(self, process: ProcessSample) -> tuple:
        return ()


def run_collector(tmp: Path, model: str = "auto", *, seed: int = 1, steps: int = 900, warmup: int = 300,
                  counters: bool = True, state_dir: Path | None = None, sim: PhysSim | None = None,
                  config_kwargs: dict | None = None, on_snapshot=None) -> SimRun:  # noqa: ANN001
    """Drive keck-top's real Collector (RaplSampler on the fake powercap tree) over the simulation."""
    from keck_tui.attribution.engine import AttributionConfig
    from keck_tui.clock import FakeClock
    from keck_tui.collector import Collector
    from keck_tui.samplers.rapl import RaplSampler

    sim = sim or PhysSim(sys_root=tmp / "sys", seed=seed)
    clock = FakeClock()
    feed = _Feed()
    collector = Collector(activity=feed, grouper=_NoGroups(), host="sim", power=[RaplSampler(tmp / "sys", clock)],
                          frequency=_FreqFeed(feed), config=AttributionConfig(model=model, **(config_kwargs or {})),
                          clock=clock, state_dir=state_dir)
    collector.prime()
    scores: list[RowScore] = []
    snap = None
    truth = None
    for step in range(steps):
        act, freq, truth = sim.step(1.0)
        feed.activity = act if counters else without_counters(act)
        feed.freq = freq
        clock.advance(1.0)
        snap = collector.collect()
        if on_snapshot is not None:
            on_snapshot(snap, truth)
        if step < warmup:
            continue
        for _, row in snap.root.walk():
            if row.level != "process" or row.pid not in truth.cpu_w:
                continue
            cores = [c for c in row.children if c.level == "core"]
            cpu = (row.components or {}).get("cpu", 0.0)
            bound = (row.extra or {}).get("bound") or {}
            scores.append(RowScore(row.pid, cpu, math.fsum(c.watts_lo for c in cores),
                                   math.fsum(c.watts_hi for c in cores), truth.cpu_w[row.pid],
                                   (row.components or {}).get("dram", 0.0), truth.dram_w[row.pid],
                                   str(bound.get("model", ""))))
    collector.close()
    assert snap is not None and truth is not None
    return SimRun(model=snap.model, reason=str(snap.extra.get("model_reason", "")), scores=scores,
                  calibration=dict(snap.extra.get("calibration") or {}), warnings=snap.warnings,
                  names={k.pid: k.name for k in sim.kinds}, true_idle_w=truth.idle_w,
                  idle_w=float(snap.extra.get("idle_watts") or 0.0))


def energy_errors(run: SimRun) -> dict[int, float]:
    """Per process: (attributed − true) CPU energy over the scored intervals, relative to the truth."""
    att: dict[int, float] = {}
    tru: dict[int, float] = {}
    for s in run.scores:
        att[s.pid] = att.get(s.pid, 0.0) + s.cpu_w
        tru[s.pid] = tru.get(s.pid, 0.0) + s.true_cpu_w
    return {pid: (att[pid] - tru[pid]) / tru[pid] for pid in att if tru[pid] > 0}


def coverage(run: SimRun, pids: set[int] | None = None) -> float:
    rows = [s for s in run.scores if pids is None or s.pid in pids]
    return sum(s.cpu_lo - 1e-9 <= s.true_cpu_w <= s.cpu_hi + 1e-9 for s in rows) / max(1, len(rows))


def median_half_width(run: SimRun, pids: set[int] | None = None) -> float:
    widths = sorted((s.cpu_hi - s.cpu_lo) / 2 / s.cpu_w for s in run.scores
                    if s.cpu_w > 0 and (pids is None or s.pid in pids))
    return widths[len(widths) // 2] if widths else math.nan
