"""The node's tree under construction: process rows placed under their group path.

Each user process gets its CPU watts (split watts × its share under the chosen model),
split over its cores by the model's per-core weights (no per-core data: one ``(cpu)``
child; a VM process: one row per vCPU thread and one for its other threads), plus a
``(dram)`` child and one ``gpu-N`` child per device it used; its JSON carries the terms of
its CPU bound (``bound``: uncertainty.py). A process with only DRAM power this interval is
one row, without a ``(dram)`` child; if its share of the node's DRAM is small too, it is no
row at all: such processes are summed into one ``(dram)`` row per group (with a DRAM figure
every idle process would otherwise be a row).
Group rows are created on the way down and take the sums of their children when the
tree is frozen into :class:`~keck_tui.model.Row`\\ s (:meth:`TreeNode.finish`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from keck_tui.attribution.components import DramSplit, GpuSplit
from keck_tui.attribution.features import CoreInfo, ModelFeatures, effective_mhz
from keck_tui.attribution.uncertainty import CpuBounds
from keck_tui.attribution.weights import Shares, Weights
from keck_tui.common.ids import safe_id
from keck_tui.hierarchy.types import GroupPath
from keck_tui.model import Row
from keck_tui.samplers.types import CounterDelta, ProcessSample

NOTE_SMALL_DRAM = ("DRAM share (by PSS) of {n} processes that used no CPU this interval, each below "
                   "{pct:g} % of the node's DRAM power")
NOTE_THREADS = "the VM process's other threads: main loop, emulator and I/O threads"


class TreeNode:
    """Mutable row under construction (frozen into a Row at the end)."""

    __slots__ = ("level", "id", "name", "children", "index", "watts", "err", "cpu_s", "freq_num",
                 "freq_den", "nominal", "comp", "gpu", "extra", "estimated", "sources", "json_extra",
                 "insn", "llc", "cycles", "freq_src")

    def __init__(self, level: str, id_: str, name: str, **extra: object) -> None:
        self.level, self.id, self.name = level, id_, name
        self.children: list[TreeNode] = []
        self.index: dict[str, TreeNode] = {}
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
        self.json_extra: dict[str, object] = {}  # optional nested objects for the row's JSON (Row.extra)
        self.insn: float | None = None  # hardware counters (None: not counted)
        self.llc: float | None = None
        self.cycles: float | None = None
        self.freq_src: str | None = None  # "cycles" | "cpufreq" | "nominal" | "mixed"

    def child(self, level: str, id_: str, name: str, **extra: object) -> "TreeNode":
        node = self.index.get(id_)
        if node is None:
            node = TreeNode(level, id_, name, **extra)
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
            self._sum_children(rows)
        lo = min(lo, self.watts)
        hi = max(hi, self.watts)
        freq = self.freq_num / self.freq_den if self.freq_den > 0 else None
        has_time = self.level != "synthetic" or self.cpu_s > 0
        extra = {k: v for k, v in self.extra.items() if v is not None}
        row_extra = {**(extra.pop("extra", None) or {}), **self.json_extra}  # a group's metadata, a row's bound
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
            instructions=self.insn, llc_misses=self.llc,
            ipc=(self.insn / self.cycles if self.cycles and self.insn is not None else None),
            freq_source=(self.freq_src if freq is not None else None),
            children=rows,
            extra=row_extra,
            **extra,  # type: ignore[arg-type]
        )

    def add_counts(self, insn: float | None, llc: float | None, cycles: float | None,
                   freq_src: str | None) -> None:
        """Add counter totals (None: not counted) and merge where the frequency came from."""
        if insn is not None:
            self.insn = (self.insn or 0.0) + insn
        if llc is not None:
            self.llc = (self.llc or 0.0) + llc
        if cycles is not None:
            self.cycles = (self.cycles or 0.0) + cycles
        if freq_src is not None:
            self.freq_src = freq_src if self.freq_src in (None, freq_src) else "mixed"

    def _sum_children(self, rows: tuple[Row, ...]) -> None:
        """A group's time, frequency, components and GPU watts are its children's."""
        self.cpu_s = math.fsum(r.cpu_s or 0.0 for r in rows)
        for c in self.children:
            self.freq_num += c.freq_num
            self.freq_den += c.freq_den
            self.nominal = self.nominal or c.nominal
            self.add_counts(c.insn, c.llc, c.cycles, c.freq_src if c.freq_den > 0 else None)
            for k, v in c.comp.items():
                self.comp[k] = self.comp.get(k, 0.0) + v
            self.gpu += c.gpu
            self.estimated = self.estimated or c.estimated


@dataclass(frozen=True)
class ProcessSplit:
    """Everything a process row is computed from, for one interval."""

    split_w: float  # CPU watts split between processes and (kernel)
    shares: Shares  # under the chosen model
    model_shares: tuple[Shares, ...]  # under the simple models (for the spread before calibration)
    weights: Weights  # the chosen model's weights, with each process's per core
    features: ModelFeatures  # the chosen model's features (for the measured model error)
    bounds: CpuBounds
    dram: DramSplit
    gpus: GpuSplit
    infos: Mapping[int, CoreInfo]
    cpu_sources: tuple[str, ...]
    estimated: bool
    dram_row_min_share: float = 0.005  # an idle process's own row needs this share of the DRAM


class GroupRows:
    """The group rows under a root by group path: the grouper hands out the same tuple for
    the same cgroup, so 1,000 processes in a few groups walk the levels a few times."""

    def __init__(self, root: TreeNode) -> None:
        self.root = root
        # id(group path) -> (the path, its row); the path is kept so its id is not reused
        self._rows: dict[int, tuple[GroupPath, TreeNode]] = {}

    def row_of(self, groups: GroupPath) -> TreeNode:
        """The row of ``groups``, created level by level on first use."""
        known = self._rows.get(id(groups))
        if known is not None and known[0] is groups:
            return known[1]
        parent = self.root
        for level in groups:
            parent = parent.child(level.level, safe_id(level.id), level.name,
                                  pod_uid=level.pod_uid, namespace=level.namespace,
                                  container_id=level.container_id,
                                  labels=dict(level.labels) or None,
                                  extra=dict(level.extra) or None)
        self._rows[id(groups)] = (groups, parent)
        return parent


class SmallDram:
    """DRAM of idle processes with a small share, summed per group into one ``(dram)`` row."""

    def __init__(self) -> None:
        self.by_parent: dict[int, tuple[TreeNode, list[float]]] = {}  # id(parent) -> (parent, [watts, n])

    def add(self, parent: TreeNode, watts: float) -> None:
        small = self.by_parent.setdefault(id(parent), (parent, [0.0, 0]))[1]
        small[0] += watts
        small[1] += 1

    def add_rows(self, split: "ProcessSplit") -> None:
        for parent, (watts, count) in self.by_parent.values():
            d = parent.child("synthetic", "(dram)", "(dram)", note=NOTE_SMALL_DRAM.format(
                n=int(count), pct=100 * split.dram_row_min_share))
            d.watts, d.err = watts, watts * split.dram.rel_error
            d.comp = {"dram": watts}
            d.estimated = split.dram.estimated


def add_process(rows: GroupRows, p: ProcessSample, groups: GroupPath, split: ProcessSplit,
                small_dram: SmallDram) -> None:
    """The process's row under its group path, with its core, DRAM and GPU children."""
    share = split.shares.process.get(p.pid, 0.0)
    cpu_part = split.split_w * share
    dram_part = split.dram.part(p.pid)
    gpus = split.gpus.per_process.get(p.pid, {})
    if cpu_part <= 0 and dram_part <= 0 and not gpus and p.cpu_s <= 0:
        return
    parent = rows.row_of(groups)
    if cpu_part <= 0 and not gpus and p.cpu_s <= 0 and dram_part < split.dram_row_min_share * split.dram.watts:
        # Idle this interval and a small share of DRAM: summed per group, not a row each
        # (with a DRAM figure every process would be a row: 1,000 rows where 20 are busy).
        small_dram.add(parent, dram_part)
        return
    # The CPU reading's error (and the idle baseline's, which moves watts between
    # (idle) and the processes) lands on the processes in proportion to their share.
    terms = split.bounds.row_terms(share, split.features.process(p.pid),
                                   [s.process.get(p.pid, 0.0) for s in split.model_shares], ran=p.cpu_s > 0)
    cpu_err = terms.half_width
    proc = parent.child("process", f"pid-{p.pid}", f"{p.name} ({p.pid})", pid=p.pid,
                        cmd=p.cmd or p.name)
    proc.cpu_s = p.cpu_s
    proc.estimated = split.estimated
    _process_counts(proc, p)
    proc.sources = split.cpu_sources + (split.dram.sources if dram_part > 0 else ())
    if cpu_part > 0:
        proc.json_extra["bound"] = terms.to_json()
    if p.threads:
        _add_threads(proc, p, cpu_part, cpu_err, split.estimated)
    else:
        _add_cores(proc, p, cpu_part, cpu_err, split.infos, split.weights.per_core.get(p.pid, {}),
                   split.estimated)
    # A process with memory but no CPU or GPU power this interval is one row, without a
    # (dram) child: on a node with a DRAM figure every process is such a row, and the child
    # would double the tree for nothing.
    memory_only = dram_part > 0 and cpu_part <= 0 and not gpus and not proc.children
    if dram_part > 0 and not memory_only:
        d = proc.child("synthetic", "(dram)", "(dram)", note=split.dram.note)
        d.watts, d.err = dram_part, dram_part * split.dram.rel_error
        d.comp = {"dram": dram_part}
        d.estimated = split.dram.estimated
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
        proc.sources = proc.sources + split.gpus.sources
    if memory_only:
        proc.watts, proc.err = dram_part, dram_part * split.dram.rel_error
    elif not proc.children:
        proc.watts, proc.err = cpu_part, cpu_err
    proc.sources = tuple(dict.fromkeys(proc.sources))  # RAPL gives both cpu and dram


