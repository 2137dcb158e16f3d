"""The ``ebpf`` ActivitySampler: exact per-process, per-core on-CPU time from sched_switch.

The probe (keck_tui/probes) keeps cumulative nanoseconds per (tgid, CPU); this
sampler turns them into per-interval ``ProcessSample``s:

- interval time = cumulative now - cumulative at the previous read, per (tgid, CPU);
  a baseline never moves backwards, so a transient over-read (below) is not
  counted twice, only shown one interval early;
- in-flight time: a task that is on a CPU at read time has run since it was
  switched in; its current ``sum_exec_runtime`` (``/proc/<tgid>/task/<pid>/schedstat``,
  at most one scheduler tick stale) minus the value stored at switch-in is added,
  and dropped again if that CPU switched while we looked;
- a process whose leader exited is reported once more (``exited=True``, name and
  cgroup from the exit record) and then deleted from the maps at the next read,
  after its last switch-out has surely been counted; entries of processes that
  vanished without an exit record (exit map full) are collected the same way;
- cmd, ppid, cgroup, PSS/RSS, uid, the kernel-thread flag and per-core busy/irq
  come from the procfs sampler (``ProcfsSampler``), whose CPU times are replaced;
- with ``power:cpu_frequency`` (cpufreq present): per-core time-weighted MHz and
  ``freq_cubed_weight`` = ∫busy·(f/fmax)³ dt;
- with hardware counters installed in the probe (probes/counters.py): per (process,
  core) cycles, instructions, LLC misses and ref-cycles over the interval
  (``ProcessSample.counters``, arithmetic in samplers/ebpf_counters.py); without them
  (no PMU) the status says why, and the probe runs on without counters.

Map overflow (time that found the map full), lost events (kernel-skipped program
runs, switches that found another task than the one switched in) and a full exit
map are counted in the status ``extra`` and, when non-zero, in its ``detail``.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Protocol

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.ebpf_counters import CounterDeltas, Totals
from keck_tui.samplers.fileio import online_cpus, read_bytes
from keck_tui.samplers.types import (ActivitySampler, CoreSample, CounterDelta, CounterReading, CpuActivity,
                                     ProcessSample, ThreadSample, counting_state, error_activity, safe_sample)

NAME = "ebpf"
PF_KTHREAD = 0x00200000
DEFAULT_MAP_ENTRIES = 10240
F3_SCALE = float(1 << 20)  # freq_state.cube is (f/fmax)^3 x 2^20
U64 = 1 << 64


class ProbeLike(Protocol):
    """What the sampler needs from a loaded probe (``OnCpuProbe``, or a fake in tests)."""

    map_entries: int
    with_freq: bool
    load_s: float
    notes: list[str]

    def read(self): ...  # -> keck_tui.probes.loader.ProbeRead (counters: optional fields)
    def cpu_states(self): ...  # -> tuple[CpuCounters, ...]
    def forget(self, tgids: list[int]) -> None: ...
    def close(self) -> None: ...


def read_schedstat_runtime(procfs_root: str) -> Callable[[int, int], int | None]:
    """A reader of a running task's sum_exec_runtime (ns), or None when it is gone."""

    def runtime(tgid: int, pid: int) -> int | None:
        try:
            return int(read_bytes(f"{procfs_root}/{tgid}/task/{pid}/schedstat", 128).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    return runtime


def cgroup2_mount(mounts: str = "/proc/self/mounts") -> str | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or ``.../unified``)."""
    try:
        for line in Path(mounts).read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return parts[1]
    except OSError:
        pass
    return None


class CgroupNames:
    """cgroup v2 id (the directory's inode number) -> path, from a walk of the hierarchy.

    Only needed for processes that exited before procfs could tell their cgroup;
    re-walked at most once per ``sample()`` on a miss. ``root=None``: find the
    cgroup2 mount; the walk stays on that filesystem (v1 inode numbers differ).
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = root
        self._paths: dict[int, str] = {}
        self._walked_for = -1

    def path(self, cgid: int, generation: int) -> str:
        if cgid in self._paths or not cgid:
            return self._paths.get(cgid, "")
        if self._walked_for != generation:
            self._walked_for = generation
            self._walk()
        return self._paths.get(cgid, "")

    def _walk(self) -> None:
        root = self.root or cgroup2_mount()
        if not root:
            return
        try:
            top = os.stat(root)
        except OSError:
            return
        paths: dict[int, str] = {top.st_ino: "/"}
        for dirpath, dirnames, _files in os.walk(root):
            for d in dirnames:
                full = os.path.join(dirpath, d)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                if st.st_dev == top.st_dev:
                    paths[st.st_ino] = "/" + os.path.relpath(full, root)
        self._paths = paths


class EbpfSampler:
    """ActivitySampler over a loaded on-CPU probe; see the module docstring."""

    name = NAME

    def __init__(self, probe: ProbeLike, procfs_root: str = "/proc", clock: Clock | None = None,
                 *, enrich: ActivitySampler | None = None,
                 runtime: Callable[[int, int], int | None] | None = None,
                 cgroup_root: str | None = None, gc_every: int = 10,
                 thread_detail: Callable[[str, str], bool] | None = None) -> None:
        self.probe = probe
        self.procfs_root = str(procfs_root)
        self.clock: Clock = clock or SystemClock()
        if enrich is None:
            from keck_tui.samplers.procfs import ProcfsSampler
            # per-thread times only for the processes thread_detail picks (a VM's vCPU threads)
            enrich = ProcfsSampler(self.procfs_root, clock=self.clock, per_thread=False,
                                   thread_detail=thread_detail)
        self.enrich = enrich
        self.runtime = runtime or read_schedstat_runtime(self.procfs_root)
        self.cgroups = CgroupNames(cgroup_root)
        self.gc_every = max(1, gc_every)
        self._base: dict[int, dict[int, int]] = {}  # tgid -> cpu index -> ns baseline
        self._prev_t: float | None = None
        self._prev_read = None
        self._resync_base: int | None = None
        self._forget_next: set[int] = set()
        self._vanished: set[int] = set()
        self._gen = 0
        self._ctr = CounterDeltas()
        #: why the probe has no hardware counters ('' when it has them, or was not asked)
        self.counters_why = ""
        self.core_counters: dict[int, CounterDelta] = {}  # the last interval's, per core
        self.counter_slots: tuple[str, ...] = tuple(getattr(probe, "counter_slots", ()))
        self.interval_s = 0.0

    def close(self) -> None:
        self.probe.close()
        close_enrich = getattr(self.enrich, "close", None)
        if callable(close_enrich):
            close_enrich()

    # -- one sample ----------------------------------------------------------------------

    def sample(self) -> CpuActivity:
        self._gen += 1
        now = self.clock.monotonic()
        base_act = safe_sample(self.enrich, error_activity)  # its trouble is a note, not ours
        read = self.probe.read()
        cpu_ids = [c.cpu for c in read.cpus]
        inflight, ctr_inflight = self._inflight(read)
        first = self._prev_t is None
        interval = 0.0 if self._prev_t is None else now - self._prev_t

        # Interval time per (tgid, cpu index).
        per_tgid: dict[int, dict[int, int]] = {}
        cgids: dict[int, int] = {}
        oncpu = dict(read.oncpu)
        zeros = (0,) * len(cpu_ids)
        for (tgid, _i) in inflight:  # on a CPU since before its first switch-out
            oncpu.setdefault(tgid, (0, zeros))
        for tgid, (cgid, values) in oncpu.items():
            cgids[tgid] = cgid
            base = self._base.setdefault(tgid, {})
            for i, ns in enumerate(values):
                cum = ns + inflight.get((tgid, i), 0)
                before = base.get(i, 0)
                if cum > before:
                    if not first:
                        per_tgid.setdefault(tgid, {})[i] = cum - before
                    base[i] = cum
        live = {p.pid: p for p in base_act.processes}
        ctrs = self._ctr.step(getattr(read, "counters", {}), ctr_inflight, first)
        self._collect_counters(read, ctr_inflight)
        gone = [t for t in self._base if t not in oncpu and t not in live]
        for tgid in gone:
            del self._base[tgid]  # gone, and no time of it left in the maps
        self._ctr.forget(set(gone))
        procs: list[ProcessSample] = []
        for p in base_act.processes:
            got = per_tgid.pop(p.pid, None)
            if got:
                per_cpu = {cpu_ids[i]: ns / 1e9 for i, ns in got.items()}
                cpu_s = sum(per_cpu.values())
                p = replace(p, cpu_s=cpu_s, per_cpu_s=per_cpu, exited=p.pid in read.exited,
                            threads=_scaled_threads(p.threads, cpu_s), counters=ctrs.get(p.pid))
            elif p.cpu_s or p.per_cpu_s:
                p = replace(p, cpu_s=0.0, per_cpu_s={})
            procs.append(p)
        for tgid, got in per_tgid.items():  # gone before procfs saw it (or just now)
            gone_p = self._gone_process(tgid, got, cpu_ids, read, cgids.get(tgid, 0))
            procs.append(replace(gone_p, counters=ctrs.get(tgid)))

        self._collect(read, live, first)
        cores = self._core_counters(self._cores(base_act.cores, read), read, first)
        status = self._status(read, base_act, first)
        self._prev_t = now
        self._prev_read = read
        self.interval_s = interval
        self.counter_slots = tuple(getattr(read, "counter_slots", ()))
        return CpuActivity(status, interval_s=interval, processes=tuple(procs), cores=cores,
                           per_cpu_exact=True, per_process_counters=self._has_counters(read))

    def _core_counters(self, cores: tuple[CoreSample, ...], read, first: bool) -> tuple[CoreSample, ...]:
        """Each core's counters over the interval, from the probe's own perf events."""
        now = {c.cpu: c.now for c in getattr(read, "counter_cpus", ())}
        if not now or not self._has_counters(read):
            return cores
        per_core = self._ctr.cores(now, first)
        self.core_counters = per_core
        return tuple(replace(c, counters=per_core[c.cpu]) if c.cpu in per_core else c for c in cores)

    @property
    def has_counters(self) -> bool:
        """Hardware counters are installed in the probe (per process at every switch)."""
        return bool(self.counter_slots) and not self.counters_why

    def counter_sampler(self) -> "ProbeCounterSampler | None":
        """The ``counters`` source over the probe's own events, when it has counters."""
        return ProbeCounterSampler(self) if self.has_counters else None

    def _has_counters(self, read) -> bool:
        return bool(getattr(read, "counter_slots", ())) and not self.counters_why

    def _inflight(self, read) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], Totals]]:
        """(tgid, cpu index) -> ns run since switch-in by the task on each CPU now; and
        (tgid, cpu) -> its counters since switch-in (where the probe has counters)."""
        out: dict[tuple[int, int], int] = {}
        ctr: dict[tuple[int, int], Totals] = {}
        at_in = {c.cpu: c for c in getattr(read, "counter_cpus", ())}
        for i, c in enumerate(read.cpus):
            if not c.cur_pid or not c.cur_tgid:
                continue
            rt = self.runtime(c.cur_tgid, c.cur_pid)
            if rt is not None and rt > c.sum_at_in:
                out[(c.cur_tgid, i)] = rt - c.sum_at_in
            if c.cpu in at_in:
                since = _since(at_in[c.cpu].values, at_in[c.cpu].now)
                if since is not None:
                    ctr[(c.cur_tgid, c.cpu)] = since
        if out or ctr:  # drop CPUs that switched while we looked: the pair may not match
            again = self.probe.cpu_states()
            for (tgid, i) in list(out):
                if again[i].switches != read.cpus[i].switches:
                    del out[(tgid, i)]
            index = {c.cpu: i for i, c in enumerate(read.cpus)}
            for (tgid, cpu) in list(ctr):
                i = index[cpu]
                if again[i].switches != read.cpus[i].switches:
                    del ctr[(tgid, cpu)]
        return out, ctr

    def _gone_process(self, tgid: int, got: Mapping[int, int], cpu_ids: list[int], read,
                      cgid: int) -> ProcessSample:
        """A process with time but absent from the procfs scan: it exited (the exit
        record names it), or it was born after the scan (read it now)."""
        per_cpu = {cpu_ids[i]: ns / 1e9 for i, ns in got.items()}
        cpu_s = sum(per_cpu.values())
        info = read.exited.get(tgid)
        if info is None:
            late = self._read_late(tgid)
            if late is not None:
                return replace(late, cpu_s=cpu_s, per_cpu_s=per_cpu)
        name = info.comm if info else ""
        kernel = bool(info and info.flags & PF_KTHREAD)
        cgroup = self.cgroups.path((info.cgid if info else 0) or cgid, self._gen)
        return ProcessSample(
            pid=tgid, name=name or f"pid {tgid}", cmd=f"[{name}]" if kernel else (name or f"pid {tgid}"),
            cpu_s=cpu_s, per_cpu_s=per_cpu, cgroup=cgroup,
            cgroup_line=f"0::{cgroup}\n" if cgroup else "", kernel=kernel, exited=True)

    def _read_late(self, tgid: int) -> ProcessSample | None:
        """Name, command, parent, cgroup and kernel flag of a live process from procfs."""
        base = f"{self.procfs_root}/{tgid}"
        try:
            stat = read_bytes(f"{base}/stat")
            rp = stat.rindex(b")")
            rest = stat[rp + 2:].split()
            name = stat[stat.index(b"(") + 1:rp].decode("utf-8", "replace")
            ppid, flags, start = int(rest[1]), int(rest[6]), int(rest[19])
            raw = read_bytes(f"{base}/cmdline")
            cgroup_line = read_bytes(f"{base}/cgroup").decode("utf-8", "replace")
        except (OSError, ValueError, IndexError):
            return None
        kernel = bool(flags & PF_KTHREAD) or tgid == 2 or ppid == 2
        cmd = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
        if not cmd:
            cmd = f"[{name}]" if kernel else name
        from keck_tui.samplers.procfs import best_cgroup_path
        return ProcessSample(pid=tgid, name=name, cmd=cmd, cpu_s=0.0, ppid=ppid,
                             cgroup=best_cgroup_path(cgroup_line), cgroup_line=cgroup_line,
                             kernel=kernel, start_time=start / _CLK_TCK)

    def _collect(self, read, live: Mapping[int, ProcessSample], first: bool) -> None:
        """Delete map entries of processes that are gone, one read after we saw them go
        (and once no per-CPU slot holds their time, or a later flush would revive them)."""
        cached = getattr(read, "cached", frozenset())
        in_maps = set(read.oncpu) | {tgid for tgid, _cpu in getattr(read, "counters", {})}
        forget = [t for t in self._forget_next
                  if (t in in_maps or t in read.exited) and t not in cached]
        if forget:
            self.probe.forget(forget)
            for t in forget:  # a reused PID starts from zero
                self._base.pop(t, None)
            self._ctr.forget(set(forget))
        nxt = (set(read.exited) | (self._forget_next & cached)) - set(forget)
        if not first and self._gen % self.gc_every == 0 and live:
            # Entries with no exit record whose process is gone (exit map full, or a
            # leader that exited before its threads): collected if still gone next time.
            gone = {t for t in in_maps if t not in live and t not in read.exited}
            nxt |= gone & self._vanished
            self._vanished = gone - nxt
        self._forget_next = nxt

    def _collect_counters(self, read, inflight: Mapping[tuple[int, int], object]) -> None:
        """Delete (process, CPU) counter entries the process has not added to for gc_every
        reads (it lives on, elsewhere): the map holds an entry per CPU a process ever ran on."""
        totals = getattr(read, "counters", {})
        if not totals:
            return
        stale = self._ctr.idle_keys(totals, inflight, getattr(read, "cached", frozenset()), self.gc_every)
        forget = getattr(self.probe, "forget_counters", None)
        if stale and callable(forget):
            forget(stale)
            self._ctr.drop(stale)

    def _cores(self, cores: tuple[CoreSample, ...], read) -> tuple[CoreSample, ...]:
        prev = self._prev_read
        if not read.freq or prev is None or not prev.freq or not cores:
            return cores
        dt = read.ktime_ns - prev.ktime_ns
        if dt <= 0:
            return cores
        fnow = {f.cpu: f for f in read.freq}
        fprev = {f.cpu: f for f in prev.freq}
        snow = {c.cpu: c for c in read.cpus}
        sprev = {c.cpu: c for c in prev.cpus}
        out = []
        for core in cores:
            f1, f0 = fnow.get(core.cpu), fprev.get(core.cpu)
            s1, s0 = snow.get(core.cpu), sprev.get(core.cpu)
            if f1 is None or f0 is None or not f1.khz:
                out.append(core)
                continue
            area = (_f1_at(f1, read.ktime_ns) - _f1_at(f0, prev.ktime_ns)) % U64
            mhz = area / dt / 1000.0
            cubed = None
            if s1 is not None and s0 is not None:
                cubed = ((s1.busy_f3 - s0.busy_f3) % U64) / F3_SCALE / 1e9
            out.append(replace(core, freq_mhz=mhz, freq_nominal=False, freq_cubed_weight=cubed))
        return tuple(out)

    def _status(self, read, base_act: CpuActivity, first: bool) -> SourceStatus:
        lost_count = sum(c.lost_count for c in read.cpus)
        lost_s = sum(c.lost_ns for c in read.cpus) / 1e9
        resyncs = sum(c.resyncs for c in read.cpus)
        if self._resync_base is None:
            self._resync_base = resyncs  # each CPU's first switch after load resyncs
        lost_events = resyncs - self._resync_base + read.prog_misses
        extra = {
            "map_entries": read.map_entries, "map_used": len(read.oncpu) if read.map_used is None else read.map_used,
            "map_overflow": lost_count, "map_overflow_s": round(lost_s, 6),
            "lost_events": lost_events, "exit_overflow": read.exit_lost,
            "switches": sum(c.switches for c in read.cpus),
            "load_s": round(self.probe.load_s, 3), "processes": len(base_act.processes),
            "freq": bool(read.freq),
        }
        notes = ["warming up"] if first else []
        fixes = []
        if lost_count:
            notes.append(f"map full: {lost_count} switches ({lost_s:.3f} s) not attributed")
            fixes.append(f"raise ebpf map_entries above {read.map_entries}")
        if read.exit_lost:
            notes.append(f"exit map full: {read.exit_lost} exits unrecorded")
        if lost_events:
            notes.append(f"{lost_events} lost events")
        if not base_act.source.ok:
            notes.append(f"procfs: {base_act.source.detail}")
        notes.extend(self.probe.notes)
        self._counter_status(read, extra, notes)
        if fixes:
            extra["fix"] = "; ".join(fixes)
        if not notes:
            what = f" and counters ({extra['counters']})" if self._has_counters(read) else ""
            notes.append(f"exact per-core on-CPU time{what} (sched_switch), map {extra['map_used']}"
                         f"/{read.map_entries}")
        return SourceStatus(NAME, STATUS_OK, "; ".join(notes), extra=extra)


    def _counter_status(self, read, extra: dict, notes: list[str]) -> None:
        """Hardware counters in the status: which, their multiplexing and map use, or why none."""
        slots = tuple(getattr(read, "counter_slots", ()))
        if not slots or self.counters_why:
            if self.counters_why:
                extra["counters"] = "none"
                notes.append(f"no hardware counters: {self.counters_why}")
            return
        events = getattr(getattr(self.probe, "counters", None), "events", {}) or {}
        extra["counters"] = ",".join(f"{s}={events[s]}" if events.get(s, s) != s else s for s in slots)
        lost = sum(c.lost for c in getattr(read, "counter_cpus", ()))
        used = len(getattr(read, "counters", {}))
        extra.update(counter_entries=read.counter_entries, counter_used=used, counter_overflow=lost)
        ratio = self._ctr.running_ratio
        if ratio is not None:
            extra["counter_running_ratio"] = round(ratio, 4)
        if lost:
            notes.append(f"counter map full: {lost} spans without counters")
        if ratio is not None and ratio < 0.999:
            notes.append(f"counters multiplexed (running {ratio:.0%} of the time, scaled)")


