"""Work on the rows: each snapshot's matched rows gain a nested ``work`` object.

Per work source (a ``[[work]]`` entry or a detected server) and interval:

* the *rows* whose energy the work is divided into: the matched processes with their
  descendants (by parent PID in the interval's activity), or the matched pod /
  container / namespace rows; their watts and bounds are summed;
* the counter's *step* (:mod:`keck_tui.work.rate`) from the newest scrape;
* joules per unit = watts ÷ units per second, bounded by the rows' watts bounds, the
  counter's ±1 unit over the scrape window and the window's length uncertainty (half
  of each scrape's duration); units per second per watt; cost and gCO2e per million
  units at the tariff in force.

The object goes on the matched rows themselves (the server's process, the pod), not on
the descendants whose watts it includes::

    "work": {"name", "source", "url", "unit", "counter", "status", "why", "rate", "units",
             "total", "window_s", "age_s", "watts", "watts_lo", "watts_hi", "rows",
             "j_per_unit", "j_per_unit_lo", "j_per_unit_hi", "units_per_j",
             "cost_per_m", "co2e_g_per_m", "currency", "also": [{...}, ...]}

Every source is listed in the snapshot's ``work`` source status; the scraper runs on its
own thread, so a dead or slow endpoint makes its rows say why, never a late snapshot.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Iterable, Mapping, Protocol, Sequence

from keck_tui.cost import J_PER_KWH, Tariff
from keck_tui.model import STATUS_ERROR, STATUS_OK, Row, Snapshot, SourceStatus
from keck_tui.work.exposition import CounterValue
from keck_tui.work.presets import PresetFinder
from keck_tui.work.rate import ERROR, OK, CounterTrack, Step
from keck_tui.work.spec import CounterSpec, WorkSpec

SOURCE_NAME = "work"
UNAVAILABLE = "unavailable"


class ProcessLike(Protocol):
    """What is read of a process (a :class:`keck_tui.samplers.types.ProcessSample`)."""

    pid: int
    ppid: int
    name: str
    cmd: str
    kernel: bool
    start_time: float


class ActivityLike(Protocol):
    """The interval's processes (a :class:`keck_tui.samplers.types.CpuActivity`)."""

    processes: Sequence[ProcessLike]


class ScrapeResult(Protocol):
    id: int
    t: float  # monotonic time the counters were read at
    values: Mapping[CounterSpec, CounterValue] | None
    error: str | None


class ScraperLike(Protocol):
    def set_targets(self, targets: Mapping[str, tuple[tuple[CounterSpec, ...], float]]) -> None: ...
    def kick(self) -> None: ...
    def latest(self, url: str) -> ScrapeResult | None: ...
    def close(self) -> None: ...


