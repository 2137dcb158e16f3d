"""What samplers hand to the collector: readings over a measured interval.

Every sampler is stateful in one way only: it keeps its previous raw counters
so that ``sample()`` can return values *over the interval since the previous
call*, measured with the injected clock. The first call primes the counters and
returns no values (status ok, detail "warming up"). Trouble a sampler expects
(a missing file, a denied read) becomes the reading's ``source`` status; anything
else it raises is turned into its error status by :func:`safe_sample`, which the
collector applies to every sampler, once. A sampler that raised is called again
next interval, and recovers if the trouble went away.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, TypeVar

from keck_tui.model import STATUS_ERROR, SourceStatus

# Kinds of power domain, and how they add up (docs/design.md, "Samplers" and "Node power").
DOMAIN_PACKAGE = "package"  # CPU socket; sums over sockets to the cpu component
DOMAIN_CORE = "core"  # inside package: informational only
DOMAIN_UNCORE = "uncore"  # inside package: informational only
DOMAIN_DRAM = "dram"  # the dram component
DOMAIN_PSYS = "psys"  # platform (SoC + more): a node total, never added to packages
DOMAIN_GPU = "gpu"  # one accelerator
DOMAIN_NODE = "node"  # wall power of the whole node (BMC, PSU input)
DOMAIN_OTHER = "other"  # a sensor that adds to nothing (shown, not summed)


@dataclass(frozen=True)
class PowerDomain:
    """Mean watts of one power domain over the sampler's measured interval."""

    name: str  # stable, e.g. "package-0", "dram-0", "psys", "gpu-0", "chassis-1"
    kind: str  # one of the DOMAIN_* constants
    watts: float
    interval_s: float
    accuracy: float  # relative error bound of this reading, e.g. 0.02 for ±2 %
    joules: float | None = None  # energy over the interval when a counter gave it
    socket: int | None = None
    label: str | None = None  # the hardware's own label (hwmon label, Redfish name)
    flags: tuple[str, ...] = ()  # "wrapped", "multi-wrap?", "backwards", ...


@dataclass(frozen=True)
class PowerReading:
    """One power source's domains, or why it has none."""

    source: SourceStatus
    domains: tuple[PowerDomain, ...] = ()


class PowerSampler(Protocol):
    name: str

    def sample(self) -> PowerReading: ...


@dataclass(frozen=True)
class GpuProcess:
    """A process's use of one GPU over the interval."""

    pid: int
    sm_share: float  # 0..1 share of the device's SM activity attributable to it
    mem_bytes: int | None = None


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    uuid: str
    watts: float  # mean over the interval (from the energy counter where possible)
    accuracy_w: float  # absolute bound of the power reading (NVML tolerance)
    joules: float | None = None
    idle_watts: float | None = None  # device power at no load, when known
    util_pct: float | None = None
    sm_clock_mhz: float | None = None
    mem_used_bytes: int | None = None
    temp_c: float | None = None
    power_limit_w: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    mig: tuple[Mapping[str, object], ...] = ()


@dataclass(frozen=True)
class GpuReading:
    source: SourceStatus
    devices: tuple[GpuDevice, ...] = ()


class GpuSampler(Protocol):
    name: str

    def sample(self) -> GpuReading: ...


@dataclass(frozen=True)
class CounterDelta:
    """Hardware-counter deltas over the interval for one (process, core) or one core.

    Values are already scaled for multiplexing (× time_enabled / time_running);
    ``running_ratio`` is time_running / time_enabled (1.0 = never multiplexed).
    A counter the PMU does not have is None, never 0.
    """

    cycles: float | None = None
    instructions: float | None = None
    llc_misses: float | None = None
    ref_cycles: float | None = None  # or MPERF-equivalent: cycles at the nominal frequency
    running_ratio: float = 1.0

    @property
    def ipc(self) -> float | None:
        if self.cycles and self.instructions is not None:
            return self.instructions / self.cycles
        return None


@dataclass(frozen=True)
class CounterReading:
    """Per-core hardware counters from perf_event_open (no eBPF), or why there are none."""

    source: SourceStatus
    interval_s: float = 0.0
    cores: Mapping[int, CounterDelta] = field(default_factory=dict)  # cpu -> deltas


def multiplexed(count: float, enabled: float, running: float) -> tuple[float, float] | None:
    """A counter's ``count`` over a span scaled for PMU multiplexing (× enabled / running, when
    the event was on the PMU only part of the time it was enabled) and its running ratio; None
    when it never ran. One rule for every counters source (per core and per process)."""
    if enabled <= 0 or running <= 0:
        return None
    if running < enabled:
        return count * enabled / running, running / enabled
    return float(count), 1.0


