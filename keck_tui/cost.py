"""Cost and carbon of power: flat prices or a time-of-day schedule.

Settings (config file, top level)::

    price_per_kwh = 0.25          # currency units per kWh (flat, or outside the schedule)
    currency = "€"
    co2e_g_per_kwh = 350          # grid carbon intensity, grams CO2e per kWh
    price_schedule = [            # optional time-of-day tariff, local wall-clock time
      { from = "00:00", price_per_kwh = 0.18 },
      { from = "07:00", price_per_kwh = 0.30, co2e_g_per_kwh = 420 },
      { from = "22:00", price_per_kwh = 0.18 },
    ]

Each schedule entry applies from its ``from`` time (``HH:MM`` or ``HH:MM:SS``,
24 h, local time of the machine running keck-top — set ``TZ`` to change it)
until the next entry's ``from``; the last entry runs past midnight into the
first. Entries may set ``price_per_kwh``, ``co2e_g_per_kwh`` or both; a value an
entry leaves out is the flat setting. Times must be distinct.

Everything here is a pure function of (watts, unix time, tariff): the TUI's
``c`` columns, the header totals and ``keck-top report`` all use it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Mapping, Sequence

from keck_tui.common.ranges import RANGES, RangeError

J_PER_KWH = 3.6e6
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


class ScheduleError(ValueError):
    """A price schedule entry is unusable (the message names the entry and why)."""


@dataclass(frozen=True)
class Segment:
    """One schedule entry: from ``start_s`` seconds after local midnight."""

    start_s: int
    price_per_kwh: float | None
    co2e_g_per_kwh: float | None


@dataclass(frozen=True)
class Tariff:
    """Prices and carbon intensity over the day. ``None`` values mean unknown."""

    price_per_kwh: float | None = None
    co2e_g_per_kwh: float | None = None
    currency: str = "€"
    segments: tuple[Segment, ...] = ()  # sorted by start_s; empty: flat
    tz: tzinfo | None = None  # None: the local time zone

    @property
    def has_price(self) -> bool:
        return self.price_per_kwh is not None or any(s.price_per_kwh is not None for s in self.segments)

    @property
    def has_co2e(self) -> bool:
        return self.co2e_g_per_kwh is not None or any(s.co2e_g_per_kwh is not None for s in self.segments)

    def rates_at(self, t: float) -> tuple[float | None, float | None]:
        """(price per kWh, g CO2e per kWh) in force at unix time ``t``."""
        if not self.segments:
            return self.price_per_kwh, self.co2e_g_per_kwh
        seg = self.segments[_segment_index(self.segments, _seconds_of_day(t, self.tz))]
        return self._price(seg), self._co2(seg)

    def _price(self, seg: Segment) -> float | None:
        return seg.price_per_kwh if seg.price_per_kwh is not None else self.price_per_kwh

    def _co2(self, seg: Segment) -> float | None:
        return seg.co2e_g_per_kwh if seg.co2e_g_per_kwh is not None else self.co2e_g_per_kwh

    def piece_at(self, t: float) -> tuple[float, float | None, float | None]:
        """``(until, price, co2e)``: the rates at ``t`` and the unix time they end."""
        if not self.segments:
            return math.inf, self.price_per_kwh, self.co2e_g_per_kwh
        i = _segment_index(self.segments, _seconds_of_day(t, self.tz))
        seg = self.segments[i]
        return _next_boundary(t, self.segments, i, self.tz), self._price(seg), self._co2(seg)

    def pieces(self, start: float, end: float) -> list[tuple[float, float, Segment | None]]:
        """Split [start, end) at schedule boundaries: ``(from, to, segment)`` pieces."""
        if end <= start:
            return []
        if not self.segments:
            return [(start, end, None)]
        out = []
        t = start
        while t < end:
            i = _segment_index(self.segments, _seconds_of_day(t, self.tz))
            boundary = _next_boundary(t, self.segments, i, self.tz)
            stop = min(end, boundary)
            out.append((t, stop, self.segments[i]))
            t = stop
        return out

    def integrals(self, start: float, end: float) -> tuple[float | None, float | None]:
        """(∫ price dt, ∫ co2e dt) over [start, end) in (rate × seconds).

        Multiply by watts and divide by ``J_PER_KWH`` for the cost (or grams) of
        a constant power over the interval. ``None`` where the rate is unknown
        for any part of the interval.
        """
        if not self.segments:
            dt = max(0.0, end - start)
            p, c = self.price_per_kwh, self.co2e_g_per_kwh
            return (None if p is None else p * dt), (None if c is None else c * dt)
        price: float | None = 0.0
        co2: float | None = 0.0
        for a, b, seg in self.pieces(start, end):
            assert seg is not None
            p, c = self._price(seg), self._co2(seg)
            price = None if price is None or p is None else price + p * (b - a)
            co2 = None if co2 is None or c is None else co2 + c * (b - a)
        return price, co2


def _seconds_of_day(t: float, tz: tzinfo | None) -> float:
    d = datetime.fromtimestamp(t, tz) if tz is not None else datetime.fromtimestamp(t)
    return d.hour * 3600 + d.minute * 60 + d.second + d.microsecond / 1e6


def _segment_index(segments: Sequence[Segment], sod: float) -> int:
    """The entry in force ``sod`` seconds after midnight (the last one wraps)."""
    idx = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg.start_s <= sod:
            idx = i
        else:
            break
    return idx


def _next_boundary(t: float, segments: Sequence[Segment], i: int, tz: tzinfo | None) -> float:
    """Unix time of the next schedule boundary strictly after ``t``."""
    nxt = segments[(i + 1) % len(segments)].start_s
    d = datetime.fromtimestamp(t, tz) if tz is not None else datetime.fromtimestamp(t)
    midnight = d.replace(hour=0, minute=0, second=0, microsecond=0)
    cand = midnight + timedelta(seconds=nxt)
    if cand.timestamp() <= t:
        # the next boundary is tomorrow (wrap past midnight)
        cand = midnight + timedelta(days=1, seconds=nxt)
    b = cand.timestamp()
    # Guard against DST oddities (a boundary that does not move time forward).
    return b if b > t else t + 60.0


def parse_schedule(entries: Sequence[Mapping[str, Any]], where: str = "price_schedule") -> tuple[Segment, ...]:
    """Validate and sort schedule entries (raises ScheduleError with the reason)."""
    out: list[Segment] = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, Mapping):
            raise ScheduleError(f"{where}: entry {n} is not a table")
        unknown = set(entry) - {"from", "price_per_kwh", "co2e_g_per_kwh"}
        if unknown:
            raise ScheduleError(f"{where}: entry {n}: unknown key {sorted(unknown)[0]!r}")
        frm = entry.get("from")
        m = _TIME.match(frm) if isinstance(frm, str) else None
        if m is None:
            raise ScheduleError(f"{where}: entry {n}: 'from' must be a time like \"07:00\", got {frm!r}")
        start = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
        rates = []
        for key in ("price_per_kwh", "co2e_g_per_kwh"):
            v = entry.get(key)
            if v is not None:
                try:
                    v = RANGES[key].check(v, f"{where}: entry {n}: {key}")
                except RangeError as exc:
                    raise ScheduleError(str(exc)) from None
            rates.append(None if v is None else float(v))
        if rates == [None, None]:
            raise ScheduleError(f"{where}: entry {n} sets neither price_per_kwh nor co2e_g_per_kwh")
        out.append(Segment(start, rates[0], rates[1]))
    out.sort(key=lambda s: s.start_s)
    for a, b in zip(out, out[1:]):
        if a.start_s == b.start_s:
            raise ScheduleError(f"{where}: two entries start at the same time")
    return tuple(out)
