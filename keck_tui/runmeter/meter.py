"""The energy of one run from the collector's snapshots.

Each interval the collector (idle policy ``separate``) gives the tree of the node;
:meth:`RunMeter.add` keeps, for the command's processes (the tracker's PIDs), the
sum of their rows' watts and bounds, their CPU / DRAM / GPU components and on-CPU
seconds, and the node's own figures: total, idle row, platform row, active CPU
watts and busy seconds. :func:`finish` turns the intervals into the run's totals:

* **rows**: Σ watts × interval of the command's process rows (active power: its
  share of the CPU above the idle baseline, of DRAM by memory, of the GPUs).
* **CPU-time correction**: the kernel's own CPU time of the tree (cgroup ``cpu.stat``
  per interval, else ``wait4`` rusage for the whole run) minus what the rows saw
  (processes that lived between two samples, ±1 clock tick per process); the
  difference is charged at the tree's energy per CPU-second (the node's, when the
  rows have none). With the kernel's figure, procfs tick rounding does not add up
  interval after interval, so the collector runs with ``tick_s=0`` and this is
  the only correction.
* **idle**: the command's share of the node's idle power is a choice, so all
  three figures are kept: ``active`` (none of it), ``proportional`` (the idle
  row's CPU watts by the command's share of the active CPU power, its GPU watts by
  the command's share of attributed GPU power) and ``whole`` (all of the idle and
  platform rows while it ran: the machine as if it ran for this command alone).

Bounds add linearly (the rows' own bounds, the correction at the rows' relative
error, the idle row's bound times the share taken of it), as everywhere in keck-top.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from keck_tui.model import Row, Snapshot

IDLE_POLICIES = ("active", "proportional", "whole")
#: keck-top's own --idle names → the run's: separate and none both charge active power only.
IDLE_ALIASES = {"separate": "active", "none": "active", "proportional": "proportional",
                "active": "active", "whole": "whole"}


@dataclass(frozen=True)
class IntervalEnergy:
    """One interval of the run: the command's rows and the node's figures (watts)."""

    time: float  # end of the interval (unix s)
    dt: float
    watts: float  # the command's process rows
    lo: float
    hi: float
    cpu_w: float
    dram_w: float
    gpu_w: float
    cpu_s: float  # the rows' on-CPU seconds
    kernel_cpu_s: float | None  # the kernel's CPU seconds of the tree in the interval
    node_w: float
    node_lo: float
    node_hi: float
    idle_cpu_w: float
    idle_gpu_w: float
    idle_err_w: float
    platform_w: float
    platform_err_w: float
    active_cpu_w: float  # the node's CPU watts above the idle baseline
    gpu_attributed_w: float  # the node's GPU watts that some process used
    busy_s: float  # the node's busy CPU seconds
    pids: frozenset[int] = frozenset()
    pid_cpu_s: Mapping[int, float] = field(default_factory=dict)
    work: tuple[tuple[str, str, float], ...] = ()  # (source, unit, units) counted on the command's rows


def process_rows(root: Row, pids: set[int] | frozenset[int]) -> list[Row]:
    """The process rows of ``pids`` anywhere in the tree (not their children)."""
    out: list[Row] = []
    stack = [root]
    while stack:
        row = stack.pop()
        if row.level == "process" and row.pid is not None:
            if row.pid in pids:
                out.append(row)
            continue
        stack.extend(row.children)
    return out


def interval_of(snap: Snapshot, pids: set[int] | frozenset[int],
                kernel_cpu_s: float | None = None) -> IntervalEnergy:
    """The command's share of one snapshot (see the module docstring)."""
    root = snap.root
    rows = process_rows(root, pids)
    comps = [r.components or {} for r in rows]
    idle = next((c for c in root.children if c.id == "(idle)"), None)
    platform = next((c for c in root.children if c.id == "(platform)"), None)
    idle_comps = (idle.components or {}) if idle is not None else {}
    node_comps = root.components or {}
    idle_cpu = float(idle_comps.get("cpu", 0.0))
    idle_gpu = float(idle_comps.get("gpu", 0.0))
    return IntervalEnergy(
        time=snap.time, dt=snap.interval_s,
        watts=math.fsum(r.watts for r in rows), lo=math.fsum(r.watts_lo for r in rows),
        hi=math.fsum(r.watts_hi for r in rows),
        cpu_w=math.fsum(float(c.get("cpu", 0.0)) for c in comps),
        dram_w=math.fsum(float(c.get("dram", 0.0)) for c in comps),
        gpu_w=math.fsum(float(c.get("gpu", 0.0)) for c in comps),
        cpu_s=math.fsum(r.cpu_s or 0.0 for r in rows), kernel_cpu_s=kernel_cpu_s,
        node_w=root.watts, node_lo=root.watts_lo, node_hi=root.watts_hi,
        idle_cpu_w=idle_cpu, idle_gpu_w=idle_gpu,
        idle_err_w=(max(idle.watts_hi - idle.watts, idle.watts - idle.watts_lo) if idle is not None else 0.0),
        platform_w=platform.watts if platform is not None else 0.0,
        platform_err_w=(max(platform.watts_hi - platform.watts, platform.watts - platform.watts_lo)
                        if platform is not None else 0.0),
        active_cpu_w=max(0.0, float(node_comps.get("cpu", 0.0)) - idle_cpu),
        gpu_attributed_w=max(0.0, float(node_comps.get("gpu", 0.0)) - idle_gpu),
        busy_s=root.cpu_s or 0.0,
        pids=frozenset(r.pid for r in rows if r.pid is not None),
        pid_cpu_s={r.pid: r.cpu_s or 0.0 for r in rows if r.pid is not None},
        work=tuple(_work_units(rows)),
    )


