"""Plain-text range bars and sparklines for the TUI (no textual, no rich).

Kept pure so their text is unit-tested exactly. Numbers are formatted by
:mod:`keck_tui.common.formatting`, the one set every output shares.
"""
from __future__ import annotations

import math
from typing import Sequence

SPARK = "▁▂▃▄▅▆▇█"
BAR_LO, BAR_VALUE, BAR_HI = "█", "▒", "░"


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
