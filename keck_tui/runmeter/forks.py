"""The ``ebpf`` tracker: the command's tree from ``sched_process_fork`` events.

See ``probes/forks.bpf.c``. Needs what the on-CPU probe needs (root, bcc,
kernel headers, BTF); ``open_fork_tracker`` raises TrackingUnavailable saying why.
It knows every descendant from its fork on, but has no CPU clock of its own: the
tree's CPU time comes from the activity sampler (exact and including exited
processes with ``--probes ebpf``) and, at the end, from ``wait4``'s rusage.
"""
from __future__ import annotations

import ctypes as ct
from typing import Sequence

from keck_tui.runmeter.unavailable import TrackingUnavailable
from keck_tui.samplers.types import CpuActivity

PROGRAM = "forks.bpf.c"
DEFAULT_MAX_MEMBERS = 65536


class ForkTracker:
    method = "ebpf"
    exact = True
    reusable = True  # --repeat keeps the loaded probe: adopt() starts each run's tree afresh

    def __init__(self, bpf: object, max_members: int) -> None:
        self.bpf = bpf
        self.max_members = max_members
        self.detail = ("eBPF sched_process_fork events (every descendant from its fork on; "
                       "CPU time from the activity sampler and the kernel's rusage)")
        self._closed = False
        self._exited: dict[int, int] = {}  # pid -> reads left before its entry is deleted

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def adopt(self, pid: int) -> None:
        """Start a new tree at ``pid`` (entries of an earlier run are dropped)."""
        table = self.bpf[b"members"]
        table.clear()
        self._exited.clear()
        table[ct.c_uint32(pid)] = ct.c_uint8(1)

    def members(self, activity: CpuActivity) -> set[int]:
        """Every member; an exited one for two more reads (the activity sampler may report
        its last time one interval late), then its entry is deleted, so that a later
        process with the same PID is not taken for a member."""
        table = self.bpf[b"members"]
        out: set[int] = set()
        for key, value in table.items():
            out.add(key.value)
            if value.value == 2 and key.value not in self._exited:
                self._exited[key.value] = 2
        for pid in list(self._exited):
            self._exited[pid] -= 1
            if self._exited[pid] <= 0:
                del self._exited[pid]
                try:
                    del table[ct.c_uint32(pid)]
                except KeyError:
                    pass
        return out

    def overflow(self) -> int:
        return int(self.bpf[b"overflow"][ct.c_int(0)].value)

    def cpu_usage_s(self) -> float | None:
        return None

    def close(self) -> int:
        """The end of one run (the probe stays loaded for the next; :meth:`dispose` unloads it)."""
        return 0

    def dispose(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.bpf.cleanup()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001
                pass


def open_fork_tracker(max_members: int = DEFAULT_MAX_MEMBERS) -> ForkTracker:
    from keck_tui.probes.loader import (ProbeUnavailable, btf_task_offsets, compile_program, prepare_bcc,
                                        program_path)

    try:
        bcc = prepare_bcc()  # the on-CPU probe's checks, in its order and words
        offs = btf_task_offsets()
        bpf = compile_program(bcc, program_path(PROGRAM),
                              {"TASK_TGID_OFF": offs["tgid"], "MAX_MEMBERS": int(max_members)})
    except ProbeUnavailable as exc:
        raise TrackingUnavailable(str(exc)) from None
    return ForkTracker(bpf, max_members)