def counting_state(deltas: Mapping[int, CounterDelta]) -> tuple[float, str]:
    """The cores' lowest running ratio over the interval and what it means for a ``counters``
    status, as a suffix: "; warming up" before any interval, "; multiplexed: ..." when a core's
    events shared the PMU (their counts are scaled), else ''. One wording for every counters source."""
    ratio = min((d.running_ratio for d in deltas.values()), default=1.0)
    if not deltas:
        return ratio, "; warming up"
    if ratio < 1.0:
        return ratio, f"; multiplexed: counted {100 * ratio:.0f} % of the time (scaled)"
    return ratio, ""


class CounterSampler(Protocol):
    name: str

    def sample(self) -> CounterReading: ...


@dataclass(frozen=True)
class ThreadSample:
    """One thread of a process over the interval (read only where it matters: VM processes)."""

    tid: int
    name: str  # the thread's comm, e.g. "CPU 0/KVM" for a QEMU vCPU thread
    cpu_s: float  # on-CPU seconds in the interval


@dataclass(frozen=True)
class ProcessSample:
    """One process over the interval (threads folded into their process)."""

    pid: int
    name: str  # comm
    cmd: str  # full command line, or [name] for kernel threads
    cpu_s: float  # on-CPU seconds (user+system) in the interval
    per_cpu_s: Mapping[int, float] = field(default_factory=dict)  # core -> seconds
    ppid: int = 0
    pss_bytes: int | None = None
    rss_bytes: int | None = None
    cgroup: str = ""  # the process's cgroup path (v2 unified path, else best v1 path)
    cgroup_line: str = ""  # raw /proc/<pid>/cgroup content (for hierarchy parsers)
    kernel: bool = False  # a kernel thread: attributed to (kernel)
    start_time: float = 0.0  # boot-relative start, to tell a reused PID apart
    exited: bool = False  # exited during the interval (eBPF keeps its time)
    uid: int | None = None
    # Hardware counters per core (eBPF reads them at every sched_switch); None without a PMU.
    counters: Mapping[int, CounterDelta] | None = None
    # Per-thread time, only for processes whose threads are worth telling apart (a VM's vCPUs).
    threads: tuple[ThreadSample, ...] | None = None


@dataclass(frozen=True)
class CoreSample:
    """One logical CPU over the interval."""

    cpu: int
    busy_s: float  # non-idle seconds: user+nice+system+irq+softirq (steal excluded)
    total_s: float  # wall seconds the core existed in the interval (≈ interval)
    irq_s: float = 0.0  # irq + softirq seconds (attributed to (kernel))
    freq_mhz: float | None = None  # mean frequency over the interval
    freq_nominal: bool = False  # freq_mhz is the nominal value from /proc/cpuinfo
    freq_cubed_weight: float | None = None  # ∫ busy·(f/fmax)³ dt when eBPF gives residency
    counters: CounterDelta | None = None  # the core's hardware counters over the interval


@dataclass(frozen=True)
class CpuActivity:
    """Who ran where: per-process and per-core CPU time over the interval."""

    source: SourceStatus
    interval_s: float
    processes: tuple[ProcessSample, ...] = ()
    cores: tuple[CoreSample, ...] = ()
    per_cpu_exact: bool = False  # per_cpu_s measured (eBPF), not the last-CPU guess
    per_process_counters: bool = False  # ProcessSample.counters measured per process (eBPF), not shared by time


class ActivitySampler(Protocol):
    name: str

    def sample(self) -> CpuActivity: ...


@dataclass(frozen=True)
class CoreFrequency:
    cpu: int
    mhz: float
    nominal: bool  # from /proc/cpuinfo, not a live reading
    max_mhz: float | None = None


@dataclass(frozen=True)
class FrequencyReading:
    source: SourceStatus
    cores: tuple[CoreFrequency, ...] = ()


class FrequencySampler(Protocol):
    name: str

    def sample(self) -> FrequencyReading: ...


R = TypeVar("R")


class Sampler(Protocol[R]):
    name: str

    def sample(self) -> R: ...


def safe_sample(sampler: Sampler[R], error_reading: Callable[[SourceStatus], R]) -> R:
    """``sampler.sample()``, or, if it raised, ``error_reading`` of its error status
    (``error``, with the exception's type and message): one broken source must never
    take the others down."""
    try:
        return sampler.sample()
    except Exception as exc:  # noqa: BLE001 - any failure is this source's, reported as its status
        name = getattr(sampler, "name", None) or type(sampler).__name__
        return error_reading(SourceStatus(name, STATUS_ERROR, f"{type(exc).__name__}: {exc}"))


def error_activity(status: SourceStatus) -> CpuActivity:
    return CpuActivity(status, interval_s=0.0)
