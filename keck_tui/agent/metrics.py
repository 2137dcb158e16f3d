"""Prometheus exposition of the latest snapshot, with bounded label cardinality.

:class:`MetricsState` is fed every new snapshot (once, by the agent's ingest
task) and keeps the gauges of the latest one plus ``_joules_total`` counters
integrated from watts × measured interval. Each family holds at most
``max_series`` series: the smallest rows beyond that are summed into one
series whose labels read ``(other)``, so totals stay whole while a node with
thousands of pods or processes cannot blow up Prometheus. Counters of series
that vanished are kept (least recently seen evicted first) up to four times
the cap, so a pod that comes and goes doesn't look like a counter reset.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from keck_tui.model import Row, Snapshot
from keck_tui.vm.export import vm_name_of

OTHER = "(other)"
LABEL_MAX = 128
#: Work series (one per work source × unit × row that carries it): at most this many.
MAX_WORK_SERIES = 64
WORK_LABELS = ("node", "work", "unit", "row")
#: Per-core hardware-counter series: at most this many cores.
MAX_CORE_SERIES = 4096
#: Hardware events exported as counters: (field in the counters source's per_core, metric word, help).
HW_EVENTS = (("cycles", "cycles", "CPU cycles"), ("instructions", "instructions", "Instructions retired"),
             ("llc_misses", "llc_misses", "Last-level cache misses"))


@dataclass(frozen=True)
class Family:
    name: str  # base name: <name>_power_watts and <name>_joules_total
    what: str  # help text subject
    labels: tuple[str, ...]
    max_series: int


def default_families(max_pods: int = 500, top_processes: int = 20) -> dict[str, Family]:
    return {
        "node": Family("keck_node", "this node", ("node",), 1),
        "component": Family("keck_component", "a node component (cpu, dram, gpu, platform, ...)",
                            ("node", "component"), 32),
        "group": Family("keck_group", "a top-level row under the node (they sum to the node)",
                        ("node", "level", "group"), 100),
        "namespace": Family("keck_namespace", "a Kubernetes namespace", ("node", "namespace"), 200),
        "pod": Family("keck_pod", "a pod", ("node", "namespace", "pod"), max_pods),
        "container": Family("keck_container", "a container", ("node", "namespace", "pod", "container"),
                            2 * max_pods),
        "process": Family("keck_process", f"one of the top {top_processes} processes by watts",
                          ("node", "pid", "comm"), top_processes),
        "vm": Family("keck_vm", "a virtual machine on this host", ("node", "vm"), max_pods),
    }


def _clip(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


class MetricsState:
    """Gauges of the latest snapshot and energy counters over all snapshots seen."""

    def __init__(self, families: dict[str, Family] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.families = families or default_families()
        self._wall = wall
        self.snapshot: Snapshot | None = None
        self.gauges: dict[str, dict[tuple[str, ...], float]] = {k: {} for k in self.families}
        self.counters: dict[str, OrderedDict[tuple[str, ...], float]] = {
            k: OrderedDict() for k in self.families}
        self.overflow: dict[str, int] = {k: 0 for k in self.families}  # rows folded into (other)
        # work counters: the latest gauges, and units / basis energy integrated since start
        self.work: dict[tuple[str, ...], dict[str, Any]] = {}
        self.work_units: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self.work_joules: OrderedDict[tuple[str, ...], float] = OrderedDict()
        # hardware counters (the counters source's per_core figures), integrated since start
        self.hw: dict[str, dict[str, float]] = {}  # cpu -> the latest interval's counts
        self.hw_totals: OrderedDict[tuple[str, str], float] = OrderedDict()  # (cpu, event) -> total

    def update(self, snap: Snapshot) -> None:
        raw = _series_of(snap)
        for key, fam in self.families.items():
            series, folded = _bound(raw.get(key, {}), fam)
            self.gauges[key] = series
            self.overflow[key] = folded
            counters = self.counters[key]
            for labels, watts in series.items():
                counters[labels] = counters.get(labels, 0.0) + max(0.0, watts) * snap.interval_s
                counters.move_to_end(labels)
            while len(counters) > 4 * fam.max_series:
                counters.popitem(last=False)
        self.work = _work_of(snap)
        for labels, w in self.work.items():
            for store, add in ((self.work_units, w.get("units")),
                               (self.work_joules, (w.get("watts") or 0.0) * snap.interval_s)):
                store[labels] = store.get(labels, 0.0) + (add if isinstance(add, (int, float)) else 0.0)
                store.move_to_end(labels)
                while len(store) > 4 * MAX_WORK_SERIES:
                    store.popitem(last=False)
        self._update_counters(snap)
        self.snapshot = snap

    def _update_counters(self, snap: Snapshot) -> None:
        self.hw = _hardware_of(snap)
        for cpu, counts in self.hw.items():
            for event, *_ in HW_EVENTS:
                if event in counts:
                    key = (cpu, event)
                    self.hw_totals[key] = self.hw_totals.get(key, 0.0) + counts[event]
                    self.hw_totals.move_to_end(key)
        while len(self.hw_totals) > 2 * len(HW_EVENTS) * MAX_CORE_SERIES:
            self.hw_totals.popitem(last=False)

    def collect(self) -> Iterator[object]:
        snap = self.snapshot
        if snap is None:
            return
        node = _clip(snap.host)
        for key, fam in self.families.items():
            yield _family(GaugeMetricFamily, f"{fam.name}_power_watts",
                          f"Mean power of {fam.what} over the last interval, in watts.",
                          fam.labels, self.gauges[key].items())
            yield _family(CounterMetricFamily, f"{fam.name}_joules",
                          f"Energy of {fam.what} since the agent started, in joules.",
                          fam.labels, self.counters[key].items())
        root = snap.root
        for bound, value in (("lower", root.watts_lo), ("upper", root.watts_hi)):
            yield _family(GaugeMetricFamily, f"keck_node_power_{bound}_bound_watts",
                          f"The {bound} end of the node power's error bound, in watts.", ("node",), [((node,), value)])
        yield _family(GaugeMetricFamily, "keck_source_up", "1 when a power source works, else 0.",
                      ("node", "source", "kind"),
                      [((node, _clip(src.name), _clip(src.kind)), 1.0 if src.ok else 0.0) for src in snap.sources])
        yield _family(GaugeMetricFamily, "keck_source_power_watts", "Power a source reported, in watts.",
                      ("node", "source"),
                      [((node, _clip(src.name)), src.watts) for src in snap.sources if src.watts is not None])
        for name, text, value in (
                ("keck_estimated", "1 when no measured power source exists (all watts estimated).",
                 1.0 if snap.estimated else 0.0),
                ("keck_snapshot_timestamp_seconds", "Unix time of the latest snapshot.", snap.time),
                ("keck_snapshot_interval_seconds", "Measured interval of the latest snapshot.", snap.interval_s),
                ("keck_snapshot_age_seconds", "Seconds since the latest snapshot was taken.",
                 max(0.0, self._wall() - snap.time))):
            yield _family(GaugeMetricFamily, name, text, ("node",), [((node,), value)])
        yield from self._work_families()
        yield from self._counter_families(node)
        yield from _profile_metrics(node, snap.extra.get("profile"))
        yield from _calibration_metrics(node, snap)
        yield _family(GaugeMetricFamily, "keck_series_folded_rows",
                      "Rows summed into an (other) series because a family hit its series cap.",
                      ("node", "family"), [((node, key), float(self.overflow[key])) for key in self.families])

    def _counter_families(self, node: str) -> Iterator[object]:
        """Hardware counters per core and for the node: totals since start (use rate()), IPC of
        the last interval, and how much of it the PMU counted (multiplexing)."""
        if not self.hw_totals:
            return
        for event, word, text in HW_EVENTS:
            per_core = {cpu: v for (cpu, e), v in self.hw_totals.items() if e == event}
            if per_core:
                yield _family(CounterMetricFamily, f"keck_core_{word}", f"{text} on one CPU since the agent "
                              "started (perf_event_open; scaled when multiplexed).", ("node", "cpu"),
                              [((node, cpu), v) for cpu, v in per_core.items()])
                yield _family(CounterMetricFamily, f"keck_node_{word}", f"{text} on all CPUs of this node since "
                              "the agent started.", ("node",), [((node,), math.fsum(per_core.values()))])
        counted = {cpu: c for cpu, c in self.hw.items() if c.get("cycles") and "instructions" in c}
        yield _family(GaugeMetricFamily, "keck_core_instructions_per_cycle",
                      "Instructions per cycle of one CPU over the last interval.", ("node", "cpu"),
                      [((node, cpu), c["instructions"] / c["cycles"]) for cpu, c in counted.items()])
        yield _family(GaugeMetricFamily, "keck_core_counters_running_ratio",
                      "Share of the last interval the PMU counted (below 1: multiplexed, scaled).", ("node", "cpu"),
                      [((node, cpu), c["running_ratio"]) for cpu, c in self.hw.items() if "running_ratio" in c])
        cycles = math.fsum(c["cycles"] for c in counted.values())
        if cycles > 0:
            yield _family(GaugeMetricFamily, "keck_node_instructions_per_cycle",
                          "Instructions per cycle of the node over the last interval.", ("node",),
                          [((node,), math.fsum(c["instructions"] for c in counted.values()) / cycles)])

    def _work_families(self) -> Iterator[object]:
        """Work counters (units/s, J per unit with its bound) and, for any window in PromQL,
        ``increase(keck_work_energy_joules_total) / increase(keck_work_units_total)``."""
        gauges = (("keck_work_units_per_second", "Units of work per second (a work counter's rate).", "rate"),
                  ("keck_work_joules_per_unit", "Joules per unit of work over the last interval.", "j_per_unit"),
                  ("keck_work_joules_per_unit_lower_bound", "Lower bound of joules per unit of work.",
                   "j_per_unit_lo"),
                  ("keck_work_joules_per_unit_upper_bound", "Upper bound of joules per unit of work.",
                   "j_per_unit_hi"))
        for name, text, key in gauges:
            yield _family(GaugeMetricFamily, name, text, WORK_LABELS,
                          [(labels, float(w[key])) for labels, w in self.work.items()
                           if isinstance(w.get(key), (int, float))])
        read = ("ok", "warming up", "waiting", "reset")
        yield _family(GaugeMetricFamily, "keck_work_up", "1 when a work counter was read in the last interval, else 0.",
                      WORK_LABELS, [(labels, 1.0 if w.get("status") in read else 0.0) for labels, w in self.work.items()])
        for name, text, store in (
                ("keck_work_units", "Units of work counted since the agent started.", self.work_units),
                ("keck_work_energy_joules", "Energy of the rows a work counter's units are divided into, "
                                            "since the agent started, in joules.", self.work_joules)):
            yield _family(CounterMetricFamily, name, text, WORK_LABELS, store.items())


def _family(kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, text: str,
            labels: Sequence[str], samples: Iterable[tuple[Sequence[str], float]]) -> object:
    """One metric family of ``kind`` holding ``samples`` (label values, value)."""
    fam = kind(name, text, labels=labels)
    for values, value in samples:
        fam.add_metric(values, value)
    return fam


def _work_of(snap: Snapshot) -> dict[tuple[str, ...], dict[str, Any]]:
    """(node, work, unit, row) → the work figures of every row that carries a ``work`` object."""
    node = _clip(snap.host)
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    stack = [snap.root]
    while stack and len(out) < MAX_WORK_SERIES:
        row = stack.pop()
        stack.extend(row.children)
        obj = row.extra.get("work") if row.extra else None
        if not isinstance(obj, dict):
            continue
        for w in [obj, *(m for m in obj.get("more") or () if isinstance(m, dict))]:
            entries = [w, *(a for a in w.get("also") or () if isinstance(a, dict))]
            for e in entries:
                figures = dict(e)
                figures["watts"] = w.get("watts")  # every unit of a source divides the same energy
                out[(node, _clip(w.get("name")), _clip(e.get("unit")), _clip(row.name))] = figures
    return out


def _hardware_of(snap: Snapshot) -> dict[str, dict[str, float]]:
    """cpu label → this interval's counts, from the counters source's ``per_core`` extra."""
    src = snap.source("counters")
    entries = src.extra.get("per_core") if src is not None and src.ok else None
    out: dict[str, dict[str, float]] = {}
    if not isinstance(entries, list):
        return out
    for e in entries[:MAX_CORE_SERIES]:
        if not isinstance(e, dict) or isinstance(e.get("cpu"), bool) or not isinstance(e.get("cpu"), int):
            continue
        out[str(e["cpu"])] = {k: float(v) for k, v in e.items()
                              if k in ("cycles", "instructions", "llc_misses", "running_ratio")
                              and isinstance(v, (int, float)) and not isinstance(v, bool)
                              and math.isfinite(v) and v >= 0}
    return out


def _profile_metrics(node: str, info: object) -> Iterator[object]:
    """The agent's profile, its own CPU and RSS, its budget and how often it stepped."""
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        return
    yield _family(GaugeMetricFamily, "keck_profile_info", "1 for the profile in force (configured: the one asked for).",
                  ("node", "profile", "configured"),
                  [((node, _clip(info["name"]), _clip(info.get("configured"))), 1.0)])
    for key, name, scale, text in (
            ("cpu_pct", "keck_self_cpu_percent", 1.0, "keck-top's own CPU use, percent of one CPU"),
            ("rss_mib", "keck_self_resident_bytes", 2.0**20, "keck-top's own resident memory, bytes"),
            ("budget_cpu_pct", "keck_budget_cpu_percent", 1.0, "CPU budget, percent of one CPU"),
            ("budget_mem_mib", "keck_budget_resident_bytes", 2.0**20, "Resident memory budget, bytes"),
            ("steps", "keck_profile_steps", 1.0, "Profile steps (down or up) since the agent started")):
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield _family(GaugeMetricFamily, name, text + ".", ("node",), [((node,), float(value) * scale)])


