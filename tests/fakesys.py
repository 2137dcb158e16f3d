"""Builders for fake sysfs and procfs trees (in ``tmp_path``) that samplers can be re-rooted at.

Layouts follow the kernel's (Documentation/power/powercap, hwmon sysfs-interface,
proc(5)). Everything is plain files, so the samplers read them exactly as they
would read the real thing.

    sys = FakeSys(tmp_path / "sys")
    sys.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=1_000_000)
    sys.add_rapl_zone("intel-rapl:0:0", "core", energy_uj=500_000)
    sampler = RaplSampler(sys.root, clock)
    sampler.sample()                      # primes
    sys.set_energy("intel-rapl:0", 3_000_000); clock.advance(2.0)
    sampler.sample()                      # package-0: 1.0 W

    proc = FakeProc(tmp_path / "proc", ncpu=2)
    proc.add_process(100, comm="worker", utime=50, stime=10, processor=1,
                     cgroup="0::/system.slice/worker.service")
    proc.update_process(100, utime=150)   # +100 ticks = +1 s at clk_tck=100
    proc.set_cpu_times(0, user=..., idle=...); proc.advance(1.0)

Failures a root test process cannot cause with chmod (root reads mode-000 files)
are injected with :func:`deny_reads`, a ``read_file`` hook the samplers accept.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from keck_tui.samplers.fileio import read_file as _real_read_file

#: A typical package ``max_energy_range_uj`` (2^32 units of 61 µJ).
DEFAULT_MAX_RANGE_UJ = 262_143_328_850

PF_KTHREAD = 0x00200000


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def deny_reads(*suffixes: str, exc: type[OSError] = PermissionError,
               base: Callable[[str], str] = _real_read_file) -> Callable[[str], str]:
    """A ``read_file`` hook that raises ``exc`` for paths ending in any of ``suffixes``.

    E.g. ``deny_reads("energy_uj")`` is what a non-root user sees on RAPL since
    CVE-2020-8694; ``deny_reads("intel-rapl:1/energy_uj")`` denies one zone.
    """

    def read(path: str) -> str:
        if path.endswith(suffixes):
            code = errno.EACCES if issubclass(exc, PermissionError) else errno.EIO
            raise exc(code, os.strerror(code), path)
        return base(path)

    return read


class FakeSys:
    """A fake ``/sys``: powercap RAPL zones, hwmon sensors, cpufreq."""

    def __init__(self, root: Path | str, *, class_links: bool = True) -> None:
        """``class_links=False`` leaves out ``class/powercap`` (only ``devices/virtual/powercap``)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.class_links = class_links
        self._zones: dict[str, Path] = {}
        self._ranges: dict[str, int | None] = {}
        self._hwmon: dict[str, Path] = {}

    # -- powercap RAPL -------------------------------------------------------------------

    def add_rapl_zone(self, zone: str, name: str, energy_uj: int = 0, *,
                      max_range_uj: int | None = DEFAULT_MAX_RANGE_UJ,
                      max_power_uw: int | None = None) -> Path:
        """Add a zone like ``intel-rapl:0`` (package) or ``intel-rapl:0:1`` (subzone of 0),
        or an ``intel-rapl-mmio:0`` duplicate. ``max_range_uj=None`` omits the file.
        Returns the zone's directory."""
        control = zone.split(":")[0]  # intel-rapl | intel-rapl-mmio
        parts = zone.split(":")
        base = self.root / "devices" / "virtual" / "powercap" / control
        path = base
        for depth in range(2, len(parts) + 1):
            path = path / ":".join(parts[:depth])
        path.mkdir(parents=True, exist_ok=True)
        _write(path / "name", name + "\n")
        _write(path / "energy_uj", f"{energy_uj}\n")
        _write(path / "enabled", "1\n")
        if max_range_uj is not None:
            _write(path / "max_energy_range_uj", f"{max_range_uj}\n")
        if max_power_uw is not None:
            _write(path / "constraint_0_name", "long_term\n")
            _write(path / "constraint_0_max_power_uw", f"{max_power_uw}\n")
        _write(base / "enabled", "1\n")
        if self.class_links:
            cls = self.root / "class" / "powercap"
            cls.mkdir(parents=True, exist_ok=True)
            for link, target in ((cls / zone, path), (cls / control, base)):
                if not link.exists():
                    link.symlink_to(target)
        self._zones[zone] = path
        self._ranges[zone] = max_range_uj
        return path

    def set_energy(self, zone: str, uj: int) -> None:
        _write(self._zones[zone] / "energy_uj", f"{uj}\n")

    def energy(self, zone: str) -> int:
        return int((self._zones[zone] / "energy_uj").read_text())

    def add_energy(self, zone: str, joules: float) -> int:
        """Advance a zone's counter by ``joules``, wrapping at its max range like the
        hardware does. Returns the new ``energy_uj``."""
        value = self.energy(zone) + int(round(joules * 1e6))
        max_range = self._ranges.get(zone)
        if max_range:
            value %= max_range
        self.set_energy(zone, value)
        return value

    def zone_path(self, zone: str) -> Path:
        return self._zones[zone]

    # -- hwmon ---------------------------------------------------------------------------

    def add_hwmon(self, name: str, sensors: dict[str, int] | None = None,
                  labels: dict[str, str] | None = None, *, index: int | None = None) -> str:
        """Add ``class/hwmon/hwmonN`` with its ``name`` and sensor files, e.g.
        ``add_hwmon("amd_energy", {"energy1_input": 10**9}, {"energy1": "Esocket0"})``.
        Values are written as given (µW for power, µJ for energy). Returns ``"hwmonN"``."""
        index = len(self._hwmon) if index is None else index
        hw = f"hwmon{index}"
        path = self.root / "devices" / "platform" / f"{name}.{index}" / "hwmon" / hw
        path.mkdir(parents=True, exist_ok=True)
        _write(path / "name", name + "\n")
        for sensor, value in (sensors or {}).items():
            _write(path / sensor, f"{value}\n")
        for sensor, label in (labels or {}).items():
            _write(path / f"{sensor}_label", label + "\n")
        cls = self.root / "class" / "hwmon"
        cls.mkdir(parents=True, exist_ok=True)
        (cls / hw).symlink_to(path)
        self._hwmon[hw] = path
        return hw

    def set_hwmon(self, hwmon: str, sensor: str, value: int) -> None:
        _write(self._hwmon[hwmon] / sensor, f"{value}\n")

    # -- cpufreq -------------------------------------------------------------------------

    def add_cpu(self, cpu: int, cur_khz: int | None = None, *, max_khz: int | None = None,
                scaling_max_khz: int | None = None, online: bool | None = None) -> Path:
        """Add ``devices/system/cpu/cpuN`` (with a ``cpufreq`` folder when any freq is given)."""
        path = self.root / "devices" / "system" / "cpu" / f"cpu{cpu}"
        path.mkdir(parents=True, exist_ok=True)
        if online is not None:
            _write(path / "online", "1\n" if online else "0\n")
        freq = path / "cpufreq"
        for fname, value in (("scaling_cur_freq", cur_khz), ("cpuinfo_max_freq", max_khz),
                             ("scaling_max_freq", scaling_max_khz)):
            if value is not None:
                _write(freq / fname, f"{value}\n")
        return path

    def set_cpu_freq(self, cpu: int, cur_khz: int) -> None:
        _write(self.root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq",
               f"{cur_khz}\n")


