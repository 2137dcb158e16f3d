"""Summaries of a recording: energy, mean/peak watts, cost and CO2e per group.

Pure aggregation, streaming: one pass over the file, memory bounded by the
number of groups (not by the recording's length). No rich here: the table is
rendered by ``keck_tui.ui.report_table``; JSON and CSV are plain text.

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

Speed: a long recording is mostly JSON. For lines written by keck-top's
recorder (canonical key order, no escapes) the rows of the wanted levels are
picked out with one regular expression instead of building every Row; the
first line of each file is checked both ways and any line the fast path
cannot vouch for goes through the full parser.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from keck_tui.cost import J_PER_KWH, Tariff
from keck_tui.model import Row, Snapshot, SnapshotFormatError
from keck_tui.recording import ReadStats, RecordingError, iter_lines

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

    @property
    def wh(self) -> float:
        return self.joules / 3600.0

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

# (level, id, name, watts, watts_lo, watts_hi) in document (depth-first) order;
# text as UTF-8 bytes and numbers as bytes or floats (the fast path leaves the
# conversion to the aggregator, which converts only what it uses).
RowTuple = tuple[bytes, bytes, bytes, Any, Any, Any]


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


def _row_pattern(levels: Iterable[str]) -> re.Pattern[bytes]:
    alts = b"|".join(re.escape(lv.encode()) for lv in sorted(levels))
    return re.compile(rb'"level": ?"(' + alts + rb')", ?"id": ?' + _STR + rb', ?"name": ?' + _STR
                      + rb', ?"watts": ?' + _NUM + rb', ?"watts_lo": ?' + _NUM + rb', ?"watts_hi": ?' + _NUM)


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
        return t, dt, self._findall(s)

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

# Per-group accumulator slots (a list, for speed in the per-row loop).
_J, _JLO, _JHI, _PK, _PKLO, _PKHI, _PKT, _COST, _CO2, _PRES, _N, _NAME, _WHERE, _WHERES = range(14)


def _new_acc(name: bytes, where: bytes) -> list[Any]:
    return [0.0, 0.0, 0.0, -math.inf, 0.0, 0.0, None, 0.0, 0.0, 0.0, 0, name, where, set()]


class Aggregator:
    """Accumulates snapshots' rows into per-group totals (one pass, bounded memory)."""

    def __init__(self, by: str, tariff: Tariff) -> None:
        if by not in BY_LEVELS:
            raise ValueError(f"--by must be one of {', '.join(BY_LEVELS)}")
        self.by = by
        self.tariff = tariff
        self.levels = frozenset({"node", "namespace", by})
        self._by = by.encode()
        self.groups: dict[bytes, list[Any]] = {}
        self.total = _new_acc(b"(total)", b"")
        self.snapshots = 0
        self.duration_s = 0.0
        self.start: float | None = None
        self.end: float | None = None
        self.price_gap = False  # some interval had no price: costs are unknown
        self.co2e_gap = False
        self._piece: tuple[float, float, float | None, float | None] | None = None

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
        if not dt > 0:
            return
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
        if cint is None:
            self.co2e_gap = True
        by_node = self.by == "node"
        by_pod = self.by == "pod"
        by_ns = self.by == "namespace"
        target = self._by
        line: dict[bytes, list[Any]] = {}
        get = line.get
        node: list[Any] | None = None  # [name, w, lo, hi, covered_w, covered_lo, covered_hi]
        nodes: list[list[Any]] = []
        namespace = b""
        for level, rid, name, w, lo, hi in rows:
            if level == b"node":
                node = [name, float(w), float(lo), float(hi), 0.0, 0.0, 0.0]
                nodes.append(node)
                namespace = b""
                if not by_node:
                    continue
                key, where = rid, b""
                w, lo, hi = node[1], node[2], node[3]
            else:
                if level == b"namespace":
                    namespace = name
                    if not by_ns:
                        continue
                    key, where = name, (node[0] if node else b"")
                elif level != target:
                    continue
                elif by_pod:
                    key, where = rid, namespace
                    if namespace:
                        name = namespace + b"/" + name
                else:  # process: one group per (node, command name)
                    where = node[0] if node else b""
                    if name.endswith(b")"):  # "python3 (1234)": the PID is not the command
                        head, sep, pid = name[:-1].rpartition(b" (")
                        if sep and pid.isdigit():
                            name = head
                    key = where + b"\x00" + name
                w = float(w)
                lo = float(lo)
                hi = float(hi)
                if node is not None:
                    node[4] += w
                    node[5] += lo
                    node[6] += hi
            acc = get(key)
            if acc is None:
                line[key] = [w, lo, hi, name, where]
            else:
                acc[0] += w
                acc[1] += lo
                acc[2] += hi
                if where != acc[4]:
                    acc.append(where)  # a namespace on several nodes
        if nodes:
            tw = tlo = thi = 0.0
            ow = olo = ohi = 0.0
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
                line[out] = [ow, olo, ohi, out, b""]
        else:
            tw = sum(a[0] for a in line.values())
            tlo = sum(a[1] for a in line.values())
            thi = sum(a[2] for a in line.values())
        self._update(self.total, tw, tlo, thi, t, dt, pint, cint, b"")
        groups = self.groups
        update = self._update
        for key, acc in line.items():
            w, lo, hi, name, where = acc[:5]
            g = groups.get(key)
            if g is None:
                g = groups[key] = _new_acc(name, where)
            update(g, w, lo, hi, t, dt, pint, cint, where)
            if len(acc) > 5:
                g[_WHERES].update(acc[5:])

    @staticmethod
    def _update(g: list[Any], w: float, lo: float, hi: float, t: float, dt: float,
                pint: float | None, cint: float | None, where: bytes) -> None:
        g[0] += w * dt
        g[1] += lo * dt
        g[2] += hi * dt
        if w > g[3]:
            g[3] = w
            g[4] = lo
            g[5] = hi
            g[6] = t
        if pint is not None:
            g[7] += w * pint
        if cint is not None:
            g[8] += w * cint
        g[9] += dt
        g[10] += 1
        if where:
            g[13].add(where)

    def _group(self, acc: list[Any], key: bytes) -> GroupTotal:
        wheres = {w.decode("utf-8", "replace") for w in acc[_WHERES]}
        where = acc[_WHERE].decode("utf-8", "replace")
        if self.by == "namespace":
            where = ", ".join(sorted(wheres)) if len(wheres) <= 3 else f"{len(wheres)} nodes"
        return GroupTotal(
            key=key.decode("utf-8", "replace").replace("\x00", "/"),
            name=acc[_NAME].decode("utf-8", "replace"), where=where,
            joules=acc[_J], joules_lo=acc[_JLO], joules_hi=acc[_JHI],
            peak_watts=acc[_PK] if acc[_PKT] is not None else 0.0,
            peak_lo=acc[_PKLO], peak_hi=acc[_PKHI], peak_time=acc[_PKT],
            cost=None if self.price_gap else acc[_COST] / J_PER_KWH,
            co2e_g=None if self.co2e_gap else acc[_CO2] / J_PER_KWH,
            present_s=acc[_PRES], samples=acc[_N], wheres=wheres)

    def result(self, path: str, stats: ReadStats, fast_lines: int = 0) -> Report:
        groups = [self._group(acc, key) for key, acc in self.groups.items()]
        groups.sort(key=lambda g: (-g.joules, g.name))
        total = self._group(self.total, b"(total)")
        return Report(path=path, by=self.by, currency=self.tariff.currency, groups=groups,
                      total=total, snapshots=self.snapshots, duration_s=self.duration_s,
                      start=self.start, end=self.end, stats=stats,
                      has_price=self.tariff.has_price and not self.price_gap,
                      has_co2e=self.tariff.has_co2e and not self.co2e_gap,
                      fast_lines=fast_lines)


