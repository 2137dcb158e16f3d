"""The collector: samples every source once per interval and attributes.

One collector per node. It owns the stateful parts that attribution (pure)
must not: the idle learner, the model's calibration (and its saved state) and
the session energy ledger.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from keck_tui.attribution.calibration import CalibrationConfig, Calibrator, ModelView
from keck_tui.attribution.components import learned_miss_weight
from keck_tui.attribution.engine import Attribution, AttributionConfig, AttributionInput, attribute
from keck_tui.attribution.estimate import ESTIMATE_RELATIVE_ERROR
from keck_tui.attribution.features import (COUNTERS_PROCESS, MISS_UNIT, ModelFeatures, core_infos,
                                           counter_source, effective_mhz, extract)
from keck_tui.attribution.idle import IdleLearner
from keck_tui.attribution.ledger import EnergyLedger
from keck_tui.attribution.power import NodePower, resolve_node_power
from keck_tui.attribution.selection import ModelChoice, choose_model
from keck_tui.attribution.weights import has_live_frequency
from keck_tui.calibration_store import CalibrationStore, MachineIdentity, machine_identity
from keck_tui.clock import Clock, SystemClock
from keck_tui.hierarchy.types import GroupPath, Grouper
from keck_tui.model import KIND_ESTIMATED, STATUS_OK, Row, Snapshot, SourceStatus
from keck_tui.samplers.counter_share import with_counters
from keck_tui.samplers.perfcounters import PerfCounterSampler, per_core_json
from keck_tui.samplers.sanity import sane_gpu, sane_power
from keck_tui.samplers.types import (ActivitySampler, CounterDelta, CounterReading, CounterSampler, CpuActivity,
                                     FrequencyReading, FrequencySampler, GpuReading, GpuSampler, PowerReading,
                                     PowerSampler, error_activity, safe_sample)

#: the calibration's status where nothing measures the CPU power (a VM): it cannot start
STATUS_UNAVAILABLE = "unavailable"
NO_MEASURED_CPU_POWER = "no measured CPU power to calibrate against (no readable RAPL package)"

if TYPE_CHECKING:  # imported only where work counters are configured or detected
    from keck_tui.work.attach import WorkMonitor


@dataclass
class Collector:
    activity: ActivitySampler
    grouper: Grouper
    host: str
    power: Sequence[PowerSampler] = ()
    gpus: Sequence[GpuSampler] = ()
    frequency: FrequencySampler | None = None
    counters: CounterSampler | None = None  # per-core hardware counters (perf_event_open), shared by time
    config: AttributionConfig = field(default_factory=AttributionConfig)
    clock: Clock = field(default_factory=SystemClock)
    extra_sources: Sequence[SourceStatus] = ()  # e.g. why eBPF is not used
    idle_learner: IdleLearner = field(default_factory=IdleLearner)
    ledger: EnergyLedger = field(default_factory=EnergyLedger)
    work: "WorkMonitor | None" = None  # work counters: J per token/request on matched rows
    primed: bool = False
    # Where calibration is saved so a restart resumes (None: kept in memory only).
    state_dir: Path | None = None
    machine: MachineIdentity | None = None  # default: read from /proc, /sys, /etc
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    save_every_s: float = 300.0

    def __post_init__(self) -> None:
        self._calibrators: dict[str, Calibrator] = {}
        self._store: CalibrationStore | None = None
        self._store_status = "calibration not saved (no state directory)"
        self._saved_at: float | None = None
        self._saved_fits: dict[str, int] = {}
        self._counter_status: SourceStatus | None = None

    # ---- calibration --------------------------------------------------------------------
    def _open_store(self) -> None:
        if self.state_dir is None or self._store is not None:
            return
        self._store = CalibrationStore(Path(self.state_dir), self.machine or machine_identity())
        self._store_status = self._store.load()

    def calibrator(self, name: str) -> Calibrator:
        """The calibrator of model ``name`` ("dram" for the DRAM split), resumed from the saved state."""
        cal = self._calibrators.get(name)
        if cal is None:
            if name == "dram":
                cal = Calibrator("dram", self.calibration, feature_names=("llc_miss",), base_feature=0)
            else:
                cal = Calibrator(name, self.calibration)
            self._open_store()
            saved = self._store.entries.get(name) if self._store is not None else None
            if saved is not None:
                try:
                    cal.load_json(saved)
                except ValueError as exc:
                    self._store_status = f"saved {name} calibration not used: {exc}"
            self._calibrators[name] = cal
        return cal

    def save_calibration(self, force: bool = False) -> str | None:
        """Write the calibration when a fit changed it (at most every ``save_every_s``, or ``force``)."""
        if self.state_dir is None:
            return None
        self._open_store()
        assert self._store is not None
        changed = {n: c for n, c in self._calibrators.items() if c.window and c.fits != self._saved_fits.get(n)}
        now = self.clock.monotonic()
        due = self._saved_at is None or now - self._saved_at >= self.save_every_s
        if not changed or not (force or due):
            return None
        err = self._store.save({n: c.to_json() for n, c in self._calibrators.items() if c.window}, self.clock.wall())
        self._saved_at = now
        if err is None:
            self._saved_fits = {n: c.fits for n, c in self._calibrators.items()}
            self._store_status = f"saved to {self._store.path}"
        else:
            self._store_status = err
        return err

    def wait_for_slow_sources(self, timeout: float) -> None:
        """Give sources that poll on their own (a BMC, the kubelet) up to ``timeout`` s for a first reading."""
        deadline = self.clock.monotonic() + timeout  # one wait for all: they poll in parallel
        waits = [w for w in (getattr(s, "wait_for_first", None) for s in (*self.power, self.grouper)) if w]
        for wait in waits:
            try:
                wait(0)  # start every poller first
            except Exception:  # noqa: BLE001
                pass
        for wait in waits:
            try:
                wait(max(0.0, deadline - self.clock.monotonic()))
            except Exception:  # noqa: BLE001 - its status will say what went wrong
                pass

    def close(self) -> None:
        """Save the calibration; stop background pollers and child processes of samplers and the grouper."""
        try:
            self.save_calibration(force=True)
        except Exception:  # noqa: BLE001 - closing must go on
            pass
        for obj in (self.activity, *self.power, *self.gpus, self.frequency, self.counters, self.grouper, self.work):
            for name in ("stop", "close"):
                fn = getattr(obj, name, None)
                if callable(fn):
                    try:
                        fn()
                    except Exception:  # noqa: BLE001 - closing must go on for the others
                        pass
                    break

    def settle_work(self, timeout: float) -> None:
        """One-shot modes (``--once``): scrape the work counters now and wait (at most
        ``timeout``) for the answers, so that the snapshot that follows has their rates.
        The live loop never calls this: there a slow endpoint only makes its row wait."""
        if self.work is not None:
            self.work.settle(timeout)

    def prime(self) -> None:
        """First read of every counter; the next ``collect()`` measures from here."""
        activity, _power, _gpus, _freq = self._sample_all()
        if self.work is not None:
            try:
                self.work.prime(activity)  # a first scrape now: the first snapshot can have a rate
            except Exception:  # noqa: BLE001 - the first annotate says what is wrong
                pass
        self.primed = True

    def _sample_all(self) -> tuple:
        """One reading from every sampler; one that raised gives its error status instead, and
        power or GPU figures that are no usable number make theirs (samplers/sanity.py)."""
        activity = safe_sample(self.activity, error_activity)
        power = tuple(sane_power(safe_sample(s, PowerReading)) for s in self.power)
        gpus = tuple(sane_gpu(safe_sample(s, GpuReading)) for s in self.gpus)
        freq = safe_sample(self.frequency, FrequencyReading) if self.frequency is not None else None
        return self._counters_of(activity), power, gpus, freq

    def _counters_of(self, activity: CpuActivity) -> CpuActivity:
        """``activity`` with the counter source's core counts and processes' time shares. Where
        the activity sampler measures counters itself (the eBPF probe, at every switch) but
        per-CPU events of our own were opened (wiring could not know yet), those are closed:
        the same PMU counters opened twice would only multiplex."""
        if isinstance(self.counters, PerfCounterSampler) and counted_by_activity(activity):
            counters, self.counters = self.counters, None
            close = getattr(counters, "close", None)
            if callable(close):
                close()
        if self.counters is not None:
            reading = safe_sample(self.counters, CounterReading)
            self._counter_status = reading.source
            return with_counters(activity, reading)
        if counted_by_activity(activity):
            self._counter_status = SourceStatus(
                "counters", STATUS_OK, f"from the {activity.source.name} sampler: per process and core, "
                "read at every context switch", extra={"per_core": per_core_json(
                    {c.cpu: c.counters for c in activity.cores if c.counters is not None})})
        return activity

    def collect(self) -> Snapshot:
        """Sample everything and build the snapshot for the interval since the last call."""
        if not self.primed:
            self.prime()
            self.clock.sleep(0.25)
        if self.work is not None:
            self.work.kick()  # scrapes run beside the sampling, on their own thread
        activity, power, gpus, freq = self._sample_all()
        interval = activity.interval_s if activity.interval_s > 0 else 0.0
        groups: dict[int, GroupPath] = {}
        for p in activity.processes:
            try:
                groups[p.pid] = self.grouper.group_of(p)
            except Exception:  # noqa: BLE001 - a grouper bug must not lose the process
                groups[p.pid] = ()
        # Learn the idle baseline from this interval's (utilisation, measured CPU watts) first,
        # so that even the first snapshot has a baseline.
        node_power = resolve_node_power(power, gpus)
        cpu = node_power.cpu
        capacity = math.fsum(c.total_s for c in activity.cores)
        utilisation = math.fsum(c.busy_s for c in activity.cores) / capacity if capacity > 0 else 0.0
        if cpu is not None and capacity > 0:
            self.idle_learner.add(utilisation, cpu.watts)
        choice, features, view, cal_state = self._model(activity, freq, node_power, utilisation, interval)
        learned = view.idle if view is not None and view.idle is not None else self.idle_learner.estimate()
        inp = AttributionInput(host=self.host, interval_s=interval, activity=activity, power=power,
                               gpus=gpus, frequency=freq, groups=groups, learned_idle=learned,
                               node_power=node_power, choice=choice, features=features, calibration=view)
        result = attribute(inp, self.config)
        root = with_node_counters(self.ledger.apply(result.root, interval), activity)
        sources = [activity.source]
        if freq is not None:
            sources.append(freq.source)
        if self._counter_status is not None:
            sources.append(self._counter_status)
        sources.extend(r.source for r in power)
        sources.extend(r.source for r in gpus)
        sources.extend(self.extra_sources)
        grouper_status = getattr(self.grouper, "status", None)
        if callable(grouper_status):
            status = grouper_status()
            if status is not None:
                sources.append(status)
        warnings = list(result.warnings)
        for reading in power:
            if reading.source.extra.get("fallback") and not reading.source.ok:
                warnings.append(f"{reading.source.name}: {reading.source.detail}")
        if result.cpu.estimated:
            sources.append(self._estimate_status(result))
        dram = result.root.components.get("dram") if result.root.components else None
        memory = self.config.memory
        if result.node_power.dram is None and memory is not None and dram is not None:
            sources.append(SourceStatus(
                name="memory-estimate", status=STATUS_OK, kind=KIND_ESTIMATED, watts=dram,
                detail=f"no DRAM power sensor: DRAM power estimated from the memory size, {memory.why}",
                extra={"source": memory.source, "watts_lo": round(memory.lo, 3), "watts_hi": round(memory.hi, 3)}))
        snap = Snapshot(
            time=self.clock.wall(), interval_s=interval, host=self.host, model=result.model,
            sources=tuple(sources), root=root, idle_policy=self.config.idle,
            estimated=result.estimated, warnings=tuple(warnings),
            extra={"model_reason": result.model_reason, "idle_method": result.idle.method,
                   "idle_watts": _round(result.idle.watts), "model_error": result.model_error,
                   **({"calibration": cal_state} if cal_state is not None else {})},
        )
        if self.work is not None:
            try:
                snap = self.work.annotate(snap, activity)
            except Exception as exc:  # noqa: BLE001 - work counters must not cost the snapshot
                snap = replace(snap, sources=snap.sources + (
                    SourceStatus("work", "error", f"{type(exc).__name__}: {exc}"),))
        return snap


    def _estimate_status(self, result: "Attribution") -> SourceStatus:
        """The estimate's source status: which data entry matched, why, and its bound."""
        util = 100 * result.utilisation
        cpu = result.cpu
        profile = self.config.cpu_profile
        if profile is None:
            return SourceStatus(
                name="estimate", status=STATUS_OK, kind=KIND_ESTIMATED, watts=cpu.watts,
                detail=(f"no CPU power sensor: CPU power estimated from utilisation ({util:.0f} %) with a "
                        f"±{100 * ESTIMATE_RELATIVE_ERROR:.0f} % bound; set --tdp/--idle-watts for this CPU, "
                        "run `keck-top doctor`"))
        pct = 100 * cpu.rel_error
        return SourceStatus(
            name="estimate", status=STATUS_OK, kind=KIND_ESTIMATED, watts=cpu.watts,
            detail=(f"no CPU power sensor: {cpu.watts:.1f} W ±{pct:.0f} % at {util:.0f} % utilisation from "
                    f"{profile.entry} ({profile.method}); run `keck-top doctor` for why"),
            extra={"entry": profile.entry, "method": profile.method, "why": list(profile.why),
                   "data": profile.source, "idle_watts": round(profile.idle_w, 3),
                   "max_watts": round(profile.max_w, 3)})

    def _model(self, activity: CpuActivity, freq: FrequencyReading | None, node_power: NodePower,
               utilisation: float, interval: float
               ) -> tuple[ModelChoice, ModelFeatures | None, ModelView | None, dict[str, Any] | None]:
        """The model, its features, and its calibration against the measured CPU power (observed first)."""
        cpu = node_power.cpu
        infos = core_infos(activity, freq)
        choice = choose_model(self.config.model, live_frequency=has_live_frequency(activity, infos),
                              counters=counter_source(activity), counter_reason=self._counter_reason(),
                              measured_cpu=cpu is not None)
        if interval <= 0:
            return choice, None, None, None
        features = extract(choice.model, activity, infos, interval)
        cal = self.calibrator(choice.model)
        if cpu is not None:
            cal.observe(cpu.watts, features, utilisation, self.clock.wall())
        view = replace(cal.view(features), dram_weight=self._dram_weight(node_power, activity))
        cal_state = cal.state().to_json()
        if cpu is None and not cal.window:
            cal_state.update(status=STATUS_UNAVAILABLE, reason=NO_MEASURED_CPU_POWER)
            view = replace(view, progress=f"not calibrated: {NO_MEASURED_CPU_POWER}")
        cal_state["saved"] = self._store_status
        self.save_calibration()
        return choice, features, view, cal_state

    def _counter_reason(self) -> str | None:
        """Why there are no hardware counters, in the counter source's own words."""
        own = (self._counter_status,) if self._counter_status is not None else ()
        for status in (*own, *self.extra_sources):
            if status.name == "counters" and not status.ok:
                return status.detail or status.status
        return None

    def _dram_weight(self, node_power: NodePower, activity: CpuActivity) -> float | None:
        """The learned fraction of DRAM watts that follows LLC misses (None: not learned)."""
        dram = node_power.dram
        misses = [d.llc_misses for p in activity.processes if p.counters
                  for d in p.counters.values() if d.llc_misses is not None]
        if dram is None or not misses or activity.interval_s <= 0:
            return None
        x = (math.fsum(misses) / activity.interval_s / MISS_UNIT,)
        feats = ModelFeatures("dram", ("llc_miss",), {}, (0.0,), x, None, COUNTERS_PROCESS, {})
        cal = self.calibrator("dram")
        cal.observe(dram.watts, feats, min(1.0, x[0]))  # its "load" is the miss rate (10⁸/s)
        fit = cal.fit_for(None) if cal.calibrated else None
        return learned_miss_weight(fit.coef[0], x[0], dram.watts) if fit else None



