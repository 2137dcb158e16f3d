"""Builds the local collector and feed from flags and settings.

Optional sources (eBPF, NVML, Redfish, powermetrics, Kubernetes) are imported
lazily; a module that is missing or fails to import becomes an ``unavailable``
source status, never an exception.
"""
from __future__ import annotations

import argparse
import importlib
import socket
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from keck_tui.attribution.engine import AttributionConfig
from keck_tui.clock import Clock, SystemClock
from keck_tui.collector import Collector
from keck_tui.config import Settings
from keck_tui.feed import ThreadedFeed
from keck_tui.model import Snapshot, SourceStatus
from keck_tui.samplers.types import ActivitySampler, GpuSampler, PowerSampler


def _optional(module: str, attr: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def host_name(settings: Settings) -> str:
    return settings.host or socket.gethostname()


def build_activity(settings: Settings, clock: Clock) -> tuple[ActivitySampler, list[SourceStatus]]:
    """eBPF when asked or possible (auto), else procfs; the status says which and why."""
    from keck_tui.samplers.procfs import make_activity_sampler

    if settings.procfs_root != "/proc" and not Path(settings.procfs_root, "stat").exists():
        # Without this, a mistyped --procfs-root silently fell back to psutil (the real /proc).
        from keck_tui.cli import CliError

        raise CliError(f"--procfs-root {settings.procfs_root}: no {Path(settings.procfs_root, 'stat')} "
                       "there (not a procfs)")
    notes: list[SourceStatus] = []
    if settings.probes in ("auto", "ebpf"):
        opener = _optional("keck_tui.samplers.ebpf", "open_ebpf_sampler")
        if opener is None:
            status = SourceStatus("ebpf", "unavailable", "eBPF sampler not built into this keck-top")
            sampler = None
        else:
            try:
                sampler, status = opener(procfs_root=settings.procfs_root, clock=clock)
            except Exception as exc:  # noqa: BLE001
                sampler, status = None, SourceStatus("ebpf", "error", f"{type(exc).__name__}: {exc}")
        if sampler is not None:
            return sampler, notes
        if settings.probes == "ebpf":
            status = SourceStatus(status.name, status.status,
                                  f"{status.detail}; --probes ebpf requested, using procfs instead",
                                  extra=status.extra)
        notes.append(status)
    return make_activity_sampler(settings.procfs_root, clock), notes


def build_power(args: argparse.Namespace, settings: Settings, clock: Clock) -> list[PowerSampler]:
    from keck_tui.samplers.hwmon import HwmonSampler
    from keck_tui.samplers.rapl import RaplSampler

    samplers: list[PowerSampler] = [RaplSampler(settings.sysfs_root, clock=clock),
                                    HwmonSampler(settings.sysfs_root, clock=clock)]
    redfish_section = settings.extra.get("redfish") or {}
    if getattr(args, "redfish", None) or redfish_section.get("url"):
        redfish = _optional("keck_tui.samplers.redfish", "RedfishSampler")
        if redfish is not None:
            samplers.append(redfish.from_args(args, clock, section=redfish_section))
    apple = _optional("keck_tui.samplers.powermetrics", "open_powermetrics_sampler")
    if apple is not None and (getattr(args, "apple_power", False) or Path("/usr/bin/powermetrics").exists()):
        samplers.append(apple(bool(getattr(args, "apple_power", False)), clock))
    return samplers


def build_gpus(args: argparse.Namespace, clock: Clock) -> list[GpuSampler]:
    if getattr(args, "no_gpu", False):
        return []
    opener = _optional("keck_tui.samplers.nvml", "open_nvml_sampler")
    return [opener(clock)] if opener is not None else []


def build_collector(args: argparse.Namespace, settings: Settings, clock: Clock | None = None) -> Collector:
    from keck_tui.hierarchy.grouping import make_grouper
    from keck_tui.samplers.cpufreq import CpufreqSampler

    clock = clock or SystemClock()
    kubelet = getattr(args, "kubelet", None) or (settings.extra.get("kubelet") or {}).get("url")
    if kubelet:
        parts = urlsplit(str(kubelet))
        from keck_tui.cli import CliError

        if parts.username is not None or parts.password is not None:
            raise CliError("--kubelet: credentials in the URL are refused (they show in ps and in snapshots); "
                           "the service-account token is sent when present")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(f"--kubelet: not an http(s) URL: {kubelet!r} (e.g. https://NODE:10250)")
    activity, notes = build_activity(settings, clock)
    grouper = make_grouper(settings, getattr(args, "kubelet", None), settings.procfs_root)
    return Collector(
        activity=activity, grouper=grouper, host=host_name(settings),
        power=build_power(args, settings, clock), gpus=build_gpus(args, clock),
        frequency=CpufreqSampler(settings.sysfs_root, settings.procfs_root),
        config=AttributionConfig(model=settings.model, idle=settings.idle,
                                 idle_watts=settings.idle_watts, tdp=settings.tdp),
        clock=clock, extra_sources=tuple(notes),
    )


def build_local_feed(args: argparse.Namespace, settings: Settings, *, clock: Clock | None = None,
                     on_snapshot: Callable[[Snapshot], None] | None = None) -> ThreadedFeed:
    """A feed that samples this node every ``settings.interval`` seconds on its own thread.

    Each ``collect()`` measures the interval since the previous one: the collector
    is primed here and the first snapshot arrives after one interval.
    """
    clock = clock or SystemClock()
    collector = build_collector(args, settings, clock)
    collector.prime()
    feed = ThreadedFeed(collector.collect, interval=settings.interval, clock=clock,
                        on_snapshot=on_snapshot, name="keck-collector",
                        initial_delay=settings.interval, on_stop=collector.close)
    return feed
