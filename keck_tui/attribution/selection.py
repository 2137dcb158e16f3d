"""Which attribution model runs, and why: never a silent fallback.

``auto`` picks ``full`` when hardware counters and a measured CPU power (to learn
its coefficients against) both exist; otherwise ``frequency-weighted`` where live
per-core frequency exists, else ``cpu-time``; the reason names what is missing
(the counter source's own reason, or that no CPU power is measured). Asking for
a model the node cannot run gives the next best one and a warning saying why.
"""
from __future__ import annotations

from dataclasses import dataclass

from keck_tui.attribution.features import (COUNTERS_CORE, COUNTERS_NONE, MODEL_CPU_TIME, MODEL_FREQ, MODEL_FULL,
                                           MODELS)

AUTO = "auto"
NO_MEASURED_CPU = "to learn its coefficients against: no readable RAPL package"


@dataclass(frozen=True)
class ModelChoice:
    model: str
    reason: str
    warnings: tuple[str, ...] = ()


def _counters_text(counters: str) -> str:
    return "per-core hardware counters, shared by on-CPU time" if counters == COUNTERS_CORE \
        else "per-process hardware counters"


def choose_model(requested: str, *, live_frequency: bool, counters: str = COUNTERS_NONE,
                 counter_reason: str | None = None, measured_cpu: bool = False) -> ModelChoice:
    """The model to run for ``requested`` (auto | cpu-time | frequency-weighted | full)."""
    simple = MODEL_FREQ if live_frequency else MODEL_CPU_TIME
    simple_why = "live per-core frequency available" if live_frequency else "no live per-core frequency (nominal only)"
    if counters == COUNTERS_NONE:
        missing = f"hardware counters ({counter_reason or 'no counter source'})"
    else:
        missing = f"a measured CPU power ({NO_MEASURED_CPU})"
    can_run = counters != COUNTERS_NONE and measured_cpu
    if requested == AUTO:
        if can_run:
            return ModelChoice(MODEL_FULL, f"auto: {_counters_text(counters)} and a measured CPU power")
        return ModelChoice(simple, f"auto: full needs {missing}; {simple_why}")
    if requested == MODEL_FULL:
        if can_run:
            return ModelChoice(MODEL_FULL, f"requested; {_counters_text(counters)}")
        return ModelChoice(MODEL_FREQ, f"full requested; it needs {missing}",
                           (f"model 'full' needs {missing}; using {MODEL_FREQ}",))
    if requested == MODEL_FREQ and not live_frequency:
        return ModelChoice(MODEL_FREQ, "requested; no live frequency, so it equals cpu-time")
    if requested not in MODELS:
        return ModelChoice(simple, f"unknown model {requested!r}; {simple_why}", (f"unknown model {requested!r}",))
    return ModelChoice(requested, "requested")