class ProbeCounterSampler:
    """The ``counters`` source when the eBPF probe counts: each core's counters over the
    interval, from the probe's own perf events (read once per interval). Opening a second
    set (samplers/perfcounters.py) would count the same thing twice on the PMU and make
    it multiplex; the probe owns and closes the events."""

    name = "counters"

    def __init__(self, ebpf: EbpfSampler) -> None:
        self.ebpf = ebpf

    def sample(self) -> CounterReading:
        from keck_tui.samplers.perfcounters import per_core_json
        deltas = dict(self.ebpf.core_counters)
        events = getattr(getattr(self.ebpf.probe, "counters", None), "events", {}) or {}
        opened = list(self.ebpf.counter_slots)
        ratio, state = counting_state(deltas)
        what = f"the eBPF probe's perf events: {', '.join(opened)} per process at every context switch and per core"
        what += state
        stand_ins = {s: e for s, e in events.items() if e != s}
        if stand_ins:
            what += "; stand-ins: " + ", ".join(f"{s}={e}" for s, e in stand_ins.items())
        return CounterReading(SourceStatus("counters", STATUS_OK, what,
                                           extra={"events": opened, "cpus": len(deltas), "running_ratio": round(ratio, 4),
                                                  "per_core": per_core_json(deltas), "per_process": True}),
                              interval_s=self.ebpf.interval_s, cores=deltas)

    def close(self) -> None:
        """Nothing: the events are the probe's (closed with the activity sampler)."""


