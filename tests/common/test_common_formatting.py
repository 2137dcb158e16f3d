"""keck_tui.common.formatting: one rounding rule for every number keck-top prints."""
from __future__ import annotations

import math

import pytest

from keck_tui.common import formatting as f


@pytest.mark.parametrize("value, text", [
    (0.0, "0.0"), (999.94, "999.9"), (999.95, "1000"), (999.96, "1000"), (9999.4, "9999"), (9999.5, "10.0k"),
    (99949.0, "99.9k"), (99950.0, "100k"), (1.5e6, "1500k"), (-12.34, "-12.3"), (-999.96, "-1000"),
])
def test_watts_ladder_rounds_before_it_picks_a_precision(value, text):
    assert f.fmt_watts(value) == text


@pytest.mark.parametrize("value, text", [
    (0.0, "€0.000"), (0.0994, "€0.099"), (0.0996, "€0.10"), (0.994, "€0.99"), (99.94, "€99.94"),
    (99.996, "€100"), (123456.0, "€123456"), (-0.05, "€-0.050"),
])
def test_money(value, text):
    assert f.fmt_money(value, "€") == text


@pytest.mark.parametrize("value, text, with_unit", [
    (9.94, "9.9", "9.9 g"), (9.96, "10", "10 g"), (9999.4, "9999", "9999 g"), (9999.6, "10.0k", "10.0 kg"),
    (1.2345e6, "1234.5k", "1234.5 kg"),
])
def test_grams(value, text, with_unit):
    assert f.fmt_grams(value) == text and f.fmt_grams(value, unit=True) == with_unit


@pytest.mark.parametrize("joules, text", [
    (3599.4, "3599 J"), (3599.6, "1.00 Wh"), (3600 * 9.996, "10.0 Wh"), (3600 * 999.6, "1.00 kWh"),
    (3.6e9 * 999.6, "1000 MWh"), (-5.0, "-5 J"),
])
def test_energy_steps_up_at_the_rounded_value(joules, text):
    assert f.fmt_energy(joules) == text


def test_percent_util_mhz():
    assert [f.fmt_pct(v) for v in (0, 0.04, 9.94, 9.96, 49.6, 100.0)] == ["0%", "0.0%", "9.9%", "10%", "50%", "100%"]
    assert f.fmt_util(200.04) == "200.0" and f.fmt_mhz(3599.6, True) == "3600*" and f.fmt_mhz(2100.0) == "2100"


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_unknown_values_are_missing(bad):
    assert f.fmt_watts(bad) == f.fmt_energy(bad) == f.fmt_pct(bad) == f.fmt_util(bad) == f.fmt_mhz(bad) == ""
    assert f.fmt_money(bad, "$") == "" and f.fmt_money(bad, "$", missing="—") == "—"
    assert f.fmt_grams(bad, unit=True, missing="—") == "—" and f.fmt_clock(bad) == "—"


def test_durations_ages_and_bounds():
    assert [f.fmt_duration(s) for s in (0, 7.4, 725, 3 * 3600 + 120, -5, math.nan)] == [
        "0m00s", "0m07s", "12m05s", "3h02m00s", "0m00s", "0m00s"]
    assert [f.fmt_age(s) for s in (0.3, 7.4, 119.4, 600, 9000)] == ["<1 s", "7 s", "119 s", "10 min", "2.5 h"]
    assert f.bound_halfwidth(100.0, 95.0, 109.0) == 9.0 and f.fmt_bound(100.0, 100.0, 100.0) == "0.0"
    assert f.per_hour(412.0, 0.30) == pytest.approx(0.1236) and f.per_hour(1.0, None) is None


def test_clock_is_local_time():
    import time
    t = 1_781_532_000.0
    assert f.fmt_clock(t) == time.strftime("%H:%M:%S", time.localtime(t))
    assert f.fmt_clock(t, date=True) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def test_si_figures_keep_three_significant_digits_across_magnitudes():
    from keck_tui.common.formatting import fmt_si

    got = [fmt_si(x, "J") for x in (0.509709, 0.00212, 0.00085, 1300.0, 4.0, 11.64, 0.1, 0.0999, 2.5e6, 0.0)]
    assert got == ["0.51 J", "2.12 mJ", "850 µJ", "1.3 kJ", "4 J", "11.6 J", "0.1 J", "99.9 mJ", "2.5 MJ", "0 J"]
    assert fmt_si(6.862, "W", estimated=True) == "~6.86 W" and fmt_si(0.54, "W") == "0.54 W"
    assert fmt_si(999.96, "J") == "1 kJ" and fmt_si(None, "J", missing="—") == "—"


def test_rates():
    from keck_tui.common.formatting import fmt_rate

    assert [fmt_rate(x) for x in (3.46, 9.96, 412.0, 1234.0, 45_600.0, 1.2e6)] == ["3.5", "10", "412", "1.2k", "46k",
                                                                                "1.2M"]
