"""Who ran where: per-process and per-core CPU time from /proc (psutil where there is none).

:class:`ProcfsSampler` parses a re-rootable procfs directly (psutil's ``PROCFS_PATH`` is
global state, and its per-process objects cost more than the parsing itself):

- per core, ``/proc/stat``: busy = user+nice+system+irq+softirq (guest is inside user;
  steal is time the core was *not* ours, so it is left out), irq = irq+softirq;
- per process, ``/proc/<pid>/stat``: utime+stime (clock ticks), ppid, flags (PF_KTHREAD),
  num_threads, start time, RSS and the CPU it last ran on (field 39). On the real procfs
  the file of a known process stays open and is re-read with ``pread`` (a third cheaper
  than open+read+close; a process that exited answers ESRCH, so a reused pid is never
  read through the old file), up to ``max_open`` files. A known single-threaded process
  also keeps ``/proc/<pid>/schedstat`` open (a third of the kernel's cost of ``stat``): while
  its run time there has not moved, the process has not run, so its ``stat`` line is not
  read at all; it is read anyway every ``refresh_every`` samples (staggered by pid), for
  what moves without running (RSS under reclaim, the parent after a reparenting);
- on first sight and then every ``refresh_every`` samples (staggered by pid): ``cmdline``,
  ``cgroup`` and the owner uid (the owner of ``/proc/<pid>``: the effective uid);
- PSS from ``smaps_rollup`` (expensive: the kernel walks the page tables) on first
  sight (after ``pss_new_after`` samples), when RSS moved by > 10 % (at most every ``pss_moved_every`` samples: a busy
  process's RSS moves every second), and on a slow tier every ``pss_every`` samples
  (``pss_idle_every`` for one that has not run since its last read)
  staggered by pid (and every sample for the ``pss_top`` busiest processes, 0 by
  default) — all within a time budget per sample (``pss_budget_s``); cached in between
  (see ``_update_pss``). ``pss=False`` reads none (RSS stands in).

Per-core split of a process's time (``per_cpu_s``): the time of each *thread* is placed on
the CPU that thread last ran on, read from ``/proc/<pid>/task/*/stat`` only for processes
that have several threads and used CPU in the interval (so the cost follows the busy set,
not the process count); a single-threaded process's time goes on its last CPU. Both are
guesses (``per_cpu_exact=False``); eBPF gives the exact split.

Per-thread time (``threads``) is reported only for processes ``thread_detail(comm, cmd)`` picks
(the wiring passes :func:`keck_tui.hierarchy.vms.is_vm_process`: a VM's vCPU threads become rows);
their threads are read every interval they use CPU, from the same ``task/*/stat`` reads.

A process that exits while it is read is skipped (never an exception). A process first
seen in this sample counts all its CPU time if it started after the previous sample, so
short-lived processes between two samples are not lost; one that exits between two
samples unseen is lost (eBPF keeps it).
"""
from __future__ import annotations

import errno
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, SourceStatus
from keck_tui.samplers.fileio import read_bytes
from keck_tui.samplers.types import ActivitySampler, CoreSample, CpuActivity, ProcessSample, ThreadSample

PF_KTHREAD = 0x00200000
_GONE = (errno.ENOENT, errno.ESRCH)


