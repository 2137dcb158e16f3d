"""The attribution engine: readings over one interval → the power tree.

Pure functions, no I/O. The tree is node → group levels (slice/service,
namespace/pod/container) → process → core, plus the synthetic rows
``(kernel)``, ``(idle)``, ``(platform)`` and ``(residual)`` that make every
level's children sum exactly to their parent. :func:`attribute` runs the phases,
each in a module of its own:

1. node power and its components (power.py; the caller may pass it in, resolved once);
2. the model (selection.py), its features (features.py), calibrated coefficients
   (calibration.py, through the collector) and per-process shares (weights.py);
3. the CPU watts to split and the idle baseline (cpu.py);
4. DRAM and GPU watts per process (components.py);
5. process rows placed under their group path, with cores, DRAM and GPU (tree.py);
6. the synthetic rows and the node row (rows.py).

How each row's bound is composed from its error terms is in uncertainty.py; the rules
themselves are in docs/design.md, "Attribution".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from keck_tui.attribution.calibration import ModelView
from keck_tui.attribution.components import split_dram, split_gpus
from keck_tui.attribution.cpu import IDLE_ESTIMATE_MODEL, WIDE_TOTALS, CpuEstimateInputs, CpuLoad, cpu_budget
from keck_tui.attribution.features import (MODEL_CPU_TIME, MODEL_FREQ, MODEL_FULL, ModelFeatures, core_infos,
                                           counter_source, default_theta, extract)
from keck_tui.attribution.idle import IdleEstimate
from keck_tui.attribution.power import Component, NodePower, resolve_node_power
from keck_tui.attribution.rows import (IDLE_PROPORTIONAL, idle_row, kernel_row, node_row, node_watts,
                                       platform_row, residual_row)
from keck_tui.attribution.selection import ModelChoice, choose_model
from keck_tui.attribution.tree import GroupRows, ProcessSplit, SmallDram, TreeNode, add_process
from keck_tui.attribution.uncertainty import CpuBounds, sensor_error, tick_share
from keck_tui.attribution.weights import has_live_frequency, model_shares, model_weights, shares_of
from keck_tui.common.ids import safe_id
from keck_tui.hierarchy.types import GroupPath
from keck_tui.model import KIND_ESTIMATED, Row
from keck_tui.samplers.types import CpuActivity, FrequencyReading, GpuReading, PowerReading

if TYPE_CHECKING:
    from keck_tui.estimate.profile import CpuPowerProfile, MemoryEstimate

__all__ = ["MODEL_CPU_TIME", "MODEL_FREQ", "MODEL_FULL", "WIDE_TOTALS", "Attribution", "AttributionConfig",
           "AttributionInput", "attribute"]


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
    learned_idle: IdleEstimate | None = None  # from the collector's IdleLearner (or the calibration)
    # resolve_node_power(power, gpus) when the caller already has it (the collector does)
    node_power: NodePower | None = None
    choice: ModelChoice | None = None  # the collector's choice of model (else chosen here)
    features: ModelFeatures | None = None  # that model's features, when the collector computed them
    calibration: ModelView | None = None  # coefficients, measured error and idle from calibration


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
    model_error: str = "spread"  # what the bounds' model term is: "spread" | "measured"


def attribute(inp: AttributionInput, config: AttributionConfig = AttributionConfig()) -> Attribution:
    """Build the node's power tree for one interval."""
    interval = inp.interval_s if inp.interval_s > 0 else inp.activity.interval_s
    interval = interval if interval > 0 else 1.0
    activity = inp.activity
    warnings: list[str] = []
    node_power = inp.node_power if inp.node_power is not None else resolve_node_power(inp.power, inp.gpus)
    warnings.extend(node_power.warnings)

    # 2. the model, its features and weights (coefficients from calibration, else its defaults)
    infos = core_infos(activity, inp.frequency)
    choice = inp.choice or choose_model(config.model, live_frequency=has_live_frequency(activity, infos),
                                        counters=counter_source(activity), measured_cpu=node_power.cpu is not None)
    model = choice.model
    warnings.extend(choice.warnings)
    view = inp.calibration if inp.calibration is not None and inp.calibration.model == model else None
    model_reason = choice.reason + (f"; {view.progress}" if view is not None and view.progress else "")
    load = CpuLoad.of(activity, interval)
    features = inp.features if inp.features is not None and inp.features.model == model else \
        extract(model, activity, infos, interval)
    weights = model_weights(features, view.theta if view is not None and view.theta is not None
                            else default_theta(model))
    shares = shares_of(weights)
    model_error = view.error if view is not None else None
    # until calibration measures the model's error, the simple models' spread bounds it
    by_model = model_shares(activity, infos, load.busy_s) if model_error is None else {}

    # 3. the CPU watts to split: active power, plus idle when it is shared by activity
    # (which needs some activity to share by; with none, idle stays in (idle))
    budget = cpu_budget(node_power, load, CpuEstimateInputs(config.tdp, config.idle_watts, config.cpu_profile,
                                                            config.memory), inp.learned_idle)
    proportional = config.idle == IDLE_PROPORTIONAL and (
        any(v > 0 for v in shares.process.values()) or shares.kernel > 0)
    split_w = budget.active + (budget.idle_w if proportional else 0.0)
    from_estimate = budget.idle.method == IDLE_ESTIMATE_MODEL
    bounds = CpuBounds(split_w=split_w,
                       sensor_err=sensor_error(split_w, budget.cpu, budget.idle.method, from_estimate),
                       idle_err=0.0 if proportional or from_estimate else budget.idle_err,
                       tick_share=tick_share(config.tick_s, load.busy_s, activity.per_cpu_exact),
                       model_error=model_error,
                       sum_sq_shares=math.fsum(v * v for v in shares.process.values()) + shares.kernel ** 2,
                       capacity=weights.capacity, x_node=features.node)

    # 4.-5. DRAM and GPU per process; process rows under their groups
    host_estimated = _host_estimated(node_power, inp.power)
    est_flag = budget.estimated or host_estimated  # rows whose watts are a guess
    users = [p for p in activity.processes if not p.kernel]
    gpus = split_gpus(inp.gpus, {p.pid for p in users})
    split = ProcessSplit(split_w=split_w, shares=shares, model_shares=tuple(by_model.values()),
                         weights=weights, features=features, bounds=bounds,
                         dram=split_dram(budget.dram, users, view.dram_weight if view is not None else None),
                         gpus=gpus, infos=infos, cpu_sources=budget.cpu.sources, estimated=est_flag,
                         dram_row_min_share=config.dram_row_min_share)
    root = TreeNode("node", safe_id(inp.host), inp.host)
    small_dram = SmallDram()
    group_rows = GroupRows(root)
    for p in users:
        add_process(group_rows, p, inp.groups.get(p.pid, ()), split, small_dram)
    small_dram.add_rows(split)

    # 6. synthetic rows, (residual), the node
    synthetic = [row for row in (
        kernel_row(activity, split_w, shares, split.model_shares, bounds, est_flag, features.kernel),
        idle_row(config.idle, proportional, budget, gpus, est_flag),
        platform_row(budget.platform, node_power.total_source)) if row is not None]
    watts = node_watts(config.idle, budget, gpus)
    rows = [n.finish(interval) for n in root.children] + [n.finish(interval) for n in synthetic]
    residual = residual_row(watts, rows, budget, interval, warnings, est_flag)
    if residual is not None:
        rows = rows + [residual]
    node = node_row(root.id, inp.host, watts, rows, policy=config.idle, budget=budget,
                    node_power=node_power, gpus=gpus, load=load, infos=infos, activity=activity,
                    interval=interval, sources=tuple(dict.fromkeys(budget.total.sources + budget.cpu.sources)),
                    host_estimated=host_estimated)
    return Attribution(root=node, model=model, model_reason=model_reason,
                       estimated=node_power.total_source == "none" or host_estimated, node_power=node_power,
                       cpu=budget.cpu, idle=budget.idle, utilisation=load.utilisation,
                       warnings=tuple(warnings), model_error=bounds.model_kind)


def _host_estimated(node_power: NodePower, power: tuple[PowerReading, ...]) -> bool:
    """A guest's total from a host that itself had no sensor (--host-power) is an estimate too."""
    return node_power.total_source == "host" and any(
        r.source.name == "host" and r.source.ok and r.source.kind == KIND_ESTIMATED for r in power)
