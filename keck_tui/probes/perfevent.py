"""``perf_event_open(2)`` through ctypes: open, read and close one counting event per CPU.

Counting mode only (no sampling, no ring buffer): the caller reads the running
total with ``read_counter`` and takes deltas. Every event is opened with
``read_format = TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING`` so that a multiplexed
counter can be scaled (value × enabled / running). The eBPF probe puts these fds
into its perf event array; the per-core sampler (keck_tui/samplers/perfcounters.py)
reads them itself. A failure is a :class:`PerfEventError` whose ``reason`` says
why in words a user can act on (no PMU, paranoid setting, fd limit, offline CPU).
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

# perf_event_open system call numbers (unistd.h per architecture).
_SYSCALL = {"x86_64": 298, "aarch64": 241, "arm64": 241, "riscv64": 241, "ppc64le": 319, "s390x": 331}

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_HW_CACHE = 0, 1, 3
PERF_COUNT_HW_CPU_CYCLES, PERF_COUNT_HW_INSTRUCTIONS = 0, 1
PERF_COUNT_HW_CACHE_MISSES, PERF_COUNT_HW_REF_CPU_CYCLES = 3, 9
PERF_COUNT_SW_CPU_CLOCK, PERF_COUNT_SW_TASK_CLOCK = 0, 1
_HW_CACHE_LL, _HW_CACHE_OP_READ, _HW_CACHE_RESULT_MISS = 2, 0, 1
PERF_FORMAT_TOTAL_TIME_ENABLED, PERF_FORMAT_TOTAL_TIME_RUNNING = 1, 2
_READ_FORMAT = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
_READ = struct.Struct("=QQQ")  # value, time_enabled, time_running
PERF_FLAG_FD_CLOEXEC = 1 << 3
PARANOID_PATH = Path("/proc/sys/kernel/perf_event_paranoid")


@dataclass(frozen=True)
class EventSpec:
    """One countable event: ``perf_event_attr.type`` and ``.config``.

    ``fallback`` is tried when this machine's PMU lacks the event (e.g. the
    generic cache-misses event where the LL-cache read-miss event is missing).
    """

    name: str
    type: int
    config: int
    fallback: EventSpec | None = None

    @property
    def hardware(self) -> bool:
        return self.type != PERF_TYPE_SOFTWARE


_LL_READ_MISS = _HW_CACHE_LL | (_HW_CACHE_OP_READ << 8) | (_HW_CACHE_RESULT_MISS << 16)
CYCLES = EventSpec("cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES)
INSTRUCTIONS = EventSpec("instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS)
LLC_MISSES = EventSpec(
    "llc_misses", PERF_TYPE_HW_CACHE, _LL_READ_MISS,
    fallback=EventSpec("llc_misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES),
)
REF_CYCLES = EventSpec("ref_cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_REF_CPU_CYCLES)
CPU_CLOCK = EventSpec("cpu_clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK)
TASK_CLOCK = EventSpec("task_clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK)
#: The hardware events keck-top counts per CPU, by CounterDelta field name.
HARDWARE_EVENTS = (CYCLES, INSTRUCTIONS, LLC_MISSES, REF_CYCLES)


class PerfEventAttr(ct.Structure):
    """``struct perf_event_attr`` up to PERF_ATTR_SIZE_VER5 (112 bytes); bit flags as one u64."""

    _fields_ = [
        ("type", ct.c_uint32),
        ("size", ct.c_uint32),
        ("config", ct.c_uint64),
        ("sample_period", ct.c_uint64),
        ("sample_type", ct.c_uint64),
        ("read_format", ct.c_uint64),
        ("flags", ct.c_uint64),  # disabled:1, inherit:1, pinned:1, exclusive:1, exclude_user:1, ...
        ("wakeup_events", ct.c_uint32),
        ("bp_type", ct.c_uint32),
        ("config1", ct.c_uint64),
        ("config2", ct.c_uint64),
        ("branch_sample_type", ct.c_uint64),
        ("sample_regs_user", ct.c_uint64),
        ("sample_stack_user", ct.c_uint32),
        ("clockid", ct.c_int32),
        ("sample_regs_intr", ct.c_uint64),
        ("aux_watermark", ct.c_uint32),
        ("sample_max_stack", ct.c_uint16),
        ("reserved_2", ct.c_uint16),
    ]


class PerfEventError(Exception):
    """An event that could not be opened or read; ``reason`` is the sentence to show."""

    def __init__(self, reason: str, err: int = 0, spec: EventSpec | None = None, cpu: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.errno = err
        self.spec = spec
        self.cpu = cpu

    @property
    def no_pmu(self) -> bool:
        """The hardware lacks the event (no retry, no setting will help)."""
        return self.errno in (errno.ENOENT, errno.EOPNOTSUPP)


def supported() -> bool:
    """Whether this machine's perf_event_open number is known here."""
    return platform.machine() in _SYSCALL


