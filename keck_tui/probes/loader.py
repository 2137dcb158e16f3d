"""Load keck-top's on-CPU eBPF probe with bcc and read its maps.

``OnCpuProbe.open()`` checks the preconditions one by one so that a failure
says exactly why (``ProbeUnavailable``), compiles ``oncpu.bpf.c`` and attaches
its raw tracepoints. The C program lives in the top-level ``probes/`` folder of a
checkout and is shipped in the wheel as ``keck_tui/probes/bpf/`` (see setup.py);
``program_path`` finds it in either. ``read()`` returns the raw cumulative counters; turning
them into per-interval activity is the sampler's job (keck_tui/samplers/ebpf.py).
"""
from __future__ import annotations

import ctypes as ct
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from keck_tui.bcc_import import INSTALL_HINT, load_bcc
from keck_tui.probes.btf import BtfError, task_offsets

PROGRAM = "oncpu.bpf.c"


def program_path(name: str = PROGRAM, package_dir: Path = Path(__file__).parent) -> Path:
    """Where BPF program ``name`` is: ``keck_tui/probes/bpf/`` in an installed wheel,
    else ``probes/`` at the root of the checkout this package was imported from.
    Returns the wheel location when neither exists (the compile error then names it)."""
    installed = package_dir / "bpf" / name
    if installed.is_file():
        return installed
    checkout = package_dir.parent.parent / "probes" / name
    return checkout if checkout.is_file() else installed


SOURCE = program_path()
DEFAULT_MAP_ENTRIES = 10240
DEFAULT_EXIT_ENTRIES = 4096
DEFAULT_COUNTER_ENTRIES = 10240  # (process, CPU) pairs with hardware counters (oncpu.bpf.c ctr)
COUNTER_SLOTS = ("cycles", "instructions", "llc_misses", "ref_cycles")  # bit k of CTR_MASK
SLOTS = 4  # per-CPU cache of recent processes (oncpu.bpf.c); a power of two
CFLAGS = ("-Wno-ignored-attributes", "-Wno-unused-function", "-Wno-macro-redefined",
          "-Wno-compare-distinct-pointer-types")
FIX_SETUP = "run scripts/setup-ebpf.sh as root (headers + tracefs), or use --probes procfs"

# Capabilities that allow loading tracing BPF programs without full root.
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


class ProbeUnavailable(Exception):
    """The probe cannot run here; ``str()`` is the one-line why, ``fix`` how to fix it."""

    def __init__(self, why: str, fix: str = "") -> None:
        super().__init__(why)
        self.fix = fix


@dataclass(frozen=True)
class CpuCounters:
    """One CPU's counters from the ``state`` per-CPU array (see oncpu.bpf.c)."""

    cpu: int
    sum_at_in: int  # sum_exec_runtime of the task on the CPU when it was switched in
    switches: int
    resyncs: int
    lost_ns: int
    lost_count: int
    cur_pid: int
    cur_tgid: int
    t_in: int = 0
    busy_f3: int = 0
    f3_at_in: int = 0
    slots: tuple[tuple[int, int, int], ...] = ()  # (tgid, ns, cgroup id) not yet in oncpu
    evict: int = 0  # slot replacements so far (each flushed the victim into oncpu)
    slot_tgids: tuple[int, ...] = ()  # tgid per slot index (0: empty)


@dataclass(frozen=True)
class FreqCounters:
    """One CPU's frequency integrals (``freq`` array), when cpu_frequency is traced."""

    cpu: int
    last: int
    f3: int
    f1: int
    khz: int
    cube: int
    fmax_khz: int


@dataclass(frozen=True)
class CounterValue:
    """One counter slot's raw totals: count, time enabled and time running (ns)."""

    count: int
    enabled: int
    running: int


#: Per counter slot (COUNTER_SLOTS order): the totals, or None where the slot was never read.
CounterValues = tuple["CounterValue | None", ...]


