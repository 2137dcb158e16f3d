"""Readings a sampler hands the collector are checked once, whatever the sampler.

A sensor, a BMC or a driver can report ``Infinity``, ``NaN``, ``1e308`` or a negative
power (a bug, a reset, a hostile BMC). Such a domain or device is left out of that
interval and its source says so in one line: it must not become the node's watts,
make the snapshot unencodable (JSON has no Infinity) or a fleet total infinite.
"""
from __future__ import annotations

import math
from dataclasses import replace

from keck_tui.model import MAX_WATTS, STATUS_ERROR
from keck_tui.samplers.types import GpuReading, PowerReading


def usable_watts(value: object) -> bool:
    """A finite power figure, 0 … MAX_WATTS."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0.0 <= value <= MAX_WATTS)


def _usable_accuracy(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def sane_power(reading: PowerReading) -> PowerReading:
    """``reading`` without domains whose watts, joules or accuracy are not usable numbers."""
    bad = [d for d in reading.domains
           if not (usable_watts(d.watts) and _usable_accuracy(d.accuracy)
                   and (d.joules is None or (math.isfinite(d.joules) and d.joules >= 0)))]
    source = reading.source
    if source.watts is not None and not usable_watts(source.watts):
        source = replace(source, watts=None)
    if not bad:
        return reading if source is reading.source else replace(reading, source=source)
    why = ", ".join(f"{d.name} = {d.watts!r} W" for d in bad[:3])
    return PowerReading(replace(source, status=STATUS_ERROR, watts=None,
                                detail=f"reading rejected (not a usable power figure): {why}"),
                        tuple(d for d in reading.domains if d not in bad))


def sane_gpu(reading: GpuReading) -> GpuReading:
    """``reading`` without devices whose watts or accuracy are not usable numbers."""
    bad = [d for d in reading.devices if not (usable_watts(d.watts) and _usable_accuracy(d.accuracy_w))]
    if not bad:
        return reading
    why = ", ".join(f"{d.name} = {d.watts!r} W" for d in bad[:3])
    return GpuReading(replace(reading.source, status=STATUS_ERROR, watts=None,
                              detail=f"reading rejected (not a usable power figure): {why}"),
                      tuple(d for d in reading.devices if d not in bad))