def _is_this_kernels_procfs(root: str) -> bool:
    """True for /proc, or a host /proc mounted elsewhere that shows this very process
    (e.g. /host/proc with the host's PID namespace); False for a fixture tree."""
    if os.path.realpath(root) == "/proc":
        return True
    try:
        mine = read_bytes(f"/proc/{os.getpid()}/stat")
        theirs = read_bytes(f"{root}/{os.getpid()}/stat")
    except OSError:
        return False
    start = lambda data: data[data.rindex(b")") + 2:].split()[19]  # noqa: E731
    try:
        return start(mine) == start(theirs)
    except (ValueError, IndexError):
        return False


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _since(at_in, now) -> Totals | None:
    """Per slot, the counters between the probe's switch-in reading and ``now`` (None: unknown)."""
    if now is None:
        return None
    out = []
    for a, b in zip(at_in, now):
        if a is None or b is None or b.enabled < a.enabled or b.count < a.count:
            out.append(None)
        else:
            out.append((b.count - a.count, b.enabled - a.enabled, max(0, b.running - a.running)))
    return tuple(out) if any(t is not None for t in out) else None


def _f1_at(f, ktime: int) -> int:
    dt = ktime - f.last if f.last and ktime > f.last else 0
    return f.f1 + dt * f.khz