@dataclass(frozen=True)
class CounterCpu:
    """One CPU's counter readings at its last switch (``ctr_state``), and its map-full count."""

    cpu: int
    values: CounterValues  # the readings that start the current task's span
    lost: int  # spans the full ctr map could not store
    now: CounterValues | None = None  # the CPU's events' totals at read time (perf fds)


@dataclass(frozen=True)
class ExitInfo:
    ts: int
    cgid: int
    comm: str
    flags: int = 0


@dataclass(frozen=True)
class ProbeRead:
    """Everything one read of the maps returned, with the ktime it was taken at."""

    ktime_ns: int
    oncpu: Mapping[int, tuple[int, tuple[int, ...]]]  # tgid -> (cgroup id, ns per CPU index)
    cpus: tuple[CpuCounters, ...]
    exited: Mapping[int, ExitInfo]
    exit_lost: int
    prog_misses: int  # program runs the kernel skipped (recursion): lost events
    freq: tuple[FreqCounters, ...] = ()
    map_entries: int = 0
    cached: frozenset[int] = frozenset()  # tgids with time in a per-CPU slot (not deletable yet)
    map_used: int | None = None  # entries in the oncpu hash (None: len(oncpu))
    counter_slots: tuple[str, ...] = ()  # counters the probe reads (empty: none installed)
    counters: Mapping[tuple[int, int], CounterValues] = field(default_factory=dict)  # (tgid, cpu)
    counter_cpus: tuple[CounterCpu, ...] = ()
    counter_entries: int = 0


def _cap_effective() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def check_privileges() -> None:
    if os.geteuid() == 0:
        return
    caps = _cap_effective()
    if caps & (1 << CAP_SYS_ADMIN) or (caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON)):
        return
    raise ProbeUnavailable("needs root", "run keck-top as root (or with CAP_BPF+CAP_PERFMON)")


def check_lockdown(path: str = "/sys/kernel/security/lockdown") -> None:
    try:
        text = Path(path).read_text()
    except OSError:
        return
    mode = re.search(r"\[(\w+)\]", text)
    if mode and mode.group(1) == "confidentiality":
        raise ProbeUnavailable(
            "locked-down kernel (lockdown=confidentiality forbids BPF reading kernel memory)",
            "boot without lockdown=confidentiality, or use --probes procfs")


def check_headers(release: str | None = None, modules: str = "/lib/modules") -> None:
    release = release or os.uname().release
    base = Path(modules) / release
    kconfig = Path("include", "linux", "kconfig.h")
    if ((base / "build" / kconfig).exists() or (base / "source" / kconfig).exists()
            or Path("/sys/kernel/kheaders.tar.xz").exists()):
        return
    raise ProbeUnavailable("kernel headers missing",
                           f"apt install linux-headers-{release} (or scripts/setup-ebpf.sh)")


def tracefs_dir() -> Path | None:
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if Path(d, "events").is_dir():
            return Path(d)
    return None


