"""Per (process, core) hardware-counter deltas from the on-CPU probe's cumulative totals.

The probe (probes/oncpu.bpf.c, ``ctr`` map) keeps per (tgid, CPU) and counter slot the
raw count, time enabled and time running summed over the process's spans on that CPU,
each span read at its switch-in and switch-out. Here:

- interval delta = totals now - totals at the previous read, per (tgid, CPU, slot);
  a baseline never moves backwards (like the on-CPU time's);
- in flight: the task on a CPU now has counted since its switch-in; the CPU's perf
  event read now minus the reading the probe stored at that switch-in is added (and
  dropped if the CPU switched while we looked, which the caller tells);
- scaled for multiplexing: count × enabled / running per slot; ``running_ratio`` is the
  smallest running / enabled of the slots present. A slot never read in the interval,
  or that never ran, is None: absent, never 0;
- the map holds one entry per (process, CPU) it ever ran on, for as long as the process
  lives: an entry unchanged for a number of reads (the process has not run there since),
  not in flight and not in a cache slot, is fully counted; :meth:`idle_keys` names it so
  that it can be deleted, and :meth:`drop` forgets its baseline (it restarts from 0).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from keck_tui.samplers.types import CounterDelta, multiplexed

#: CounterDelta's fields in the probe's slot order (probes/loader.py COUNTER_SLOTS).
FIELDS = ("cycles", "instructions", "llc_misses", "ref_cycles")
# One slot's (count, enabled ns, running ns), or None where the slot was not read.
Triple = tuple[int, int, int]
Totals = tuple["Triple | None", ...]


def _triples(values: Sequence[object | None]) -> Totals:
    """CounterValue-likes (count, enabled, running attributes) as plain triples."""
    return tuple(None if v is None else (int(v.count), int(v.enabled), int(v.running))  # type: ignore[attr-defined]
                 for v in values)


def add(a: Totals, b: Totals) -> Totals:
    """Slot-wise sum; a slot absent on one side keeps the other's."""
    out: list[Triple | None] = []
    for x, y in zip(a, b):
        if x is None or y is None:
            out.append(x if y is None else y)
        else:
            out.append((x[0] + y[0], x[1] + y[1], x[2] + y[2]))
    return tuple(out)


def to_delta(d: Totals) -> CounterDelta | None:
    """Scaled counters of one (process, core) interval; None when no slot counted."""
    values: dict[str, float | None] = {}
    ratios: list[float] = []
    for name, t in zip(FIELDS, d):
        got = None if t is None else multiplexed(*t)
        values[name] = None if got is None else got[0]
        if got is not None:
            ratios.append(got[1])
    if not ratios:
        return None
    return CounterDelta(running_ratio=min(ratios), **values)


class CounterDeltas:
    """Baselines per (tgid, CPU); :meth:`step` turns one read into per-process deltas."""

    def __init__(self) -> None:
        self._base: dict[tuple[int, int], list[Triple | None]] = {}
        self._core_base: dict[int, list[Triple | None]] = {}
        self._unchanged: dict[tuple[int, int], tuple[Totals, int]] = {}  # last totals, reads unchanged
        self.enabled_ns = 0  # this interval's sums over every delta (the node's multiplexing ratio)
        self.running_ns = 0

    def step(self, totals: Mapping[tuple[int, int], Sequence[object | None]],
             inflight: Mapping[tuple[int, int], Totals], first: bool) -> dict[int, dict[int, CounterDelta]]:
        """tgid -> cpu -> delta since the previous step (nothing on the first)."""
        out: dict[int, dict[int, CounterDelta]] = {}
        self.enabled_ns = self.running_ns = 0
        keys = set(totals) | set(inflight)
        for key in keys:
            cum = _triples(totals.get(key, ()))  # type: ignore[arg-type]
            if key in inflight:
                cum = add(cum or (None,) * len(FIELDS), inflight[key])
            delta = self._advance(key, cum)
            if first or delta is None:
                continue
            got = to_delta(delta)
            if got is not None:
                out.setdefault(key[0], {})[key[1]] = got
                for t in delta:
                    if t is not None:
                        self.enabled_ns += t[1]
                        self.running_ns += t[2]
        return out

    def _advance(self, key: tuple[int, int], cum: Totals) -> Totals | None:
        base = self._base.setdefault(key, [None] * len(FIELDS))
        delta: list[Triple | None] = []
        for k, t in enumerate(cum):
            b = base[k] or (0, 0, 0)
            if t is None or t[1] <= b[1]:  # not read, or nothing new (never backwards)
                delta.append(None)
                continue
            delta.append((max(0, t[0] - b[0]), t[1] - b[1], max(0, t[2] - b[2])))
            base[k] = t
        return tuple(delta) if any(d is not None for d in delta) else None

    def cores(self, now: Mapping[int, Sequence[object | None] | None], first: bool) -> dict[int, CounterDelta]:
        """cpu -> the whole CPU's counters since the previous step (the same events the
        probe reads, so a core's counts are its processes' plus the idle task's)."""
        out: dict[int, CounterDelta] = {}
        for cpu, values in now.items():
            if values is None:
                continue
            base = self._core_base.setdefault(cpu, [None] * len(FIELDS))
            delta: list[Triple | None] = []
            for k, t in enumerate(_triples(values)):
                b = base[k]
                if t is None or b is None or t[1] < b[1] or t[0] < b[0]:
                    delta.append(None)
                else:
                    delta.append((t[0] - b[0], t[1] - b[1], max(0, t[2] - b[2])))
                base[k] = t
            got = to_delta(tuple(delta))
            if got is not None and not first:
                out[cpu] = got
        return out

    def forget(self, tgids: set[int]) -> None:
        """Drop baselines of processes that are gone (a reused PID starts from zero)."""
        self.drop([k for k in self._base if k[0] in tgids])

    def idle_keys(self, totals: Mapping[tuple[int, int], Sequence[object | None]],
                  busy: Mapping[tuple[int, int], object], cached: set[int] | frozenset[int],
                  reads: int) -> list[tuple[int, int]]:
        """(tgid, cpu) entries unchanged for ``reads`` reads, not in flight (``busy``) and
        not in a cache slot (``cached`` tgids): counted in full, safe to delete."""
        out = []
        seen: dict[tuple[int, int], tuple[Totals, int]] = {}
        for key, values in totals.items():
            t = _triples(values)
            last = self._unchanged.get(key)
            n = last[1] + 1 if last is not None and last[0] == t else 0
            seen[key] = (t, n)
            if n >= reads and key not in busy and key[0] not in cached:
                out.append(key)
        self._unchanged = seen
        return out

    def drop(self, keys: Sequence[tuple[int, int]]) -> None:
        """Forget (tgid, cpu) baselines whose map entries are deleted: they restart from 0."""
        for key in keys:
            self._base.pop(key, None)
            self._unchanged.pop(key, None)

    @property
    def running_ratio(self) -> float | None:
        """Σ running / Σ enabled over this interval's deltas (None: nothing counted)."""
        return self.running_ns / self.enabled_ns if self.enabled_ns else None