@dataclass
class FakeThread:
    tid: int
    utime: int = 0
    stime: int = 0
    processor: int = 0
    start_time: int = 0
    name: str | None = None  # the thread's comm (None: the process's)


@dataclass
class FakeProcess:
    """One fake /proc/<pid>. Times are clock ticks (``FakeProc.clk_tck`` per second)."""

    pid: int
    comm: str = "proc"
    utime: int = 0
    stime: int = 0
    processor: int = 0
    ppid: int = 1
    start_time: int = 0  # ticks since boot
    state: str = "S"
    cmdline: Sequence[str] | None = None  # None: [comm]; () : empty (kernel thread)
    cgroup: str = "0::/\n"
    uid: int = 0
    rss_pages: int = 100
    pss_kb: int | None = 300  # None: no smaps_rollup
    kernel: bool = False
    threads: list[FakeThread] = field(default_factory=list)


class FakeProc:
    """A fake ``/proc``: ``stat``, ``uptime``, ``cpuinfo`` and per-process files
    (``stat``, ``cmdline``, ``status``, ``statm``, ``smaps_rollup``, ``cgroup``, ``task/*/stat``)."""

    def __init__(self, root: Path | str, *, ncpu: int = 2, clk_tck: int | None = None,
                 uptime: float = 1000.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ncpu = ncpu
        self.clk_tck = clk_tck or os.sysconf("SC_CLK_TCK")
        self.uptime = uptime
        self.procs: dict[int, FakeProcess] = {}
        self.cpu_times: dict[int, dict[str, int]] = {c: {} for c in range(ncpu)}
        self._write_uptime()
        self._write_stat()

    # -- whole-machine files -------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move ``/proc/uptime`` on (pair it with ``FakeClock.advance``)."""
        self.uptime += seconds
        self._write_uptime()

    def set_uptime(self, seconds: float) -> None:
        self.uptime = seconds
        self._write_uptime()

    @property
    def uptime_ticks(self) -> int:
        return int(round(self.uptime * self.clk_tck))

    def set_cpu_times(self, cpu: int, **ticks: int) -> None:
        """Set a core's cumulative ``/proc/stat`` counters (ticks): user, nice, system, idle,
        iowait, irq, softirq, steal, guest, guest_nice. Unnamed ones keep their value."""
        unknown = set(ticks) - set(_STAT_FIELDS)
        if unknown:
            raise TypeError(f"unknown /proc/stat fields {sorted(unknown)}")
        self.cpu_times.setdefault(cpu, {}).update(ticks)
        self._write_stat()

    def set_cpuinfo(self, model_name: str = "Intel(R) Xeon(R) CPU E5-2650 v4 @ 2.20GHz",
                    mhz: float | Sequence[float] | None = 2200.0, ncpu: int | None = None) -> None:
        """Write ``/proc/cpuinfo`` with ``ncpu`` processors (``mhz=None``: no ``cpu MHz`` line,
        a sequence: one value per processor)."""
        n = self.ncpu if ncpu is None else ncpu
        blocks = []
        for cpu in range(n):
            lines = [f"processor\t: {cpu}", "vendor_id\t: GenuineIntel", f"model name\t: {model_name}"]
            if mhz is not None:
                value = mhz[cpu] if isinstance(mhz, Sequence) else mhz
                lines.append(f"cpu MHz\t\t: {value:.3f}")
            lines.append("flags\t\t: fpu vme")
            blocks.append("\n".join(lines) + "\n")
        _write(self.root / "cpuinfo", "\n".join(blocks) + "\n")

    # -- processes -----------------------------------------------------------------------

    def add_process(self, pid: int, comm: str = "proc", **fields: object) -> FakeProcess:
        """Add /proc/<pid> (see :class:`FakeProcess` for the fields). ``kernel=True`` sets
        PF_KTHREAD, an empty cmdline and ppid 2 unless given."""
        if fields.get("kernel"):
            fields.setdefault("cmdline", ())
            fields.setdefault("ppid", 2)
            fields.setdefault("pss_kb", None)
            fields.setdefault("rss_pages", 0)
        proc = FakeProcess(pid=pid, comm=comm, **fields)  # type: ignore[arg-type]
        self.procs[pid] = proc
        self._write_process(proc, full=True)
        return proc

    def update_process(self, pid: int, **changes: object) -> FakeProcess:
        """Change fields of a process (e.g. ``utime=``, ``processor=``, ``threads=``) and rewrite it."""
        proc = self.procs[pid]
        for key, value in changes.items():
            if not hasattr(proc, key):
                raise TypeError(f"FakeProcess has no field {key!r}")
            setattr(proc, key, value)
        self._write_process(proc, full=True)
        return proc

    def run(self, pid: int, seconds: float, *, system: float = 0.0, processor: int | None = None) -> None:
        """Charge ``seconds`` of user time (and ``system`` seconds) to a process, optionally
        moving it to ``processor``."""
        p = self.procs[pid]
        changes: dict[str, object] = {"utime": p.utime + int(round(seconds * self.clk_tck)),
                                      "stime": p.stime + int(round(system * self.clk_tck))}
        if processor is not None:
            changes["processor"] = processor
        self.update_process(pid, **changes)

    def add_core_time(self, cpu: int, busy: float = 0.0, idle: float = 0.0, *,
                      irq: float = 0.0, steal: float = 0.0) -> None:
        """Add seconds to a core's /proc/stat counters (busy as user time)."""
        t = self.cpu_times.setdefault(cpu, {})
        for name, secs in (("user", busy), ("idle", idle), ("irq", irq), ("steal", steal)):
            t[name] = t.get(name, 0) + int(round(secs * self.clk_tck))
        self._write_stat()

    def remove_process(self, pid: int) -> None:
        """The process exits: its /proc folder disappears."""
        import shutil

        self.procs.pop(pid, None)
        shutil.rmtree(self.root / str(pid), ignore_errors=True)

    def truncate_file(self, pid: int, name: str, text: str = "") -> None:
        """Replace one of a process's files with partial content (a read racing an exit)."""
        _write(self.root / str(pid) / name, text)

    # -- writers -------------------------------------------------------------------------

    def _write_uptime(self) -> None:
        _write(self.root / "uptime", f"{self.uptime:.2f} {self.uptime * self.ncpu * 0.9:.2f}\n")

    def _write_stat(self) -> None:
        def line(label: str, t: dict[str, int]) -> str:
            return label + " " + " ".join(str(t.get(f, 0)) for f in _STAT_FIELDS)

        total = {f: sum(t.get(f, 0) for t in self.cpu_times.values()) for f in _STAT_FIELDS}
        lines = [line("cpu ", total)]
        lines += [line(f"cpu{c}", self.cpu_times[c]) for c in sorted(self.cpu_times)]
        lines += ["intr 12345 0 0", "ctxt 987654", "btime 1700000000", "processes 4242",
                  "procs_running 1", "procs_blocked 0", "softirq 100 0 0"]
        _write(self.root / "stat", "\n".join(lines) + "\n")

    def _write_process(self, p: FakeProcess, full: bool) -> None:
        d = self.root / str(p.pid)
        flags = 0x00400100 | (PF_KTHREAD if p.kernel else 0)
        nthreads = max(1, len(p.threads))
        _write(d / "stat", _stat_line(p.pid, p.comm, p.state, p.ppid, flags, p.utime, p.stime,
                                      nthreads, p.start_time, p.rss_pages, p.processor))
        task = d / "task"
        threads = p.threads or [FakeThread(p.pid, p.utime, p.stime, p.processor, p.start_time)]
        if task.is_dir():
            for old in task.iterdir():
                if int(old.name) not in {t.tid for t in threads}:
                    import shutil

                    shutil.rmtree(old, ignore_errors=True)
        for t in threads:
            _write(task / str(t.tid) / "stat",
                   _stat_line(t.tid, t.name or p.comm, p.state, p.ppid, flags, t.utime, t.stime, nthreads,
                              t.start_time or p.start_time, p.rss_pages, t.processor))
        if not full:
            return
        cmd = [p.comm] if p.cmdline is None else list(p.cmdline)
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in cmd))
        cg = p.cgroup if p.cgroup.endswith("\n") else p.cgroup + "\n"
        _write(d / "cgroup", cg)
        _write(d / "statm", f"{p.rss_pages * 3} {p.rss_pages} 50 10 0 80 0\n")
        _write(d / "status", f"Name:\t{p.comm}\nState:\t{p.state}\nPPid:\t{p.ppid}\n"
                             f"Uid:\t{p.uid}\t{p.uid}\t{p.uid}\t{p.uid}\n"
                             f"VmRSS:\t{p.rss_pages * 4} kB\nThreads:\t{nthreads}\n")
        if p.pss_kb is not None:
            _write(d / "smaps_rollup",
                   "00400000-7ffd0000 ---p 00000000 00:00 0  [rollup]\n"
                   f"Rss:            {p.rss_pages * 4} kB\nPss:            {p.pss_kb} kB\n"
                   f"Pss_Anon:       {p.pss_kb} kB\nShared_Clean:          0 kB\n")
        else:
            _write(d / "smaps_rollup", "")
        if p.uid:
            try:
                os.chown(d, p.uid, p.uid)
            except PermissionError:  # not root: uid stays ours
                pass


_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
                "guest", "guest_nice")


def _stat_line(pid: int, comm: str, state: str, ppid: int, flags: int, utime: int, stime: int,
               nthreads: int, start: int, rss: int, processor: int) -> str:
    """A /proc/<pid>/stat line with all 52 fields (proc(5) numbering in the comments)."""
    f: list[object] = [0] * 53  # 1-based
    f[1], f[2], f[3], f[4] = pid, f"({comm})", state, ppid
    f[5] = f[6] = pid  # pgrp, session
    f[9] = flags
    f[14], f[15] = utime, stime
    f[18], f[19] = 20, 0  # priority, nice
    f[20] = nthreads
    f[22] = start
    f[23] = rss * 3 * 4096  # vsize
    f[24] = rss
    f[25] = 18446744073709551615
    f[38] = 17  # exit_signal
    f[39] = processor
    return " ".join(str(x) for x in f[1:]) + "\n"


def pids_of(procs: Iterable[object]) -> set[int]:
    """The ``pid`` of every ProcessSample in ``procs``."""
    return {p.pid for p in procs}  # type: ignore[attr-defined]
