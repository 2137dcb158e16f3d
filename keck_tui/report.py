"""Summaries of a recording: energy, mean/peak watts, cost and CO2e per group.

Pure aggregation, streaming: one pass over the file, memory bounded by the
number of groups (not by the recording's length). No rich here: the table
(:func:`render_report`) is plain text, like JSON and CSV.

What a group is (``--by``):

- ``node``: each ``node`` row (a local recording has one; a fleet one many).
- ``namespace``: ``namespace`` rows, summed over nodes by name.
- ``pod``: ``pod`` rows by id, shown as ``namespace/name``.
- ``process``: ``process`` rows by (node, command name): the PIDs of one
  command add up (a trailing `` (PID)`` in the row name is dropped).

Watts of a node that no group row covers (idle, platform, kernel, rows
outside any pod, ...) go to one ``(outside <level>)`` group, so that the
groups always add up to the total. A snapshot's row holds its mean watts over
``[time - interval_s, time]``; its energy is ``watts × interval_s`` (bounds
likewise), priced with the tariff in force over that interval
(``keck_tui.cost``, schedule boundaries split exactly).

Work counters (``work`` objects on rows, see keck_tui/work): per source, unit and row,
the units counted over the window and the energy of the rows they were divided into,
so joules per unit (with its bound), units per second and cost/CO2e per million units
(``work`` in the JSON report). Only lines that carry work are parsed a second time.

Speed: a long recording is mostly JSON. For lines written by keck-top's
recorder (canonical key order, no escapes) the rows of the wanted levels are
picked out with one regular expression instead of building every Row; the
first line of each file is checked both ways and any line the fast path
cannot vouch for goes through the full parser.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from keck_tui.common import table
from keck_tui.common.formatting import (fmt_clock, fmt_duration, fmt_energy, fmt_grams, fmt_money, fmt_pct, fmt_rate,
                                         fmt_si, fmt_watts)
from keck_tui.common.table import Column
from keck_tui.cost import J_PER_KWH, Tariff
from keck_tui.model import Row, Snapshot, SnapshotFormatError
from keck_tui.recording import ReadStats, RecordingError, iter_lines, split_points
from keck_tui.work.totals import WorkTotals, work_objects

BY_LEVELS = ("node", "namespace", "pod", "process")


@dataclass
class GroupTotal:
    key: str
    name: str
    where: str = ""  # node of a process, namespace of a pod, nodes of a namespace
    joules: float = 0.0
    joules_lo: float = 0.0
    joules_hi: float = 0.0
    peak_watts: float = 0.0
    peak_lo: float = 0.0
    peak_hi: float = 0.0
    peak_time: float | None = None
    cost: float | None = 0.0
    co2e_g: float | None = 0.0
    present_s: float = 0.0  # seconds of the recording in which the group had a row
    samples: int = 0
    wheres: set[str] = field(default_factory=set)

    def mean_watts(self, duration_s: float) -> tuple[float, float, float]:
        if duration_s <= 0:
            return 0.0, 0.0, 0.0
        return self.joules / duration_s, self.joules_lo / duration_s, self.joules_hi / duration_s


@dataclass
class Report:
    path: str
    by: str
    currency: str
    groups: list[GroupTotal]
    total: GroupTotal
    snapshots: int
    duration_s: float
    start: float | None
    end: float | None
    stats: ReadStats
    has_price: bool
    has_co2e: bool
    fast_lines: int = 0  # lines summed by the fast path (the rest were fully parsed)
    work: list[dict[str, Any]] = field(default_factory=list)  # energy per unit of work, per source

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per group, then the total (what JSON and CSV hold)."""
        return [self._record(g) for g in self.groups] + [self._record(self.total)]

    def _record(self, g: GroupTotal) -> dict[str, Any]:
        mean, lo, hi = g.mean_watts(self.duration_s)
        return {
            "group": g.name,
            "key": g.key,
            "where": g.where,
            "energy_wh": g.joules / 3600.0,
            "energy_wh_lo": g.joules_lo / 3600.0,
            "energy_wh_hi": g.joules_hi / 3600.0,
            "mean_watts": mean,
            "mean_watts_lo": lo,
            "mean_watts_hi": hi,
            "peak_watts": g.peak_watts,
            "peak_watts_lo": g.peak_lo,
            "peak_watts_hi": g.peak_hi,
            "peak_time": g.peak_time,
            "cost": g.cost if self.has_price else None,
            "co2e_g": g.co2e_g if self.has_co2e else None,
            "present_s": g.present_s,
            "share": (g.joules / self.total.joules) if self.total.joules > 0 else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "keck-top-report/1",
            "file": self.path,
            "by": self.by,
            "start": self.start,
            "end": self.end,
            "duration_s": self.duration_s,
            "snapshots": self.snapshots,
            "skipped_lines": self.stats.skipped,
            "problems": list(self.stats.problems),
            "currency": self.currency,
            "groups": [self._record(g) for g in self.groups],
            "total": self._record(self.total),
            "work": self.work,
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        recs = self.rows()
        cols = list(recs[0].keys())
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in recs:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        return buf.getvalue()


# ------------------------------------------------------------------ row extraction

# (level, id, name, watts, watts_lo, watts_hi) in document (depth-first) order,
# text as UTF-8 bytes.
RowTuple = tuple[bytes, bytes, bytes, float, float, float]


def rows_of_snapshot(snap: Snapshot, levels: frozenset[str]) -> list[RowTuple]:
    """Rows of the wanted levels, depth first (the full-parse path)."""
    out: list[RowTuple] = []
    stack: list[Row] = [snap.root]
    while stack:
        row = stack.pop()
        if row.level in levels:
            out.append((row.level.encode(), row.id.encode(), row.name.encode(),
                        row.watts, row.watts_lo, row.watts_hi))
        stack.extend(reversed(row.children))
    return out


_NUM = rb"([^,}\]]*)"
_STR = rb'"([^"]*)"'
_HEAD = re.compile(rb'"schema": ?"keck-top/1", ?"time": ?' + _NUM + rb', ?"interval_s": ?' + _NUM)


_FLOAT = rb"(-?[0-9][0-9.eE+-]*)"


def _row_pattern(levels: Iterable[str]) -> re.Pattern[bytes]:
    # Starts at 'vel":' rather than '"level":': the regex engine skips ahead to its
    # first character, and 'v' is ~30× rarer than '"' in this JSON (~25 % faster).
    # A key merely ending in "vel" would also need the exact id/name/watts keys
    # that follow a row's level: only a row can match.
    alts = b"|".join(re.escape(lv.encode()) for lv in sorted(levels))
    return re.compile(rb'vel": ?"(' + alts + rb')", ?"id": ?' + _STR + rb', ?"name": ?' + _STR
                      + rb', ?"watts": ?' + _FLOAT + rb', ?"watts_lo": ?' + _FLOAT
                      + rb', ?"watts_hi": ?' + _FLOAT + rb'[,}]')


class _Extractor:
    """Turns a line into (time, interval_s, rows), fast where it safely can."""

    def __init__(self, levels: frozenset[str]) -> None:
        self.levels = levels
        self._findall = _row_pattern(levels).findall
        self.fast_ok: bool | None = None  # decided on the first line
        self.fast_lines = 0

    def full(self, line: bytes) -> tuple[float, float, list[RowTuple]]:
        snap = Snapshot.loads(line)
        return snap.time, snap.interval_s, rows_of_snapshot(snap, self.levels)

    def fast(self, line: bytes) -> tuple[float, float, list[RowTuple]] | None:
        if b"\\" in line:
            return None
        s = line.strip()
        if not (s.startswith(b"{") and s.endswith(b"}")):
            return None
        head = _HEAD.search(s)
        if head is None:
            return None
        try:
            t, dt = float(head.group(1)), float(head.group(2))
        except ValueError:
            return None
        if not (math.isfinite(t) and math.isfinite(dt)):
            return None
        try:  # numbers are converted here, so that a bad one sends the line to the full parser
            rows = [(lv, i, n, float(w), float(lo), float(hi)) for lv, i, n, w, lo, hi in self._findall(s)]
        except ValueError:
            return None
        return t, dt, rows

    def __call__(self, line: bytes) -> tuple[float, float, list[RowTuple]]:
        if self.fast_ok is None:
            full = self.full(line)  # raises for a bad line: try again on the next one
            fast = self.fast(line)
            self.fast_ok = fast is not None and _same(fast, full)
            return full
        if self.fast_ok:
            got = self.fast(line)
            if got is not None:
                self.fast_lines += 1
                return got
        return self.full(line)


def _same(a: tuple[float, float, list[RowTuple]], b: tuple[float, float, list[RowTuple]]) -> bool:
    if a[0] != b[0] or a[1] != b[1] or len(a[2]) != len(b[2]):
        return False
    try:
        return all(x[:3] == y[:3] and float(x[3]) == y[3] and float(x[4]) == y[4] and float(x[5]) == y[5]
                   for x, y in zip(a[2], b[2]))
    except ValueError:
        return False


# ------------------------------------------------------------------ aggregation


_OUTSIDE = {"namespace": b"(outside namespaces)", "pod": b"(outside pods)",
            "process": b"(not in a process)", "node": b"(outside nodes)"}

class _Acc:
    """One group's running totals. ``cur*`` sum the group's rows within the snapshot
    ``last`` (a group can have several rows in one snapshot: a pod on two nodes), so
    that the peak is the group's per-snapshot total; the sum is settled into the peak
    when a later snapshot touches the group, or at the end (``settle``)."""

    __slots__ = ("joules", "joules_lo", "joules_hi", "peak", "peak_lo", "peak_hi", "peak_t", "cost", "co2",
                 "present_s", "n", "name", "where", "wheres", "cur", "cur_lo", "cur_hi", "cur_t", "last")

    def __init__(self, name: bytes, where: bytes) -> None:
        self.joules = self.joules_lo = self.joules_hi = 0.0
        self.peak, self.peak_lo, self.peak_hi, self.peak_t = -math.inf, 0.0, 0.0, None
        self.cost = self.co2 = 0.0  # ∫ watts · price dt, ∫ watts · g/kWh dt
        self.present_s = 0.0
        self.n = 0
        self.name, self.where = name, where
        self.wheres: set[bytes] = set()
        self.cur = self.cur_lo = self.cur_hi = 0.0
        self.cur_t: float | None = None
        self.last = -1  # the snapshot (line number) cur* belong to; -1: none pending

    def add(self, w: float, lo: float, hi: float, t: float, dt: float, pint: float, cint: float,
            line_no: int) -> None:
        """One row of snapshot ``line_no`` (ending at ``t``, ``dt`` long) in this group."""
        self.joules += w * dt
        self.joules_lo += lo * dt
        self.joules_hi += hi * dt
        self.cost += w * pint
        self.co2 += w * cint
        if self.last == line_no:
            self.cur += w
            self.cur_lo += lo
            self.cur_hi += hi
            return
        if self.last >= 0 and self.cur > self.peak:
            self.peak, self.peak_lo, self.peak_hi, self.peak_t = self.cur, self.cur_lo, self.cur_hi, self.cur_t
        self.cur, self.cur_lo, self.cur_hi, self.cur_t, self.last = w, lo, hi, t, line_no
        self.present_s += dt
        self.n += 1

    def settle(self) -> None:
        """Fold the pending per-snapshot sum into the peak."""
        if self.last >= 0 and self.cur > self.peak:
            self.peak, self.peak_lo, self.peak_hi, self.peak_t = self.cur, self.cur_lo, self.cur_hi, self.cur_t
        self.last = -1

    def merge(self, b: "_Acc") -> None:
        """Add ``b`` (another worker's, settled) into this one (settled)."""
        self.joules += b.joules
        self.joules_lo += b.joules_lo
        self.joules_hi += b.joules_hi
        self.cost += b.cost
        self.co2 += b.co2
        self.present_s += b.present_s
        self.n += b.n
        if b.peak_t is not None and (self.peak_t is None or b.peak > self.peak
                                     or (b.peak == self.peak and b.peak_t < self.peak_t)):
            self.peak, self.peak_lo, self.peak_hi, self.peak_t = b.peak, b.peak_lo, b.peak_hi, b.peak_t
        self.wheres |= b.wheres

    def __getstate__(self) -> tuple:  # sent from worker processes
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for k, v in zip(self.__slots__, state):
            setattr(self, k, v)


class Aggregator:
    """Accumulates snapshots' rows into per-group totals (one pass, bounded memory)."""

    def __init__(self, by: str, tariff: Tariff) -> None:
        if by not in BY_LEVELS:
            raise ValueError(f"--by must be one of {', '.join(BY_LEVELS)}")
        self.by = by
        self.tariff = tariff
        # namespace rows are needed for --by namespace and to name pods
        self.levels = frozenset({"node", by} | ({"namespace"} if by in ("namespace", "pod") else set())
                                | ({"cluster"} if by == "node" else set()))  # node names repeat across clusters
        self._by = by.encode()
        self.groups: dict[bytes, _Acc] = {}
        self.total = _Acc(b"(total)", b"")
        self.snapshots = 0
        self.duration_s = 0.0
        self.start: float | None = None
        self.end: float | None = None
        self.price_gap = False  # some interval had no price: costs are unknown
        self.co2e_gap = False
        self.work = WorkTotals()
        self._piece: tuple[float, float, float | None, float | None] | None = None
        self._names: dict[bytes, dict[bytes, tuple[bytes, bytes]]] = {}  # node → row name → (key, name)

    def _rates(self, start: float, end: float) -> tuple[float | None, float | None]:
        """∫price dt, ∫co2e dt over [start, end), with a cache for the common case."""
        p = self._piece
        if p is not None and p[0] <= start and end <= p[1]:
            dt = end - start
            return (None if p[2] is None else p[2] * dt), (None if p[3] is None else p[3] * dt)
        until, price, co2 = self.tariff.piece_at(start)
        self._piece = (start, until, price, co2)
        if end <= until:
            dt = end - start
            return (None if price is None else price * dt), (None if co2 is None else co2 * dt)
        return self.tariff.integrals(start, end)

    def add(self, t: float, dt: float, rows: Sequence[RowTuple]) -> None:
        """One snapshot (ending at ``t``, ``dt`` long): its rows into their groups, the
        part of each node no group holds into ``(outside …)``, the nodes into the total."""
        if not dt > 0:
            return
        line_no = self.snapshots
        self.snapshots += 1
        self.duration_s += dt
        start = t - dt
        if self.start is None or start < self.start:
            self.start = start
        if self.end is None or t > self.end:
            self.end = t
        pint, cint = self._rates(start, t)
        if pint is None:
            self.price_gap = True
            pint = 0.0
        if cint is None:
            self.co2e_gap = True
            cint = 0.0
        if self.by == "process":
            nodes = self._add_processes(rows, t, dt, pint, cint, line_no)
        else:
            nodes = self._add_groups(rows, t, dt, pint, cint, line_no)
        if nodes:
            tw, tlo, thi = self._add_outside(nodes, t, dt, pint, cint, line_no)
        else:  # no node rows: the total is what the groups hold
            tw = tlo = thi = 0.0
            for acc in self.groups.values():
                if acc.last == line_no:
                    tw += acc.cur
                    tlo += acc.cur_lo
                    thi += acc.cur_hi
        self.total.add(tw, tlo, thi, t, dt, pint, cint, line_no)

    def _add_groups(self, rows: Sequence[RowTuple], t: float, dt: float, pint: float, cint: float,
                    line_no: int) -> list[list[Any]]:
        """``add`` for ``--by node|namespace|pod``; returns the node rows seen, each as
        [name, w, lo, hi, covered_w, covered_lo, covered_hi]."""
        by_node = self.by == "node"
        by_ns = self.by == "namespace"
        target = self._by
        groups = self.groups
        get = groups.get
        node: list[Any] | None = None
        nodes: list[list[Any]] = []
        namespace = b""
        cluster: tuple[bytes, bytes] | None = None  # (id, name) of the cluster row above (--by node)
        for level, rid, name, w, lo, hi in rows:
            if level == b"cluster":
                cluster = (rid, name)
                continue
            if level == b"node":
                node = [name, w, lo, hi, 0.0, 0.0, 0.0]
                nodes.append(node)
                namespace = b""
                if not by_node:
                    continue
                key, where = (cluster[0] + b"/" + rid, cluster[1]) if cluster else (rid, b"")
            else:
                if level == b"namespace":
                    namespace = name
                    if not by_ns:
                        continue
                    key, where = name, (node[0] if node else b"")
                elif level != target:
                    continue
                else:  # pod
                    key, where = rid, namespace
                    if namespace:  # ids from pod names (Keck, Prometheus) repeat across namespaces
                        name = namespace + b"/" + name
                        key = namespace + b"/" + rid
                if node is not None:
                    node[4] += w
                    node[5] += lo
                    node[6] += hi
            acc = get(key)
            if acc is None:
                acc = groups[key] = _Acc(name, where)
            acc.add(w, lo, hi, t, dt, pint, cint, line_no)
            if by_ns and where:
                acc.wheres.add(where)
        return nodes

    def _add_processes(self, rows: Sequence[RowTuple], t: float, dt: float, pint: float, cint: float,
                       line_no: int) -> list[list[Any]]:
        """``add`` for ``--by process``, the level with the most rows: one group per
        (node, command name), with a per-node cache of row name → group key."""
        groups = self.groups
        get = groups.get
        names = self._names
        if len(names) > 10_000 or sum(map(len, names.values())) > 200_000:  # PIDs churn: stay bounded
            names.clear()
        nodes: list[list[Any]] = []
        node = [b"", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # rows before any node row: not counted as covered
        where = b""
        cache = names.setdefault(where, {})
        for level, _rid, name, w, lo, hi in rows:
            if level == b"node":
                node = [name, w, lo, hi, 0.0, 0.0, 0.0]
                nodes.append(node)
                where = name
                cache = names.get(where)
                if cache is None:
                    cache = names[where] = {}
                continue
            if level != b"process":
                continue
            cached = cache.get(name)
            if cached is None:
                short = name
                if name[-1:] == b")":  # "python3 (1234)": the PID is not the command
                    head, sep, pid = name[:-1].rpartition(b" (")
                    if sep and pid.isdigit():
                        short = head
                cached = cache[name] = (where + b"\x00" + short, short)
            key = cached[0]
            node[4] += w
            node[5] += lo
            node[6] += hi
            acc = get(key)
            if acc is None:
                acc = groups[key] = _Acc(cached[1], where)
            acc.add(w, lo, hi, t, dt, pint, cint, line_no)
        return nodes

    def _add_outside(self, nodes: list[list[Any]], t: float, dt: float, pint: float, cint: float,
                     line_no: int) -> tuple[float, float, float]:
        """What the nodes hold beyond their groups' rows goes to ``(outside …)``; returns
        the nodes' total (watts, lo, hi)."""
        tw = tlo = thi = 0.0
        ow = olo = ohi = 0.0
        by_node = self.by == "node"
        for n in nodes:
            tw += n[1]
            tlo += n[2]
            thi += n[3]
            if not by_node:
                ow += max(0.0, n[1] - n[4])
                olo += max(0.0, n[2] - n[6])
                ohi += max(0.0, n[3] - n[5])
        if ow > 0 or ohi > 0:
            out = _OUTSIDE[self.by]
            acc = self.groups.get(out)
            if acc is None:
                acc = self.groups[out] = _Acc(out, b"")
            acc.add(ow, olo, ohi, t, dt, pint, cint, line_no)
        return tw, tlo, thi

    def settle(self) -> None:
        """Fold every pending per-snapshot sum into its peak (before reading or merging)."""
        for acc in self.groups.values():
            acc.settle()
        self.total.settle()

    def merge(self, other: "Aggregator") -> None:
        """Add another aggregator's totals (a parallel worker's share of the lines)."""
        self.settle()
        other.settle()
        for key, acc in other.groups.items():
            mine = self.groups.get(key)
            if mine is None:
                self.groups[key] = acc
            else:
                mine.merge(acc)
        self.total.merge(other.total)
        self.snapshots += other.snapshots
        self.duration_s += other.duration_s
        for attr, pick in (("start", min), ("end", max)):
            values = [v for v in (getattr(self, attr), getattr(other, attr)) if v is not None]
            setattr(self, attr, pick(values) if values else None)
        self.price_gap |= other.price_gap
        self.co2e_gap |= other.co2e_gap
        self.work.merge(other.work)

    def add_work(self, t: float, dt: float, line: bytes, share: float = 1.0) -> None:
        """The ``work`` objects of one snapshot line (only lines that have any pay for the parse)."""
        try:
            doc = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return
        root = doc.get("root") if isinstance(doc, dict) else None
        if not isinstance(root, dict):
            return
        pint, cint = self._rates(t - dt, t)
        self.work.add(dt, work_objects(root), share=share, price_s=pint, co2_s=cint)

    def state(self) -> dict[str, Any]:
        """Picklable totals, for sending from a worker process."""
        self.settle()
        return {"groups": self.groups, "total": self.total, "snapshots": self.snapshots,
                "duration_s": self.duration_s, "start": self.start, "end": self.end,
                "price_gap": self.price_gap, "co2e_gap": self.co2e_gap, "work": self.work}

    @classmethod
    def from_state(cls, by: str, tariff: Tariff, state: dict[str, Any]) -> "Aggregator":
        agg = cls(by, tariff)
        for k, v in state.items():
            setattr(agg, k, v)  # groups, totals and counters; caches start empty
        return agg

    def _group(self, acc: _Acc, key: bytes) -> GroupTotal:
        wheres = {w.decode("utf-8", "replace") for w in acc.wheres}
        where = acc.where.decode("utf-8", "replace")
        if self.by == "namespace" and key != _OUTSIDE["namespace"]:
            where = ", ".join(sorted(wheres)) if len(wheres) <= 3 else f"{len(wheres)} nodes"
        return GroupTotal(
            key=key.decode("utf-8", "replace").replace("\x00", "/"),
            name=acc.name.decode("utf-8", "replace"), where=where,
            joules=acc.joules, joules_lo=acc.joules_lo, joules_hi=acc.joules_hi,
            peak_watts=acc.peak if acc.peak_t is not None else 0.0,
            peak_lo=acc.peak_lo, peak_hi=acc.peak_hi, peak_time=acc.peak_t,
            cost=None if self.price_gap else acc.cost / J_PER_KWH,
            co2e_g=None if self.co2e_gap else acc.co2 / J_PER_KWH,
            present_s=acc.present_s, samples=acc.n, wheres=wheres)

    def result(self, path: str, stats: ReadStats, fast_lines: int = 0) -> Report:
        self.settle()
        groups = [self._group(acc, key) for key, acc in self.groups.items()]
        groups.sort(key=lambda g: (-g.joules, g.name))
        total = self._group(self.total, b"(total)")
        return Report(path=path, by=self.by, currency=self.tariff.currency, groups=groups,
                      total=total, snapshots=self.snapshots, duration_s=self.duration_s,
                      start=self.start, end=self.end, stats=stats,
                      has_price=self.tariff.has_price and not self.price_gap,
                      has_co2e=self.tariff.has_co2e and not self.co2e_gap,
                      fast_lines=fast_lines, work=self.work.results())


def report_snapshots(snapshots: Iterable[Snapshot], by: str, tariff: Tariff,
                     path: str = "") -> Report:
    """A report over snapshots already in memory (tests, the demo)."""
    agg = Aggregator(by, tariff)
    stats = ReadStats()
    for snap in snapshots:
        stats.valid += 1
        agg.add(snap.time, snap.interval_s, rows_of_snapshot(snap, agg.levels))
        if any("work" in row.extra for _, row in snap.root.walk()):
            agg.add_work(snap.time, snap.interval_s, snap.dumps().encode())
    return agg.result(path, stats)


#: Files smaller than this are summed in one process (workers cost more than they save).
PARALLEL_MIN_BYTES = 32 << 20


def default_jobs(path: str | os.PathLike[str]) -> int:
    """Worker processes for a file: 1 for small files, else up to 4 (one per CPU)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return 1
    if size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


Window = tuple[float | None, float | None]


@dataclass
class BadLines:
    """Lines that could not be parsed: how many, and the first few (a file of a million
    garbage lines must not keep a million reasons in memory)."""

    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def add(self, lineno: int, why: str) -> None:
        self.count += 1
        if len(self.first) < ReadStats.MAX_PROBLEMS:
            self.first.append((lineno, why))


def _sum_lines(path: str, by: str, tariff: Tariff, fast: bool, part: int, parts: int,
               start: int = 0, end: int | None = None, window: Window = (None, None)
               ) -> tuple[Aggregator, ReadStats, BadLines, int]:
    """Sum the lines of one piece of a file.

    A piece is a byte range (``start``/``end`` from ``split_points``), or every
    ``parts``-th line starting at ``part`` (gzip, which cannot be cut: each part
    then decompresses the whole file). Returns the aggregator, the reader's
    statistics and the lines this part could not parse.
    """
    agg = Aggregator(by, tariff)
    stats = ReadStats()
    bad = BadLines()
    extract = _Extractor(agg.levels)
    if not fast:
        extract.fast_ok = False
    mine = 0
    add = agg.add
    since, until = window
    for n, (lineno, line) in enumerate(iter_lines(path, stats, start, end)):
        if parts > 1 and n % parts != part:
            continue
        try:
            # A line the file ends inside may still end in "}": parse it fully.
            t, dt, rows = extract.full(line) if stats.truncated_tail else extract(line)
        except SnapshotFormatError as exc:
            bad.add(lineno, (str(exc).splitlines() or ["unreadable"])[0][:200])
            continue
        mine += 1
        share = 1.0
        if since is not None or until is not None:
            # Only the part of the snapshot's interval inside the window counts.
            lo = t - dt if since is None else max(t - dt, since)
            hi = t if until is None else min(t, until)
            if hi <= lo:
                continue
            share = (hi - lo) / dt if dt > 0 else 1.0
            t, dt = hi, hi - lo
        add(t, dt, rows)
        if b'"work"' in line:
            agg.add_work(t, dt, line, share)
    stats.valid = mine
    return agg, stats, bad, extract.fast_lines


def _worker(args: tuple) -> tuple[dict[str, Any], ReadStats, BadLines, int]:
    agg, stats, bad, fast_lines = _sum_lines(*args)
    return agg.state(), stats, bad, fast_lines


def report_file(path: str | os.PathLike[str], by: str, tariff: Tariff,
                *, fast: bool = True, jobs: int | None = None, since: float | None = None,
                until: float | None = None) -> Report:
    """Stream a recording from disk into a report (bad lines skipped and counted).

    ``jobs`` > 1 shares the file between that many worker processes: plain and
    keck-top zstd files are cut into byte ranges at line starts (zstd: at frame
    starts); gzip cannot be cut, so each worker decompresses it all and sums
    every ``jobs``-th line. Totals merge exactly (sums add, peaks take the
    larger). Default: ``default_jobs``. ``since``/``until`` (unix seconds) keep
    only that window; a snapshot whose interval straddles an edge counts for
    the part inside.
    """
    if not os.path.exists(path):
        raise RecordingError(f"{path}: no such file")
    if by not in BY_LEVELS:
        raise ValueError(f"--by must be one of {', '.join(BY_LEVELS)}")
    jobs = default_jobs(path) if jobs is None else max(1, int(jobs))
    path = str(path)
    cuts = split_points(path, jobs) if jobs > 1 else [0, os.path.getsize(path)]
    if cuts is not None:
        tasks = [(path, by, tariff, fast, 0, 1, a, b, (since, until)) for a, b in zip(cuts, cuts[1:])]
    else:
        tasks = [(path, by, tariff, fast, k, jobs, 0, None, (since, until)) for k in range(jobs)]
    if len(tasks) == 1:
        results = [_sum_lines(*tasks[0])]
    else:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ctx.Pool(len(tasks)) as pool:
            states = pool.map(_worker, tasks)
        results = [(Aggregator.from_state(by, tariff, st), stats, bad, fl) for st, stats, bad, fl in states]
    agg = results[0][0]
    for other, *_ in results[1:]:
        agg.merge(other)
    if cuts is not None:  # consecutive pieces: line numbers continue from piece to piece
        offsets = [0]
        for r in results[:-1]:
            offsets.append(offsets[-1] + r[1].lines)
        stats = ReadStats.merged([r[1] for r in results])
        first_bad = sorted((lineno + off, why) for r, off in zip(results, offsets) for lineno, why in r[2].first)
    else:  # every part read the whole file: its reader statistics are the same in each
        stats = results[0][1]
        stats.valid = sum(r[1].valid for r in results)
        first_bad = sorted(b for r in results for b in r[2].first)
    problems = sorted(stats.skips + first_bad[: ReadStats.MAX_PROBLEMS])
    stats.skipped += sum(r[2].count for r in results)
    stats.skips = problems[: ReadStats.MAX_PROBLEMS]
    stats.problems = [f"line {n}: {why}" for n, why in stats.skips]
    return agg.result(path, stats, sum(r[3] for r in results))


def render_report(report: Report) -> str:
    """``keck-top report`` as a table: a title line, one row per group, a rule, the total."""
    title = (f"{report.path}: {report.snapshots} snapshots, {fmt_clock(report.start, date=True)} → "
             f"{fmt_clock(report.end, date=True)} ({fmt_duration(report.duration_s)}), by {report.by}")
    columns = [Column(report.by, max_width=48), Column("where", max_width=24, gap=2),
               Column("energy", ">", gap=2), Column("(lo…hi)", ">"), Column("mean W", ">", gap=2),
               Column("(lo…hi)", ">"), Column("peak W", ">", gap=2), Column("peak at", ">"),
               Column("share", ">", gap=2)]
    if report.has_price:
        columns.append(Column("cost", ">", gap=2))
    if report.has_co2e:
        columns.append(Column("CO2e", ">", gap=2))
    rows: list[list[str] | None] = [_report_cells(report, g) for g in report.groups]
    rows += [None, _report_cells(report, report.total)]
    return "\n".join([title] + table.render_table(columns, rows) + _work_lines(report))


def _work_lines(report: Report) -> list[str]:
    """Energy per unit of work over the window (Σ energy ÷ Σ units), one row per source and unit."""
    if not report.work:
        return []
    columns = [Column("work", max_width=24), Column("unit", max_width=16, gap=2), Column("row", max_width=32, gap=2),
               Column("units", ">", gap=2), Column("units/s", ">"), Column("J/unit", ">", gap=2),
               Column("(lo…hi)", ">"), Column("per M units", ">", gap=2)]
    rows = []
    for w in report.work:
        per = w["j_per_unit"]
        cost = fmt_money(w["cost_per_m"], report.currency) if w["cost_per_m"] is not None else ""
        co2 = fmt_grams(w["co2e_g_per_m"], unit=True) if w["co2e_g_per_m"] is not None else ""
        rows.append([w["work"], w["unit"], w["row"], fmt_rate(w["units"]), fmt_rate(w["units_per_s"]),
                     fmt_si(per, "J", missing="—"),
                     f"({fmt_si(w['j_per_unit_lo'], 'J', missing='?')}…{fmt_si(w['j_per_unit_hi'], 'J', missing='?')})"
                     if per is not None else "",
                     " · ".join(x for x in (cost, co2) if x) or "—"])
    return ["", "energy per unit of work over the window:"] + table.render_table(columns, rows)


def _report_cells(report: Report, g: GroupTotal) -> list[str]:
    mean, lo, hi = g.mean_watts(report.duration_s)
    share = fmt_pct(100 * g.joules / report.total.joules) if report.total.joules > 0 else "—"
    cells = [g.name, g.where, fmt_energy(g.joules), f"({fmt_energy(g.joules_lo)}…{fmt_energy(g.joules_hi)})",
             fmt_watts(mean), f"({fmt_watts(lo)}…{fmt_watts(hi)})", fmt_watts(g.peak_watts),
             fmt_clock(g.peak_time) if g.peak_time else "—", share]
    if report.has_price:
        cells.append(fmt_money(g.cost, report.currency, missing="—"))
    if report.has_co2e:
        cells.append(fmt_grams(g.co2e_g, unit=True, missing="—"))
    return cells
