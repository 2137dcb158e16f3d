"""CPU watts and the idle baseline for one interval: how much there is to split.

The CPU watts are the measured ``cpu`` component (Σ packages), else the utilisation
estimate (estimate.py: from the CPU's power profile where there is one). Under a total
measured as a whole (wall, psys, or a VM's host-measured figure) the estimate is capped by
what the other components leave and the rest of the total is ``(platform)``; otherwise the
estimated CPU adds to whatever was measured, and with no DRAM sensor the DRAM estimate
from the memory size too. The idle baseline is, in order: the
configured one, the estimate model's (when CPU power is estimated), the learned one,
else 0; it is clamped to [0, CPU watts]. *Active* power is CPU minus idle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keck_tui.attribution.estimate import estimate_cpu_power
from keck_tui.attribution.idle import IdleEstimate
from keck_tui.attribution.power import Component, NodePower, combine
from keck_tui.samplers.types import CpuActivity

if TYPE_CHECKING:
    from keck_tui.estimate.profile import CpuPowerProfile, MemoryEstimate

IDLE_ESTIMATE_MODEL = "estimate-model"
#: Node totals that are measured as a whole (the CPU split inside may be estimated).
WIDE_TOTALS = ("bmc", "psys", "host")


@dataclass(frozen=True)
class CpuLoad:
    """How busy the CPUs were over the interval."""

    busy_s: float  # Σ busy seconds over logical CPUs
    capacity_s: float  # Σ CPU-seconds that existed
    n_cpus: int

    @property
    def utilisation(self) -> float:
        return min(1.0, self.busy_s / self.capacity_s) if self.capacity_s > 0 else 0.0

    @classmethod
    def of(cls, activity: CpuActivity, interval: float) -> "CpuLoad":
        busy_s = math.fsum(c.busy_s for c in activity.cores)
        capacity_s = math.fsum(c.total_s for c in activity.cores) or interval * max(1, len(activity.cores))
        return cls(busy_s=busy_s, capacity_s=capacity_s, n_cpus=max(1, len(activity.cores)))


@dataclass(frozen=True)
class CpuEstimateInputs:
    """What the estimate needs when no CPU power is measured."""

    tdp: float | None = None
    idle_watts: float | None = None  # configured CPU idle baseline (also used when measured)
    profile: "CpuPowerProfile | None" = None  # the estimate from data (keck_tui/estimate)
    memory: "MemoryEstimate | None" = None  # DRAM watts from the memory size, when no DRAM sensor


@dataclass(frozen=True)
class CpuBudget:
    cpu: Component  # the CPU watts used (measured or estimated)
    total: Component  # the node total (an estimated CPU added where it only sums what was measured)
    platform: Component | None  # what the total has beyond its components
    dram: Component | None  # the DRAM watts (measured, or estimated beside an estimated CPU)
    estimated: bool  # the CPU watts are the utilisation estimate
    idle: IdleEstimate
    idle_w: float  # the baseline, clamped to [0, CPU watts]
    idle_err: float

    @property
    def active(self) -> float:
        return self.cpu.watts - self.idle_w


def cpu_budget(node_power: NodePower, load: CpuLoad, est: CpuEstimateInputs,
               learned_idle: IdleEstimate | None) -> CpuBudget:
    total, platform, dram = node_power.total, node_power.platform, node_power.dram
    if node_power.cpu is not None:
        cpu = node_power.cpu
    else:
        cpu, total, platform, dram = _estimated_cpu(node_power, load, est)
    idle = idle_baseline(cpu_estimated=node_power.cpu is None, load=load, est=est, learned=learned_idle)
    return CpuBudget(cpu=cpu, total=total, platform=platform, dram=dram, estimated=node_power.cpu is None,
                     idle=idle, idle_w=min(max(0.0, idle.watts), cpu.watts),
                     idle_err=min(idle.error_w, cpu.watts))


def _estimated_cpu(node_power: NodePower, load: CpuLoad, inputs: CpuEstimateInputs
                   ) -> tuple[Component, Component, Component | None, Component | None]:
    """(cpu, total, platform, dram) when no CPU power is measured."""
    total, platform = node_power.total, node_power.platform
    gpu_c, dram_c = node_power.gpu, node_power.dram
    est = estimate_cpu_power(load.busy_s, load.capacity_s, load.n_cpus, inputs.tdp, inputs.idle_watts,
                             profile=inputs.profile)
    cpu_w = est.watts
    cpu_rel_est = est.watts_error / cpu_w if cpu_w > 0 else est.relative_error
    wide_total = node_power.total_source in WIDE_TOTALS
    if wide_total:
        # A node total (BMC, psys) but no CPU domain: the estimate splits the total,
        # capped by what the other components leave.
        room = total.watts - (gpu_c.watts if gpu_c else 0.0) - (dram_c.watts if dram_c else 0.0)
        cpu_w = max(0.0, min(cpu_w, room))
        platform = Component(max(0.0, room - cpu_w), total.error_w + cpu_w * cpu_rel_est,
                             total.sources, estimated=True)
    cpu = Component(cpu_w, cpu_w * cpu_rel_est, ("estimate",), estimated=True)
    if not wide_total:
        # The total is only the sum of what was measured (GPUs, DRAM, or nothing):
        # the estimated CPU adds to it, and with no DRAM sensor the DRAM estimate too.
        measured_parts = total if node_power.total_source != "none" else None
        total = combine(measured_parts, cpu) or cpu
        memory = inputs.memory
        if dram_c is None and memory is not None and memory.watts > 0:
            dram_c = Component(memory.watts, memory.error_w, ("estimate",), estimated=True)
            total = combine(total, dram_c) or dram_c
    return cpu, total, platform, dram_c


def idle_baseline(*, cpu_estimated: bool, load: CpuLoad, est: CpuEstimateInputs,
                  learned: IdleEstimate | None) -> IdleEstimate:
    if est.idle_watts is not None:
        return IdleEstimate(est.idle_watts, 0.0, "configured")
    if cpu_estimated:
        model = estimate_cpu_power(load.busy_s, load.capacity_s, load.n_cpus, est.tdp, None, profile=est.profile)
        return IdleEstimate(model.idle_watts, model.idle_error, IDLE_ESTIMATE_MODEL)
    if learned is not None:
        return learned
    return IdleEstimate(0.0, 0.0, "unknown")