def _scaled_threads(threads: tuple[ThreadSample, ...] | None, cpu_s: float) -> tuple[ThreadSample, ...] | None:
    """procfs's per-thread split (tick-grained) scaled to the exact eBPF total of the process."""
    if not threads:
        return None
    total = sum(t.cpu_s for t in threads)
    if total <= 0:
        return None
    return tuple(replace(t, cpu_s=t.cpu_s * cpu_s / total) for t in threads)


def open_ebpf_sampler(procfs_root: str = "/proc", clock: Clock | None = None, *,
                      map_entries: int = DEFAULT_MAP_ENTRIES, exit_entries: int | None = None,
                      freq: bool | None = None,
                      thread_detail: Callable[[str, str], bool] | None = None,
                      pinned: bool = True, counters: bool = True,
                      counter_events: Mapping[str, object] | None = None,
                      counter_entries: int | None = None) -> tuple[ActivitySampler | None, SourceStatus]:
    """(sampler, ok status) when root + bcc + tracepoints work, else (None, why). Never raises.

    ``pinned``: compile and attach in a helper process and read the maps from bpffs pins
    (keck_tui/probes/pinned.py: no bcc/LLVM in this process, ~140 MiB less); when pinning
    is impossible the probe is loaded here and the status says why.
    ``counters``: per (process, core) hardware counters (probes/counters.py), opened here
    before the probe is compiled so that only the slots that opened are compiled in;
    ``counter_events``: slot -> perf EventSpec instead of the hardware events (tests and
    benchmarks put software clocks there on machines without a PMU)."""
    if not _is_this_kernels_procfs(str(procfs_root)):
        return None, SourceStatus(
            NAME, STATUS_UNAVAILABLE,
            f"procfs root {procfs_root} is not this kernel's /proc (eBPF sees the real kernel)",
            extra={"fix": "use --probes procfs with a re-rooted procfs"})
    try:
        from keck_tui.probes.loader import (DEFAULT_COUNTER_ENTRIES, DEFAULT_EXIT_ENTRIES, OnCpuProbe,
                                            ProbeUnavailable, check_privileges)
    except Exception as exc:  # noqa: BLE001
        return None, SourceStatus(NAME, STATUS_UNAVAILABLE, f"probe loader failed to import: {exc}")
    pin_note = None
    ctrs = None
    kw = dict(map_entries=map_entries, exit_entries=exit_entries or DEFAULT_EXIT_ENTRIES, freq=freq)
    try:
        check_privileges()  # before opening counters or importing more: the same "needs root" everywhere
        if counters:
            ctrs = _open_counters(counter_events)
            kw.update(counter_slots=ctrs.slots, counter_entries=counter_entries or DEFAULT_COUNTER_ENTRIES)
        probe = None
        if pinned:
            from keck_tui.probes.pinned import PinningUnavailable, open_pinned
            try:
                probe = open_pinned(**kw)
            except PinningUnavailable as exc:
                pin_note = f"loaded in this process ({exc})"
        if probe is None:
            probe = OnCpuProbe.open(**kw)
            if pin_note:
                probe.notes.append(pin_note)
    except ProbeUnavailable as exc:
        _close(ctrs)
        extra = {"fix": exc.fix} if exc.fix else {}
        return None, SourceStatus(NAME, STATUS_UNAVAILABLE, str(exc), extra=extra)
    except Exception as exc:  # noqa: BLE001 - never a traceback
        _close(ctrs)
        return None, SourceStatus(NAME, STATUS_UNAVAILABLE,
                                  f"probe failed to load: {type(exc).__name__}: {exc}")
    why = _install_counters(probe, ctrs)
    try:
        sampler = EbpfSampler(probe, procfs_root, clock, thread_detail=thread_detail)
    except Exception as exc:  # noqa: BLE001
        probe.close()
        return None, SourceStatus(NAME, STATUS_ERROR, f"{type(exc).__name__}: {exc}")
    sampler.counters_why = why
    detail = f"sched_switch probe loaded in {probe.load_s:.2f} s"
    if probe.notes:
        detail += "; " + "; ".join(probe.notes)
    if why:
        detail += f"; no hardware counters: {why}"
    return sampler, SourceStatus(NAME, STATUS_OK, detail,
                                 extra={"map_entries": probe.map_entries, "freq": probe.with_freq,
                                        "counters": ",".join(probe.counter_slots) if not why else "none"})


