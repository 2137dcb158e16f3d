"""DRAM and GPU watts per process.

* DRAM watts are split by PSS (RSS where PSS is unreadable).
* GPU watts are split by each process's SM-utilisation share of the device (shares
  normalised when they add up to more than 1); what no process used is the device's
  idle/unattributed power, which goes to ``(idle)``. Shares of processes that are not
  user processes here are used but not attributed (they end in ``(residual)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from keck_tui.attribution.power import Component
from keck_tui.samplers.types import GpuReading, ProcessSample


@dataclass(frozen=True)
class DramSplit:
    watts: float  # the DRAM component's watts (0 without one)
    rel_error: float
    sources: tuple[str, ...]
    memory: Mapping[int, float]  # pid -> bytes (PSS, else RSS, else 0)
    memory_total: float
    estimated: bool = False  # the DRAM watts are estimated (from the memory size)

    def part(self, pid: int) -> float:
        return self.watts * self.memory[pid] / self.memory_total if self.memory_total > 0 else 0.0


def split_dram(dram: Component | None, users: Sequence[ProcessSample]) -> DramSplit:
    mem = {p.pid: float(p.pss_bytes if p.pss_bytes is not None else (p.rss_bytes or 0)) for p in users}
    return DramSplit(watts=dram.watts if dram else 0.0, rel_error=dram.rel_error if dram else 0.0,
                     sources=dram.sources if dram else (), memory=mem, memory_total=math.fsum(mem.values()),
                     estimated=bool(dram and dram.estimated))


@dataclass(frozen=True)
class GpuSplit:
    per_process: Mapping[int, Mapping[int, tuple[float, float]]] = field(default_factory=dict)
    unattributed_w: float = 0.0  # device power no process used
    unattributed_err: float = 0.0
    sources: tuple[str, ...] = ()  # the GPU readings that answered


def split_gpus(gpus: Sequence[GpuReading], user_pids: set[int]) -> GpuSplit:
    """pid -> device index -> (watts, error), and the power no process used."""
    gpu_of: dict[int, dict[int, tuple[float, float]]] = {}
    unattributed = 0.0
    unattributed_err = 0.0
    for reading in gpus:
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
            unattributed += dev.watts * rest_fraction
            unattributed_err += dev.accuracy_w * rest_fraction
    return GpuSplit(gpu_of, unattributed, unattributed_err,
                    tuple(r.source.name for r in gpus if r.source.ok))