_CALIBRATION_GAUGES = (
    ("samples", "keck_calibration_samples", "Intervals in the attribution model's calibration window."),
    ("rmse_w", "keck_calibration_tracking_error_watts",
     "Out-of-sample RMSE of the calibrated node prediction against the measured CPU power, in watts."),
    ("r2", "keck_calibration_r_squared", "R² of the calibrated model's fit to the measured CPU power."),
    ("recalibrations", "keck_calibration_recalibrations",
     "Refits because the tracking error exceeded the threshold (kept across restarts)."),
    ("last_recalibration", "keck_calibration_last_fit_timestamp_seconds", "Unix time of the fit in use."),
)


def _calibration_metrics(node: str, snap: Snapshot) -> Iterator[object]:
    """The attribution model's self-calibration, when the snapshot carries it."""
    cal = snap.extra.get("calibration")
    if not isinstance(cal, dict):
        return
    model = _clip(cal.get("model") or snap.model)
    yield _family(GaugeMetricFamily, "keck_calibration_calibrated",
                  "1 when the attribution model is calibrated against the measured CPU power, else 0.",
                  ("node", "model"), [((node, model), 1.0 if cal.get("status") == "calibrated" else 0.0)])
    for key, name, text in _CALIBRATION_GAUGES:
        value = cal.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield _family(GaugeMetricFamily, name, text, ("node", "model"), [((node, model), float(value))])