def _work_units(rows: list[Row]) -> list[tuple[str, str, float]]:
    """Units of work counted this interval by work objects on the command's own rows
    (an inference server it started, a [[work]] entry matching one of its processes)."""
    out = []
    for r in rows:
        obj = r.extra.get("work") if r.extra else None
        if not isinstance(obj, dict):
            continue
        for w in [obj, *(m for m in obj.get("more") or () if isinstance(m, dict))]:
            for e in [w, *(a for a in w.get("also") or () if isinstance(a, dict))]:
                units = e.get("units")
                out.append((str(w.get("name", "")), str(e.get("unit", "")),
                            float(units) if isinstance(units, (int, float)) else 0.0))
    return out


@dataclass(frozen=True)
class Bounded:
    """A value with its lower and upper bound."""

    value: float
    lo: float
    hi: float

    @classmethod
    def of(cls, value: float, err: float) -> "Bounded":
        return cls(value, max(0.0, value - err), value + err)

    def __add__(self, other: "Bounded") -> "Bounded":
        return Bounded(self.value + other.value, self.lo + other.lo, self.hi + other.hi)

    def scaled(self, k: float) -> "Bounded":
        return Bounded(self.value * k, self.lo * k, self.hi * k)

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


ZERO = Bounded(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RunEnergy:
    """The run's energy figures (joules) before cost, output and statistics."""

    active: Bounded  # rows + CPU-time correction
    idle_proportional: Bounded  # the command's activity share of the idle row
    idle_whole: Bounded  # all of the idle and platform rows over the run
    cpu_j: float
    dram_j: float
    gpu_j: float
    node: Bounded
    peak_w: Bounded  # the highest interval mean of the command (active + proportional idle)
    peak_time: float | None
    cpu_s: float  # the rows' on-CPU seconds
    correction_cpu_s: float  # kernel's CPU seconds minus the rows' (what the samples missed)
    correction_j: float
    kernel_cpu_s: float | None
    kernel_source: str  # "cgroup" | "rusage" | "none"
    processes: int  # distinct PIDs with a row
    intervals: int
    measured_s: float  # Σ intervals (≥ the wall time: the first and last overlap the run)
    work: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (source, unit) -> units

    def total(self, policy: str) -> Bounded:
        if policy == "active":
            return self.active
        if policy == "proportional":
            return self.active + self.idle_proportional
        if policy == "whole":
            return self.active + self.idle_whole
        raise ValueError(f"unknown idle policy {policy!r}")


def _rel(w: float, lo: float, hi: float) -> float:
    return max(hi - w, w - lo, 0.0) / w if w > 0 else 0.0


@dataclass
class _Sums:
    """Running sums of :func:`finish` over the intervals (joules, CPU seconds)."""

    rows: Bounded = ZERO  # the command's rows
    node: Bounded = ZERO
    cpu_j: float = 0.0  # the rows' CPU joules, before any correction
    dram_j: float = 0.0
    gpu_j: float = 0.0
    cpu_s: float = 0.0
    node_cpu_j: float = 0.0  # the node's CPU joules above idle
    node_busy: float = 0.0
    measured: float = 0.0
    corr_j: float = 0.0  # CPU-time correction: joules, seconds, bound
    corr_s: float = 0.0
    corr_err: float = 0.0
    idle_p_j: float = 0.0  # the proportional idle share
    idle_p_err: float = 0.0
    whole_j: float = 0.0  # all of the idle and platform rows
    whole_err: float = 0.0
    pids: set[int] = field(default_factory=set)
    pid_cpu: dict[int, float] = field(default_factory=dict)
    work: dict[tuple[str, str], float] = field(default_factory=dict)
    peak: Bounded = ZERO
    peak_t: float | None = None

    def add(self, iv: IntervalEnergy, per_interval: bool) -> None:
        """One interval; ``per_interval``: every interval has the kernel's CPU time of the tree."""
        for name, unit, units in iv.work:
            self.work[(name, unit)] = self.work.get((name, unit), 0.0) + units
        dt = iv.dt
        self.measured += dt
        self.rows = self.rows + Bounded(iv.watts * dt, iv.lo * dt, iv.hi * dt)
        self.cpu_j += iv.cpu_w * dt
        self.dram_j += iv.dram_w * dt
        self.gpu_j += iv.gpu_w * dt
        self.cpu_s += iv.cpu_s
        self.node = self.node + Bounded(iv.node_w * dt, iv.node_lo * dt, iv.node_hi * dt)
        self.node_cpu_j += iv.active_cpu_w * dt
        self.node_busy += iv.busy_s
        self.pids |= iv.pids
        for pid, sec in iv.pid_cpu_s.items():
            self.pid_cpu[pid] = self.pid_cpu.get(pid, 0.0) + sec
        c_w, c_err = self._correct(iv) if per_interval and dt > 0 else (0.0, 0.0)
        self._idle_and_peak(iv, c_w, c_err)

    def _correct(self, iv: IntervalEnergy) -> tuple[float, float]:
        """The interval's CPU-time correction; (watts, their error) it adds to the interval."""
        assert iv.kernel_cpu_s is not None
        dt = iv.dt
        miss = iv.kernel_cpu_s - iv.cpu_s
        rate = _cpu_rate(iv.cpu_w * dt, iv.cpu_s, iv.active_cpu_w * dt, iv.busy_s)
        c_j = max(miss * rate, -iv.cpu_w * dt)  # never below zero CPU energy
        rel = _rel(iv.watts, iv.lo, iv.hi)
        self.corr_s += miss
        self.corr_j += c_j
        self.corr_err += abs(c_j) * rel
        return c_j / dt, abs(c_j) * rel / dt

    def _idle_and_peak(self, iv: IntervalEnergy, c_w: float, c_err: float) -> None:
        """The idle shares of the interval, and the peak (active + proportional idle)."""
        dt = iv.dt
        cpu_now = iv.cpu_w + c_w
        share_cpu = min(1.0, cpu_now / iv.active_cpu_w) if iv.active_cpu_w > 0 else 0.0
        share_gpu = min(1.0, iv.gpu_w / iv.gpu_attributed_w) if iv.gpu_attributed_w > 0 else 0.0
        ip = iv.idle_cpu_w * share_cpu + iv.idle_gpu_w * share_gpu
        ip_err = iv.idle_err_w * max(share_cpu, share_gpu)
        self.idle_p_j += ip * dt
        self.idle_p_err += ip_err * dt
        self.whole_j += (iv.idle_cpu_w + iv.idle_gpu_w + iv.platform_w) * dt
        self.whole_err += (iv.idle_err_w + iv.platform_err_w) * dt
        here = Bounded(iv.watts + c_w + ip, iv.lo + c_w - c_err + ip - ip_err, iv.hi + c_w + c_err + ip + ip_err)
        if self.peak_t is None or here.value > self.peak.value:
            self.peak, self.peak_t = Bounded(here.value, max(0.0, here.lo), here.hi), iv.time

    def correct_run(self, kernel_total_cpu_s: float, running_at_end: set[int] | frozenset[int]) -> None:
        """One correction for the whole run from the kernel's total (no per-interval figure).

        A run-level correction has no place in time: it is not in the peak. The proportional
        idle share grows with the CPU energy it adds.
        """
        seen = self.cpu_s - math.fsum(sec for pid, sec in self.pid_cpu.items() if pid in running_at_end)
        miss = kernel_total_cpu_s - seen  # negative: the rows' clock ticks rounded up
        rate = _cpu_rate(self.cpu_j, self.cpu_s, self.node_cpu_j, self.node_busy)
        self.corr_s = miss
        self.corr_j = max(miss * rate, -self.cpu_j)
        self.corr_err = abs(self.corr_j) * _rel(self.rows.value, self.rows.lo, self.rows.hi)
        if self.corr_j and (self.cpu_j > 0 or self.node_cpu_j > 0):
            scale = (self.cpu_j + self.corr_j) / self.cpu_j if self.cpu_j > 0 else 1.0
            self.idle_p_j *= max(0.0, scale)
            self.idle_p_err *= max(0.0, scale)


def finish(intervals: Iterable[IntervalEnergy], *, kernel_total_cpu_s: float | None = None,
           kernel_source: str = "none", running_at_end: set[int] | frozenset[int] = frozenset()
           ) -> RunEnergy:
    """The run's totals (see the module docstring).

    ``kernel_total_cpu_s``: the kernel's CPU time of the tree over the whole run when
    there is no per-interval figure (``wait4`` rusage of the reaped processes:
    ``running_at_end`` are left out of the comparison, rusage does not hold them).
    """
    ivs = list(intervals)
    per_interval = bool(ivs) and all(iv.kernel_cpu_s is not None for iv in ivs)
    t = _Sums()
    for iv in ivs:
        t.add(iv, per_interval)
    kernel_cpu = math.fsum(iv.kernel_cpu_s or 0.0 for iv in ivs) if per_interval else None
    if per_interval:
        source = "cgroup"
    elif kernel_total_cpu_s is not None:
        kernel_cpu, source = kernel_total_cpu_s, kernel_source
        t.correct_run(kernel_total_cpu_s, running_at_end)
    else:
        source = "none"
    rows, corr_j, corr_err = t.rows, t.corr_j, t.corr_err
    active = Bounded(max(0.0, rows.value + corr_j), max(0.0, rows.lo + corr_j - corr_err),
                     max(0.0, rows.hi + corr_j + corr_err))
    return RunEnergy(
        active=active, idle_proportional=Bounded.of(t.idle_p_j, t.idle_p_err),
        idle_whole=Bounded.of(t.whole_j, t.whole_err),
        cpu_j=max(0.0, t.cpu_j + corr_j), dram_j=t.dram_j, gpu_j=t.gpu_j, node=t.node,
        peak_w=t.peak, peak_time=t.peak_t, cpu_s=t.cpu_s, correction_cpu_s=t.corr_s, correction_j=corr_j,
        kernel_cpu_s=kernel_cpu, kernel_source=source,
        processes=len(t.pids), intervals=len(ivs), measured_s=t.measured, work=t.work)


def _cpu_rate(rows_cpu_j: float, rows_cpu_s: float, node_active_j: float, node_busy_s: float) -> float:
    """Joules per CPU-second: the command's own where its rows have CPU time, else the node's."""
    if rows_cpu_s > 0 and rows_cpu_j > 0:
        return rows_cpu_j / rows_cpu_s
    if node_busy_s > 0:
        return node_active_j / node_busy_s
    return 0.0


class RunMeter:
    """Collects the intervals of one run."""

    def __init__(self) -> None:
        self.intervals: list[IntervalEnergy] = []
        self.snapshots = 0
        self.last: Snapshot | None = None
        self._kernel_prev: float | None = None

    def start(self, kernel_cpu_s: float | None) -> None:
        """The kernel's cumulative CPU time of the tree when the run starts (None: none)."""
        self._kernel_prev = kernel_cpu_s

    def add(self, snap: Snapshot, pids: set[int], kernel_cpu_s: float | None = None) -> IntervalEnergy:
        delta = None
        if kernel_cpu_s is not None and self._kernel_prev is not None:
            delta = max(0.0, kernel_cpu_s - self._kernel_prev)
        if kernel_cpu_s is not None:
            self._kernel_prev = kernel_cpu_s
        iv = interval_of(snap, pids, delta)
        self.intervals.append(iv)
        self.snapshots += 1
        self.last = snap
        return iv