def paranoid(path: Path = PARANOID_PATH) -> int | None:
    """``kernel.perf_event_paranoid``, or None where it cannot be read."""
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def reason_for(err: int, spec: EventSpec, cpu: int, pid: int = -1, paranoid_value: int | None = None) -> str:
    """The human reason for ``perf_event_open`` failing with ``err`` on ``spec``."""
    where = f"cpu {cpu}" if pid == -1 else f"pid {pid}"
    if err in (errno.ENOENT, errno.EOPNOTSUPP) and spec.hardware:
        return f"no PMU: this CPU (or VM) exposes no hardware counter {spec.name}"
    if err in (errno.EACCES, errno.EPERM):
        level = "unreadable" if paranoid_value is None else str(paranoid_value)
        need = "≤ 0" if pid == -1 else "≤ 1"
        return (f"permission denied opening {spec.name} on {where}: kernel.perf_event_paranoid is {level}; "
                f"per-CPU counters need perf_event_paranoid {need} "
                f"(sysctl kernel.perf_event_paranoid=0) or CAP_PERFMON (or root)")
    if err == errno.EMFILE:
        return (f"too many open files opening {spec.name} on {where}: one fd per event and CPU; "
                "raise the open-file limit (ulimit -n)")
    if err == errno.ENODEV:
        return f"cpu {cpu} is offline (or its PMU lacks {spec.name})"
    if err == errno.ENOSYS:
        return "perf_event_open is not available in this kernel (CONFIG_PERF_EVENTS off, or seccomp)"
    if err == errno.EBUSY:
        return f"{spec.name} on {where} is busy: another user holds the PMU exclusively"
    if err == errno.EINVAL:
        return f"the kernel rejected event {spec.name} (type {spec.type}, config {spec.config:#x}) on {where}"
    return f"perf_event_open({spec.name}, {where}) failed: {os.strerror(err)}"


def fix_for(err: int) -> str:
    """What to do about a ``perf_event_open`` failure with ``err`` (doctor's fix column)."""
    if err in (errno.ENOENT, errno.EOPNOTSUPP):
        return ("nothing to set on this machine: its (virtual) CPU exposes no performance counters; on bare "
                "metal, or a VM with the PMU passed through (KVM/QEMU -cpu host,pmu=on; VMware 'virtualize CPU "
                "performance counters'; cloud: metal or whole-socket instances), keck-top reads them")
    if err in (errno.EACCES, errno.EPERM):
        return ("sudo sysctl kernel.perf_event_paranoid=0 (persist it in /etc/sysctl.d/), or give keck-top "
                "CAP_PERFMON (systemd: AmbientCapabilities=CAP_PERFMON), or run it as root")
    if err == errno.EMFILE:
        return "raise the open-file limit (ulimit -n 65536; systemd: LimitNOFILE=65536)"
    if err == errno.ENOSYS:
        return "a kernel built with CONFIG_PERF_EVENTS, and no seccomp filter denying perf_event_open"
    if err == errno.EBUSY:
        return "stop the other user of the PMU (a profiler with exclusive events, or the NMI watchdog)"
    return ""


def _attr(spec: EventSpec) -> PerfEventAttr:
    attr = PerfEventAttr()
    attr.type = spec.type
    attr.size = ct.sizeof(PerfEventAttr)
    attr.config = spec.config
    attr.read_format = _READ_FORMAT
    return attr  # flags 0: enabled at once, counts user and kernel


_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


def _open_one(spec: EventSpec, cpu: int, pid: int, group_fd: int) -> int:
    nr = _SYSCALL.get(platform.machine())
    if nr is None:
        raise PerfEventError(f"perf_event_open number unknown on {platform.machine()}",
                             errno.ENOSYS, spec, cpu)
    attr = _attr(spec)
    fd = _libc.syscall(ct.c_long(nr), ct.byref(attr), ct.c_int(pid), ct.c_int(cpu),
                       ct.c_int(group_fd), ct.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ct.get_errno()
        raise PerfEventError(reason_for(err, spec, cpu, pid, paranoid()), err, spec, cpu)
    return int(fd)


def open_counter(spec: EventSpec, cpu: int, pid: int = -1, group_fd: int = -1) -> int:
    """An fd counting ``spec`` on ``cpu`` (all tasks when ``pid`` is -1), enabled now.

    Where the PMU lacks the event, ``spec.fallback`` is tried; the error raised is
    the first one's when every alternative is missing.
    """
    try:
        return _open_one(spec, cpu, pid, group_fd)
    except PerfEventError as exc:
        if spec.fallback is None or not exc.no_pmu:
            raise
        try:
            return open_counter(spec.fallback, cpu, pid, group_fd)
        except PerfEventError as again:
            if again.no_pmu:
                raise exc from None
            raise


def read_counter(fd: int) -> tuple[int, int, int]:
    """``(value, time_enabled_ns, time_running_ns)`` of an event opened by :func:`open_counter`."""
    try:
        data = os.read(fd, _READ.size)
    except OSError as exc:
        raise PerfEventError(f"reading perf event fd {fd} failed: {exc.strerror}", exc.errno or 0) from exc
    if len(data) != _READ.size:
        raise PerfEventError(f"short read of perf event fd {fd}: {len(data)} bytes", errno.EIO)
    value, enabled, running = _READ.unpack(data)
    return value, enabled, running


def close(fd: int) -> None:
    """Close an event fd; closing one already closed is not an error."""
    try:
        os.close(fd)
    except OSError:
        pass