def _open_counters(events: Mapping[str, object] | None):
    """The per-CPU perf events for the probe (probes/counters.py); never raises."""
    from keck_tui.probes.loader import possible_cpus
    try:
        from keck_tui.probes.counters import open_counters
        return open_counters(_online_cpus(possible_cpus()), events)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - counters are optional; the probe runs without
        return _NoCounters(f"{type(exc).__name__}: {exc}")


class _NoCounters:
    """No counter set at all (its module failed): the probe runs without, and says why."""

    slots: tuple[str, ...] = ()

    def __init__(self, why: str) -> None:
        self.why = why

    def reason(self) -> str:
        return self.why

    def close(self) -> None:
        pass


def _install_counters(probe, ctrs) -> str:
    """Put the perf events into the loaded probe (the probe then owns them); '' or why there are none."""
    if ctrs is None:
        return ""  # not asked for: nothing to explain
    if not ctrs.slots:
        return ctrs.reason() or "no counter opened"
    try:
        ctrs.install(probe.bpf)
    except Exception as exc:  # noqa: BLE001
        ctrs.close()
        return f"could not install the perf events in the probe: {type(exc).__name__}: {exc}"
    probe.counters = ctrs
    missing = ctrs.reason()
    if missing:
        probe.notes.append(f"some counters missing: {missing}")
    return ""


def _close(ctrs) -> None:
    if ctrs is not None:
        ctrs.close()


def _online_cpus(possible: list[int]) -> list[int]:
    """The possible CPUs that are online now (perf events open only there)."""
    online = set(online_cpus())
    return [c for c in possible if c in online] or possible
