"""The attribution engine: readings over one interval → the power tree.

Pure functions, no I/O. The tree is node → group levels (slice/service,
namespace/pod/container) → process → core, plus the synthetic rows
``(kernel)``, ``(idle)``, ``(platform)`` and ``(residual)`` that make every
level's children sum exactly to their parent:

* CPU watts (Σ RAPL packages, or the estimate) minus the idle baseline is the
  *active* power. Each process gets the active power times its share of the
  busy CPU capacity under the model: ``cpu-time`` (on-CPU seconds) or
  ``frequency-weighted`` (seconds × (f/fmax)³ per core: dynamic power ∝ C·V²·f
  with V roughly ∝ f). Kernel threads and irq/softirq time → ``(kernel)``.
* DRAM watts are split by PSS (RSS when PSS is unknown).
* GPU watts are split by each process's SM-utilisation share; the rest of a
  device's power is idle/unattributed.
* Idle policy: ``separate`` puts the baseline in ``(idle)``; ``proportional``
  shares it by activity; ``none`` leaves it (and unattributed GPU power) out of
  the node's watts, which then are *active* power only.
* Whatever measured power no row explains is ``(residual)``.

Bounds add, per row: the source's accuracy on its share, the spread between
``cpu-time`` and ``frequency-weighted``, procfs tick granularity, and the idle
baseline's uncertainty. Estimated figures add ±40 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

from keck_tui.attribution.estimate import ESTIMATE_RELATIVE_ERROR, estimate_cpu_power
from keck_tui.attribution.idle import IdleEstimate
from keck_tui.attribution.power import Component, NodePower, combine, resolve_node_power
from keck_tui.common.ids import safe_id
from keck_tui.hierarchy.types import GroupLevel, GroupPath
from keck_tui.model import KIND_ESTIMATED, Row
from keck_tui.samplers.types import (CpuActivity, FrequencyReading, GpuReading, PowerReading,
                                     ProcessSample)

if TYPE_CHECKING:
    from keck_tui.estimate.profile import CpuPowerProfile, MemoryEstimate

MODEL_CPU_TIME = "cpu-time"
MODEL_FREQ = "frequency-weighted"
MODEL_FULL = "full"

NOTE_IDLE = "power the node draws doing nothing: the CPU idle baseline ({idle}){gpu}"
NOTE_KERNEL = "kernel threads, interrupts and softirqs"
NOTE_PLATFORM = ("fans, PSU loss, disks, NICs: the {what} total minus CPU, DRAM and GPU")
NOTE_RESIDUAL = ("measured power no process accounts for: busy time of processes that exited "
                 "between samples or were not readable, DRAM of processes without memory data, "
                 "GPU work of processes not visible here, rounding")
NOTE_DRAM = "this process's share of DRAM power, by PSS"
NOTE_SMALL_DRAM = ("DRAM share (by PSS) of {n} processes that used no CPU this interval, each below "
                   "{pct:g} % of the node's DRAM power")
NOTE_THREADS = "the VM process's other threads: main loop, emulator and I/O threads"
#: Node totals that are measured as a whole (the CPU split inside may be estimated).
WIDE_TOTALS = ("bmc", "psys", "host")


@dataclass(frozen=True)
class AttributionConfig:
    model: str = "auto"  # auto | cpu-time | frequency-weighted | full
    idle: str = "separate"  # separate | proportional | none
    idle_watts: float | None = None  # configured CPU idle baseline
    tdp: float | None = None  # for the estimate when no sensor exists
    tick_s: float = 0.01  # procfs accounting granularity per process per interval
    cpu_profile: "CpuPowerProfile | None" = None  # the estimate from data (keck_tui/estimate)
    memory: "MemoryEstimate | None" = None  # DRAM watts from the memory size, when no DRAM sensor
    # A process that used no CPU gets a row for its DRAM share only from this share of the
    # node's DRAM up; smaller ones are summed in one (dram) row per group.
    dram_row_min_share: float = 0.005


@dataclass(frozen=True)
class AttributionInput:
    host: str
    interval_s: float
    activity: CpuActivity
    power: tuple[PowerReading, ...] = ()
    gpus: tuple[GpuReading, ...] = ()
    frequency: FrequencyReading | None = None
    groups: Mapping[int, GroupPath] = field(default_factory=dict)
    learned_idle: IdleEstimate | None = None  # from the collector's IdleLearner
    hardware_counters: bool = False


@dataclass(frozen=True)
class Attribution:
    root: Row  # joules = this interval's energy; the collector accumulates
    model: str
    model_reason: str
    estimated: bool  # no measured power at all: every figure is a guess
    node_power: NodePower
    cpu: Component  # the CPU watts used (measured or estimated)
    idle: IdleEstimate
    utilisation: float  # busy fraction of all logical CPUs
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _CoreInfo:
    mhz: float | None
    nominal: bool
    factor: float  # mean (f/fmax)³ while busy on this core


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


def _core_infos(activity: CpuActivity, frequency: FrequencyReading | None) -> dict[int, _CoreInfo]:
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
    infos: dict[int, _CoreInfo] = {}
    for core in activity.cores:
        mhz, nominal, _ = freqs.get(core.cpu, (None, True, None))
        if core.freq_cubed_weight is not None and core.busy_s > 0:
            factor = core.freq_cubed_weight / core.busy_s
        elif mhz and fmax and not nominal:
            factor = (mhz / fmax) ** 3
        else:
            factor = 1.0
        infos[core.cpu] = _CoreInfo(mhz=mhz, nominal=nominal, factor=factor)
    return infos


def _process_weight(p: ProcessSample, infos: Mapping[int, _CoreInfo], mean_factor: float) -> float:
    if not p.per_cpu_s:
        return p.cpu_s * mean_factor
    return math.fsum(s * (infos[c].factor if c in infos else mean_factor) for c, s in p.per_cpu_s.items())


class _Node:
    """Mutable row under construction (frozen into a Row at the end)."""

    __slots__ = ("level", "id", "name", "children", "index", "watts", "err", "cpu_s", "freq_num",
                 "freq_den", "nominal", "comp", "gpu", "extra", "estimated", "sources")

    def __init__(self, level: str, id_: str, name: str, **extra: object) -> None:
        self.level, self.id, self.name = level, id_, name
        self.children: list[_Node] = []
        self.index: dict[str, _Node] = {}
        self.watts = 0.0
        self.err = 0.0
        self.cpu_s = 0.0
        self.freq_num = 0.0
        self.freq_den = 0.0
        self.nominal = False
        self.comp: dict[str, float] = {}
        self.gpu = 0.0
        self.extra = extra
        self.estimated = False
        self.sources: tuple[str, ...] = ()

    def child(self, level: str, id_: str, name: str, **extra: object) -> "_Node":
        node = self.index.get(id_)
        if node is None:
            node = _Node(level, id_, name, **extra)
            self.index[id_] = node
            self.children.append(node)
        return node

    def finish(self, interval_s: float) -> Row:
        """Freeze; groups take the sums of their children."""
        rows = tuple(c.finish(interval_s) for c in self.children)
        if rows and self.level not in ("node",):
            self.watts = math.fsum(r.watts for r in rows)
            lo = math.fsum(r.watts_lo for r in rows)
            hi = math.fsum(r.watts_hi for r in rows)
        else:
            lo, hi = max(0.0, self.watts - self.err), self.watts + self.err
        if rows and self.level not in ("process", "node"):
            self.cpu_s = math.fsum(r.cpu_s or 0.0 for r in rows)
            for c in self.children:
                self.freq_num += c.freq_num
                self.freq_den += c.freq_den
                self.nominal = self.nominal or c.nominal
                for k, v in c.comp.items():
                    self.comp[k] = self.comp.get(k, 0.0) + v
                self.gpu += c.gpu
                self.estimated = self.estimated or c.estimated
        lo = min(lo, self.watts)
        hi = max(hi, self.watts)
        freq = self.freq_num / self.freq_den if self.freq_den > 0 else None
        has_time = self.level != "synthetic" or self.cpu_s > 0
        extra = {k: v for k, v in self.extra.items() if v is not None}
        return Row(
            level=self.level, id=self.id, name=self.name,
            watts=self.watts, watts_lo=lo, watts_hi=hi,
            joules=self.watts * interval_s,
            freq_mhz=freq, freq_nominal=(self.nominal if freq is not None else None),
            cpu_util=(100.0 * self.cpu_s / interval_s) if interval_s > 0 and has_time else None,
            cpu_s=self.cpu_s if has_time else None,
            estimated=self.estimated,
            components=({k: v for k, v in self.comp.items()} if self.comp else None),
            gpu_watts=(self.gpu if self.gpu > 0 else None),
            sources=self.sources or None,
            children=rows,
            **extra,  # type: ignore[arg-type]
        )


def attribute(inp: AttributionInput, config: AttributionConfig = AttributionConfig()) -> Attribution:
    """Build the node's power tree for one interval."""
    interval = inp.interval_s if inp.interval_s > 0 else inp.activity.interval_s
    interval = interval if interval > 0 else 1.0
    activity = inp.activity
    warnings: list[str] = []
    node_power = resolve_node_power(inp.power, inp.gpus)
    warnings.extend(node_power.warnings)

    infos = _core_infos(activity, inp.frequency)
    live_freq = any(not i.nominal and i.mhz for i in infos.values()) or any(
        c.freq_cubed_weight is not None for c in activity.cores)
    model, model_reason, model_warnings = choose_model(config.model, live_freq, inp.hardware_counters)
    warnings.extend(model_warnings)

    busy_s = math.fsum(c.busy_s for c in activity.cores)
    capacity_s = math.fsum(c.total_s for c in activity.cores) or interval * max(1, len(activity.cores))
    utilisation = min(1.0, busy_s / capacity_s) if capacity_s > 0 else 0.0
    n_cpus = max(1, len(activity.cores))

    # --- CPU watts and the idle baseline -----------------------------------------------------
    measured_any = node_power.total_source != "none"
    gpu_c = node_power.gpu
    dram_c = node_power.dram
    platform_c = node_power.platform
    total = node_power.total
    cpu_estimated = node_power.cpu is None
    if not cpu_estimated:
        cpu = node_power.cpu
        assert cpu is not None
    else:
        est = estimate_cpu_power(busy_s, capacity_s, n_cpus, config.tdp, config.idle_watts,
                                 profile=config.cpu_profile)
        cpu_w = est.watts
        cpu_rel_est = est.watts_error / cpu_w if cpu_w > 0 else est.relative_error
        wide_total = node_power.total_source in WIDE_TOTALS
        if wide_total:
            # A node total (BMC, psys) but no CPU domain: the estimate splits the total,
            # capped by what the other components leave.
            room = total.watts - (gpu_c.watts if gpu_c else 0.0) - (dram_c.watts if dram_c else 0.0)
            cpu_w = max(0.0, min(cpu_w, room))
            platform_c = Component(max(0.0, room - cpu_w), total.error_w + cpu_w * cpu_rel_est,
                                   total.sources, estimated=True)
        cpu = Component(cpu_w, cpu_w * cpu_rel_est, ("estimate",), estimated=True)
        if not wide_total:
            # The total is only the sum of what was measured (GPUs, DRAM, or nothing):
            # the estimated CPU adds to it, and with no DRAM sensor the DRAM estimate too.
            measured_parts = total if measured_any else None
            total = combine(measured_parts, cpu) or cpu
            if dram_c is None and config.memory is not None and config.memory.watts > 0:
                dram_c = Component(config.memory.watts, config.memory.error_w, ("estimate",), estimated=True)
                total = combine(total, dram_c) or dram_c

    if config.idle_watts is not None:
        idle = IdleEstimate(config.idle_watts, 0.0, "configured")
    elif cpu_estimated:
        est = estimate_cpu_power(busy_s, capacity_s, n_cpus, config.tdp, None, profile=config.cpu_profile)
        idle = IdleEstimate(est.idle_watts, est.idle_error, "estimate-model")
    elif inp.learned_idle is not None:
        idle = inp.learned_idle
    else:
        idle = IdleEstimate(0.0, 0.0, "unknown")
    idle_cpu = min(max(0.0, idle.watts), cpu.watts)
    idle_err = min(idle.error_w, cpu.watts)
    active = cpu.watts - idle_cpu
    cpu_rel = cpu.rel_error

    # --- shares of the busy capacity ---------------------------------------------------------
    core_weight = {c.cpu: c.busy_s * infos[c.cpu].factor for c in activity.cores}
    mean_factor = (math.fsum(core_weight.values()) / busy_s) if busy_s > 0 else 1.0
    users = [p for p in activity.processes if not p.kernel]
    kernels = [p for p in activity.processes if p.kernel]

    def shares(weighted: bool) -> tuple[dict[int, float], float]:
        if weighted:
            w = {p.pid: _process_weight(p, infos, mean_factor) for p in users}
            wk = math.fsum(_process_weight(p, infos, mean_factor) for p in kernels) + math.fsum(
                c.irq_s * infos[c.cpu].factor for c in activity.cores)
            cap = math.fsum(core_weight.values())
        else:
            w = {p.pid: p.cpu_s for p in users}
            wk = math.fsum(p.cpu_s for p in kernels) + math.fsum(c.irq_s for c in activity.cores)
            cap = busy_s
        denom = max(cap, math.fsum(w.values()) + wk)
        if denom <= 0:
            return {pid: 0.0 for pid in w}, 0.0
        return {pid: v / denom for pid, v in w.items()}, wk / denom

    share_time, kshare_time = shares(False)
    share_freq, kshare_freq = shares(True)
    share, kshare = (share_freq, kshare_freq) if model == MODEL_FREQ else (share_time, kshare_time)
    # ±1 accounting tick per process moves at most this share of the busy capacity (≤ 1).
    tick_share = min(1.0, config.tick_s / busy_s) if (busy_s > 0 and not activity.per_cpu_exact) else 0.0

    # Proportional idle needs activity to share by; with none, idle stays in (idle).
    proportional = config.idle == "proportional" and (any(v > 0 for v in share.values()) or kshare > 0)
    attributed_cpu = active + (idle_cpu if proportional else 0.0)
    if idle.method == "estimate-model":
        # Estimated total and idle come from one model (the same data): their errors move
        # together, so the active part carries the total's relative error, not the sum of both.
        attributed_err = attributed_cpu * (cpu.rel_error if cpu.watts > 0 else ESTIMATE_RELATIVE_ERROR)
    else:
        attributed_err = cpu.error_w + (idle_err if not proportional else 0.0)

    # --- DRAM by PSS ---------------------------------------------------------------------------
    mem = {p.pid: float(p.pss_bytes if p.pss_bytes is not None else (p.rss_bytes or 0)) for p in users}
    mem_total = math.fsum(mem.values())
    dram_w = dram_c.watts if dram_c else 0.0
    dram_rel = dram_c.rel_error if dram_c else 0.0

    # --- GPUs ---------------------------------------------------------------------------------
    user_pids = {p.pid for p in users}
    gpu_of: dict[int, dict[int, tuple[float, float]]] = {}  # pid -> device -> (watts, err)
    gpu_unattributed = 0.0
    gpu_unattributed_err = 0.0
    for reading in inp.gpus:
        if not reading.source.ok:
            continue
        for dev in reading.devices:
            total_share = math.fsum(max(0.0, gp.sm_share) for gp in dev.processes)
            scale = 1.0 / total_share if total_share > 1.0 else 1.0
            used = 0.0
            for gp in dev.processes:
                fraction = max(0.0, gp.sm_share) * scale
                w = dev.watts * fraction
                used += fraction
                if gp.pid in user_pids:
                    prev = gpu_of.setdefault(gp.pid, {}).get(dev.index, (0.0, 0.0))
                    gpu_of[gp.pid][dev.index] = (prev[0] + w, prev[1] + dev.accuracy_w * fraction)
            rest_fraction = max(0.0, 1.0 - used)
            gpu_unattributed += dev.watts * rest_fraction
            gpu_unattributed_err += dev.accuracy_w * rest_fraction

    # --- build the tree ---------------------------------------------------------------------
    # A guest's total from a host that itself had no sensor (--host-power) is an estimate too.
    host_estimated = node_power.total_source == "host" and any(
        r.source.name == "host" and r.source.ok and r.source.kind == KIND_ESTIMATED for r in inp.power)
    est_flag = cpu_estimated or host_estimated
    small_dram: dict[int, tuple[_Node, list[float]]] = {}  # parent -> (node, [watts, processes])
    root = _Node("node", safe_id(inp.host), inp.host)
    root.sources = tuple(dict.fromkeys(total.sources + cpu.sources))
    cpu_sources = cpu.sources
    for p in users:
        cpu_part = attributed_cpu * share.get(p.pid, 0.0)
        spread = attributed_cpu * abs(share_time.get(p.pid, 0.0) - share_freq.get(p.pid, 0.0))
        tick_err = attributed_cpu * tick_share if p.cpu_s > 0 else 0.0
        # The CPU reading's error (and the idle baseline's, which moves watts between
        # (idle) and the processes) lands on the processes in proportion to their share.
        cpu_err = share.get(p.pid, 0.0) * attributed_err + spread + tick_err
        dram_part = dram_w * mem[p.pid] / mem_total if mem_total > 0 else 0.0
        gpus = gpu_of.get(p.pid, {})
        if cpu_part <= 0 and dram_part <= 0 and not gpus and p.cpu_s <= 0:
            continue
        parent = root
        for level in inp.groups.get(p.pid, ()):
            parent = parent.child(level.level, safe_id(level.id), level.name,
                                  pod_uid=level.pod_uid, namespace=level.namespace,
                                  container_id=level.container_id,
                                  labels=dict(level.labels) or None,
                                  extra=dict(level.extra) or None)
        if cpu_part <= 0 and not gpus and p.cpu_s <= 0 and dram_part < config.dram_row_min_share * dram_w:
            # Idle this interval and a small share of DRAM: summed per group, not a row each
            # (with a DRAM figure every process would be a row: 1,000 rows where 20 are busy).
            small = small_dram.setdefault(id(parent), (parent, [0.0, 0]))[1]
            small[0] += dram_part
            small[1] += 1
            continue
        proc = parent.child("process", f"pid-{p.pid}", f"{p.name} ({p.pid})", pid=p.pid,
                            cmd=p.cmd or p.name)
        proc.cpu_s = p.cpu_s
        proc.estimated = est_flag
        proc.sources = cpu_sources + ((dram_c.sources if dram_c and dram_part > 0 else ()))
        if p.threads:
            _add_threads(proc, p, cpu_part, cpu_err, est_flag)
        else:
            _add_cores(proc, p, cpu_part, cpu_err, infos, est_flag)
        # A process with memory but no CPU or GPU power this interval is one row, without a
        # (dram) child: on a node with a DRAM figure every process is such a row, and the child
        # would double the tree for nothing.
        memory_only = dram_part > 0 and cpu_part <= 0 and not gpus and not proc.children
        if dram_part > 0 and not memory_only:
            d = proc.child("synthetic", "(dram)", "(dram)", note=NOTE_DRAM)
            d.watts, d.err = dram_part, dram_part * dram_rel
            d.comp = {"dram": dram_part}
            d.estimated = bool(dram_c and dram_c.estimated)
        for index, (gw, ge) in sorted(gpus.items()):
            g = proc.child("gpu", f"gpu-{index}", f"gpu {index}")
            g.watts, g.err, g.gpu = gw, ge, gw
            g.comp = {"gpu": gw}
        proc.comp = {"cpu": cpu_part}
        if dram_part > 0:
            proc.comp["dram"] = dram_part
        if gpus:
            proc.comp["gpu"] = math.fsum(gw for gw, _ in gpus.values())
            proc.gpu = proc.comp["gpu"]
            proc.sources = proc.sources + tuple(r.source.name for r in inp.gpus if r.source.ok)
        if memory_only:
            proc.watts, proc.err = dram_part, dram_part * dram_rel
        elif not proc.children:
            proc.watts, proc.err = cpu_part, cpu_err
        proc.sources = tuple(dict.fromkeys(proc.sources))  # RAPL gives both cpu and dram

    for parent, (watts, count) in small_dram.values():
        d = parent.child("synthetic", "(dram)", "(dram)", note=NOTE_SMALL_DRAM.format(
            n=int(count), pct=100 * config.dram_row_min_share))
        d.watts, d.err = watts, watts * dram_rel
        d.comp = {"dram": watts}
        d.estimated = bool(dram_c and dram_c.estimated)

    kernel_cpu_s = math.fsum(p.cpu_s for p in kernels) + math.fsum(c.irq_s for c in activity.cores)
    kernel_w = attributed_cpu * kshare
    synthetic: list[_Node] = []
    if kernel_w > 0 or kernel_cpu_s > 0:
        k = _Node("synthetic", "(kernel)", "(kernel)", note=NOTE_KERNEL)
        k.watts = kernel_w
        k.err = kshare * attributed_err + attributed_cpu * abs(kshare_time - kshare_freq)
        k.cpu_s = kernel_cpu_s
        k.comp = {"cpu": kernel_w}
        k.estimated = est_flag
        synthetic.append(k)

    idle_included = config.idle != "none"
    idle_row_w = (0.0 if proportional else idle_cpu) + gpu_unattributed
    if config.idle == "separate" or (idle_included and idle_row_w > 0):
        gpu_text = (f"; GPU power no process used ({gpu_unattributed:.1f} W)" if gpu_unattributed > 0 else "")
        idle_desc = f"{idle_cpu:.1f} W, {idle.method}" if not proportional else "shared by activity"
        i = _Node("synthetic", "(idle)", "(idle)", note=NOTE_IDLE.format(idle=idle_desc, gpu=gpu_text))
        i.watts = idle_row_w if idle_included else 0.0
        i.err = (0.0 if proportional else idle_err) + gpu_unattributed_err
        i.comp = {k: v for k, v in (("cpu", 0.0 if proportional else idle_cpu),
                                    ("gpu", gpu_unattributed)) if v > 0}
        i.estimated = est_flag
        synthetic.append(i)

    if platform_c is not None and platform_c.watts > 0:
        what = {"bmc": "BMC", "psys": "RAPL psys", "host": "host-measured VM"}.get(node_power.total_source, "node")
        pl = _Node("synthetic", "(platform)", "(platform)", note=NOTE_PLATFORM.format(what=what))
        pl.watts, pl.err = platform_c.watts, platform_c.error_w
        pl.comp = {"platform": platform_c.watts}
        pl.estimated = platform_c.estimated
        synthetic.append(pl)

    node_watts = total.watts
    if not idle_included:
        node_watts = max(0.0, total.watts - idle_cpu - gpu_unattributed)
    others = [n.finish(interval) for n in root.children] + [n.finish(interval) for n in synthetic]
    residual_w = node_watts - math.fsum(r.watts for r in others)
    if abs(residual_w) <= 1e-9 * max(1.0, node_watts):
        residual_w = 0.0  # rounding: no "(residual) 4e-16 W" row (the node sums its rows exactly)
    if residual_w < 0:
        warnings.append(f"attributed {-residual_w:.3f} W more than measured; check the sources")
    rows = others
    if residual_w != 0.0:
        res_err = abs(residual_w) * max(cpu_rel, total.rel_error)
        res = Row(level="synthetic", id="(residual)", name="(residual)", watts=residual_w,
                  watts_lo=max(0.0, residual_w - res_err), watts_hi=residual_w + res_err,
                  joules=residual_w * interval, note=NOTE_RESIDUAL, estimated=est_flag)
        rows = others + [res]

    node_err = total.error_w + (idle_err if not idle_included else 0.0)
    comps = {"cpu": cpu.watts if idle_included else active}
    if dram_c:
        comps["dram"] = dram_c.watts
    if gpu_c:
        comps["gpu"] = gpu_c.watts if idle_included else gpu_c.watts - gpu_unattributed
    if platform_c is not None:
        comps["platform"] = platform_c.watts
    freq_num = math.fsum(c.busy_s * infos[c.cpu].mhz for c in activity.cores if infos[c.cpu].mhz)
    freq_den = math.fsum(c.busy_s for c in activity.cores if infos[c.cpu].mhz)
    if freq_den <= 0:
        mhzs = [i.mhz for i in infos.values() if i.mhz]
        freq_num, freq_den = (math.fsum(mhzs), float(len(mhzs))) if mhzs else (0.0, 0.0)
    node_row = Row(
        level="node", id=root.id, name=inp.host,
        watts=math.fsum(r.watts for r in rows) if rows else node_watts,
        watts_lo=max(0.0, node_watts - node_err), watts_hi=node_watts + node_err,
        joules=node_watts * interval,
        freq_mhz=(freq_num / freq_den) if freq_den > 0 else None,
        freq_nominal=(any(i.nominal for i in infos.values()) if freq_den > 0 else None),
        cpu_util=100.0 * busy_s / interval, cpu_s=busy_s,
        # A BMC or psys total is measured even when the CPU split inside it is estimated.
        estimated=(cpu_estimated and node_power.total_source not in WIDE_TOTALS) or host_estimated,
        components=comps,
        gpu_watts=(gpu_c.watts if gpu_c else None),
        sources=root.sources or None,
        children=tuple(rows),
    )
    if node_row.watts_lo > node_row.watts or node_row.watts_hi < node_row.watts:
        node_row = _widen(node_row)
    return Attribution(root=node_row, model=model, model_reason=model_reason,
                       estimated=not measured_any or host_estimated, node_power=node_power, cpu=cpu, idle=idle,
                       utilisation=utilisation, warnings=tuple(warnings))