def _add_cores(proc: TreeNode, p: ProcessSample, cpu_part: float, cpu_err: float,
               infos: Mapping[int, CoreInfo], core_weights: Mapping[int, float], estimated: bool) -> None:
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
    wsum = math.fsum(core_weights.get(c, 0.0) for c in per)
    if wsum <= 0:  # the model gave these cores nothing: split by time
        core_weights, wsum = per, math.fsum(per.values())
    for cpu_index in sorted(per):
        frac = core_weights.get(cpu_index, 0.0) / wsum if wsum > 0 else 1.0 / len(per)
        info = infos.get(cpu_index)
        core = proc.child("core", f"core-{cpu_index}", f"core {cpu_index}", cpu=cpu_index)
        core.watts = cpu_part * frac
        core.err = cpu_err * frac
        core.cpu_s = per[cpu_index]
        core.estimated = estimated
        core.comp = {"cpu": core.watts}
        _core_frequency(core, p.counters.get(cpu_index) if p.counters else None, info, per[cpu_index])
    # the process row's own time/frequency summary
    for c in proc.children:
        if c.level == "core":
            proc.freq_num += c.freq_num
            proc.freq_den += c.freq_den
            proc.nominal = proc.nominal or c.nominal
            if c.freq_den > 0:
                proc.add_counts(None, None, None, c.freq_src)


def _core_frequency(core: TreeNode, d: CounterDelta | None, info: CoreInfo | None, seconds: float) -> None:
    """A (process, core) row's MHz — cycles ÷ on-CPU time where counted, else the core's
    (cpufreq or nominal) — and its counters."""
    mhz = effective_mhz(d, seconds)
    if mhz is not None:
        core.freq_num, core.freq_den, core.freq_src = mhz * seconds, seconds, "cycles"
    elif info is not None and info.mhz:
        core.freq_num, core.freq_den = info.mhz * seconds, seconds
        core.nominal = info.nominal
        core.freq_src = "nominal" if info.nominal else "cpufreq"
    if d is not None:
        core.add_counts(d.instructions, d.llc_misses, d.cycles, None)


def _process_counts(proc: TreeNode, p: ProcessSample) -> None:
    """The process row's counter totals over every core it ran on."""
    for d in (p.counters or {}).values():
        proc.add_counts(d.instructions, d.llc_misses, d.cycles, None)


def _add_threads(proc: TreeNode, p: ProcessSample, cpu_part: float, cpu_err: float, estimated: bool) -> None:
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