def possible_cpus() -> list[int]:
    """CPU ids in the order the kernel lays out per-CPU map values."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpufreq_max_khz(cpu: int, sysfs: str = "/sys/devices/system/cpu") -> tuple[int, int] | None:
    """(current kHz, max kHz) from cpufreq sysfs, or None when the CPU has no cpufreq."""
    base = Path(sysfs, f"cpu{cpu}", "cpufreq")
    try:
        fmax = int((base / "cpuinfo_max_freq").read_text())
        cur = int((base / "scaling_cur_freq").read_text())
    except (OSError, ValueError):
        return None
    return cur, fmax


def visit_cpus(cpus: list[int]) -> None:
    """Run briefly on every CPU: the task running there since before the probe was
    attached is switched out and back in, so the probe learns who runs where."""
    try:
        saved = os.sched_getaffinity(0)
    except OSError:
        return
    for cpu in cpus:
        try:
            os.sched_setaffinity(0, {cpu})
            os.sched_yield()
        except OSError:
            continue  # offline, or outside our cpuset
    try:
        os.sched_setaffinity(0, saved)
    except OSError:
        pass


def prepare_bcc(bcc: ModuleType | None = None) -> ModuleType:
    """The checks before compiling any probe program, one by one so that the first failure
    says exactly why (``ProbeUnavailable``): privileges, bcc itself (``bcc`` given: that
    module), kernel lockdown, kernel headers. Returns the bcc module."""
    check_privileges()
    if bcc is None:
        bcc, why = load_bcc()
        if bcc is None:
            raise ProbeUnavailable(why, "apt install python3-bpfcc")
    check_lockdown()
    check_headers()
    return bcc


def btf_task_offsets() -> dict[str, int]:
    """``task_struct`` field offsets from the kernel's BTF (probes/btf.py), or ``ProbeUnavailable``."""
    try:
        return task_offsets()
    except BtfError as exc:
        raise ProbeUnavailable(f"{exc} (needs CONFIG_DEBUG_INFO_BTF)",
                               "use a kernel with BTF, or --probes procfs") from exc


def compile_program(bcc: ModuleType, source: Path, defines: Mapping[str, object]) -> object:
    """``bcc.BPF`` of ``source`` compiled with CFLAGS and ``-Dk=v`` per define, clang's
    diagnostics captured; or ``ProbeUnavailable`` with the one line that says why."""
    cflags = list(CFLAGS) + [f"-D{k}={v}" for k, v in defines.items()]
    with warnings.catch_warnings():  # bcc 0.26 warns about its own str/bytes use
        warnings.simplefilter("ignore", DeprecationWarning)
        result, log = _capture_fd2(lambda: bcc.BPF(src_file=str(source).encode(), cflags=cflags))
    if isinstance(result, Exception):
        text = f"{result}\n{log}"
        if "Operation not permitted" in text or "EPERM" in text:
            raise ProbeUnavailable("BPF load refused (EPERM: locked-down kernel or missing capability)",
                                   "run as root without kernel lockdown, or use --probes procfs")
        if "kernel headers" in text.lower() or "linux/kconfig.h" in text:
            raise ProbeUnavailable("kernel headers missing", FIX_SETUP)
        raise ProbeUnavailable(_summarise_compile_error(text), FIX_SETUP)
    return result


def compile_with_task_storage(bcc: ModuleType, defines: dict[str, object], notes: list[str]) -> object:
    """The probe with per-task accounted runtime (exact when the kernel hides a switch-in);
    on kernels whose verifier refuses task storage in tracing programs, without it (noted)."""
    exact = {**defines, "TASK_STORAGE": 1, "LOADED_NS": time.clock_gettime_ns(time.CLOCK_MONOTONIC)}
    try:
        return compile_program(bcc, SOURCE, exact)
    except ProbeUnavailable as exc:
        try:
            result = compile_program(bcc, SOURCE, defines)
        except ProbeUnavailable:
            raise exc from None
        notes.append(f"no task storage ({exc}): a switch the kernel does not show costs that task's "
                     "time since its last pick")
        return result


def _summarise_compile_error(log: str) -> str:
    for line in log.splitlines():
        if "error:" in line:
            return "probe compile error: " + line.split("error:", 1)[1].strip()[:160]
    if "Failed to load BPF program" in log:
        lines = [ln.strip() for ln in log.splitlines()
                 if ln.strip() and "Failed to load BPF program" not in ln
                 and not ln.strip().startswith(("processed ", "Traceback", "File "))]
        last = lines[-1][:160] if lines else ""
        return "probe rejected by the kernel verifier" + (f": {last}" if last else "")
    return "probe compile error (see bcc output)"