class _Proc:
    """What we remember about one process between samples."""

    __slots__ = ("pid", "start", "ticks", "comm", "cmd", "cgroup_line", "cgroup", "uid", "pss",
                 "rss", "threads", "threads_cycle", "last", "dirty", "pss_cycle", "pss_rss", "comm_raw",
                 "detail", "split", "fd", "raw", "fields", "sfd", "sched", "pss_ticks", "seen")

    def __init__(self, pid: int, start: int) -> None:
        self.pid = pid
        self.start = start
        self.ticks = 0
        self.comm = ""
        self.comm_raw = b""
        self.cmd = ""
        self.cgroup_line = ""
        self.cgroup = ""
        self.uid: int | None = None
        self.pss: int | None = None
        self.rss: int | None = None
        self.threads: dict[int, int] | None = None  # tid -> utime+stime ticks
        self.threads_cycle = -2
        self.last: ProcessSample | None = None  # reused while idle and unchanged
        self.dirty = True
        self.pss_cycle = -1  # sample number of the last smaps_rollup read (-1: never)
        self.pss_rss = 0  # RSS bytes when PSS was last read
        self.pss_ticks = -1  # CPU ticks when PSS was last read
        self.seen = 0  # the sample it was first seen in
        self.detail = False  # report per-thread times (a VM process: its vCPU threads)
        self.split: list[tuple[int, str, int]] = []  # (tid, comm, ticks) of the last thread split
        self.fd = -1  # /proc/<pid>/stat kept open (-1: none)
        self.raw = b""  # the stat line last parsed
        self.fields: tuple[int, bool, int, int, int] = (0, False, 0, 0, 0)  # its ppid, kernel, threads, cpu, rss
        self.sfd = -1  # /proc/<pid>/schedstat kept open while single-threaded (-1: none)
        self.sched = b""  # its text read just before ``raw`` (b"": none yet)


# One scanned process: (proc, delta ticks, ppid, kernel, nthreads, processor, rss pages)
_Row = tuple[_Proc, int, int, bool, int, int, int]