def counted_by_activity(activity: CpuActivity) -> bool:
    """Whether the activity sampler itself measured hardware counters (eBPF with a PMU)."""
    return bool(getattr(activity, "per_process_counters", False)) or any(
        c.counters is not None for c in activity.cores)


def with_node_counters(root: Row, activity: CpuActivity) -> Row:
    """The node row with its cores' hardware counts over the interval (unchanged without counters)."""
    deltas = [c.counters for c in activity.cores if c.counters is not None]
    if not deltas:
        return root

    def total(name: str) -> float | None:
        values = [getattr(d, name) for d in deltas if getattr(d, name) is not None]
        return math.fsum(values) if values else None

    insn, cycles = total("instructions"), total("cycles")
    changes: dict[str, object] = {"instructions": insn, "llc_misses": total("llc_misses"),
                                  "ipc": insn / cycles if insn is not None and cycles else None}
    busy = math.fsum(c.busy_s for c in activity.cores if c.counters is not None and c.counters.cycles is not None)
    mhz = effective_mhz(CounterDelta(cycles=cycles), busy)  # the node's cycles ÷ its busy time
    if mhz is not None:
        changes.update(freq_mhz=mhz, freq_nominal=False, freq_source="cycles")
    return replace(root, **changes)  # type: ignore[arg-type]


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else 0.0