def _capture_fd2(fn: Callable[[], object]) -> tuple[object, str]:
    """Run ``fn`` with file descriptor 2 sent to a temp file (clang writes diagnostics there)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            try:
                result = fn()
            except Exception as exc:
                result = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


def _fdinfo_misses(fd: int) -> int:
    try:
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("recursion_misses:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class OnCpuProbe:
    """A loaded, attached probe. Call ``close()`` to detach (also done at exit by bcc)."""

    bpf: object
    map_entries: int
    exit_entries: int
    cpus: list[int]
    with_freq: bool
    load_s: float
    notes: list[str] = field(default_factory=list)
    counter_slots: tuple[str, ...] = ()  # compiled in (CTR_MASK)
    counter_entries: int = 0
    counters: Any = None  # the perf events (probes/counters.ProbeCounters), closed with the probe
    _closed: bool = False
    _counter_keys: dict[int, list[int]] = field(default_factory=dict)  # tgid -> CPUs with a ctr entry
    counter_cached: frozenset[int] = frozenset()  # tgids with counts in a per-CPU slot at the last read

    @classmethod
    def open(cls, *, map_entries: int = DEFAULT_MAP_ENTRIES,
             exit_entries: int = DEFAULT_EXIT_ENTRIES, freq: bool | None = None,
             bcc: ModuleType | None = None, counter_slots: Sequence[str] = (),
             counter_entries: int = DEFAULT_COUNTER_ENTRIES) -> "OnCpuProbe":
        """Load and attach, or raise ``ProbeUnavailable`` saying why. ``counter_slots``:
        compile in the hardware-counter reads for these slots (their perf events are
        installed afterwards by the process that keeps the maps open, probes/counters.py)."""
        with warnings.catch_warnings():  # bcc 0.26 warns about its own str/bytes use
            warnings.simplefilter("ignore", DeprecationWarning)
            return cls._open(map_entries, exit_entries, freq, bcc, tuple(counter_slots), counter_entries)

    @classmethod
    def _open(cls, map_entries: int, exit_entries: int, freq: bool | None,
              bcc: ModuleType | None, counter_slots: tuple[str, ...] = (),
              counter_entries: int = DEFAULT_COUNTER_ENTRIES) -> "OnCpuProbe":
        bcc = prepare_bcc(bcc)
        notes: list[str] = []
        if tracefs_dir() is None:
            notes.append("tracefs not mounted (raw tracepoints work without it)")
        try:
            if not bcc.BPF.support_raw_tracepoint():
                raise ProbeUnavailable("kernel lacks raw tracepoints (needs Linux >= 4.17)",
                                       "use --probes procfs")
        except ProbeUnavailable:
            raise
        except Exception:
            pass
        cpus = possible_cpus()
        if freq is None:
            freq = any(cpufreq_max_khz(c) for c in cpus)
        defines = {"SLOTS": SLOTS, "MAP_ENTRIES": max(1, int(map_entries)),
                   "EXIT_ENTRIES": max(1, int(exit_entries))}
        offs = btf_task_offsets()
        if offs["tgid"] != offs["pid"] + 4 or offs["prev_sum"] != offs["sum"] + 8:
            raise ProbeUnavailable("unexpected task_struct layout (pid/tgid or runtime fields "
                                   "not adjacent)", "use --probes procfs")
        defines.update(TASK_PID_OFF=offs["pid"], TASK_SUM_OFF=offs["sum"],
                       TASK_FLAGS_OFF=offs["flags"], TASK_PRIO_OFF=offs["prio"],
                       TASK_START_OFF=offs["start_time"])
        if freq or counter_slots:
            defines["MAX_CPUS"] = max(cpus) + 1
        if freq:
            defines["WITH_FREQ"] = 1
        slots = tuple(s for s in COUNTER_SLOTS if s in counter_slots)
        if slots:
            defines["CTR_MASK"] = sum(1 << COUNTER_SLOTS.index(s) for s in slots)
            defines["CTR_LEADER"] = COUNTER_SLOTS.index(slots[0])  # the perf group's leader (counters.py)
            defines["CTR_ENTRIES"] = max(1, int(counter_entries))
        t0 = time.monotonic()
        result = compile_with_task_storage(bcc, defines, notes)
        probe = cls(bpf=result, map_entries=defines["MAP_ENTRIES"],
                    exit_entries=defines["EXIT_ENTRIES"], cpus=cpus, with_freq=bool(freq),
                    load_s=time.monotonic() - t0, notes=notes, counter_slots=slots,
                    counter_entries=defines.get("CTR_ENTRIES", 0))
        if freq:
            probe._seed_freq()
        visit_cpus(cpus)
        return probe

    def _seed_freq(self) -> None:
        for cpu in self.cpus:
            got = cpufreq_max_khz(cpu)
            if got:
                self.set_frequency(cpu, *got)

    def set_frequency(self, cpu: int, khz: int, fmax_khz: int) -> None:
        """Start ``cpu``'s frequency record at ``khz`` now (the probe then follows
        power:cpu_frequency events); also lets tests pose a frequency."""
        table = self.bpf[b"freq"]
        leaf = table.Leaf()
        leaf.last = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        leaf.khz, leaf.fmax_khz = khz, fmax_khz
        r = khz * 1024 // fmax_khz if fmax_khz else 1024
        leaf.cube = (r * r * r) >> 10
        table[ct.c_int(cpu)] = leaf

    def read(self) -> ProbeRead:
        """Read all maps (cumulative counters) at one ktime: the per-CPU state, the
        hash, the state again; ``oncpu`` holds hash + slot time.

        A slot flushed into the hash while the hash was being read may or may not
        be in what we read: for CPUs that replaced slots meanwhile, the victims'
        hash values are read again (after the second state read, so their flushed
        time is in), which keeps a large pending slot from going missing."""
        bpf = self.bpf
        ktime = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        ncpu = len(self.cpus)
        before = self.cpu_states()
        table = bpf[b"oncpu"]
        sums: dict[int, list[int]] = {}
        cgids: dict[int, int] = {}
        for key, vals in _items(table):
            tgid = _int(key)
            cgids[tgid] = next((v.cgid for v in vals if v.cgid), 0)
            sums[tgid] = [v.ns for v in vals]
        hash_entries = len(sums)
        cpus = self.cpu_states()
        victims: dict[int, list[int]] = {}  # tgid -> CPU indices where it was flushed
        for i, (c0, c1) in enumerate(zip(before, cpus)):
            replaced = c1.evict - c0.evict
            if not replaced:
                continue
            for k in range(min(replaced, SLOTS)):
                tgid = c0.slot_tgids[(c0.evict + k) % SLOTS] if c0.slot_tgids else 0
                if tgid:
                    victims.setdefault(tgid, []).append(i)
        for tgid, idxs in victims.items():
            try:
                vals = table[table.Key(tgid)]
            except KeyError:
                continue
            row = sums.setdefault(tgid, [0] * ncpu)
            for i in idxs:
                row[i] = vals[i].ns
            if not cgids.get(tgid):
                cgids[tgid] = next((v.cgid for v in vals if v.cgid), 0)
        cached: set[int] = set()
        for i, c in enumerate(cpus):
            for tgid, ns, cgid in c.slots:
                cached.add(tgid)
                row = sums.setdefault(tgid, [0] * ncpu)
                row[i] += ns
                if not cgids.get(tgid):
                    cgids[tgid] = cgid
        oncpu = {t: (cgids.get(t, 0), tuple(v)) for t, v in sums.items()}
        exited = {_int(k): ExitInfo(v.ts, v.cgid, bytes(v.comm).split(b"\0", 1)[0]
                                    .decode(errors="replace"), v.flags)
                  for k, v in _items(bpf[b"exited"])}
        exit_lost = bpf[b"exit_lost"][ct.c_int(0)].value
        freq: tuple[FreqCounters, ...] = ()
        if self.with_freq:
            ftab = bpf[b"freq"]
            freq = tuple(FreqCounters(cpu, f.last, f.f3, f.f1, f.khz, f.cube, f.fmax_khz)
                         for cpu in self.cpus for f in [ftab[ct.c_int(cpu)]])
        counters, counter_cpus = self.read_counters() if self.counter_slots else ({}, ())
        cached |= self.counter_cached if self.counter_slots else set()
        return ProbeRead(ktime_ns=ktime, oncpu=oncpu, cpus=cpus, exited=exited,
                         exit_lost=exit_lost, prog_misses=self.prog_misses(), freq=freq,
                         map_entries=self.map_entries, cached=frozenset(cached),
                         map_used=hash_entries, counter_slots=self.counter_slots, counters=counters,
                         counter_cpus=counter_cpus, counter_entries=self.counter_entries)

    def read_counters(self) -> tuple[dict[tuple[int, int], CounterValues], tuple[CounterCpu, ...]]:
        """(tgid, cpu) -> per-counter totals (the ``ctr`` hash plus the per-CPU cache slots),
        and each CPU's readings at its last switch with its events' totals now (this
        process's own perf fds, read last: the in-flight span of the task on each CPU
        is the difference).

        Like the time: slots, hash, slots again; a slot flushed meanwhile (its tgid
        changed, or its time went down) has its process's hash entry read again, so a
        flush between the reads is neither missed nor counted twice. A group member that
        never counted while its leader did (the PMU could not take it) is absent on that
        CPU, not 0: its BPF counts carry the leader's times."""
        n = len(COUNTER_SLOTS)
        mask = sum(1 << COUNTER_SLOTS.index(s) for s in self.counter_slots)
        table = self.bpf[b"ctr"]
        before = self.bpf[b"ctr_state"][ct.c_int(0)]
        raw: dict[tuple[int, int], list[list[int]]] = {}  # (tgid, cpu) -> [counts, enabled, running]
        keys: dict[int, list[int]] = {}
        for key, val in _items(table):
            raw[(key.tgid, key.cpu)] = [list(val.v), list(val.en), list(val.run)]
            keys.setdefault(key.tgid, []).append(key.cpu)
        per_cpu = self.bpf[b"ctr_state"][ct.c_int(0)]
        for cpu, c0, c1 in zip(self.cpus, before, per_cpu):
            for i, tgid in enumerate(c0.slot_tgid):
                flushed = c1.slot_tgid[i] != tgid or any(c1.slot_en[i * n + k] < c0.slot_en[i * n + k]
                                                         for k in range(n))
                if tgid and flushed:
                    key = table.Key()
                    key.tgid, key.cpu = tgid, cpu
                    try:
                        val = table[key]
                    except KeyError:
                        continue  # the flush found the map full (counted in lost)
                    raw[(tgid, cpu)] = [list(val.v), list(val.en), list(val.run)]
                    keys.setdefault(tgid, []).append(cpu)
        self._counter_keys = keys
        self.counter_cached = frozenset(_add_slots(raw, self.cpus, per_cpu, n))
        out = {key: _counter_values(*row, mask) for key, row in raw.items()}  # per-counter times
        now = self._counters_now()
        dead = {cpu: _not_counting(values) for cpu, values in now.items()}
        if any(dead.values()):
            out = {k: _without(v, dead.get(k[1], 0)) for k, v in out.items()}
        cpus = tuple(CounterCpu(cpu, _without(_counter_values(v.v, [v.en] * n, [v.run] * n, v.ok), dead.get(cpu, 0)),
                                v.lost, _without(now[cpu], dead[cpu]) if cpu in now else None)
                     for cpu, v in zip(self.cpus, per_cpu))
        return out, cpus

    def _counters_now(self) -> dict[int, CounterValues]:
        """Per CPU, each slot's (count, enabled, running) now from the perf fds (None: unread)."""
        got = self.counters.read() if self.counters is not None else {}
        cpus = {cpu for per_cpu in got.values() for cpu in per_cpu}
        return {cpu: tuple(None if got.get(slot, {}).get(cpu) is None else CounterValue(*got[slot][cpu])
                           for slot in COUNTER_SLOTS) for cpu in sorted(cpus)}

    def cpu_states(self) -> tuple[CpuCounters, ...]:
        per_cpu = self.bpf[b"state"][ct.c_int(0)]
        names = [n for n in CpuCounters.__dataclass_fields__
                 if n not in ("cpu", "slots", "slot_tgids")]
        out = []
        for i, cpu in enumerate(self.cpus):
            v = per_cpu[i]
            slots = tuple((v.slot_tgid[k], v.slot_ns[k], v.slot_cgid[k]) for k in range(SLOTS)
                          if v.slot_tgid[k] and v.slot_ns[k])
            out.append(CpuCounters(cpu, slots=slots, slot_tgids=tuple(v.slot_tgid),
                                   **{n: getattr(v, n) for n in names if hasattr(v, n)}))
        return tuple(out)

    def forget(self, tgids: list[int]) -> None:
        """Delete processes that are gone (their last time has been read)."""
        oncpu, exited = self.bpf[b"oncpu"], self.bpf[b"exited"]
        for tgid in tgids:
            for table in (oncpu, exited):
                try:
                    del table[table.Key(tgid)]
                except KeyError:
                    pass
            self.forget_counters([(tgid, cpu) for cpu in self._counter_keys.pop(tgid, [])])

    def forget_counters(self, keys: list[tuple[int, int]]) -> None:
        """Delete (tgid, cpu) entries of the counter map (their counts have been read)."""
        if not self.counter_slots:
            return
        ctr = self.bpf[b"ctr"]
        for tgid, cpu in keys:
            key = ctr.Key()
            key.tgid, key.cpu = tgid, cpu
            try:
                del ctr[key]
            except KeyError:
                pass

    def prog_misses(self) -> int:
        return sum(_fdinfo_misses(fn.fd) for fn in getattr(self.bpf, "funcs", {}).values())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.bpf.cleanup()
            except Exception:
                pass
            if self.counters is not None:
                self.counters.close()


