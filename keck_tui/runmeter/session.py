"""The measuring loop of ``keck-top run``: launch, sample, reap, total.

For each run: choose the tracker (cgroup, scope, eBPF, parent pids), fork the
child (it waits), adopt it into the tracker, prime the collector, let the child
exec, then collect one snapshot per interval on this thread until the child
exits — its exit wakes the loop at once through a pidfd — plus one last
snapshot while it is still a zombie (``/proc/<pid>/stat`` still holds its final
CPU time), then reap it with ``wait4`` for its exit status and rusage.

While CMD runs keck-top ignores SIGINT and SIGQUIT (the terminal sends them to
the whole foreground process group, so CMD gets them once and keck-top still
reports), forwards SIGTERM and SIGHUP to CMD, and is the child subreaper of the
tree (orphaned descendants are re-parented to it and reaped, so their CPU time is
in the rusage it adds up).
"""
from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import Snapshot
from keck_tui.runmeter.launch import Credentials, LaunchError, PendingLaunch, exit_status, prepare
from keck_tui.runmeter.meter import RunEnergy, RunMeter, finish
from keck_tui.runmeter.tracking import Choice, Tracker, TrackingUnavailable, choose_tracker, probe_user_scope
from keck_tui.samplers.types import ActivitySampler, CpuActivity

PR_SET_CHILD_SUBREAPER = 36


class ActivityTee:
    """An ActivitySampler that keeps the last sample it handed out (for the tracker)."""

    def __init__(self, inner: ActivitySampler) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "activity")
        self.last: CpuActivity | None = None

    def sample(self) -> CpuActivity:
        self.last = self.inner.sample()
        return self.last

    def close(self) -> None:
        for name in ("stop", "close"):
            fn = getattr(self.inner, name, None)
            if callable(fn):
                fn()
                return


class CollectorLike(Protocol):
    """What the loop needs of a :class:`keck_tui.collector.Collector`."""

    activity: ActivitySampler

    def prime(self) -> None: ...
    def collect(self) -> Snapshot: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class RunRequest:
    argv: tuple[str, ...]
    interval: float = 0.1
    adaptive: bool = False  # lengthen the interval so sampling stays under max_overhead of a CPU
    max_interval: float = 1.0
    max_overhead: float = 0.05
    repeat: int = 1
    track: str = "auto"
    env: Mapping[str, str] | None = None
    credentials: Credentials | None = None
    stop_on_failure: bool = True


@dataclass
class RunOutcome:
    """One run: how it ended, its energy and where the figures came from."""

    index: int
    exit_status: int
    signal: int | None
    wall_s: float
    start: float  # unix time CMD was exec'd
    end: float
    energy: RunEnergy
    user_s: float | None  # rusage of the reaped tree
    system_s: float | None
    tracking: str
    tracking_detail: str
    leftover: int  # processes of the tree still running when CMD exited
    interrupted: bool
    own_cpu_s: float  # keck-top's own CPU time while measuring (not charged to CMD)
    snapshot: Snapshot | None  # the last one (model, sources, estimated, warnings)


@dataclass
class Measurement:
    request: RunRequest
    runs: list[RunOutcome] = field(default_factory=list)
    tracking_notes: tuple[str, ...] = ()
    stopped: str | None = None  # why the repeats stopped early


