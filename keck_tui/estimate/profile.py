"""From what the machine says about itself to an estimated power curve, with its reasons.

:func:`choose_cpu_profile` picks one of:

* ``tdp`` — bare metal whose model name is in the TDP table: ``P(u) = TDP · sockets · f(u)``
  with ``f`` Teads' curve (12 % of TDP idle … 102 % at full load);
* ``class`` — a virtual machine (or a CPU without a TDP entry) whose class is known from the
  model name or the cpuid numbers: Cloud Carbon Footprint's watts per vCPU (idle, full load)
  times the logical CPUs, shaped by the same curve;
* ``average`` — nothing identifies the CPU: the average over all classes (what CCF does for
  an unknown CPU), with the spread over all classes as the bound;
* ``configured`` — ``--tdp`` (and/or ``--idle-watts``) given: those figures replace the data's.

The bound at a utilisation spans the dataset's spread for the class (its lowest and highest
watts per thread at idle and at full load) plus the difference between the curve and a
straight line (the two public models, Teads' and CCF's linear one).

:func:`memory_estimate` gives DRAM watts from the memory size with CCF's 0.392 W/GB.
Pure functions: the facts come from :mod:`keck_tui.samplers.platform`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from keck_tui.estimate.classes import class_from_arm, class_from_cpuid, class_from_model_name
from keck_tui.estimate.cpuinfo import CpuIdentity
from keck_tui.estimate.data import ClassCoefficients, EstimateData, WattsBand

GIB = 1024 ** 3


@dataclass(frozen=True)
class PlatformFacts:
    """What the machine says about its CPU, memory and virtualisation."""

    identity: CpuIdentity = field(default_factory=CpuIdentity)
    logical_cpus: int = 1
    virtual: bool = False
    virtual_why: str = ""  # e.g. "cpuinfo flag 'hypervisor'"
    provider: str | None = None  # aws | gcp | azure | None
    provider_why: str = ""
    mem_total_bytes: int | None = None


@dataclass(frozen=True)
class CpuPowerProfile(WattsBand):
    """Estimated CPU watts as a function of utilisation, with bounds and the reasons."""

    curve_u: tuple[float, ...]
    curve_shape: tuple[float, ...]  # 0 at idle, 1 at full load
    method: str  # tdp | class | average | configured
    entry: str  # the table entry that matched
    why: tuple[str, ...]
    source: str

    def shape(self, u: float) -> float:
        u = min(1.0, max(0.0, u))
        xs, ys = self.curve_u, self.curve_shape
        for i in range(1, len(xs)):
            if u <= xs[i]:
                span = xs[i] - xs[i - 1]
                t = (u - xs[i - 1]) / span if span > 0 else 1.0
                return ys[i - 1] + t * (ys[i] - ys[i - 1])
        return ys[-1]

    def at(self, u: float) -> tuple[float, float, float]:
        """(watts, lo, hi) at utilisation ``u`` (0..1)."""
        u = min(1.0, max(0.0, u))
        s = self.shape(u)
        watts = self.idle_w + (self.max_w - self.idle_w) * s
        lo = self.idle_lo + (self.max_lo - self.idle_lo) * s
        hi = self.idle_hi + (self.max_hi - self.idle_hi) * s
        model_spread = abs(self.max_w - self.idle_w) * abs(s - u)  # curve vs a straight line
        lo = max(0.0, min(lo, watts) - model_spread)
        hi = max(hi, watts) + model_spread
        return watts, lo, hi

    def error_at(self, u: float) -> float:
        """A symmetric error bound (watts) that covers [lo, hi] at ``u``."""
        watts, lo, hi = self.at(u)
        return max(watts - lo, hi - watts)

    def summary(self) -> str:
        return (f"{self.entry}: {self.idle_w:.1f} W idle (data {self.idle_lo:.1f}–{self.idle_hi:.1f}) to "
                f"{self.max_w:.1f} W at full load (data {self.max_lo:.1f}–{self.max_hi:.1f})")


@dataclass(frozen=True)
class MemoryEstimate:
    gib: float
    watts: float
    lo: float
    hi: float
    why: str
    source: str

    @property
    def error_w(self) -> float:
        return max(self.watts - self.lo, self.hi - self.watts)


def _shape(data: EstimateData) -> tuple[float, ...]:
    f0, f1 = data.curve_factor[0], data.curve_factor[-1]
    return tuple((f - f0) / (f1 - f0) for f in data.curve_factor)


def _class_of(identity: CpuIdentity) -> tuple[str, str] | None:
    if identity.model_name and not identity.masked:
        found = class_from_model_name(identity.model_name)
        if found:
            return found
    found = class_from_cpuid(identity.vendor, identity.family, identity.model, identity.stepping)
    if found:
        why = found[1]
        if identity.masked:
            why = f"model name {identity.model_name.strip()!r} is masked (no SKU); {why}"
        return found[0], why
    found = class_from_arm(identity.arm_implementer, identity.arm_part)
    if found:
        return found
    if identity.model_name:
        return class_from_model_name(identity.model_name)  # a QEMU model name, masked or not
    return None


def _relative_spread(rows: list[ClassCoefficients]) -> tuple[float, float, float, float]:
    """(idle lo, idle hi, max lo, max hi) as ratios to the central figures, over ``rows``."""
    il = min(c.idle_lo / c.idle_w for c in rows if c.idle_w > 0)
    ih = max(c.idle_hi / c.idle_w for c in rows if c.idle_w > 0)
    ml = min(c.max_lo / c.max_w for c in rows if c.max_w > 0)
    mh = max(c.max_hi / c.max_w for c in rows if c.max_w > 0)
    return il, ih, ml, mh


def choose_cpu_profile(facts: PlatformFacts, data: EstimateData, *, tdp: float | None = None,
                       idle_watts: float | None = None) -> CpuPowerProfile:
    """The estimate for this machine; see the module docstring for the order of methods."""
    ident = facts.identity
    n = max(1, facts.logical_cpus)
    provider = facts.provider or "aws"
    why: list[str] = []
    if facts.virtual:
        why.append(f"virtual machine ({facts.virtual_why})")
    if facts.provider:
        why.append(f"cloud provider {facts.provider} ({facts.provider_why})")
    shape = _shape(data)
    found = _class_of(ident)
    coeff = data.class_coefficients(found[0], provider) if found else None
    if found:
        why.append(found[1])
    tdp_hit = None if (ident.masked or facts.virtual) else data.lookup_tdp(ident.model_name)
    all_rows = data.all_classes(provider)

    if tdp_hit is not None:
        name, socket_tdp = tdp_hit
        sockets = max(1, ident.sockets)
        scale = socket_tdp * sockets
        rows = [coeff] if coeff else all_rows
        il, ih, ml, mh = _relative_spread(rows)
        f0, f1 = data.curve_factor[0], data.curve_factor[-1]
        idle, full = scale * f0, scale * f1
        why.append(f"model name {ident.model_name.strip()!r} matches {name!r} (TDP {socket_tdp:g} W × {sockets} "
                   f"socket{'s' if sockets > 1 else ''}) in codecarbon's TDP table")
        why.append(f"bound: the spread of {'the ' + coeff.cls + ' class' if coeff else 'all classes'} "
                   "in the SPECpower-derived table")
        profile = CpuPowerProfile(idle, full, idle * il, idle * ih, full * ml, full * mh, data.curve_u, shape,
                                  "tdp", f"{name} ({socket_tdp:g} W TDP × {sockets})", tuple(why),
                                  f"codecarbon cpu_power.csv; curve: {data.curve_source}")
    elif coeff is not None:
        why.append(f"{coeff.cls} on {coeff.provider}: {coeff.idle_w:.2f}–{coeff.max_w:.2f} W per vCPU "
                   f"(Cloud Carbon Footprint) × {n} logical CPUs; spread from {coeff.spec_results} "
                   "SPECpower results")
        profile = CpuPowerProfile(*coeff.scaled(n).figures(), data.curve_u, shape, "class",
                                  f"{coeff.cls} ({coeff.provider}, per vCPU)", tuple(why),
                                  f"Cloud Carbon Footprint coefficients ({coeff.provider}); curve: {data.curve_source}")
    else:
        idle = math.fsum(c.idle_w for c in all_rows) / len(all_rows)
        full = math.fsum(c.max_w for c in all_rows) / len(all_rows)
        what = repr(ident.model_name.strip()) if ident.model_name.strip() else "no model name"
        why.append(f"CPU not identified ({what}): the average over all {len(all_rows)} classes "
                   f"({idle:.2f}–{full:.2f} W per vCPU) × {n} logical CPUs, bound: their whole spread")
        spread = WattsBand(idle, full, min(c.idle_lo for c in all_rows), max(c.idle_hi for c in all_rows),
                           min(c.max_lo for c in all_rows), max(c.max_hi for c in all_rows))
        profile = CpuPowerProfile(*spread.scaled(n).figures(), data.curve_u, shape, "average",
                                  "all classes (average)", tuple(why),
                                  f"Cloud Carbon Footprint coefficients; curve: {data.curve_source}")
    return _with_overrides(profile, tdp, idle_watts)


def _with_overrides(p: CpuPowerProfile, tdp: float | None, idle_watts: float | None) -> CpuPowerProfile:
    if tdp is None and idle_watts is None:
        return p
    why = list(p.why)
    full, full_lo, full_hi = p.max_w, p.max_lo, p.max_hi
    if tdp is not None and tdp > 0:
        full = full_lo = full_hi = float(tdp)
        why.append(f"--tdp {tdp:g} W replaces the data's full-load figure")
    if idle_watts is not None:
        idle = idle_lo = idle_hi = min(max(0.0, float(idle_watts)), full)
        why.append(f"--idle-watts {idle_watts:g} W replaces the data's idle figure")
    else:
        ratio = p.idle_w / p.max_w if p.max_w > 0 else 0.12
        idle = full * ratio
        idle_lo = full * (p.idle_lo / p.max_w if p.max_w > 0 else ratio)
        idle_hi = min(full, full * (p.idle_hi / p.max_w if p.max_w > 0 else ratio))
        why.append(f"idle at {100 * ratio:.0f} % of full load, as in the data for {p.entry}")
    return CpuPowerProfile(idle, full, min(idle_lo, idle), max(idle_hi, idle), full_lo, full_hi, p.curve_u,
                           p.curve_shape, "configured", f"configured (data: {p.entry})", tuple(why), p.source)


def memory_estimate(facts: PlatformFacts, data: EstimateData) -> MemoryEstimate | None:
    """DRAM watts from the memory size (a guest's: the VM's memory), or None when unknown."""
    if not facts.mem_total_bytes or facts.mem_total_bytes <= 0:
        return None
    gib = facts.mem_total_bytes / GIB
    where = "the VM's memory" if facts.virtual else "installed memory"
    return MemoryEstimate(
        gib=gib, watts=gib * data.memory_w_per_gb, lo=gib * data.memory_lo, hi=gib * data.memory_hi,
        why=(f"{gib:.1f} GiB ({where}, MemTotal) × {data.memory_w_per_gb} W/GB "
             f"(range {data.memory_lo:.3g}–{data.memory_hi:.3g} W/GB)"),
        source=data.memory_source)