def report_snapshots(snapshots: Iterable[Snapshot], by: str, tariff: Tariff,
                     path: str = "") -> Report:
    """A report over snapshots already in memory (tests, the demo)."""
    agg = Aggregator(by, tariff)
    stats = ReadStats()
    for snap in snapshots:
        stats.valid += 1
        agg.add(snap.time, snap.interval_s, rows_of_snapshot(snap, agg.levels))
    return agg.result(path, stats)


def report_file(path: str | os.PathLike[str], by: str, tariff: Tariff,
                *, fast: bool = True) -> Report:
    """Stream a recording from disk into a report (bad lines skipped and counted)."""
    if not os.path.exists(path):
        raise RecordingError(f"{path}: no such file")
    agg = Aggregator(by, tariff)
    stats = ReadStats()
    extract = _Extractor(agg.levels)
    if not fast:
        extract.fast_ok = False
    for lineno, line in iter_lines(path, stats):
        try:
            # A line the file ends inside may still end in "}": parse it fully.
            t, dt, rows = extract.full(line) if stats.truncated_tail else extract(line)
        except SnapshotFormatError as exc:
            why = (str(exc).splitlines() or ["unreadable"])[0][:200]
            stats.skip(lineno, why)
            continue
        stats.valid += 1
        agg.add(t, dt, rows)
    return agg.result(str(path), stats, extract.fast_lines)


def iter_group_records(report: Report) -> Iterator[dict[str, Any]]:
    yield from report.rows()