class _Signals:
    """SIGINT/SIGQUIT ignored (noted), SIGTERM/SIGHUP forwarded to CMD, while CMD runs."""

    def __init__(self) -> None:
        self.child: int | None = None
        self.interrupted = False
        self._saved: dict[int, object] = {}

    def __enter__(self) -> "_Signals":
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
            try:
                self._saved[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not the main thread (tests): leave them
                pass
        return self

    def _handle(self, sig: int, _frame: object) -> None:
        self.interrupted = True
        if sig in (signal.SIGTERM, signal.SIGHUP) and self.child is not None:
            try:
                os.kill(self.child, sig)
            except OSError:
                pass

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            try:
                signal.signal(sig, handler)  # type: ignore[arg-type]
            except (ValueError, OSError, TypeError):
                pass


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux ≥ 3.4)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class _ExitWaiter:
    """Wait until a child has exited without reaping it (pidfd, else waitid polling)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._poll: select.poll | None = None
        self._fd = -1
        try:
            self._fd = os.pidfd_open(pid)
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
        except (AttributeError, OSError):
            self._fd = -1

    def exited(self) -> bool:
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def wait(self, timeout: float) -> bool:
        """True once the child has exited; waits at most ``timeout`` seconds."""
        if self._poll is not None:
            if self._poll.poll(max(0.0, timeout) * 1000.0):
                return True
            return self.exited()
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self.exited():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.005, left))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _reap_orphans(main: int) -> tuple[float, float]:
    """Reap exited children other than ``main`` (orphans of the tree); their (user, sys) seconds."""
    user = sys_ = 0.0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        if info is None or info.si_pid == main or info.si_pid == 0:
            break
        try:
            _, _, ru = os.wait4(info.si_pid, 0)
        except ChildProcessError:
            continue
        user += ru.ru_utime
        sys_ += ru.ru_stime
    return user, sys_


def _alive(pid: int, procfs_root: str = "/proc") -> bool:
    try:
        with open(f"{procfs_root}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    state = data[data.rindex(b")") + 2:data.rindex(b")") + 3]
    return state not in (b"Z", b"X", b"x")


def _own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def measure(request: RunRequest, build_collector: Callable[[], CollectorLike], *,
            clock: Clock | None = None, choose: Callable[[str, str], Choice] | None = None,
            on_start: Callable[[int, PendingLaunch], None] | None = None,
            procfs_root: str = "/proc") -> Measurement:
    """Run ``request.argv`` ``request.repeat`` times and measure each run.

    Raises :class:`LaunchError` when CMD cannot start (first run) and
    :class:`TrackingUnavailable` when an explicitly requested method is not here.
    """
    clock = clock or SystemClock()
    if choose is None:
        from keck_tui.runmeter.forks import open_fork_tracker

        def choose(method: str, name: str) -> Choice:
            return choose_tracker(method, name, procfs_root=procfs_root, ebpf_opener=open_fork_tracker,
                                  probe_scope=probe_user_scope)
    become_subreaper()
    out = Measurement(request)
    collector: CollectorLike | None = None
    tee: ActivityTee | None = None
    method = request.track
    kept: Tracker | None = None  # a tracker that serves every repeat (the loaded eBPF probe)
    try:
        with _Signals() as sigs:
            for index in range(request.repeat):
                if kept is not None:
                    tracker = kept
                else:
                    choice = choose(method, f"keck-top-run-{os.getpid()}-{index}")
                    if index == 0:
                        out.tracking_notes = choice.notes
                        method = choice.tracker.method  # the same method for every repeat
                    tracker = choice.tracker
                    if getattr(tracker, "reusable", False):
                        kept = tracker
                try:
                    pending = prepare(tracker.wrap(request.argv), request.env, request.credentials)
                except LaunchError:
                    tracker.close()
                    raise
                try:
                    tracker.adopt(pending.pid)
                except TrackingUnavailable:
                    pending.abort()
                    tracker.close()
                    raise
                if collector is None:  # built after the first fork: that fork had no threads to copy
                    try:
                        collector = build_collector()
                    except BaseException:
                        pending.abort()
                        tracker.close()
                        raise
                    tee = ActivityTee(collector.activity)
                    collector.activity = tee
                assert tee is not None
                run = _one_run(index, request, pending, tracker, collector, tee, clock, sigs, procfs_root,
                               on_start)
                out.runs.append(run)
                if run.interrupted or sigs.interrupted:
                    if index + 1 < request.repeat:
                        out.stopped = f"interrupted during run {index + 1}"
                    break
                if run.exit_status != 0 and request.stop_on_failure and index + 1 < request.repeat:
                    out.stopped = f"run {index + 1} exited with status {run.exit_status}"
                    break
    finally:
        if collector is not None:
            collector.close()
        dispose = getattr(kept, "dispose", None)
        if callable(dispose):
            dispose()
    return out


def _one_run(index: int, request: RunRequest, pending: PendingLaunch, tracker: Tracker,
             collector: CollectorLike, tee: ActivityTee, clock: Clock, sigs: _Signals,
             procfs_root: str, on_start: Callable[[int, PendingLaunch], None] | None) -> RunOutcome:
    meter = RunMeter()
    waiter = _ExitWaiter(pending.pid)
    sigs.interrupted = False
    orphan_user = orphan_sys = 0.0
    try:
        collector.prime()
        meter.start(tracker.cpu_usage_s())
        own0 = _own_cpu()
        try:
            pending.start()
        except LaunchError:
            tracker.close()
            raise
        sigs.child = pending.pid
        t0 = clock.monotonic()
        start_wall = clock.wall()
        if on_start is not None:
            on_start(index, pending)
        interval = request.interval
        cost = 0.0
        next_tick = t0 + interval
        while True:
            if waiter.wait(next_tick - clock.monotonic()):
                break
            c0 = time.thread_time()
            _collect(collector, tee, tracker, meter)
            spent = time.thread_time() - c0
            cost = spent if cost == 0.0 else 0.7 * cost + 0.3 * spent
            if request.adaptive:
                interval = min(request.max_interval, max(request.interval, cost / request.max_overhead))
            now = clock.monotonic()
            next_tick = next_tick + interval if next_tick + interval > now else now + interval
            u, s = _reap_orphans(pending.pid)
            orphan_user += u
            orphan_sys += s
        t1 = clock.monotonic()
        end_wall = clock.wall()
        _collect(collector, tee, tracker, meter)  # CMD is a zombie: its final CPU time is readable
        last_members = meter.intervals[-1].pids if meter.intervals else frozenset()
        try:
            _, status, ru = os.wait4(pending.pid, 0)
        except ChildProcessError:
            status, ru = 0, None
        sigs.child = None
        u, s = _reap_orphans(pending.pid)
        orphan_user += u
        orphan_sys += s
        own = _own_cpu() - own0
        leftover_pids = {p for p in last_members if p != pending.pid and _alive(p, procfs_root)}
        leftover = tracker.close()
        leftover = max(leftover, len(leftover_pids))
    finally:
        waiter.close()
    code, sig = exit_status(status)
    user = (ru.ru_utime + orphan_user) if ru is not None else None
    system = (ru.ru_stime + orphan_sys) if ru is not None else None
    kernel_total = (user + system) if user is not None and system is not None else None
    energy = finish(meter.intervals, kernel_total_cpu_s=kernel_total, kernel_source="rusage",
                    running_at_end=leftover_pids)
    return RunOutcome(index=index, exit_status=code, signal=sig, wall_s=t1 - t0, start=start_wall,
                      end=end_wall, energy=energy, user_s=user, system_s=system, tracking=tracker.method,
                      tracking_detail=tracker.detail, leftover=leftover,
                      interrupted=sigs.interrupted or sig in (signal.SIGINT, signal.SIGQUIT),
                      own_cpu_s=own, snapshot=meter.last)


def _collect(collector: CollectorLike, tee: ActivityTee, tracker: Tracker, meter: RunMeter) -> None:
    snap = collector.collect()
    activity = tee.last
    pids = tracker.members(activity) if activity is not None else set()
    meter.add(snap, pids, tracker.cpu_usage_s())


def argv_text(argv: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)