def _widen(row: Row) -> Row:
    from dataclasses import replace
    return replace(row, watts_lo=min(row.watts_lo, row.watts), watts_hi=max(row.watts_hi, row.watts))


def _add_cores(proc: _Node, p: ProcessSample, cpu_part: float, cpu_err: float,
               infos: Mapping[int, _CoreInfo], estimated: bool) -> None:
    """Core rows under a process: its CPU watts split by where it ran (weighted by the model)."""
    per = {c: s for c, s in p.per_cpu_s.items() if s > 0}
    if cpu_part <= 0 and not per:
        return
    if not per:
        if cpu_part > 0:
            c = proc.child("synthetic", "(cpu)", "(cpu)", note="CPU power with no per-core data")
            c.watts, c.err, c.estimated = cpu_part, cpu_err, estimated
            c.comp = {"cpu": cpu_part}
        return
    weights = {c: s * (infos[c].factor if c in infos else 1.0) for c, s in per.items()}
    wsum = math.fsum(weights.values())
    for cpu_index in sorted(per):
        frac = weights[cpu_index] / wsum if wsum > 0 else 1.0 / len(per)
        info = infos.get(cpu_index)
        core = proc.child("core", f"core-{cpu_index}", f"core {cpu_index}", cpu=cpu_index)
        core.watts = cpu_part * frac
        core.err = cpu_err * frac
        core.cpu_s = per[cpu_index]
        core.estimated = estimated
        core.comp = {"cpu": core.watts}
        if info is not None and info.mhz:
            core.freq_num = info.mhz * per[cpu_index]
            core.freq_den = per[cpu_index]
            core.nominal = info.nominal
    # the process row's own time/frequency summary
    proc.freq_num = math.fsum(c.freq_num for c in proc.children if c.level == "core")
    proc.freq_den = math.fsum(c.freq_den for c in proc.children if c.level == "core")
    proc.nominal = any(c.nominal for c in proc.children if c.level == "core")


