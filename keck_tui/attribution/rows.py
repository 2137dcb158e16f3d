"""The rows that are not processes: ``(kernel)``, ``(idle)``, ``(platform)``, ``(residual)``
and the node row itself, which make every level's children sum exactly to their parent.

* ``(kernel)``: kernel threads, irq and softirq time, at the kernel's share.
* ``(idle)``: the CPU idle baseline (unless idle is shared proportionally) plus GPU
  power no process used; with ``--idle none`` there is no ``(idle)`` row and the node's
  watts are active power only.
* ``(platform)``: the measured total minus its components (fans, PSU loss, disks; in a VM
  whose host measures it, what the host figure has beyond the estimated CPU and DRAM).
* ``(residual)``: node watts minus every other row: measured power no process accounts
  for. Within 1e-9 of the node it is rounding and dropped; a negative one is warned about.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from keck_tui.attribution.components import GpuSplit
from keck_tui.attribution.cpu import WIDE_TOTALS, CpuBudget, CpuLoad
from keck_tui.attribution.features import CoreInfo, Vector
from keck_tui.attribution.power import Component, NodePower
from keck_tui.attribution.tree import TreeNode
from keck_tui.attribution.uncertainty import CpuBounds, node_error, residual_error
from keck_tui.attribution.weights import Shares
from keck_tui.model import Row
from keck_tui.samplers.types import CpuActivity

IDLE_SEPARATE = "separate"
IDLE_PROPORTIONAL = "proportional"
IDLE_NONE = "none"

NOTE_IDLE = "power the node draws doing nothing: the CPU idle baseline ({idle}){gpu}"
NOTE_KERNEL = "kernel threads, interrupts and softirqs"
NOTE_PLATFORM = ("fans, PSU loss, disks, NICs: the {what} total minus CPU, DRAM and GPU")
NOTE_RESIDUAL = ("measured power no process accounts for: busy time of processes that exited "
                 "between samples or were not readable, DRAM of processes without memory data, "
                 "GPU work of processes not visible here, rounding")


def kernel_row(activity: CpuActivity, split_w: float, shares: Shares, model_shares: Sequence[Shares],
               bounds: CpuBounds, estimated: bool, x_kernel: Vector = ()) -> TreeNode | None:
    kernel_cpu_s = math.fsum(p.cpu_s for p in activity.processes if p.kernel) + math.fsum(
        c.irq_s for c in activity.cores)
    kernel_w = split_w * shares.kernel
    if not (kernel_w > 0 or kernel_cpu_s > 0):
        return None
    k = TreeNode("synthetic", "(kernel)", "(kernel)", note=NOTE_KERNEL)
    k.watts = kernel_w
    k.err = bounds.row_terms(shares.kernel, x_kernel, [s.kernel for s in model_shares], ran=False).half_width
    k.cpu_s = kernel_cpu_s
    k.comp = {"cpu": kernel_w}
    k.estimated = estimated
    return k


def idle_row(policy: str, proportional: bool, budget: CpuBudget, gpus: GpuSplit, estimated: bool) -> TreeNode | None:
    idle_included = policy != IDLE_NONE
    idle_cpu = budget.idle_w
    idle_row_w = (0.0 if proportional else idle_cpu) + gpus.unattributed_w
    if not (policy == IDLE_SEPARATE or (idle_included and idle_row_w > 0)):
        return None
    gpu_text = (f"; GPU power no process used ({gpus.unattributed_w:.1f} W)" if gpus.unattributed_w > 0 else "")
    idle_desc = f"{idle_cpu:.1f} W, {budget.idle.method}" if not proportional else "shared by activity"
    i = TreeNode("synthetic", "(idle)", "(idle)", note=NOTE_IDLE.format(idle=idle_desc, gpu=gpu_text))
    i.watts = idle_row_w if idle_included else 0.0
    i.err = (0.0 if proportional else budget.idle_err) + gpus.unattributed_err
    i.comp = {k: v for k, v in (("cpu", 0.0 if proportional else idle_cpu),
                                ("gpu", gpus.unattributed_w)) if v > 0}
    i.estimated = estimated
    return i


def platform_row(platform: Component | None, total_source: str) -> TreeNode | None:
    if platform is None or not platform.watts > 0:
        return None
    what = {"bmc": "BMC", "psys": "RAPL psys", "host": "host-measured VM"}.get(total_source, "node")
    pl = TreeNode("synthetic", "(platform)", "(platform)", note=NOTE_PLATFORM.format(what=what))
    pl.watts, pl.err = platform.watts, platform.error_w
    pl.comp = {"platform": platform.watts}
    pl.estimated = platform.estimated
    return pl


def node_watts(policy: str, budget: CpuBudget, gpus: GpuSplit) -> float:
    """What the node row shows: the total, or only its active part with ``--idle none``."""
    if policy != IDLE_NONE:
        return budget.total.watts
    return max(0.0, budget.total.watts - budget.idle_w - gpus.unattributed_w)


def residual_row(watts: float, others: Sequence[Row], budget: CpuBudget, interval: float,
                 warnings: list[str], estimated: bool) -> Row | None:
    residual_w = watts - math.fsum(r.watts for r in others)
    if abs(residual_w) <= 1e-9 * max(1.0, watts):
        residual_w = 0.0  # rounding: no "(residual) 4e-16 W" row (the node sums its rows exactly)
    if residual_w < 0:
        warnings.append(f"attributed {-residual_w:.3f} W more than measured; check the sources")
    if residual_w == 0.0:
        return None
    res_err = residual_error(residual_w, budget.cpu, budget.total)
    return Row(level="synthetic", id="(residual)", name="(residual)", watts=residual_w,
               watts_lo=max(0.0, residual_w - res_err), watts_hi=residual_w + res_err,
               joules=residual_w * interval, note=NOTE_RESIDUAL, estimated=estimated)


def node_row(row_id: str, host: str, watts: float, rows: Sequence[Row], *, policy: str,
             budget: CpuBudget, node_power: NodePower, gpus: GpuSplit, load: CpuLoad,
             infos: Mapping[int, CoreInfo], activity: CpuActivity, interval: float,
             sources: tuple[str, ...], host_estimated: bool) -> Row:
    """The node: the sum of its rows, bounded by the total's error, with its components."""
    idle_included = policy != IDLE_NONE
    err = node_error(budget.total, budget.idle_err, idle_included)
    freq_mhz, nominal = _node_frequency(activity, infos)
    row = Row(
        level="node", id=row_id, name=host,
        watts=math.fsum(r.watts for r in rows) if rows else watts,
        watts_lo=max(0.0, watts - err), watts_hi=watts + err,
        joules=watts * interval,
        freq_mhz=freq_mhz, freq_nominal=nominal,
        cpu_util=100.0 * load.busy_s / interval, cpu_s=load.busy_s,
        # A BMC or psys total is measured even when the CPU split inside it is estimated.
        estimated=(budget.estimated and node_power.total_source not in WIDE_TOTALS) or host_estimated,
        components=_node_components(idle_included, budget, node_power, gpus),
        gpu_watts=(node_power.gpu.watts if node_power.gpu else None),
        sources=sources or None,
        children=tuple(rows),
    )
    if row.watts_lo > row.watts or row.watts_hi < row.watts:
        from dataclasses import replace
        row = replace(row, watts_lo=min(row.watts_lo, row.watts), watts_hi=max(row.watts_hi, row.watts))
    return row