class StateCollector(Collector):
    """Adapter so a :class:`MetricsState` can sit in a prometheus-client registry."""

    def __init__(self, state: MetricsState) -> None:
        self.state = state

    def collect(self) -> Iterable[object]:  # type: ignore[override]
        return list(self.state.collect())


def make_registry(state: MetricsState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state))
    return registry


def _series_of(snap: Snapshot) -> dict[str, dict[tuple[str, ...], float]]:
    """Label tuples → watts for every family, straight from the tree."""
    node = _clip(snap.host)
    root = snap.root
    out: dict[str, dict[tuple[str, ...], float]] = {
        "node": {(node,): root.watts},
        "component": {(node, _clip(k)): float(v) for k, v in (root.components or {}).items()},
        "group": {}, "namespace": {}, "pod": {}, "container": {}, "process": {}, "vm": {},
    }
    for child in root.children:
        key = (node, _clip(child.level), _clip(child.name or child.id))
        out["group"][key] = out["group"].get(key, 0.0) + child.watts

    def add(key: str, labels: tuple[str, ...], watts: float) -> None:
        fam = out[key]
        fam[labels] = fam.get(labels, 0.0) + watts

    def visit(row: Row, ns: str | None, pod: str | None) -> None:
        level = row.level
        if level == "namespace":
            ns = row.namespace or row.name
            add("namespace", (node, _clip(ns)), row.watts)
        elif level == "pod":
            ns = row.namespace or ns or ""
            pod = row.name
            add("pod", (node, _clip(ns), _clip(pod)), row.watts)
        elif level == "container":
            add("container", (node, _clip(row.namespace or ns or ""), _clip(pod or ""), _clip(row.name)),
                row.watts)
        elif level == "vm":
            add("vm", (node, _clip(vm_name_of(row))), row.watts)
        elif level == "process":
            comm = row.name or (row.cmd or "").split(" ")[0]
            if row.pid is not None and comm.endswith(f" ({row.pid})"):
                comm = comm[: -len(f" ({row.pid})")]  # the pid is a label of its own
            add("process", (node, str(row.pid if row.pid is not None else row.id), _clip(comm)), row.watts)
            return  # threads/cores below a process are not exported
        for child in row.children:
            visit(child, ns, pod)

    for child in root.children:
        visit(child, None, None)
    return out


def _bound(series: dict[tuple[str, ...], float], fam: Family) -> tuple[dict[tuple[str, ...], float], int]:
    """Keep the biggest ``max_series - 1`` series; sum the rest into one (other) series."""
    if len(series) <= fam.max_series:
        return series, 0
    ranked = sorted(series.items(), key=lambda kv: (-kv[1], kv[0]))
    keep = dict(ranked[: fam.max_series - 1])
    rest = ranked[fam.max_series - 1:]
    node = ranked[0][0][0]
    other = (node,) + (OTHER,) * (len(fam.labels) - 1)
    keep[other] = keep.get(other, 0.0) + sum(w for _, w in rest)
    return keep, len(rest)