def _round(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


class WorkMonitor:
    """Attaches ``work`` objects to snapshots (see the module docstring)."""

    def __init__(self, specs: Sequence[WorkSpec], scraper: ScraperLike, *, presets: bool = True,
                 tariff: Tariff | None = None, monotonic=None) -> None:
        import time

        self.specs = tuple(specs)
        self.scraper = scraper
        self.presets = PresetFinder() if presets else None
        self.tariff = tariff or Tariff()
        self._mono = monotonic or time.monotonic
        self._tracks: dict[tuple[str, str | None, CounterSpec], CounterTrack] = {}
        self._targets: dict[str, tuple[tuple[CounterSpec, ...], float]] = {}

    def kick(self) -> None:
        """Scrape every target now (at the start of an interval: the rate then covers it)."""
        if self._targets:
            self.scraper.kick()

    def prime(self, activity: ActivityLike | None) -> None:
        """Find the sources in the priming sample and scrape them once, so that the first
        interval's scrape already has one to compare with."""
        self._set_targets(self.sources(activity))
        self.kick()

    def settle(self, timeout: float) -> None:
        """Scrape now and wait for the answers (one-shot modes only): with the priming
        scrape before it, the snapshot's rate covers about its interval."""
        wait = getattr(self.scraper, "wait_idle", None)
        if callable(wait):
            wait(timeout)  # the priming scrape first (the very first may be slow: imports)
        self.kick()
        if callable(wait):
            wait(timeout)

    def close(self) -> None:
        self.scraper.close()

    # -- one snapshot ------------------------------------------------------------------

    def sources(self, activity: ActivityLike | None) -> list[WorkSpec]:
        specs = list(self.specs)
        if self.presets is not None and activity is not None:
            # the samples themselves: a ProcessInfo each was most of this, every interval
            specs.extend(self.presets.find(p for p in activity.processes if not p.kernel))
        return specs

    def annotate(self, snap: Snapshot, activity: ActivityLike | None) -> Snapshot:
        specs = self.sources(activity)
        self._set_targets(specs)
        if not specs:
            return snap
        index = _RowIndex(snap.root)
        marks: dict[tuple[str, ...], dict[str, Any]] = {}
        lines: list[str] = []
        worst = STATUS_OK
        live: set[tuple[str, str | None, CounterSpec]] = set()
        for spec in specs:
            anchors, basis = self._rows_of(spec, index, activity)
            if not anchors:
                if spec.source == "config":
                    lines.append(f"{spec.name}: no row matches")
                continue
            obj = self._work_object(spec, basis, snap.time, live)
            for path in anchors:
                if path in marks:
                    marks[path].setdefault("more", []).append(obj)
                else:
                    marks[path] = obj
            lines.append(_status_line(spec, obj))
            if obj["status"] in (ERROR, UNAVAILABLE):
                worst = STATUS_ERROR if obj["status"] == ERROR else worst
        for key in [k for k in self._tracks if k not in live]:
            del self._tracks[key]  # a server that went away
        root = _with_marks(snap.root, marks) if marks else snap.root
        status = SourceStatus(SOURCE_NAME, STATUS_OK if worst == STATUS_OK else STATUS_ERROR,
                              "; ".join(lines) if lines else "no work counters matched",
                              extra={"sources": len(specs), "rows": len(marks)})
        return replace(snap, root=root, sources=tuple(snap.sources) + (status,))

    def _set_targets(self, specs: Iterable[WorkSpec]) -> None:
        targets: dict[str, tuple[tuple[CounterSpec, ...], float]] = {}
        for spec in specs:
            if spec.url is None:
                continue
            counters, timeout = targets.get(spec.url, ((), spec.timeout_s))
            add = tuple(c for c in (spec.primary, *spec.also) if c not in counters)
            targets[spec.url] = (counters + add, min(timeout, spec.timeout_s))
        if targets != self._targets:
            self._targets = targets
            self.scraper.set_targets(targets)

    def _rows_of(self, spec: WorkSpec, index: "_RowIndex", activity: ActivityLike | None
                 ) -> tuple[list[tuple[str, ...]], list[Row]]:
        """(paths of the rows that get the object, rows whose watts are the basis).

        Processes are matched in the interval's activity (an idle server has no row of
        its own but its busy children do); the object goes on the matched processes'
        rows, or on the basis's biggest row when those have none this interval."""
        m = spec.match
        if m.by_process:
            procs = activity.processes if activity is not None else ()
            roots = {p.pid for p in procs if not p.kernel and m.process_matches(p.pid, p.name, p.cmd)}
            if not roots:
                return [], []
            parent = {p.pid: p.ppid for p in procs}
            pids = set(roots)
            if m.children:
                kids: dict[int, list[int]] = {}
                for p in procs:
                    kids.setdefault(p.ppid, []).append(p.pid)
                stack = list(roots)
                while stack:
                    for c in kids.get(stack.pop(), ()):
                        if c not in pids:
                            pids.add(c)
                            stack.append(c)
            top = [pid for pid in roots if not _descends(pid, roots, parent)]
            basis = [index.procs[p][1] for p in sorted(pids) if p in index.procs]
            anchors = [index.procs[p][0] for p in sorted(top) if p in index.procs]
            if not anchors and basis:
                biggest = max(basis, key=lambda r: r.watts)
                anchors = [index.procs[biggest.pid][0]]  # type: ignore[index]
            return anchors, basis
        hits = [(path, row) for path, row in index.groups if m.group_matches(row.level, row.name, row.namespace)]
        paths = {path for path, _ in hits}
        top_hits = [(path, row) for path, row in hits
                    if not any(path[:i] in paths for i in range(1, len(path)))]
        return [p for p, _ in top_hits], [r for _, r in top_hits]

    def _step(self, spec: WorkSpec, counter: CounterSpec, live: set) -> Step:
        key = (spec.name + f"#{spec.match.pid}" if spec.match.pid else spec.name, spec.url, counter)
        live.add(key)
        if spec.url is None:
            return Step(UNAVAILABLE, None, None, None, None, spec.why or "no metrics URL")
        result = self.scraper.latest(spec.url)
        if result is None:
            return Step("waiting", None, None, None, None, "no scrape finished yet")
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = CounterTrack()
            earlier = getattr(self.scraper, "previous", lambda url: None)(spec.url)
            if earlier is not None and earlier.id != result.id:
                _feed(track, earlier, counter)  # a new source: the scrape before gives the baseline
        return _feed(track, result, counter)

    def _work_object(self, spec: WorkSpec, basis: Sequence[Row], t: float, live: set) -> dict[str, Any]:
        watts = math.fsum(r.watts for r in basis)
        lo = math.fsum(r.watts_lo for r in basis)
        hi = math.fsum(r.watts_hi for r in basis)
        price, co2 = self.tariff.rates_at(t)
        step = self._step(spec, spec.primary, live)
        result = self.scraper.latest(spec.url) if spec.url else None
        obj: dict[str, Any] = {
            "name": spec.name, "source": spec.source if spec.source == "config" else f"preset:{spec.name}",
            "url": spec.url,
        }
        obj.update(_figures(spec.primary, step, watts, lo, hi, price, co2))
        obj.update({
            "age_s": _round(max(0.0, self._mono() - result.t)) if result is not None else None,
            "watts": _round(watts), "watts_lo": _round(lo), "watts_hi": _round(hi), "rows": len(basis),
            "currency": self.tariff.currency,
        })
        also = [_figures(c, self._step(spec, c, live), watts, lo, hi, price, co2) for c in spec.also]
        if also:
            obj["also"] = also
        return obj


def _feed(track: CounterTrack, result: ScrapeResult, counter: CounterSpec) -> Step:
    if result.error is not None or result.values is None:
        return track.step(result.id, result.t, None, result.error or "scrape failed")
    value = result.values.get(counter)
    if value is None:
        return track.step(result.id, result.t, None, f"{counter.counter} not requested")
    return track.step(result.id, result.t, value.value, value.why, getattr(result, "duration_s", 0.0))


def _figures(counter: CounterSpec, step: Step, watts: float, lo: float, hi: float,
             price: float | None, co2: float | None) -> dict[str, Any]:
    """Rate, joules per unit with its bound, units per joule, cost and CO2e per million units."""
    out: dict[str, Any] = {"unit": counter.unit, "counter": counter.counter, "status": step.status,
                           "why": step.why or None, "rate": _round(step.rate), "units": _round(step.units),
                           "total": _round(step.total), "window_s": _round(step.window_s)}
    if counter.labels:
        out["labels"] = dict(counter.labels)
    j = j_lo = j_hi = per_j = None
    if step.status == OK and step.rate is not None and step.window_s:
        per_j = step.rate / watts if watts > 0 else None
        if step.rate > 0:
            # ±1 unit over the window (the counter's resolution) and the window's own length
            # uncertainty (when within each scrape the counters were read)
            q = 1.0 / step.window_s
            t = step.timing_s / step.window_s
            j = watts / step.rate
            j_lo = lo / (step.rate * (1 + t) + q)
            fast = step.rate * (1 - t) - q
            j_hi = hi / fast if fast > 0 else None
        else:
            out["why"] = f"no {counter.unit}s this interval"
    out.update({"j_per_unit": _round(j), "j_per_unit_lo": _round(j_lo), "j_per_unit_hi": _round(j_hi),
                "units_per_j": _round(per_j),
                "cost_per_m": _round(j * 1e6 / J_PER_KWH * price) if j is not None and price is not None else None,
                "co2e_g_per_m": _round(j * 1e6 / J_PER_KWH * co2) if j is not None and co2 is not None else None})
    return out


def _status_line(spec: WorkSpec, obj: Mapping[str, Any]) -> str:
    if obj["status"] == OK and obj["rate"] is not None:
        return f"{spec.name}: {obj['rate']:.4g} {obj['unit']}/s"
    return f"{spec.name}: {obj['status']}" + (f" ({obj['why']})" if obj.get("why") else "")


def _descends(pid: int, roots: set[int], parent: Mapping[int, int]) -> bool:
    """Whether ``pid`` descends from another of ``roots`` (it is then in that one's tree)."""
    seen = {pid}
    p = parent.get(pid)
    while p and p not in seen:
        if p in roots:
            return True
        seen.add(p)
        p = parent.get(p)
    return False


class _RowIndex:
    """Process rows by PID and pod/container/namespace rows, with their id paths."""

    def __init__(self, root: Row) -> None:
        self.procs: dict[int, tuple[tuple[str, ...], Row]] = {}
        self.groups: list[tuple[tuple[str, ...], Row]] = []
        stack: list[tuple[tuple[str, ...], Row]] = [((root.id,), root)]
        while stack:
            path, row = stack.pop()
            if row.level == "process" and row.pid is not None:
                self.procs[row.pid] = (path, row)
                continue
            if row.level in ("pod", "container", "namespace"):
                self.groups.append((path, row))
            stack.extend((path + (c.id,), c) for c in row.children)


def _with_marks(root: Row, marks: Mapping[tuple[str, ...], dict[str, Any]]) -> Row:
    """A copy of the tree whose rows at ``marks`` carry ``extra["work"]`` (only their ancestors copied)."""
    prefixes = {path[:i] for path in marks for i in range(1, len(path) + 1)}

    def walk(row: Row, path: tuple[str, ...]) -> Row:
        children = row.children
        if any(path + (c.id,) in prefixes for c in children):
            children = tuple(walk(c, path + (c.id,)) if path + (c.id,) in prefixes else c for c in children)
        obj = marks.get(path)
        if obj is None and children is row.children:
            return row
        extra = dict(row.extra)
        if obj is not None:
            extra["work"] = obj
        return replace(row, children=children, extra=extra)

    return walk(root, (root.id,))
