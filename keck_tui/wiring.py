"""Builds the local collector and feed from the settings and a typed :class:`LocalSources`.

Optional sources (eBPF, NVML, Redfish, powermetrics, Kubernetes) are imported
lazily; a module that is missing or fails to import becomes an ``unavailable``
source status, never an exception.
"""
from __future__ import annotations

import importlib
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from keck_tui.attribution.engine import AttributionConfig
from keck_tui.calibration_store import default_state_dir, machine_identity
from keck_tui.clock import Clock, SystemClock
from keck_tui.collector import Collector
from keck_tui.config import Settings
from keck_tui.common.errors import SourceConfigError
from keck_tui.feed import ThreadedFeed
from keck_tui.hierarchy.kubelet import KubeletConfig
from keck_tui.model import Snapshot, SourceStatus
from keck_tui.profiles import Profile, apply_tiers, interval_for, model_for, profile_named, trim_detail
from keck_tui.samplers.types import ActivitySampler, CounterSampler, GpuSampler, PowerSampler
from keck_tui.selfwatch import RECOVER_S, SUSTAIN_S, Budget, SelfUsage, SelfWatch

if TYPE_CHECKING:  # the Redfish module is imported only when a BMC is configured
    from keck_tui.samplers.redfish import RedfishConfig


@dataclass(frozen=True)
class HostPowerConfig:
    """In a VM: where the host's figure for this guest is (``--host-power``, ``[host_power]``)."""

    url: str  # http(s)://HOST:PORT[/api/v1/vm/NAME] or file:///path
    vm: str | None = None  # the host's name for this VM
    token_file: str | None = None  # this VM's token, sent only to the URL's origin
    stale_after_s: float | None = None  # None: max(5 s, 3 host intervals)


@dataclass(frozen=True)
class LocalSources:
    """The optional local sources beyond sysfs/procfs, as the command line and config chose them."""

    redfish: RedfishConfig | None = None  # a BMC's wall power
    kubelet: KubeletConfig = field(default_factory=KubeletConfig)  # pod names (auto on a node)
    apple_power: bool = False  # powermetrics through sudo (also tried when /usr/bin/powermetrics exists)
    gpu: bool = True  # NVIDIA GPUs through NVML
    host_power: HostPowerConfig | None = None  # in a VM: the host's measurement of this guest


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
        raise SourceConfigError(f"--procfs-root {settings.procfs_root}: no {Path(settings.procfs_root, 'stat')} "
                       "there (not a procfs)")
    notes: list[SourceStatus] = []
    if settings.probes in ("auto", "ebpf"):
        opener = _optional("keck_tui.samplers.ebpf", "open_ebpf_sampler")
        if opener is None:
            status = SourceStatus("ebpf", "unavailable", "eBPF sampler not built into this keck-top")
            sampler = None
        else:
            try:
                from keck_tui.hierarchy.vms import is_vm_process

                sampler, status = opener(procfs_root=settings.procfs_root, clock=clock,
                                         thread_detail=is_vm_process,
                                         map_entries=profile_named(settings.profile).ebpf_map_entries,
                                         counters=settings.counters != "off")
            except Exception as exc:  # noqa: BLE001
                sampler, status = None, SourceStatus("ebpf", "error", f"{type(exc).__name__}: {exc}")
        if sampler is not None:
            return sampler, notes
        if settings.probes == "ebpf":
            status = SourceStatus(status.name, status.status,
                                  f"{status.detail}; --probes ebpf requested, using procfs instead",
                                  extra=status.extra)
        notes.append(status)
    from keck_tui.hierarchy.vms import is_vm_process

    # procfs reads per-thread time of VM processes only (their vCPU threads become rows).
    return make_activity_sampler(settings.procfs_root, clock, thread_detail=is_vm_process), notes


def build_counters(settings: Settings, clock: Clock,
                   activity: object = None) -> tuple[CounterSampler | None, list[SourceStatus]]:
    """Per-core hardware counters (``--counters auto``), or the status saying why there are none.
    Where the eBPF probe counts (per process, at every switch), its own events give the cores'
    counters too: opening a second set would make the PMU multiplex."""
    if settings.counters == "off":
        return None, [SourceStatus("counters", "unavailable", "turned off (--counters off, or counters = \"off\")",
                                   extra={"fix": "--counters auto (or counters = \"auto\" in the config)"})]
    from_probe = getattr(activity, "counter_sampler", None)
    probe_counters = from_probe() if callable(from_probe) else None
    if probe_counters is not None:
        return probe_counters, []
    from keck_tui.probes.perfevent import supported
    from keck_tui.samplers.perfcounters import PerfCounterSampler

    if not supported():
        return None, [SourceStatus("counters", "unavailable", "perf_event_open is not known on this architecture")]
    return PerfCounterSampler(clock=clock, sysfs_root=settings.sysfs_root), []


