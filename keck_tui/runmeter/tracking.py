"""Which processes belong to the command's tree, and the kernel's CPU time of it.

Strongest first (``choose_tracker`` says which it used and why not the others):

- ``cgroup``: a cgroup v2 of its own, created under keck-top's current cgroup (root,
  or a delegated subtree keck-top may write to). The child is moved in *before* it
  execs, so every descendant, however short-lived, is born inside; ``cpu.stat``
  ``usage_usec`` is the kernel's exact CPU time of the whole tree. Removed afterwards
  (processes still running in it are moved back to keck-top's cgroup first).
- ``systemd-scope``: without root, CMD runs under ``systemd-run --user --scope``, a
  transient scope of the user's own service manager (a delegated cgroup): the same
  membership and ``cpu.stat`` once the scope's path is known.
- ``ebpf``: ``sched_process_fork`` events add every descendant to a BPF map the
  moment it is forked (root and bcc; for hosts without a usable cgroup v2).
- ``ppid``: parent-pid links between samples. A descendant that is born and exits
  between two samples is never seen; its CPU time still comes back through
  ``wait4``'s rusage (keck-top is the tree's child subreaper, so orphans are reaped
  by it too) and is added at the run's energy rate — but not per interval.

A tracker sees a :class:`CpuActivity` each interval and answers the PIDs of the
tree in it; ``cpu_usage_s`` is the kernel's cumulative CPU time of the tree where the
method has one (cgroup, scope), else None.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from keck_tui.runmeter.unavailable import TrackingUnavailable
from keck_tui.samplers.types import CpuActivity

METHODS = ("auto", "cgroup", "systemd-scope", "ebpf", "ppid")
__all__ = ["METHODS", "TrackingUnavailable", "Tracker", "CgroupTracker", "SystemdScopeTracker", "PpidTracker",
           "Choice", "choose_tracker"]


class Tracker(Protocol):
    method: str
    detail: str
    exact: bool  # sees every descendant, including those that live between two samples

    def wrap(self, argv: Sequence[str]) -> list[str]: ...
    def adopt(self, pid: int) -> None: ...
    def members(self, activity: CpuActivity) -> set[int]: ...
    def cpu_usage_s(self) -> float | None: ...
    def close(self) -> int: ...


# ------------------------------------------------------------------ cgroup v2


def own_cgroup(procfs_root: str = "/proc", pid: int | str = "self") -> str | None:
    """The cgroup v2 path of a process (``0::<path>`` in ``/proc/<pid>/cgroup``)."""
    try:
        text = Path(procfs_root, str(pid), "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def read_cpu_stat(path: Path) -> float | None:
    """``usage_usec`` of a cgroup v2 ``cpu.stat`` in seconds (None when unreadable)."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


def in_cgroup(path: str, cgroup: str) -> bool:
    return path == cgroup or path.startswith(cgroup.rstrip("/") + "/")