class ProcfsSampler:
    """ActivitySampler over a procfs tree; see the module docstring."""

    name = "procfs"

    def __init__(self, procfs_root: Path | str = "/proc", clock: Clock | None = None,
                 pss_every: int = 30, *, pss_top: int = 0, pss_budget_s: float = 0.005,
                 pss_moved_every: int = 1, pss_idle_every: int | None = None, pss_new_after: int = 0,
                 pss_prime_factor: float = 40.0, refresh_every: int = 30,
                 per_thread: bool = True, clock_ticks: int | None = None,
                 page_size: int | None = None, pss: bool = True,
                 keep_open: bool | None = None, max_open: int | None = None,
                 thread_detail: Callable[[str, str], bool] | None = None) -> None:
        self.procfs_root = Path(procfs_root)
        self._root = str(self.procfs_root)
        self.clock: Clock = clock or SystemClock()
        self.pss = pss
        self.pss_every = max(1, int(pss_every))
        self.pss_top = max(0, int(pss_top))
        # A process whose RSS keeps moving is re-read at most every this many samples.
        self.pss_moved_every = max(1, int(pss_moved_every))
        # The slow tier of a process that has not run since its last read (only other
        # processes mapping or unmapping what it shares move its PSS); default pss_every.
        self.pss_idle_every = self.pss_every if pss_idle_every is None else max(1, int(pss_idle_every))
        # A new process's first read waits until it has been seen this many samples more:
        # short-lived ones (a build's compilers, a test run's helpers) never cost a page walk.
        self.pss_new_after = max(0, int(pss_new_after))
        self.pss_budget_s = pss_budget_s  # wall time per sample for smaps_rollup reads
        self.pss_prime_factor = pss_prime_factor  # the priming sample may spend this many budgets
        self.refresh_every = max(1, int(refresh_every))
        self.per_thread = per_thread
        # (comm, cmd) -> whether to report that process's threads one by one (VM processes).
        self.thread_detail = thread_detail
        self.hz = clock_ticks or os.sysconf("SC_CLK_TCK")
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self._procs: dict[int, _Proc] = {}
        self._cpu_prev: dict[int, tuple[int, int, int]] = {}
        self._prev_t: float | None = None
        self._prev_uptime: float | None = None
        self._cycle = 0
        if keep_open is None:  # only where an exited process's file says so (ESRCH)
            keep_open = os.path.realpath(self._root) == "/proc"
        self.max_open = (max_open if max_open is not None else default_max_open()) if keep_open else 0
        self._open = 0  # stat files kept open now
        self.max_sched_open = default_max_sched_open(self.max_open) if keep_open else 0
        self._sched_open = 0  # schedstat files kept open now

    def close(self) -> None:
        """Close the kept-open stat files (the collector calls this on exit)."""
        for p in self._procs.values():
            if p.fd >= 0:
                _close(p.fd)
                p.fd = -1
            self._drop_sched(p)
        self._open = 0
        self._sched_open = 0

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- one sample ----------------------------------------------------------------------

    def sample(self) -> CpuActivity:
        now = self.clock.monotonic()
        first = self._prev_t is None
        interval = 0.0 if self._prev_t is None else now - self._prev_t
        cycle = self._cycle
        uptime = self._read_uptime()
        notes: list[str] = []
        try:
            cores = self._cores(first)
        except (OSError, ValueError) as exc:
            cores = ()
            notes.append(f"could not read {self._root}/stat: {type(exc).__name__}")
        try:
            names = os.listdir(self._root)
        except OSError as exc:
            return CpuActivity(SourceStatus(self.name, STATUS_ERROR,
                                            f"cannot list {self._root}: {exc.strerror or exc}"),
                               interval_s=interval)
        born_after = None if self._prev_uptime is None else self._prev_uptime - 1.0 / self.hz
        rows, skipped = self._scan(names, first, cycle, born_after)
        if self.pss:
            self._update_pss(rows, first, cycle)
        procs = self._samples(rows, first, cycle, born_after)
        self._prev_t = now
        self._prev_uptime = uptime
        self._cycle += 1
        if first:
            notes.insert(0, "warming up")
        extra = {"processes": len(procs), "skipped": skipped}
        return CpuActivity(SourceStatus(self.name, STATUS_OK, "; ".join(notes), extra=extra),
                           interval_s=interval, processes=tuple(procs), cores=cores,
                           per_cpu_exact=False)

    def _scan(self, names: list[str], first: bool, cycle: int,
              born_after: float | None) -> tuple[list[_Row], int]:
        """One ``stat`` read per process: its CPU ticks since the last scan (the baseline of
        a new or reused PID), with cmdline/cgroup/uid re-read when due. Returns the rows and
        how many processes were skipped (gone, or a partial line while exiting)."""
        hz = self.hz
        old = self._procs
        seen: dict[int, _Proc] = {}
        refresh_every = self.refresh_every
        rows: list[_Row] = []
        skipped = 0
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            p = old.get(pid)
            fd = -1
            try:
                if p is not None and p.sfd >= 0 and self._has_not_run(p, cycle):
                    fd, data = p.fd, p.raw  # it has not run: its line is the one parsed last
                else:
                    fd, data = self._read_stat(p, name)
                if p is not None and data == p.raw:
                    # Byte for byte the line parsed last time (a sleeper): nothing moved.
                    if (pid + cycle) % refresh_every == 0 and not self._refresh(p, name, p.fields[1]):
                        raise ProcessLookupError(pid)
                    p.fd = fd
                    seen[pid] = p
                    rows.append((p, 0, *p.fields))
                    continue
                rp, ppid, flags, ticks, nthreads, start, rss, processor = _parse_stat(data)
            except (OSError, ValueError, IndexError):
                skipped += 1  # gone, or a partial line from an exiting process
                self._release(fd, p)
                continue
            kernel = bool(flags & PF_KTHREAD) or pid == 2 or ppid == 2
            comm = data[data.index(b"(") + 1:rp]
            if p is not None and p.start == start:
                delta = ticks - p.ticks
                if delta < 0:
                    delta = 0
                if comm != p.comm_raw:  # exec'd (or renamed itself): new command line
                    p.comm_raw, p.comm = comm, comm.decode("utf-8", "replace")
                    p.dirty = True
                    if not self._refresh(p, name, kernel):
                        skipped += 1
                        continue
                elif (pid + cycle) % refresh_every == 0 and not self._refresh(p, name, kernel):
                    skipped += 1
                    continue
            else:  # new, or the pid was reused
                p = self._new_proc(p, pid, start, fd)
                p.seen = cycle
                if first:
                    delta = 0
                elif born_after is None or start / hz >= born_after:
                    delta = ticks  # born during the interval: all its time is in it
                else:
                    delta = 0  # existed before but was not seen: no baseline
                p.comm_raw, p.comm = comm, comm.decode("utf-8", "replace")
                if not self._refresh(p, name, kernel):
                    skipped += 1
                    self._release(fd, p)
                    continue
            p.fd = fd
            p.ticks = ticks
            p.raw = data
            p.fields = (ppid, kernel, nthreads, processor, rss)
            self._keep_sched(p, name, nthreads)
            seen[pid] = p
            rows.append((p, delta, ppid, kernel, nthreads, processor, rss))
        self._close_gone(old, seen)
        self._procs = seen
        return rows, skipped

    def _read_stat(self, p: _Proc | None, name: str) -> tuple[int, bytes]:
        """``(fd, line)``: the process's stat line, pread from the file kept open for it, else
        read from a newly opened one, kept open (fd ≥ 0) while under ``max_open``, else
        closed (fd -1). Raises OSError when the process is gone."""
        fd = -1
        data = b""
        if p is not None and p.fd >= 0:
            fd = p.fd
            try:
                data = os.pread(fd, 4096, 0)
            except OSError:  # exited (ESRCH): a process now under this pid is read afresh
                _close(fd)
                self._open -= 1
                p.fd = fd = -1
                data = b""
        if fd < 0:
            new_fd = os.open(f"{self._root}/{name}/stat", os.O_RDONLY)
            try:
                data = os.read(new_fd, 4096)
            except OSError:
                _close(new_fd)
                raise
            if self._open < self.max_open:
                self._open += 1
                fd = new_fd
            else:
                _close(new_fd)
        return fd, data

    def _has_not_run(self, p: _Proc, cycle: int) -> bool:
        """Whether a single-threaded process's run time (schedstat, pread from its kept
        file) is what it was when its stat line was last read, and no full read is due.
        Otherwise its new schedstat text is kept (read before the stat line that follows,
        so a run in between shows next time) and False says: read the stat line."""
        try:
            data = os.pread(p.sfd, 256, 0)
        except OSError:  # exited (ESRCH): the stat read that follows says so
            self._drop_sched(p)
            return False
        if data == p.sched and (p.pid + cycle) % self.refresh_every:
            return True
        p.sched = data
        return False

    def _keep_sched(self, p: _Proc, name: str, nthreads: int) -> None:
        """Keep schedstat open for a single-threaded process (its leader's run time is the
        whole process's), within ``max_sched_open``; close it once it has more threads."""
        if nthreads != 1:
            self._drop_sched(p)
        elif p.sfd < 0 and self._sched_open < self.max_sched_open:
            try:
                p.sfd = os.open(f"{self._root}/{name}/schedstat", os.O_RDONLY)
            except OSError:
                return
            self._sched_open += 1
            p.sched = b""  # nothing read before the stat line yet: the next sample reads both

    def _drop_sched(self, p: _Proc) -> None:
        if p.sfd >= 0:
            _close(p.sfd)
            self._sched_open -= 1
            p.sfd = -1
            p.sched = b""

    def _release(self, fd: int, p: _Proc | None) -> None:
        """Close ``fd`` (if open) unless it is ``p``'s kept-open file, which is closed with
        the others that left (_close_gone)."""
        if fd >= 0 and not (p is not None and p.fd == fd):
            _close(fd)
            self._open -= 1

    def _new_proc(self, old: _Proc | None, pid: int, start: int, fd: int) -> _Proc:
        """A fresh record for a new process (or a reused pid); the old record's kept-open
        file is closed unless it is the one just read (which moves to the new record)."""
        if old is not None:
            self._drop_sched(old)
        if old is not None and old.fd >= 0:
            if old.fd != fd:
                _close(old.fd)
                self._open -= 1
            old.fd = -1
        return _Proc(pid, start)

    def _close_gone(self, old: dict[int, _Proc], seen: dict[int, _Proc]) -> None:
        """Close the kept-open files of processes that left."""
        if self._open or self._sched_open:
            for pid, gone in old.items():
                if seen.get(pid) is gone:
                    continue
                if gone.fd >= 0:
                    _close(gone.fd)
                    self._open -= 1
                    gone.fd = -1
                self._drop_sched(gone)

    def _samples(self, rows: list[_Row], first: bool, cycle: int,
                 born_after: float | None) -> list[ProcessSample]:
        """A ProcessSample per row; an idle, unchanged process reuses its previous one."""
        procs: list[ProcessSample] = []
        page = self.page_size
        inv_hz = 1.0 / self.hz
        per_thread = self.per_thread and not first
        for p, delta, ppid, kernel, nthreads, processor, rss in rows:
            rss_bytes = rss * page
            if p.detail and nthreads > 1 and p.threads_cycle < cycle - 1:
                self._thread_split(p, 0, processor, cycle, born_after)  # a baseline for its threads
                if delta > 0:
                    p.threads_cycle = cycle - 1  # so that this interval's split below uses it
            last = p.last
            if delta == 0 and p.threads_cycle == cycle - 1:
                p.threads_cycle = cycle  # no CPU used: its threads' counters did not move either
            if delta == 0 and not p.dirty and last is not None and last.cpu_s == 0.0 \
                    and last.rss_bytes == rss_bytes and last.ppid == ppid:
                procs.append(last)  # idle and unchanged: the same immutable sample
                continue
            cpu_s = delta * inv_hz
            if delta == 0:
                per_cpu: Mapping[int, float] = {}
            elif per_thread and nthreads > 1:
                per_cpu = self._thread_split(p, delta, processor, cycle, born_after)
            else:
                per_cpu = {processor: cpu_s}
            threads = None
            if p.detail and delta > 0:  # a VM process: its threads one by one, even without per_thread
                if nthreads > 1 and not first:
                    if not (per_thread and nthreads > 1):
                        self._thread_split(p, delta, processor, cycle, born_after)
                    threads = self._thread_detail(p, delta)
                else:
                    threads = (ThreadSample(p.pid, p.comm, cpu_s),)
            sample = ProcessSample(
                pid=p.pid, name=p.comm, cmd=p.cmd, cpu_s=cpu_s, per_cpu_s=per_cpu, ppid=ppid,
                pss_bytes=p.pss, rss_bytes=rss_bytes, cgroup=p.cgroup, cgroup_line=p.cgroup_line,
                kernel=kernel, start_time=p.start * inv_hz, uid=p.uid, threads=threads)
            p.last = sample
            p.dirty = False
            procs.append(sample)
        return procs

    # -- pieces --------------------------------------------------------------------------

    def _refresh(self, p: _Proc, name: str, kernel: bool) -> bool:
        """(Re)read cmdline, cgroup and uid. False when the process is gone."""
        base = f"{self._root}/{name}"
        try:
            raw = read_bytes(f"{base}/cmdline")
            cgroup_line = read_bytes(f"{base}/cgroup").decode("utf-8", "replace")
            uid = os.stat(base).st_uid
        except OSError as exc:
            if exc.errno in _GONE:
                return False
            raw, cgroup_line, uid = b"", "", None
        if raw:
            cmd = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
        else:
            cmd = f"[{p.comm}]" if kernel else p.comm
        if (cmd, cgroup_line, uid) != (p.cmd, p.cgroup_line, p.uid):
            p.cmd, p.cgroup_line, p.uid = cmd, cgroup_line, uid
            p.cgroup = best_cgroup_path(cgroup_line)
            p.dirty = True
            p.detail = bool(self.thread_detail and not kernel and self.thread_detail(p.comm, cmd))
        return True

    def _update_pss(self, rows: list[_Row],
                    first: bool, cycle: int) -> None:
        """Refresh PSS from smaps_rollup within a time budget.

        smaps_rollup walks the page tables: ~20 µs for a small process, ~4 ms for one
        with 1 GiB resident (measured, see docs/samplers.md). So each sample reads, in
        this order and until ``pss_budget_s`` is spent: processes never read yet (seen
        ``pss_new_after`` samples ago or more, or in the priming sample), the
        ``pss_top`` busiest of the interval, those whose RSS moved by > 10 % since
        their last read (read ``pss_moved_every`` samples ago or longer), and the
        staggered 1/``pss_every`` due this cycle (or overdue; 1/``pss_idle_every`` for a
        process that has not run since its last read).
        Everything else keeps its cached value.
        """
        every, idle_every = self.pss_every, self.pss_idle_every
        new_after = 0 if first else self.pss_new_after
        moved_every = self.pss_moved_every
        top: set[int] = set()
        if self.pss_top and not first:
            busy = [r for r in rows if r[1] > 0 and not r[3]]
            busy.sort(key=lambda r: r[1], reverse=True)
            top = {r[0].pid for r in busy[: self.pss_top]}
        due: list[tuple[int, int, _Proc]] = []
        page = self.page_size
        for p, _delta, _ppid, kernel, _n, _cpu, rss in rows:
            if kernel:
                continue
            if p.pss_cycle < 0:
                if cycle - p.seen < new_after:
                    continue
                prio = 0
            elif p.pid in top:
                prio = 1
            elif p.pss_rss and abs(rss * page - p.pss_rss) * 10 > p.pss_rss \
                    and cycle - p.pss_cycle >= moved_every:
                prio = 2
            else:
                tier = idle_every if p.ticks == p.pss_ticks else every
                if (p.pid + cycle) % tier and cycle - p.pss_cycle <= tier:
                    continue
                prio = 3
            due.append((prio, p.pss_cycle, p))
            p.pss_rss = rss * page
        if not due:
            return
        due.sort(key=lambda d: (d[0], d[1]))
        root = self._root
        deadline = time.perf_counter() + self.pss_budget_s * (self.pss_prime_factor if first else 1)
        for _prio, _age, p in due:
            if time.perf_counter() > deadline:
                break
            try:
                pss = _parse_pss(read_bytes(f"{root}/{p.pid}/smaps_rollup"))
            except (OSError, ValueError, IndexError):
                pss = None  # gone, or not ours to read (non-root)
            p.pss_cycle = cycle
            p.pss_ticks = p.ticks
            if pss != p.pss:
                p.pss = pss
                p.dirty = True

    def _thread_split(self, p: _Proc, delta: int, processor: int, cycle: int,
                      born_after: float | None) -> dict[int, float]:
        """Spread a multi-threaded process's ``delta`` ticks over the CPUs its threads
        last ran on, by each thread's own ticks in the interval."""
        inv_hz = 1.0 / self.hz
        task = f"{self._root}/{p.pid}/task"
        threads: dict[int, int] = {}
        by_cpu: dict[int, int] = {}
        split: list[tuple[int, str, int]] = []
        prev = p.threads if p.threads_cycle == cycle - 1 else None
        try:
            tids = os.listdir(task)
        except OSError:
            tids = []
        for tid in tids:
            try:
                data = read_bytes(f"{task}/{tid}/stat")
                rest = data[data.rindex(b")") + 2:].split()
                ticks = int(rest[11]) + int(rest[12])
                cpu = int(rest[36])
                start = int(rest[19])
            except (OSError, ValueError, IndexError):
                continue
            t = int(tid)
            threads[t] = ticks
            if prev is None:
                continue
            before = prev.get(t)
            if before is None:  # a thread born in the interval brings all its time
                d = ticks if born_after is None or start * inv_hz >= born_after else 0
            else:
                d = ticks - before
            if d > 0:
                by_cpu[cpu] = by_cpu.get(cpu, 0) + d
                if p.detail:
                    split.append((t, data[data.index(b"(") + 1:data.rindex(b")")].decode("utf-8", "replace"), d))
        p.threads, p.threads_cycle = threads, cycle
        p.split = split
        total = sum(by_cpu.values())
        if total <= 0:
            return {processor: delta * inv_hz}
        scale = min(1.0, delta / total)
        out = {cpu: t * scale * inv_hz for cpu, t in by_cpu.items()}
        rest_ticks = delta - total * scale  # time of threads that exited in the interval
        if rest_ticks > 0:
            out[processor] = out.get(processor, 0.0) + rest_ticks * inv_hz
        return out

    def _thread_detail(self, p: _Proc, delta: int) -> tuple[ThreadSample, ...]:
        """The last thread split as per-thread seconds, scaled like ``per_cpu_s`` (the ticks of
        threads that exited in the interval go to a thread named after the process)."""
        inv_hz = 1.0 / self.hz
        total = sum(d for _, _, d in p.split)
        if total <= 0:
            return (ThreadSample(p.pid, p.comm, delta * inv_hz),)
        scale = min(1.0, delta / total)
        out = [ThreadSample(tid, comm, d * scale * inv_hz) for tid, comm, d in p.split]
        rest = delta - total * scale
        if rest > 0:
            out.append(ThreadSample(p.pid, p.comm, rest * inv_hz))
        return tuple(out)

    def _cores(self, first: bool) -> tuple[CoreSample, ...]:
        data = _read_all(f"{self._root}/stat")
        hz = self.hz
        out: list[CoreSample] = []
        prev = self._cpu_prev
        now: dict[int, tuple[int, int, int]] = {}
        for line in data.split(b"\n"):
            if not line.startswith(b"cpu"):
                if out or now:
                    break
                continue
            parts = line.split()
            label = parts[0]
            if label == b"cpu":
                continue
            cpu = int(label[3:])
            v = [int(x) for x in parts[1:9]] + [0] * (8 - len(parts[1:9]))
            user, nice, system, idle, iowait, irq, softirq, steal = v
            busy = user + nice + system + irq + softirq
            total = busy + idle + iowait + steal
            irqs = irq + softirq
            now[cpu] = (busy, total, irqs)
            before = prev.get(cpu)
            if first or before is None:
                continue
            out.append(CoreSample(
                cpu=cpu, busy_s=max(0, busy - before[0]) / hz, total_s=max(0, total - before[1]) / hz,
                irq_s=max(0, irqs - before[2]) / hz))
        self._cpu_prev = now
        return tuple(out)

    def _read_uptime(self) -> float | None:
        try:
            return float(read_bytes(f"{self._root}/uptime").split()[0])
        except (OSError, ValueError, IndexError):
            return None