def build_power(sources: LocalSources, settings: Settings, clock: Clock) -> list[PowerSampler]:
    from keck_tui.samplers.hwmon import HwmonSampler
    from keck_tui.samplers.rapl import RaplSampler

    samplers: list[PowerSampler] = [RaplSampler(settings.sysfs_root, clock=clock),
                                    HwmonSampler(settings.sysfs_root, clock=clock)]
    if sources.redfish is not None:
        redfish = _optional("keck_tui.samplers.redfish", "RedfishSampler")
        if redfish is not None:
            try:
                samplers.append(redfish.from_config(sources.redfish, clock))
            except SourceConfigError as exc:
                raise SourceConfigError(f"--redfish: {exc}") from None
    if sources.host_power is not None:
        samplers.append(build_host_power(sources.host_power, settings, clock))
    apple = _optional("keck_tui.samplers.powermetrics", "open_powermetrics_sampler")
    if apple is not None and (sources.apple_power or Path("/usr/bin/powermetrics").exists()):
        samplers.append(apple(sources.apple_power, clock))
    return samplers


def build_host_power(config: HostPowerConfig, settings: Settings, clock: Clock) -> PowerSampler:
    """The guest's --host-power source (a poller of the host's document for this VM)."""
    from keck_tui.samplers.hostpower import HostPowerError, HostPowerSampler, parse_target

    try:
        target = parse_target(config.url, config.vm, config.token_file)
    except HostPowerError as exc:
        raise SourceConfigError(str(exc)) from None
    return HostPowerSampler(target, poll_s=min(settings.interval, 5.0), clock=clock,
                            stale_after_s=config.stale_after_s)


def build_estimate(settings: Settings) -> tuple[Any, Any]:
    """The CPU power profile and DRAM estimate from this machine's data (for when nothing
    measures them); (None, None) when the tables cannot be read."""
    from keck_tui.estimate.data import load_estimate_data
    from keck_tui.estimate.profile import choose_cpu_profile, memory_estimate
    from keck_tui.samplers.platform import read_platform_facts

    try:
        data = load_estimate_data()
    except (OSError, ValueError, KeyError):  # a broken install: the old linear model remains
        return None, None
    facts = read_platform_facts(settings.procfs_root, settings.sysfs_root,
                                "/dev" if settings.procfs_root == "/proc" else None)
    return (choose_cpu_profile(facts, data, tdp=settings.tdp, idle_watts=settings.idle_watts),
            memory_estimate(facts, data))


def build_gpus(sources: LocalSources, clock: Clock) -> list[GpuSampler]:
    if not sources.gpu:
        return []
    opener = _optional("keck_tui.samplers.nvml", "open_nvml_sampler")
    return [opener(clock)] if opener is not None else []


def check_kubelet_url(url: str) -> None:
    """A kubelet URL must be http(s) with a host and a valid port, and carry no credentials."""
    from keck_tui.common.urls import UrlError, check_url

    try:
        check_url(url, "--kubelet", example="https://NODE:10250",
                  credentials_hint="the service-account token is sent when present")
    except UrlError as exc:
        raise SourceConfigError(str(exc)) from None


def build_collector(settings: Settings, sources: LocalSources = LocalSources(),
                    clock: Clock | None = None) -> Collector:
    """This node's collector; a bad source option raises SourceConfigError before anything starts."""
    from keck_tui.hierarchy.grouping import make_grouper
    from keck_tui.samplers.cpufreq import CpufreqSampler

    clock = clock or SystemClock()
    if sources.kubelet.url:
        check_kubelet_url(sources.kubelet.url)
    sampling = profile_named(settings.profile)
    activity, notes = build_activity(settings, clock)
    counters, counter_notes = build_counters(settings, clock, activity)
    profile, memory = build_estimate(settings)
    apply_tiers(activity, sampling)
    grouper = make_grouper(sources.kubelet, settings.procfs_root)
    return Collector(
        activity=activity, grouper=grouper, host=host_name(settings),
        power=build_power(sources, settings, clock), gpus=build_gpus(sources, clock),
        frequency=CpufreqSampler(settings.sysfs_root, settings.procfs_root), counters=counters,
        config=AttributionConfig(model=model_for(sampling, settings.model), idle=settings.idle,
                                 idle_watts=settings.idle_watts, tdp=settings.tdp,
                                 cpu_profile=profile, memory=memory),
        clock=clock, extra_sources=(*notes, *counter_notes), work=build_work(settings), state_dir=state_dir(settings),
        machine=machine_identity(settings.procfs_root, settings.sysfs_root),
    )