class CgroupTracker:
    """A cgroup v2 of the run's own (see the module docstring)."""

    method = "cgroup"
    exact = True

    def __init__(self, mount: str, parent: str, name: str) -> None:
        self.mount = Path(mount)
        self.parent = parent if parent.startswith("/") else "/" + parent
        self.path = (self.parent.rstrip("/") + "/" + name) if self.parent != "/" else "/" + name
        self.dir = self.mount / self.path.lstrip("/")
        self.detail = f"cgroup v2 {self.path} (every descendant; CPU time from its cpu.stat)"
        self._created = False

    @classmethod
    def create(cls, mount: str, parent: str, name: str) -> "CgroupTracker":
        tracker = cls(mount, parent, name)
        procs = tracker.mount / tracker.parent.lstrip("/") / "cgroup.procs"
        if not os.access(procs, os.W_OK):
            raise TrackingUnavailable(f"cgroup v2: cannot move processes out of {tracker.parent} "
                                      f"({procs} is not writable: not root and not delegated)")
        try:
            tracker.dir.mkdir(mode=0o755)
        except OSError as exc:
            raise TrackingUnavailable(f"cgroup v2: cannot create {tracker.dir}: {exc.strerror}") from None
        tracker._created = True
        return tracker

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def adopt(self, pid: int) -> None:
        try:
            (self.dir / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            raise TrackingUnavailable(f"cgroup v2: cannot move the command into {self.path}: "
                                      f"{exc.strerror}") from None

    def members(self, activity: CpuActivity) -> set[int]:
        path = self.path
        return {p.pid for p in activity.processes if in_cgroup(p.cgroup, path)}

    def cpu_usage_s(self) -> float | None:
        return read_cpu_stat(self.dir / "cpu.stat")

    def leftovers(self) -> list[int]:
        try:
            return [int(x) for x in (self.dir / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def close(self) -> int:
        """Move processes that outlived CMD back to keck-top's cgroup, remove ours.
        Returns how many were still running."""
        if not self._created:
            return 0
        left = self.leftovers()
        parent_procs = self.mount / self.parent.lstrip("/") / "cgroup.procs"
        for pid in left:
            try:
                parent_procs.write_text(f"{pid}\n")
            except OSError:
                pass
        for _ in range(50):
            try:
                self.dir.rmdir()
                self._created = False
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                import time

                time.sleep(0.01)  # a task still on its way out
        return len(left)


class SystemdScopeTracker:
    """CMD under ``systemd-run --user --scope``: the user's service manager makes the cgroup."""

    method = "systemd-scope"
    exact = True

    def __init__(self, unit: str, mount: str, procfs_root: str = "/proc",
                 systemd_run: str = "systemd-run") -> None:
        self.unit = unit if unit.endswith(".scope") else unit + ".scope"
        self.mount = Path(mount)
        self.procfs_root = procfs_root
        self.systemd_run = systemd_run
        self.path: str | None = None
        self._fallback = PpidTracker()
        self.detail = f"systemd user scope {self.unit} (every descendant; CPU time from its cpu.stat)"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return [self.systemd_run, "--user", "--scope", "--quiet", "--collect",
                f"--unit={self.unit}", "--", *argv]

    def adopt(self, pid: int) -> None:
        self._fallback.adopt(pid)

    def _find_path(self, activity: CpuActivity) -> None:
        suffix = "/" + self.unit
        for p in activity.processes:
            if p.cgroup.endswith(suffix):
                self.path = p.cgroup
                return

    def members(self, activity: CpuActivity) -> set[int]:
        if self.path is None:
            self._find_path(activity)
        if self.path is None:  # systemd-run has not made the scope yet
            return self._fallback.members(activity)
        path = self.path
        return {p.pid for p in activity.processes if in_cgroup(p.cgroup, path)}

    def cpu_usage_s(self) -> float | None:
        if self.path is None:
            return None
        return read_cpu_stat(self.mount / self.path.lstrip("/") / "cpu.stat")

    def close(self) -> int:
        return 0  # --collect: systemd removes the scope when its last process exits


# ------------------------------------------------------------------ parent-pid polling


@dataclass
class PpidTracker:
    """Descendants by parent-pid links as seen in each sample (see the module docstring).

    ``reaper`` is keck-top's own PID: as the tree's child subreaper it becomes the
    parent of orphaned descendants, which are therefore still found.
    """

    reaper: int = field(default_factory=os.getpid)
    method: str = "ppid"
    exact: bool = False
    detail: str = ("parent-pid polling: descendants that start and exit between two samples are not "
                   "seen; their CPU time is added from the kernel's rusage at the end")
    root: int | None = None
    known: dict[int, float] = field(default_factory=dict)  # pid -> start time

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def adopt(self, pid: int) -> None:
        self.root = pid

    def members(self, activity: CpuActivity) -> set[int]:
        procs = {p.pid: p for p in activity.processes}
        children: dict[int, list[int]] = {}
        for p in activity.processes:
            children.setdefault(p.ppid, []).append(p.pid)
        queue: list[int] = []
        if self.root is not None and self.root in procs:
            queue.append(self.root)
        queue.extend(pid for pid in children.get(self.reaper, ()) if pid != self.root)
        for pid, start in self.known.items():
            p = procs.get(pid)
            if p is not None and (p.start_time == start or p.exited or not start):
                queue.append(pid)
        out: set[int] = set()
        while queue:
            pid = queue.pop()
            if pid in out:
                continue
            out.add(pid)
            queue.extend(children.get(pid, ()))
        for pid in out:
            self.known[pid] = procs[pid].start_time
        for pid in [k for k, s in self.known.items() if k in procs and k not in out]:
            del self.known[pid]  # the PID now belongs to another process
        return out

    def cpu_usage_s(self) -> float | None:
        return None

    def close(self) -> int:
        return 0


# ------------------------------------------------------------------ choosing


@dataclass(frozen=True)
class Choice:
    tracker: Tracker
    notes: tuple[str, ...]  # why stronger methods were not used


def _systemd_user_manager(env: Mapping[str, str]) -> str | None:
    """Why a systemd user scope cannot be used here, or None when it can be tried."""
    import shutil

    if shutil.which("systemd-run", path=env.get("PATH", os.defpath)) is None:
        return "systemd-run not found"
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime or not (Path(runtime, "systemd", "private").exists() or Path(runtime, "bus").exists()):
        return "no systemd user manager for this session (XDG_RUNTIME_DIR/systemd/private)"
    return None


def probe_user_scope(timeout: float = 5.0) -> str | None:
    """Why ``systemd-run --user --scope`` does not work here (it is tried with ``true``), or None.

    Without this, a user manager that does not answer would make systemd-run fail in
    CMD's place, and keck-top would report systemd-run's exit status as CMD's."""
    import subprocess

    try:
        r = subprocess.run(["systemd-run", "--user", "--scope", "--quiet", "--collect", "--", "true"],
                           capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"systemd-run could not be tried: {exc}"
    if r.returncode != 0:
        text = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return "systemd-run --user --scope failed" + (f": {text[-1][:160]}" if text else "")
    return None


def choose_tracker(request: str, name: str, *, euid: int | None = None,
                   env: Mapping[str, str] | None = None, procfs_root: str = "/proc",
                   cgroup_mount: str | None = None, ebpf_opener=None,
                   probe_scope=None) -> Choice:
    """The strongest tracker available (or the one requested: TrackingUnavailable if it is not)."""
    from keck_tui.samplers.ebpf import cgroup2_mount

    if request not in METHODS:
        raise ValueError(f"unknown tracking method {request!r}")
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    notes: list[str] = []
    want = (lambda m: request in ("auto", m))  # noqa: E731

    if want("cgroup"):
        mount = cgroup_mount or cgroup2_mount(f"{procfs_root}/self/mounts")
        current = own_cgroup(procfs_root)
        try:
            if not mount or current is None:
                raise TrackingUnavailable("cgroup v2: not mounted here")
            return Choice(CgroupTracker.create(mount, current, name), tuple(notes))
        except TrackingUnavailable as exc:
            if request == "cgroup":
                raise
            notes.append(str(exc))
    if want("systemd-scope"):
        why = "running as root (a user scope is for unprivileged runs)" if euid == 0 else _systemd_user_manager(env)
        mount = cgroup_mount or cgroup2_mount(f"{procfs_root}/self/mounts")
        if why is None and not mount:
            why = "cgroup v2 is not mounted"
        if why is None and probe_scope is not None:
            why = probe_scope()
        if why is None:
            return Choice(SystemdScopeTracker(name, mount or "/sys/fs/cgroup", procfs_root), tuple(notes))
        if request == "systemd-scope":
            raise TrackingUnavailable(f"systemd user scope: {why}")
        notes.append(f"systemd user scope: {why}")
    if want("ebpf"):
        try:
            if ebpf_opener is None:
                raise TrackingUnavailable("not offered (no opener given)")
            return Choice(ebpf_opener(), tuple(notes))
        except TrackingUnavailable as exc:
            if request == "ebpf":
                raise
            notes.append(f"eBPF fork events: {exc}")
    return Choice(PpidTracker(), tuple(notes))
