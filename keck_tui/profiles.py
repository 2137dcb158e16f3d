"""Sampling profiles: how much keck-top itself may cost (``--profile minimal|standard|full``).

A profile sets the fastest refresh interval, the procfs tiers (how often command lines,
cgroups and PSS are re-read), the eBPF map size, whether per-core rows and
process rows are kept in the snapshots an agent serves, and the attribution
model. ``PROFILES`` is ordered cheapest first: the self-monitor
(:mod:`keck_tui.selfwatch`) steps one place down it when keck-top exceeds its
budget, and back up when it has been well under for longer.

Measured costs are in README.md ("Profiles"), from ``benchmarks/bench_profiles.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from keck_tui.config import PROFILES as PROFILE_NAMES
from keck_tui.model import Row


@dataclass(frozen=True)
class Profile:
    name: str
    min_interval: float  # seconds between samples at the fastest (the user's --interval if longer)
    refresh_every: int  # samples between re-reads of a process's cmdline, cgroup and owner
    pss: bool  # read PSS (smaps_rollup) at all; without it RSS splits DRAM power
    pss_every: int  # slow tier: samples between PSS re-reads of a process whose RSS is steady
    pss_moved_every: int  # at most this often (samples) a process whose RSS moved is re-read
    pss_idle_every: int  # slow tier of a process that has not run since its last PSS read
    pss_new_after: int  # samples a new process waits for its first PSS read (the short-lived never do)
    pss_top: int  # the busiest N processes get PSS every sample
    ebpf_map_entries: int  # per-process slots of the eBPF hash (fixed when the probe loads)
    per_core_rows: bool  # core rows under processes in served snapshots
    process_rows: bool  # process rows in served snapshots (else one "(processes)" row per group)
    model: str  # attribution model
    budget_cpu_pct: float  # default CPU budget, percent of one CPU
    budget_mem_mib: float  # default memory budget (RSS), MiB


PROFILES: tuple[Profile, ...] = (
    Profile("minimal", min_interval=5.0, refresh_every=60, pss=False, pss_every=60, pss_moved_every=60, pss_idle_every=60,
            pss_new_after=0,
            pss_top=0,
            ebpf_map_entries=4096, per_core_rows=False, process_rows=False, model="cpu-time",
            budget_cpu_pct=1.0, budget_mem_mib=64.0),
    Profile("standard", min_interval=0.0, refresh_every=30, pss=True, pss_every=30, pss_moved_every=5, pss_idle_every=120,
            pss_new_after=3,
            pss_top=0,
            ebpf_map_entries=10240, per_core_rows=True, process_rows=True, model="auto",
            budget_cpu_pct=5.0, budget_mem_mib=128.0),
    Profile("full", min_interval=0.0, refresh_every=10, pss=True, pss_every=10, pss_moved_every=1, pss_idle_every=30,
            pss_new_after=0,
            pss_top=8,
            ebpf_map_entries=32768, per_core_rows=True, process_rows=True, model="full",
            budget_cpu_pct=10.0, budget_mem_mib=256.0),
)
DEFAULT_PROFILE = "standard"


def profile_named(name: str) -> Profile:
    for p in PROFILES:
        if p.name == name:
            return p
    raise ValueError(f"unknown profile {name!r} (one of {', '.join(PROFILE_NAMES)})")


def lower(profile: Profile) -> Profile | None:
    """The next cheaper profile, or None at the bottom."""
    i = PROFILE_NAMES.index(profile.name)
    return PROFILES[i - 1] if i > 0 else None


def higher(profile: Profile, ceiling: Profile) -> Profile | None:
    """The next richer profile, never above ``ceiling`` (the one configured)."""
    i = PROFILE_NAMES.index(profile.name)
    if i >= PROFILE_NAMES.index(ceiling.name):
        return None
    return PROFILES[i + 1]


def interval_for(profile: Profile, interval: float) -> float:
    """The sampling interval under ``profile`` when the user asked for ``interval``."""
    return max(interval, profile.min_interval)


def model_for(profile: Profile, model: str) -> str:
    """The attribution model: the user's unless it is ``auto``, then the profile's."""
    return profile.model if model == "auto" else model


def apply_tiers(sampler: object, profile: Profile) -> None:
    """Set the procfs tiers on an activity sampler (or the procfs sampler an eBPF one enriches with)."""
    for target in (sampler, getattr(sampler, "enrich", None)):
        if target is None or not hasattr(target, "pss_every"):
            continue
        target.pss = profile.pss  # type: ignore[attr-defined]
        target.pss_every = profile.pss_every  # type: ignore[attr-defined]
        target.pss_top = profile.pss_top  # type: ignore[attr-defined]
        target.pss_moved_every = profile.pss_moved_every  # type: ignore[attr-defined]
        target.pss_idle_every = profile.pss_idle_every  # type: ignore[attr-defined]
        target.pss_new_after = profile.pss_new_after  # type: ignore[attr-defined]
        target.refresh_every = profile.refresh_every  # type: ignore[attr-defined]


def trim_detail(root: Row, *, per_core_rows: bool, process_rows: bool) -> Row:
    """The tree with the detail a profile leaves out, watts kept whole.

    Without per-core rows a process row whose children are all per-core rows (or the
    ``(cpu)`` row) loses them and keeps its own totals; other children (a VM's vCPU
    threads) stay.
    Without process rows the process children of a row become one synthetic
    ``(processes)`` row with their sums, so children still add up to their parent.
    """
    if per_core_rows and process_rows:
        return root
    return _trim(root, per_core_rows, process_rows)


def _trim(row: Row, per_core: bool, processes: bool) -> Row:
    if row.level == "process":
        if per_core or not row.children or not all(c.level == "core" or c.id == "(cpu)" for c in row.children):
            return row
        return replace(row, children=())
    if not row.children:
        return row
    kept: list[Row] = []
    procs: list[Row] = []
    changed = False
    for child in row.children:
        if child.level == "process" and not processes:
            procs.append(child)
            changed = True
            continue
        new = _trim(child, per_core, processes)
        changed = changed or new is not child
        kept.append(new)
    if procs:
        kept.append(_processes_row(procs))
    return replace(row, children=tuple(kept)) if changed else row


def _processes_row(procs: list[Row]) -> Row:
    def total(attr: str) -> float | None:
        values = [getattr(p, attr) for p in procs]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    return Row(level="synthetic", id="(processes)", name="(processes)",
               watts=sum(p.watts for p in procs), watts_lo=sum(p.watts_lo for p in procs),
               watts_hi=sum(p.watts_hi for p in procs), joules=sum(p.joules for p in procs),
               cpu_util=total("cpu_util"), cpu_s=total("cpu_s"), gpu_watts=total("gpu_watts"),
               estimated=any(p.estimated for p in procs),
               note=f"{len(procs)} processes (this profile sends no process rows)")