def _node_components(idle_included: bool, budget: CpuBudget, node_power: NodePower,
                     gpus: GpuSplit) -> dict[str, float]:
    comps = {"cpu": budget.cpu.watts if idle_included else budget.active}
    if budget.dram:
        comps["dram"] = budget.dram.watts
    if node_power.gpu:
        comps["gpu"] = node_power.gpu.watts if idle_included else node_power.gpu.watts - gpus.unattributed_w
    if budget.platform is not None:
        comps["platform"] = budget.platform.watts
    return comps


def _node_frequency(activity: CpuActivity, infos: Mapping[int, CoreInfo]) -> tuple[float | None, bool | None]:
    """Busy-weighted mean MHz over cores (plain mean when nothing was busy), and nominal?"""
    freq_num = math.fsum(c.busy_s * infos[c.cpu].mhz for c in activity.cores if infos[c.cpu].mhz)
    freq_den = math.fsum(c.busy_s for c in activity.cores if infos[c.cpu].mhz)
    if freq_den <= 0:
        mhzs = [i.mhz for i in infos.values() if i.mhz]
        freq_num, freq_den = (math.fsum(mhzs), float(len(mhzs))) if mhzs else (0.0, 0.0)
    if freq_den <= 0:
        return None, None
    return freq_num / freq_den, any(i.nominal for i in infos.values())