def default_max_open() -> int:
    """How many stat files a sampler may keep open: its share of RLIMIT_NOFILE.

    Leaves 512 descriptors to everything else, and never passes 4096 (a process with
    more than ~4,000 processes to watch pays open+close for the rest).
    """
    return _descriptors_left(0)


def default_max_sched_open(max_open: int) -> int:
    """How many schedstat files a sampler may keep open besides ``max_open`` stat files:
    what RLIMIT_NOFILE leaves after those and 512 for everything else, at most 4096."""
    return _descriptors_left(max_open)


def _descriptors_left(taken: int) -> int:
    """RLIMIT_NOFILE's soft limit less ``taken`` and 512 for everything else; 0 to 4096."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(0, min(4096, soft - 512 - taken))


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def best_cgroup_path(text: str) -> str:
    """The most telling cgroup path of a ``/proc/<pid>/cgroup`` text.

    The v2 unified path (``0::/...``) unless it is just ``/`` while a v1 hierarchy
    says more (hybrid hosts); then the v1 path of ``cpu``/``cpuacct``, else
    ``name=systemd``, else any other non-root v1 path; ``""`` for an empty text.
    """
    v2: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
            continue
        for c in controllers.split(","):
            v1.setdefault(c, path)
    if v2 is not None and (v2 != "/" or not v1):
        return v2
    for c in ("cpu", "cpuacct", "name=systemd"):
        if v1.get(c, "/") != "/":
            return v1[c]
    for path in v1.values():
        if path != "/":
            return path
    return v2 if v2 is not None else ("/" if v1 else "")


def _parse_stat(data: bytes) -> tuple[int, int, int, int, int, int, int, int]:
    """(index of the ``)`` closing comm, ppid, flags, utime+stime, threads, start time, RSS
    pages, last CPU) of a stat line. Raises ValueError/IndexError on a partial line."""
    rp = data.rindex(b")")
    rest = data[rp + 2:].split(None, 37)  # up to field 39 (processor)
    return (rp, int(rest[1]), int(rest[6]), int(rest[11]) + int(rest[12]), int(rest[17]), int(rest[19]),
            int(rest[21]), int(rest[36]))


def _parse_pss(data: bytes) -> int | None:
    i = data.find(b"\nPss:")
    if i < 0:
        return None
    line = data[i + 5:data.find(b"\n", i + 5)]
    return int(line.split()[0]) * 1024


def _read_all(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 262144)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


class PsutilSampler:
    """ActivitySampler through psutil, for systems without /proc (macOS).

    Slower than :class:`ProcfsSampler` (one psutil.Process per pid) and poorer: no PSS
    unless cheap (it is not on macOS), no cgroups, and per-core placement only where
    psutil offers ``cpu_num`` (Linux/FreeBSD); elsewhere ``per_cpu_s`` is empty.
    """

    name = "psutil"

    def __init__(self, clock: Clock | None = None) -> None:
        import psutil  # imported here: the Linux path never pays for it

        self._psutil = psutil
        self.clock: Clock = clock or SystemClock()
        self._prev_t: float | None = None
        self._prev_wall: float | None = None
        self._prev: dict[int, tuple[float, float]] = {}  # pid -> (create_time, cpu seconds)
        self._cpu_prev: dict[int, tuple[float, float, float]] = {}
        self._boot = psutil.boot_time()

    def sample(self) -> CpuActivity:
        ps = self._psutil
        now = self.clock.monotonic()
        wall = time.time()
        first = self._prev_t is None
        interval = 0.0 if self._prev_t is None else now - self._prev_t
        cores: list[CoreSample] = []
        cpu_now: dict[int, tuple[float, float, float]] = {}
        for cpu, t in enumerate(ps.cpu_times(percpu=True)):
            irq = getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
            busy = t.user + getattr(t, "nice", 0.0) + t.system + irq
            total = busy + t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0)
            cpu_now[cpu] = (busy, total, irq)
            before = self._cpu_prev.get(cpu)
            if not first and before is not None:
                cores.append(CoreSample(cpu, max(0.0, busy - before[0]), max(0.0, total - before[1]),
                                        max(0.0, irq - before[2])))
        self._cpu_prev = cpu_now
        attrs = ["pid", "name", "ppid", "cmdline", "cpu_times", "create_time", "memory_info", "uids"]
        if sys.platform.startswith(("linux", "freebsd")):
            attrs.append("cpu_num")
        procs: list[ProcessSample] = []
        seen: dict[int, tuple[float, float]] = {}
        skipped = 0
        for proc in ps.process_iter(attrs, ad_value=None):
            info = proc.info
            times, created = info.get("cpu_times"), info.get("create_time")
            if times is None or created is None:
                skipped += 1
                continue
            pid = info["pid"]
            cpu_total = times.user + times.system
            seen[pid] = (created, cpu_total)
            before = self._prev.get(pid)
            if first:
                delta = 0.0
            elif before is not None and before[0] == created:
                delta = max(0.0, cpu_total - before[1])
            elif self._prev_wall is not None and created >= self._prev_wall:
                delta = cpu_total
            else:
                delta = 0.0
            name = info.get("name") or ""
            kernel = pid in (0, 2) or info.get("ppid") == 2
            cmdline = info.get("cmdline")
            cmd = " ".join(cmdline) if cmdline else (f"[{name}]" if kernel else name)
            mem, uids, cpu_num = info.get("memory_info"), info.get("uids"), info.get("cpu_num")
            procs.append(ProcessSample(
                pid=pid, name=name, cmd=cmd, cpu_s=delta,
                per_cpu_s={cpu_num: delta} if delta and cpu_num is not None else {},
                ppid=info.get("ppid") or 0, rss_bytes=mem.rss if mem is not None else None,
                kernel=kernel, start_time=created - self._boot,
                uid=uids.effective if uids is not None else None))
        self._prev = seen
        self._prev_t, self._prev_wall = now, wall
        return CpuActivity(
            SourceStatus(self.name, STATUS_OK, "warming up" if first else "",
                         extra={"processes": len(procs), "skipped": skipped}),
            interval_s=interval, processes=tuple(procs), cores=tuple(cores), per_cpu_exact=False)


def make_activity_sampler(procfs_root: Path | str = "/proc", clock: Clock | None = None,
                          **kwargs: object) -> ActivitySampler:
    """ProcfsSampler where ``<procfs_root>/stat`` exists, else the psutil fallback."""
    if Path(procfs_root, "stat").exists():
        return ProcfsSampler(procfs_root, clock, **kwargs)  # type: ignore[arg-type]
    return PsutilSampler(clock)
