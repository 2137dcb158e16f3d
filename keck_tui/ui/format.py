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
    # Each end: round(x / scale * width), within 0..width (NaN and negatives are 0, x ≥ scale
    # is the whole bar). Written out three times: this runs for every line on screen.
    c_lo = (width if lo >= scale else round(lo / scale * width)) if lo > 0 else 0
    c_val = (width if value >= scale else round(value / scale * width)) if value > 0 else 0
    c_hi = (width if hi >= scale else round(hi / scale * width)) if hi > 0 else 0
    if c_val < c_lo:
        c_val = c_lo
    if c_hi < c_val:
        c_hi = c_val
    if value > lo and c_val == c_lo and c_hi < width:
        c_val += 1
        if c_hi < c_val:
            c_hi = c_val
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
    isfinite = math.isfinite
    finite = [v for v in vals if isfinite(v)]
    if not finite:
        return " " * len(vals)
    hi = max(finite) if top is None else top
    lo = bottom
    span = hi - lo
    last = len(SPARK) - 1
    if span <= 0:
        return "".join(SPARK[0] if isfinite(v) else " " for v in vals)
    if len(finite) == len(vals):  # the usual case: no gaps
        return "".join([SPARK[0 if i < 0 else (last if i > last else i)]
                        for i in [int((v - lo) / span * last + 0.5) for v in vals]])
    return "".join([SPARK[max(0, min(last, int((v - lo) / span * last + 0.5)))] if isfinite(v) else " "
                    for v in vals])
