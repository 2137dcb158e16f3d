"""Node power and its components from whatever power sources answered.

Rules (docs/design.md, "Node power"): cpu = Σ package domains over sockets; dram = Σ dram domains;
gpu = Σ accelerators; core/uncore are inside package and psys is platform, so
neither is added to packages. The node total is the widest measured source:
BMC wall power (DOMAIN_NODE), else psys + discrete GPUs, else cpu + dram + gpu.
What the total has beyond its components is the ``(platform)`` remainder; a
total *below* its components is a disagreement: it is reported, the larger
figure is kept and the bound widened to cover both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from keck_tui.samplers.types import (DOMAIN_DRAM, DOMAIN_GPU, DOMAIN_NODE, DOMAIN_PACKAGE,
                                     DOMAIN_PSYS, GpuReading, PowerReading)


@dataclass(frozen=True)
class Component:
    """Watts of one component with an absolute error bound and where they came from."""

    watts: float
    error_w: float
    sources: tuple[str, ...] = ()
    estimated: bool = False

    @property
    def rel_error(self) -> float:
        return self.error_w / self.watts if self.watts > 0 else 0.0


@dataclass(frozen=True)
class NodePower:
    total: Component  # what the node row shows
    cpu: Component | None  # None: no CPU measurement (to be estimated)
    dram: Component | None
    gpu: Component | None
    platform: Component | None  # total minus components (fans, PSU loss, disks)
    total_source: str  # "bmc" | "host" | "psys" | "components" | "none"
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _sum(parts: list[tuple[float, float, str]]) -> Component | None:
    if not parts:
        return None
    return Component(watts=math.fsum(w for w, _, _ in parts),
                     error_w=math.fsum(e for _, e, _ in parts),
                     sources=tuple(dict.fromkeys(s for _, _, s in parts)))


def combine(*components: Component | None) -> Component | None:
    """Sum of components (errors add: they are not independent in general)."""
    present = [c for c in components if c is not None]
    if not present:
        return None
    return Component(watts=math.fsum(c.watts for c in present),
                     error_w=math.fsum(c.error_w for c in present),
                     sources=tuple(dict.fromkeys(s for c in present for s in c.sources)),
                     estimated=any(c.estimated for c in present))


def _wall_total(node: list[tuple[float, float, str]], warnings: list[str]) -> Component:
    """The node's wall power from ONE source (a BMC first, else e.g. an ACPI power meter).

    Several chassis of one BMC add up; two sources that each read the wall (a BMC and an
    ACPI meter) measure the same watts and must never be summed. The others only check
    the chosen one: where they disagree beyond their accuracies, say so and widen the bound.
    """
    by_source: dict[str, list[tuple[float, float, str]]] = {}
    for entry in node:
        by_source.setdefault(entry[2], []).append(entry)
    pick = "redfish" if "redfish" in by_source else "host" if "host" in by_source else next(iter(by_source))
    total = _sum(by_source[pick])
    assert total is not None
    for name, entries in by_source.items():
        other = _sum(entries)
        if name == pick or other is None:
            continue
        gap = abs(other.watts - total.watts)
        if gap > total.error_w + other.error_w:
            warnings.append(f"{name} reads {other.watts:.1f} W for the whole node, {pick} {total.watts:.1f} W: "
                            f"sources disagree; keeping {pick} and widening the bound")
            total = Component(total.watts, max(total.error_w, gap + other.error_w), total.sources + other.sources)
    return total


def resolve_node_power(power: tuple[PowerReading, ...], gpus: tuple[GpuReading, ...] = ()) -> NodePower:
    packages: list[tuple[float, float, str]] = []
    dram: list[tuple[float, float, str]] = []
    psys: list[tuple[float, float, str]] = []
    node: list[tuple[float, float, str]] = []
    soc_gpu: list[tuple[float, float, str]] = []
    for reading in power:
        if not reading.source.ok:
            continue
        name = reading.source.name
        for d in reading.domains:
            entry = (max(0.0, d.watts), abs(d.watts) * d.accuracy, name)
            if d.kind == DOMAIN_PACKAGE:
                packages.append(entry)
            elif d.kind == DOMAIN_DRAM:
                dram.append(entry)
            elif d.kind == DOMAIN_PSYS:
                psys.append(entry)
            elif d.kind == DOMAIN_NODE:
                node.append(entry)
            elif d.kind == DOMAIN_GPU:
                soc_gpu.append(entry)
    discrete = [(max(0.0, dev.watts), dev.accuracy_w, r.source.name)
                for r in gpus if r.source.ok for dev in r.devices]
    cpu_c = _sum(packages)
    dram_c = _sum(dram)
    gpu_c = _sum(discrete + soc_gpu)
    discrete_c = _sum(discrete)
    comp_sum = combine(cpu_c, dram_c, gpu_c)

    warnings: list[str] = []
    if node:
        total = _wall_total(node, warnings)
        # The host's measurement of this VM (samplers/hostpower.py) is the guest's wall power.
        total_source = "host" if total.sources[:1] == ("host",) else "bmc"
    elif psys:
        psys_c = _sum(psys)
        total, total_source = combine(psys_c, discrete_c), "psys"
    elif comp_sum is not None:
        total, total_source = comp_sum, "components"
    else:
        return NodePower(total=Component(0.0, 0.0), cpu=None, dram=None, gpu=None,
                         platform=None, total_source="none")
    assert total is not None

    platform: Component | None = None
    if total_source != "components" and comp_sum is not None:
        gap = total.watts - comp_sum.watts
        if gap >= 0:
            platform = Component(gap, total.error_w + comp_sum.error_w,
                                 total.sources + comp_sum.sources)
        else:
            what = {"bmc": "BMC", "host": "the host's figure"}.get(total_source, "psys")
            warnings.append(
                f"{what} reads {total.watts:.1f} W, below its components' {comp_sum.watts:.1f} W: "
                f"sources disagree; keeping the larger and widening the bound")
            widened = max(total.error_w, comp_sum.error_w) + (comp_sum.watts - total.watts)
            total = Component(comp_sum.watts, widened, total.sources + comp_sum.sources)
            platform = Component(0.0, 0.0, ())
    elif total_source != "components":
        platform = None  # no components: the whole total is attributed via the CPU estimate
    return NodePower(total=total, cpu=cpu_c, dram=dram_c, gpu=gpu_c, platform=platform,
                     total_source=total_source, warnings=tuple(warnings))