def build_work(settings: Settings):  # -> WorkMonitor | None
    """Work counters: the config's [[work]] entries and detected inference servers (none: None)."""
    if not settings.work and not settings.work_presets:
        return None
    from keck_tui.config import tariff_from_settings
    from keck_tui.work.attach import WorkMonitor
    from keck_tui.work.scraper import Scraper

    return WorkMonitor(settings.work, Scraper(), presets=settings.work_presets,
                       tariff=tariff_from_settings(settings))


@dataclass(frozen=True)
class SelfLimit:
    """What `keck-top serve` asks of the local feed: budgets to keep, and trimmed snapshots."""

    budget: Budget | None = None  # step profiles down when keck-top costs more (None: never)
    upstream: bool = False  # snapshots go to other machines: apply the profile's row detail
    usage: SelfUsage | None = None  # tests inject a fake reader of this process's CPU and RSS
    sustain_s: float = SUSTAIN_S  # over budget this long: one profile down
    recover_s: float = RECOVER_S  # well under this long: one profile up


def state_dir(settings: Settings) -> Path | None:
    """Where the calibration is kept: --state-dir / state_dir, else the cache directory; None for 'none'."""
    if settings.state_dir == "none":
        return None
    return Path(settings.state_dir) if settings.state_dir else default_state_dir()


def build_local_feed(settings: Settings, sources: LocalSources = LocalSources(), *,
                     clock: Clock | None = None,
                     on_snapshot: Callable[[Snapshot], None] | None = None,
                     limit: SelfLimit = SelfLimit()) -> ThreadedFeed:
    """A feed that samples this node every ``settings.interval`` seconds on its own thread
    (at the fastest the profile's interval), under ``settings.profile``.

    Each ``collect()`` measures the interval since the previous one: the collector
    is primed here and the first snapshot arrives after one interval.
    """
    clock = clock or SystemClock()
    collector = build_collector(settings, sources, clock)
    collector.prime()
    produce = ProfiledCollect(collector, settings, limit, clock)
    interval = interval_for(produce.profile, settings.interval)
    feed = ThreadedFeed(produce, interval=interval, clock=clock,
                        on_snapshot=on_snapshot, name="keck-collector",
                        initial_delay=interval, on_stop=collector.close)
    produce.feed = feed
    return feed


class ProfiledCollect:
    """``collector.collect()`` under a profile: the snapshot says which, and with a budget
    the profile steps down (and back up) as keck-top's own CPU and RSS demand."""

    def __init__(self, collector: Collector, settings: Settings, limit: SelfLimit, clock: Clock) -> None:
        self.collector = collector
        self.settings = settings
        self.limit = limit
        self.profile = profile_named(settings.profile)
        self.feed: ThreadedFeed | None = None
        self.watch = None if limit.budget is None else SelfWatch(
            self.profile, limit.budget, self.apply, usage=limit.usage, clock=clock,
            sustain_s=limit.sustain_s, recover_s=limit.recover_s)

    def apply(self, profile: Profile) -> None:
        """Switch the running collector to ``profile`` (the eBPF map keeps its size until restart)."""
        self.profile = profile
        apply_tiers(self.collector.activity, profile)
        self.collector.config = replace(self.collector.config, model=model_for(profile, self.settings.model))
        if self.feed is not None:
            self.feed.set_interval(interval_for(profile, self.settings.interval))

    def __call__(self) -> Snapshot:
        snap = self.collector.collect()
        if self.watch is not None:
            self.watch.check()
            state = self.watch.state()
        else:
            state = {"name": self.profile.name, "configured": self.settings.profile}
        root = snap.root
        if self.limit.upstream:
            root = trim_detail(root, per_core_rows=self.profile.per_core_rows,
                               process_rows=self.profile.process_rows)
        return replace(snap, root=root, extra={**snap.extra, "profile": state})
