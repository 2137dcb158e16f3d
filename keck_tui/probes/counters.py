"""Hardware counters for the on-CPU probe: per-CPU perf events in its perf event arrays.

The probe (probes/oncpu.bpf.c, compiled with ``CTR_MASK``) reads one counting event
per CPU and counter slot at every ``sched_switch`` and adds the outgoing task's span per
(process, CPU). On each CPU the slots' events are one perf group (the first slot that
opens leads it): a group is on the PMU as a whole, so one ``bpf_perf_event_read_value``
of the leader gives the times enabled/running for all, and the members are read with
the cheaper ``bpf_perf_event_read`` (no clock read). The events are opened here, in the
long-lived process, with :mod:`keck_tui.probes.perfevent`, and put into the probe's
``ctr_<slot>`` arrays through the map fd this process keeps open: the kernel removes
a perf event array's entries when the map fd they were inserted through is closed
(checked on Linux 6.18: entries inserted through a second fd of a pinned array vanish
when that fd closes, even with other fds to the map and the perf fds still open;
closing the perf fds themselves does not remove them). So a short-lived helper could
not insert them, and a crashed keck-top leaves no counting events behind.

A slot opens only if its event opens (in the group) on every CPU it is asked for on
(an offline CPU excepted); otherwise it is absent, with the ``perf_event_open`` error as
its reason (no PMU on most VMs).
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from keck_tui.probes import bpfsys
from keck_tui.probes.perfevent import (CYCLES, INSTRUCTIONS, LLC_MISSES, REF_CYCLES, EventSpec, PerfEventError,
                                       close, open_counter, read_counter)

#: Counter slots in the probe's order (bit k of CTR_MASK), named like CounterDelta's fields.
SLOTS = ("cycles", "instructions", "llc_misses", "ref_cycles")
#: What each slot counts (tests and benchmarks put software events in instead).
HARDWARE: Mapping[str, EventSpec] = {"cycles": CYCLES, "instructions": INSTRUCTIONS,
                                     "llc_misses": LLC_MISSES, "ref_cycles": REF_CYCLES}
#: The slots the probe reads by default. Each costs one counter read at every context switch;
#: ref-cycles is left out because no model uses it (effective frequency is cycles / on-CPU
#: time): pass ``events=HARDWARE`` to count it too.
PROBE_DEFAULT = ("cycles", "instructions", "llc_misses")


def table_name(slot: str) -> bytes:
    """The probe's perf event array for ``slot``."""
    return f"ctr_{slot}".encode()


def mask(slots: Iterable[str]) -> int:
    """CTR_MASK for the probe: bit k set for each slot present."""
    return sum(1 << SLOTS.index(s) for s in set(slots))


@dataclass
class ProbeCounters:
    """Per-CPU counting events by slot (``fds[slot][cpu]``), and why the other slots are absent."""

    fds: dict[str, dict[int, int]] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    errnos: dict[str, int] = field(default_factory=dict)  # slot -> perf_event_open's errno (0: other)
    events: dict[str, str] = field(default_factory=dict)  # slot -> event name (a stand-in shows here)
    installed: bool = False

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(s for s in SLOTS if s in self.fds)

    def reason(self) -> str:
        """One line: why slots are missing, slots failing alike grouped; '' when none is."""
        groups: dict[int | str, list[str]] = {}
        for slot in SLOTS:
            if slot in self.why:
                groups.setdefault(self.errnos.get(slot) or self.why[slot], []).append(slot)
        parts = []
        for key, slots in groups.items():
            first = self.why[slots[0]]
            if isinstance(key, int):
                code = errno.errorcode.get(key, str(key))
                first = f"{first} (perf_event_open: {code}, {os.strerror(key)})"
            parts.append(f"{', '.join(slots)}: {first}" if len(slots) > 1 else first)
        return "; ".join(parts)

    def install(self, bpf: Any) -> None:
        """Put every fd into the probe's arrays through the map fds ``bpf`` keeps open
        (a bcc ``BPF`` or :class:`~keck_tui.probes.pinned.PinnedTables`). The members go
        in before the leader: the probe counts a span only once the leader reads."""
        for slot in reversed(self.slots):
            per_cpu = self.fds[slot]
            table = bpf[table_name(slot)]
            for cpu, fd in per_cpu.items():
                bpfsys.update(table.map_fd, ct.c_int(cpu), ct.c_int(fd))
        self.installed = True

    def read(self) -> dict[str, dict[int, tuple[int, int, int]]]:
        """(count, enabled ns, running ns) per slot and CPU, now; an unreadable event is left out."""
        out: dict[str, dict[int, tuple[int, int, int]]] = {}
        for slot, per_cpu in self.fds.items():
            got = out.setdefault(slot, {})
            for cpu, fd in per_cpu.items():
                try:
                    got[cpu] = read_counter(fd)
                except PerfEventError:
                    continue
        return out

    def close(self) -> None:
        for per_cpu in self.fds.values():
            for fd in per_cpu.values():
                close(fd)
        self.fds = {}


def open_counters(cpus: Iterable[int], events: Mapping[str, EventSpec] | None = None) -> ProbeCounters:
    """One counting event per CPU for each slot in ``events`` (default: the hardware
    events of :data:`PROBE_DEFAULT`).

    Never raises for a missing event: the slot is absent and ``why`` says why."""
    chosen = {s: HARDWARE[s] for s in PROBE_DEFAULT} if events is None else events
    cpus = list(cpus)
    out = ProbeCounters()
    leader: dict[int, int] = {}  # cpu -> the group leader's fd
    for slot in SLOTS:
        spec = chosen.get(slot)
        if spec is None:
            continue
        fds: dict[int, int] = {}
        offline = ""
        try:
            for cpu in cpus:
                if leader and cpu not in leader:
                    continue  # no group there (the leader's CPU was offline)
                try:
                    fds[cpu] = open_counter(spec, cpu, group_fd=leader.get(cpu, -1))
                except PerfEventError as exc:
                    if exc.errno != errno.ENODEV:
                        raise
                    offline = exc.reason  # an offline CPU: nothing runs there to count
        except PerfEventError as exc:
            for fd in fds.values():
                close(fd)
            out.why[slot] = exc.reason
            out.errnos[slot] = exc.errno
            continue
        if not fds:
            out.why[slot] = offline or "no CPU to count on"
            continue
        out.fds[slot] = fds
        out.events[slot] = spec.name
        if not leader:
            leader = dict(fds)
    return out
