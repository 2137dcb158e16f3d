"""Plain-text formatting of numbers for the TUI (no textual, no rich).

Kept pure so the column text is unit-tested exactly and shared by the tree,
the header and the detail pane.
"""
from __future__ import annotations

import math
from typing import Sequence

SPARK = "▁▂▃▄▅▆▇█"
BAR_LO, BAR_VALUE, BAR_HI = "█", "▒", "░"


def fmt_watts(watts: float | None, estimated: bool = False) -> str:
    """412.3 · 4123 · 12.3k · 123k; ``~`` in front of estimated values."""
    if watts is None or not math.isfinite(watts):
        return ""
    a = abs(watts)
    if a < 999.95:
        text = f"{watts:.1f}"
    elif a < 9999.5:
        text = f"{watts:.0f}"
    elif a < 99950:
        text = f"{watts / 1000:.1f}k"
    else:
        text = f"{watts / 1000:.0f}k"
    return ("~" + text) if estimated else text


def bound_halfwidth(watts: float, lo: float, hi: float) -> float:
    """The ± of a row: the larger distance from the value to either bound."""
    return max(0.0, hi - watts, watts - lo)


def fmt_bound(watts: float, lo: float, hi: float) -> str:
    return fmt_watts(bound_halfwidth(watts, lo, hi))


def fmt_energy(joules: float | None) -> str:
    """Energy with a unit that keeps 3 significant digits: J, Wh, kWh, MWh."""
    if joules is None or not math.isfinite(joules):
        return ""
    if joules < 3600:
        return f"{joules:.0f} J"
    wh = joules / 3600
    for unit, scale in (("Wh", 1.0), ("kWh", 1e3), ("MWh", 1e6)):
        v = wh / scale
        if v < 999.5 or unit == "MWh":
            if v < 9.995:
                return f"{v:.2f} {unit}"
            if v < 99.95:
                return f"{v:.1f} {unit}"
            return f"{v:.0f} {unit}"
    raise AssertionError("unreachable")


def fmt_pct(value: float | None) -> str:
    """49% · 4.6% · 0%; empty when unknown."""
    if value is None or not math.isfinite(value):
        return ""
    if value == 0:
        return "0%"
    if abs(value) < 9.95:
        return f"{value:.1f}%"
    return f"{value:.0f}%"


def fmt_util(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.1f}"


def fmt_mhz(mhz: float | None, nominal: bool | None = False) -> str:
    """3410, or 3600* when the value is the nominal frequency, not a measurement."""
    if mhz is None or not math.isfinite(mhz):
        return ""
    return f"{mhz:.0f}" + ("*" if nominal else "")


def fmt_money(value: float | None, currency: str = "") -> str:
    if value is None or not math.isfinite(value):
        return ""
    if abs(value) < 0.0995:
        return f"{currency}{value:.3f}"
    if abs(value) < 99.95:
        return f"{currency}{value:.2f}"
    return f"{currency}{value:.0f}"


def fmt_grams(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    if abs(value) < 9.95:
        return f"{value:.1f}"
    if abs(value) < 9999.5:
        return f"{value:.0f}"
    return f"{value / 1000:.1f}k"


def fmt_age(seconds: float) -> str:
    """<1 s · 7 s · 12 min · 2.5 h — whole units, so the text (and the screen)
    changes at most once a second while nothing else does."""
    if seconds < 1:
        return "<1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def per_hour(watts: float, per_kwh: float | None) -> float | None:
    """Cost (or grams) per hour of a constant ``watts`` at ``per_kwh``."""
    if per_kwh is None:
        return None
    return watts / 1000.0 * per_kwh


def range_bar(lo: float, value: float, hi: float, scale: float, width: int) -> tuple[int, int, int]:
    """Cell counts (█ up to lo, ▒ up to value, ░ up to hi) on a ``scale``-wide bar.

    Any non-zero range gets at least one shaded cell so small uncertain rows
    are never drawn as if they were exact zeros.
    """
    if width <= 0 or scale <= 0 or not math.isfinite(scale):
        return (0, 0, 0)
    def cells(x: float) -> int:
        return max(0, min(width, int(round(max(0.0, x) / scale * width))))
    c_lo, c_val, c_hi = cells(lo), cells(value), cells(hi)
    c_val = max(c_val, c_lo)
    c_hi = max(c_hi, c_val)
    if value > lo and c_val == c_lo and c_hi < width:
        c_val += 1
        c_hi = max(c_hi, c_val)
    if hi > value and c_hi == c_val and c_hi < width:
        c_hi += 1
    return (c_lo, c_val - c_lo, c_hi - c_val)


def range_bar_text(lo: float, value: float, hi: float, scale: float, width: int) -> str:
    a, b, c = range_bar(lo, value, hi, scale, width)
    return BAR_LO * a + BAR_VALUE * b + BAR_HI * c


def sparkline(values: Sequence[float], width: int, top: float | None = None,
              bottom: float = 0.0) -> str:
    """A one-line sparkline of the last ``width`` values (NaN shows as a space)."""
    vals = list(values)[-width:] if width > 0 else []
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return " " * len(vals)
    hi = max(finite) if top is None else top
    lo = bottom
    span = hi - lo
    out = []
    for v in vals:
        if not math.isfinite(v):
            out.append(" ")
        elif span <= 0:
            out.append(SPARK[0])
        else:
            i = int((v - lo) / span * (len(SPARK) - 1) + 0.5)
            out.append(SPARK[max(0, min(len(SPARK) - 1, i))])
    return "".join(out)
