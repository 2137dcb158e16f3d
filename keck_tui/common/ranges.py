"""The sane range of every number a user gives keck-top (flags, config and fleet files).

A number outside its range is a one-line error (exit 2) where it is read, never
an OverflowError deep in a thread: ``--interval 1e308`` made ``Event.wait``
overflow and killed the collector, ``tdp = 1e308`` gave 4.7e307 W. Ranges are
wide enough for any real machine and fleet and narrow enough that arithmetic on
them stays finite. README.md's "Numbers and their ranges" table is this table
(``tests/test_ranges.py`` checks that they agree, and that every numeric flag of
every command goes through one of these).

Adding a number: give it a row in :data:`RANGES`, read it with
``RANGES[name].check(value, where)`` (config) or ``type=ranged(name)`` (argparse,
in ``keck_tui/commands``), and add the row to the README table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from keck_tui.common.errors import UsageError


class RangeError(UsageError):
    """A number is not a number, not finite, or outside its documented range."""


@dataclass(frozen=True)
class Range:
    """``low ≤ value ≤ high`` (``low < value`` when ``low_open``), optionally whole numbers only."""

    low: float
    high: float
    unit: str = ""
    integer: bool = False
    low_open: bool = False
    what: str = ""  # what the number means, for the README table

    def text(self) -> str:
        """``0.05 – 3600 s``, ``> 0 – 300 s``, ``1 – 10000``."""
        low = f"> {_num(self.low)}" if self.low_open else _num(self.low)
        unit = f" {self.unit}" if self.unit else ""
        return f"{low} – {_num(self.high)}{unit}"

    def kind(self) -> str:
        """``a whole number ≥ 1``, ``a positive number``, ``a non-negative number``."""
        if self.integer:
            return f"a whole number ≥ {_num(self.low)}"
        if self.low_open and self.low == 0 or self.low > 0:
            return "a positive number"
        return "a non-negative number" if self.low == 0 else "a number"

    def check(self, value: Any, where: str) -> Any:
        """``value`` as a float (or int) when it is in range, else :class:`RangeError` naming ``where``."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RangeError(f"{where} must be {self.kind()} ({self.text()}), got {_shown(value)}")
        if self.integer:
            if isinstance(value, float):
                if not value.is_integer():
                    raise RangeError(f"{where} must be {self.kind()} ({self.text()}), got {_shown(value)}")
                value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:  # an int too large for a float
                raise RangeError(f"{where} must be {self.text()}, got a number that large") from None
            if not math.isfinite(value):
                raise RangeError(f"{where} must be a finite number ({self.text()}), got {value}")
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low and value <= 0 and (self.low > 0 or self.low_open):
            raise RangeError(f"{where} must be positive ({self.text()}), got {_shown(value)}")
        if too_low and value < 0 and self.low == 0:
            raise RangeError(f"{where} must be a non-negative number ({self.text()}), got {_shown(value)}")
        if too_low or value > self.high:
            raise RangeError(f"{where} must be {self.text()}, got {_shown(value)}")
        return value

    def parse(self, text: str, where: str) -> Any:
        """A number from command-line text (``check`` after parsing)."""
        text = text.strip()
        try:
            value: Any = int(text, 10) if self.integer else float(text)
        except ValueError:
            if self.integer:
                try:
                    value = float(text)
                except ValueError:
                    value = None
            else:
                value = None
        if value is None:
            raise RangeError(f"{where} is not a number: {_shown(text)}")
        return self.check(value, where)


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x)}"
    return f"{x:g}"


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:40] + "…"


HOUR = 3600.0
WEEK_MINUTES = 7 * 24 * 60.0

#: Every number a user can give, by name (the README table lists them in this order).
RANGES: dict[str, Range] = {
    "interval": Range(0.05, HOUR, "s", what="sampling/refresh interval (--interval, interval)"),
    "idle_watts": Range(0.0, 10_000.0, "W", what="CPU idle baseline (--idle-watts, idle_watts)"),
    "tdp": Range(1.0, 10_000.0, "W", what="CPU watts at full load for the estimate (--tdp, tdp)"),
    "price_per_kwh": Range(0.0, 1000.0, "per kWh",
                           what="price (price_per_kwh, price_schedule, report --price)"),
    "co2e_g_per_kwh": Range(0.0, 5000.0, "g/kWh",
                            what="carbon intensity (co2e_g_per_kwh, price_schedule, report --co2e)"),
    "history_minutes": Range(0.0, WEEK_MINUTES, "min", low_open=True,
                             what="history kept (history_minutes, serve --history-minutes)"),
    "history_max_mb": Range(1.0, 65536.0, "MiB", what="agent history memory cap (serve --history-max-mb)"),
    "budget_cpu": Range(0.0, 10_000.0, "", low_open=True,
                        what="agent CPU budget, percent of one CPU (serve --budget-cpu, [agent] budget_cpu)"),
    "budget_mem": Range(1.0, 1_048_576.0, "MiB", what="agent memory budget (serve --budget-mem, [agent] budget_mem)"),
    "top_processes": Range(1, 10_000, integer=True, what="processes in /metrics (serve --top-processes)"),
    "max_pods": Range(1, 1_000_000, integer=True, what="pod series in /metrics (serve --max-pods)"),
    "redfish_interval": Range(1.0, HOUR, "s", what="BMC poll interval (--redfish-interval, [redfish] interval)"),
    "kubelet_refresh_s": Range(1.0, HOUR, "s", what="kubelet /pods refresh ([kubelet] refresh_s)"),
    "host_power_stale_s": Range(1.0, HOUR, "s", what="a guest's host figure is stale after ([host_power] stale_after_s)"),
    "timeout": Range(0.0, 300.0, "s", low_open=True,
                     what="remote request timeout (attach --timeout, fleet timeout)"),
    "depth": Range(0, 64, integer=True, what="levels fetched below a node (attach --depth)"),
    "iterations": Range(1, 10**9, integer=True, what="tables printed (--batch -n)"),
    "duration": Range(0.0, 1e9, "s", low_open=True, what="recording length (record --duration)"),
    "count": Range(1, 10**12, integer=True, what="snapshots recorded (record --count)"),
    "repeat": Range(1, 10_000, integer=True, what="runs of the command (run --repeat)"),
    "speed": Range(0.5, 16.0, "×", what="replay speed (replay --speed)"),
    "jobs": Range(1, 256, integer=True, what="worker processes (report --jobs)"),
    "seed": Range(0, 2**32 - 1, integer=True, what="demo random seed (demo --seed)"),
    "steps": Range(1, 1_000_000, integer=True, what="demo intervals before printing (demo --steps)"),
    "port": Range(0, 65535, integer=True, what="TCP port (serve --listen HOST:PORT)"),
}