def _add_threads(proc: _Node, p: ProcessSample, cpu_part: float, cpu_err: float, estimated: bool) -> None:
    """Thread rows under a VM process: one per vCPU thread ("CPU n/KVM"), the rest together.

    The process's CPU watts are split by each thread's on-CPU seconds; the last row takes what
    rounding leaves, so the rows sum to the process's CPU watts exactly.
    """
    from keck_tui.hierarchy.vms import VCPU_THREAD

    if cpu_part <= 0 or p.cpu_s <= 0 or not p.threads:
        return
    vcpus: dict[int, tuple[str, float]] = {}
    for t in p.threads:
        m = VCPU_THREAD.match(t.name)
        if m and t.cpu_s > 0:
            n = int(m.group(1))
            prev = vcpus.get(n, (t.name, 0.0))
            vcpus[n] = (t.name, prev[1] + t.cpu_s)
    vcpu_s = math.fsum(s for _, s in vcpus.values())
    other_s = max(0.0, p.cpu_s - vcpu_s)
    parts: list[tuple[str, str, str, float]] = [
        ("vcpu", f"vcpu-{n}", name, s) for n, (name, s) in sorted(vcpus.items())]
    if other_s > 0:
        parts.append(("thread", "threads-other", "(other threads)", other_s))
    total_s = math.fsum(s for *_, s in parts)
    if total_s <= 0:
        return
    used = 0.0
    for i, (level, id_, name, secs) in enumerate(parts):
        row = proc.child(level, id_, name, note=(NOTE_THREADS if level == "thread" else None))
        share = secs / total_s
        row.watts = cpu_part - used if i == len(parts) - 1 else cpu_part * share
        used += row.watts
        row.err = cpu_err * share
        row.cpu_s = secs
        row.estimated = estimated
        row.comp = {"cpu": row.watts}


def iter_rows(row: Row) -> Iterable[Row]:
    yield row
    for c in row.children:
        yield from iter_rows(c)
