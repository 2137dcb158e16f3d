"""Work over a window: units counted and the energy they were divided into, per source.

Fed the ``work`` objects of successive snapshots (a recording's lines, a run's
intervals). Units are the counter's increase consumed by each snapshot (each scrape
exactly once, see :mod:`keck_tui.work.rate`), energy is the basis rows' watts × the
snapshot's interval, so joules per unit over the window is Σ energy ÷ Σ units — not a
mean of per-interval ratios, which would weigh idle and busy intervals alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from keck_tui.cost import J_PER_KWH


@dataclass
class WorkTotal:
    name: str  # the work source (a [[work]] name, or the server kind)
    unit: str
    row: str  # the row that carried it (a process name without its PID, a pod)
    units: float = 0.0
    joules: float = 0.0
    joules_lo: float = 0.0
    joules_hi: float = 0.0
    seconds: float = 0.0  # of snapshots in which it was there
    cost: float | None = 0.0  # of the energy, at the tariff in force
    co2e_g: float | None = 0.0
    intervals: int = 0
    failed: int = 0  # intervals whose counter could not be read (error, missing, unavailable)

    def add(self, other: "WorkTotal") -> None:
        for k in ("units", "joules", "joules_lo", "joules_hi", "seconds", "intervals", "failed"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        self.co2e_g = None if self.co2e_g is None or other.co2e_g is None else self.co2e_g + other.co2e_g

    def to_json(self) -> dict[str, Any]:
        per = (lambda x: x / self.units) if self.units > 0 else (lambda x: None)  # noqa: E731
        return {
            "work": self.name, "unit": self.unit, "row": self.row,
            "units": self.units, "units_per_s": self.units / self.seconds if self.seconds > 0 else None,
            "energy_j": self.joules, "energy_j_lo": self.joules_lo, "energy_j_hi": self.joules_hi,
            "j_per_unit": per(self.joules), "j_per_unit_lo": per(self.joules_lo),
            "j_per_unit_hi": per(self.joules_hi),
            "cost_per_m": (self.cost / self.units * 1e6) if self.cost is not None and self.units > 0 else None,
            "co2e_g_per_m": (self.co2e_g / self.units * 1e6) if self.co2e_g is not None and self.units > 0 else None,
            "seconds": self.seconds, "intervals": self.intervals, "failed_intervals": self.failed,
        }


def row_label(name: str, pid: Any) -> str:
    """``python3`` for ``python3 (1234)``: a restarted server stays one line."""
    if pid is not None and name.endswith(f" ({pid})"):
        return name[: -len(f" ({pid})")]
    return name


def work_objects(root: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(row label, work object) of every row of a snapshot's JSON tree that carries one."""
    stack = [root]
    while stack:
        row = stack.pop()
        if not isinstance(row, Mapping):
            continue
        children = row.get("children")
        if isinstance(children, list):
            stack.extend(children)
        obj = row.get("work")
        if isinstance(obj, Mapping):
            label = row_label(str(row.get("name", "")), row.get("pid"))
            yield label, obj
            for more in obj.get("more") or ():
                if isinstance(more, Mapping):
                    yield label, more


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else 0.0


class WorkTotals:
    """Per (source, unit, row): see the module docstring."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str, str], WorkTotal] = {}

    def add(self, dt: float, objects: Iterable[tuple[str, Mapping[str, Any]]], *, share: float = 1.0,
            price_s: float | None = None, co2_s: float | None = None) -> None:
        """One snapshot: ``dt`` seconds counted (``share`` of its interval, a window's edge
        cutting it); ``price_s``/``co2_s``: ∫rate dt over those seconds (None: unknown)."""
        for label, obj in objects:
            watts, lo, hi = _num(obj.get("watts")), _num(obj.get("watts_lo")), _num(obj.get("watts_hi"))
            for e in [obj, *(a for a in obj.get("also") or () if isinstance(a, Mapping))]:
                key = (str(obj.get("name", "")), str(e.get("unit", "")), label)
                total = self.totals.get(key)
                if total is None:
                    total = self.totals[key] = WorkTotal(*key)
                total.units += _num(e.get("units")) * share
                total.joules += watts * dt
                total.joules_lo += lo * dt
                total.joules_hi += hi * dt
                total.seconds += dt
                total.intervals += 1
                if e.get("status") in ("error", "unavailable"):
                    total.failed += 1
                total.cost = None if total.cost is None or price_s is None else total.cost + watts * price_s / J_PER_KWH
                total.co2e_g = None if total.co2e_g is None or co2_s is None else total.co2e_g + watts * co2_s / J_PER_KWH

    def merge(self, other: "WorkTotals") -> None:
        for key, total in other.totals.items():
            mine = self.totals.get(key)
            if mine is None:
                self.totals[key] = total
            else:
                mine.add(total)

    def results(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in sorted(self.totals.values(), key=lambda t: (-t.joules, t.name, t.unit))]
