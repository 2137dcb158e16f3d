"""Exact text of the TUI's number formats (common.formatting), bars and sparklines."""
from __future__ import annotations

import math

import pytest

from keck_tui.common import formatting as fmt
from keck_tui.ui import format as bars


@pytest.mark.parametrize("watts,est,text", [
    (412.34, False, "412.3"), (0.04, False, "0.0"), (7.25, True, "~7.2"), (999.94, False, "999.9"),
    (999.96, False, "1000"), (4123.4, False, "4123"), (12345.0, False, "12.3k"), (123456.0, False, "123k"),
    (None, False, ""), (math.nan, False, ""),
])
def test_fmt_watts(watts, est, text):
    assert fmt.fmt_watts(watts, est) == text


@pytest.mark.parametrize("joules,text", [
    (0.0, "0 J"), (1920.0, "1920 J"), (3600.0, "1.00 Wh"), (3600 * 56.7, "56.7 Wh"),
    (3600 * 944.0, "944 Wh"), (3600 * 2410.0, "2.41 kWh"), (3.6e6 * 123.0, "123 kWh"),
    (3.6e9 * 2.5, "2.50 MWh"), (3.6e9 * 5000, "5000 MWh"),
])
def test_fmt_energy(joules, text):
    assert fmt.fmt_energy(joules) == text


def test_small_formats():
    assert fmt.fmt_pct(100.0) == "100%" and fmt.fmt_pct(6.94) == "6.9%" and fmt.fmt_pct(0) == "0%"
    assert fmt.fmt_mhz(3599.6, True) == "3600*" and fmt.fmt_mhz(2100, None) == "2100"
    assert fmt.fmt_bound(100.0, 95.0, 109.0) == "9.0"
    assert fmt.per_hour(412.0, 0.30) == pytest.approx(0.1236)
    assert fmt.fmt_money(0.1236, "€") == "€0.12" and fmt.fmt_money(0.012, "$") == "$0.012"
    assert fmt.fmt_grams(96.4) == "96" and fmt.fmt_grams(12345) == "12.3k"
    assert fmt.fmt_age(0.31) == "<1 s" and fmt.fmt_age(5.3) == "5 s" and fmt.fmt_age(12.4) == "12 s" and fmt.fmt_age(600) == "10 min"


def test_range_bar_cells():
    # scale 100 W over 10 cells: lo 40 → 4 █, value 50 → 1 ▒, hi 70 → 2 ░
    assert bars.range_bar_text(40, 50, 70, 100, 10) == "████▒░░"
    # an exact value still shows where it is; an uncertain tiny row gets a shaded cell
    assert bars.range_bar_text(50, 50, 50, 100, 10) == "█████"
    assert bars.range_bar_text(0.1, 0.2, 0.4, 400, 10) == "▒░"
    assert bars.range_bar(0, 0, 0, 0, 10) == (0, 0, 0)
    assert sum(bars.range_bar(90, 120, 300, 100, 10)) == 10  # clipped to the bar


def test_sparkline():
    assert bars.sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert bars.sparkline([1, 2, 3], 2) == "▆█"  # last `width` values
    assert bars.sparkline([5, math.nan, 5], 3, top=10) == "▅ ▅"
    assert bars.sparkline([], 4) == ""


# The bars are written for speed (every line on screen draws both, every second); these
# plain references say what they must draw, and hypothesis compares the two.
def _range_bar_reference(lo, value, hi, scale, width):
    if width <= 0 or scale <= 0 or not math.isfinite(scale):
        return (0, 0, 0)

    def cells(x):
        if x == math.inf:
            return width
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


def _sparkline_reference(values, width, top=None, bottom=0.0):
    vals = list(values)[-width:] if width > 0 else []
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return " " * len(vals)
    hi = max(finite) if top is None else top
    span = hi - bottom
    out = []
    for v in vals:
        if not math.isfinite(v):
            out.append(" ")
        elif span <= 0:
            out.append(bars.SPARK[0])
        else:
            out.append(bars.SPARK[max(0, min(7, int((v - bottom) / span * 7 + 0.5)))])
    return "".join(out)


from hypothesis import given, settings, strategies as st  # noqa: E402

_watts = st.one_of(st.floats(min_value=-50, max_value=5000, allow_nan=False),
                   st.sampled_from([math.nan, math.inf, 0.0, 100.0, 50.0, 25.0]))


@settings(max_examples=400, deadline=None)
@given(_watts, _watts, _watts, st.sampled_from([100.0, 0.5, 7.0, 0.0, -1.0, math.inf, 4000.0]),
       st.integers(min_value=-1, max_value=30))
def test_range_bar_matches_the_reference(lo, value, hi, scale, width):
    assert bars.range_bar(lo, value, hi, scale, width) == _range_bar_reference(lo, value, hi, scale, width)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.floats(min_value=-100, max_value=1000, allow_nan=False),
                          st.just(math.nan)), max_size=20),
       st.integers(min_value=0, max_value=12),
       st.one_of(st.none(), st.floats(min_value=-10, max_value=2000, allow_nan=False)),
       st.floats(min_value=-10, max_value=100, allow_nan=False))
def test_sparkline_matches_the_reference(values, width, top, bottom):
    assert bars.sparkline(values, width, top=top, bottom=bottom) == _sparkline_reference(values, width, top, bottom)