def _counter_values(v: Any, en: Any, run: Any, ok: int) -> CounterValues:
    """Per slot: the count with its times, or None where the slot is not ``ok`` or was
    never read (enabled time 0)."""
    return tuple(CounterValue(v[k], en[k], run[k]) if ok & (1 << k) and en[k] else None
                 for k in range(len(COUNTER_SLOTS)))


def _add_slots(raw: dict[tuple[int, int], list[list[int]]], cpus: list[int], per_cpu: Any, n: int) -> set[int]:
    """Add each CPU's cache slots (flat, slot-major) to ``raw``; the tgids they hold."""
    cached: set[int] = set()
    for cpu, c in zip(cpus, per_cpu):
        for i, tgid in enumerate(c.slot_tgid):
            if tgid and any(c.slot_en[i * n:(i + 1) * n]):
                cached.add(tgid)
                row = raw.setdefault((tgid, cpu), [[0] * n, [0] * n, [0] * n])
                for part, src in zip(row, (c.slot_v, c.slot_en, c.slot_run)):
                    for k in range(n):
                        part[k] += src[i * n + k]
    return cached


def _not_counting(now: CounterValues) -> int:
    """Bits of the slots whose event has never run while another one in its group has."""
    ran = any(v is not None and v.running > 0 for v in now)
    return sum(1 << k for k, v in enumerate(now) if ran and v is not None and v.running == 0)


def _without(values: CounterValues, bits: int) -> CounterValues:
    return tuple(None if bits & (1 << k) else v for k, v in enumerate(values)) if bits else values


def _int(key: object) -> int:
    return key if isinstance(key, int) else int(getattr(key, "value"))


def _items(table: object) -> list:
    """All (key, value) pairs, with the batch syscall when the kernel has it."""
    try:
        return list(table.items_lookup_batch())
    except Exception:
        return list(table.items())
