"""Cost and carbon arithmetic, flat and with a time-of-day schedule."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from keck_tui.common.formatting import fmt_grams, fmt_money
from keck_tui.config import ConfigError, Settings, settings_from_mapping, tariff_from_settings
from keck_tui.cost import J_PER_KWH, ScheduleError, Segment, Tariff, parse_schedule

UTC = timezone.utc


# What the report and the TUI work out from a Tariff, written out for checking it
# (the program itself integrates rates over whole recordings: report.Aggregator).
def price_at(tariff: Tariff, t: float) -> float | None:
    return tariff.rates_at(t)[0]


def co2e_at(tariff: Tariff, t: float) -> float | None:
    return tariff.rates_at(t)[1]


def cost_per_hour(watts: float, t: float, tariff: Tariff) -> float | None:
    """Currency per hour of drawing ``watts`` at unix time ``t`` (None: no price)."""
    price = price_at(tariff, t)
    return None if price is None else watts / 1000.0 * price


def co2e_per_hour(watts: float, t: float, tariff: Tariff) -> float | None:
    """Grams CO2e per hour of drawing ``watts`` at unix time ``t`` (None: unknown)."""
    g = co2e_at(tariff, t)
    return None if g is None else watts / 1000.0 * g


def energy_cost(watts: float, start: float, end: float, tariff: Tariff) -> float | None:
    """Cost of a constant ``watts`` from ``start`` to ``end`` (unix s), across schedule boundaries."""
    price, _ = tariff.integrals(start, end)
    return None if price is None else watts * price / J_PER_KWH


def energy_co2e(watts: float, start: float, end: float, tariff: Tariff) -> float | None:
    """Grams CO2e of a constant ``watts`` from ``start`` to ``end``."""
    _, g = tariff.integrals(start, end)
    return None if g is None else watts * g / J_PER_KWH


def joules_cost(joules: float, t: float, tariff: Tariff) -> float | None:
    """Cost of ``joules`` consumed at time ``t`` (short intervals: the rate at t)."""
    price = price_at(tariff, t)
    return None if price is None else joules / J_PER_KWH * price


def at(hh: int, mm: int = 0, ss: int = 0, day: int = 14) -> float:
    return datetime(2023, 11, day, hh, mm, ss, tzinfo=UTC).timestamp()


SCHEDULE = [{"from": "07:00", "price_per_kwh": 0.30, "co2e_g_per_kwh": 400},
            {"from": "22:00", "price_per_kwh": 0.10},
            {"from": "12:30", "price_per_kwh": 0.20}]


def tariff(**kw) -> Tariff:
    return Tariff(price_per_kwh=kw.pop("price", 0.25), co2e_g_per_kwh=kw.pop("co2", 300.0),
                  currency="$", segments=parse_schedule(SCHEDULE), tz=UTC, **kw)


def test_flat_rates() -> None:
    t = Tariff(price_per_kwh=0.25, co2e_g_per_kwh=300.0)
    assert cost_per_hour(200.0, at(3), t) == pytest.approx(0.05)  # 0.2 kW × 0.25
    assert co2e_per_hour(200.0, at(3), t) == pytest.approx(60.0)
    # 1 kW for 2 h = 2 kWh
    assert energy_cost(1000.0, at(1), at(3), t) == pytest.approx(0.50)
    assert energy_co2e(1000.0, at(1), at(3), t) == pytest.approx(600.0)
    assert joules_cost(3.6e6, at(1), t) == pytest.approx(0.25)
    unknown = Tariff()
    assert cost_per_hour(100.0, at(1), unknown) is None
    assert energy_co2e(100.0, at(1), at(2), unknown) is None
    assert not unknown.has_price and not unknown.has_co2e


def test_schedule_is_sorted_and_wraps_past_midnight() -> None:
    t = tariff()
    assert [s.start_s for s in t.segments] == [7 * 3600, 12 * 3600 + 1800, 22 * 3600]
    assert price_at(t, at(6, 59, 59)) == 0.10  # before the first entry: the last one (22:00) runs on
    assert price_at(t, at(7)) == 0.30
    assert price_at(t, at(12, 29)) == 0.30
    assert price_at(t, at(12, 30)) == 0.20
    assert price_at(t, at(23, 59)) == 0.10
    # co2e only set on the 07:00 entry; other entries fall back to the flat value
    assert co2e_at(t, at(8)) == 400 and co2e_at(t, at(13)) == 300.0
    assert cost_per_hour(500.0, at(8), t) == pytest.approx(0.15)


def test_energy_cost_splits_at_boundaries() -> None:
    t = tariff()
    # 1 kW from 06:30 to 07:30: half an hour at 0.10 and half at 0.30.
    assert energy_cost(1000.0, at(6, 30), at(7, 30), t) == pytest.approx(0.05 + 0.15)
    assert energy_co2e(1000.0, at(6, 30), at(7, 30), t) == pytest.approx(150 + 200)
    # 2 kW from 21:00 to 08:00 next day: 1 h@0.20, 9 h@0.10, 1 h@0.30
    cost = energy_cost(2000.0, at(21), at(8, day=15), t)
    assert cost == pytest.approx(2 * (0.20 + 0.9 + 0.30))
    # A whole day at 1 kW: 7+1.5 h... = 0.1×9 + 0.3×5.5 + 0.2×9.5
    assert energy_cost(1000.0, at(0), at(0, day=15), t) == pytest.approx(0.9 + 1.65 + 1.9)
    pieces = t.pieces(at(6, 30), at(7, 30))
    assert [(a, b) for a, b, _ in pieces] == [(at(6, 30), at(7)), (at(7), at(7, 30))]
    assert energy_cost(1000.0, at(5), at(5), t) == 0.0


def test_piece_at() -> None:
    t = tariff()
    assert t.piece_at(at(8)) == (at(12, 30), 0.30, 400)
    assert t.piece_at(at(23)) == (at(7, day=15), 0.10, 300.0)
    assert Tariff(price_per_kwh=1.0).piece_at(at(1))[1:] == (1.0, None)


def test_schedule_in_a_dst_zone() -> None:
    """Europe/Berlin 2023-10-29: 03:00 CEST → 02:00 CET, a 25-hour day."""
    tz = ZoneInfo("Europe/Berlin")
    t = Tariff(segments=parse_schedule([{"from": "00:00", "price_per_kwh": 1.0},
                                        {"from": "12:00", "price_per_kwh": 2.0}]), tz=tz)
    start = datetime(2023, 10, 29, 0, 0, tzinfo=tz).timestamp()
    end = datetime(2023, 10, 30, 0, 0, tzinfo=tz).timestamp()
    assert end - start == 25 * 3600
    # 13 h at 1.0 (the extra hour is in the morning) + 12 h at 2.0, at 1 kW
    assert energy_cost(1000.0, start, end, t) == pytest.approx(13 + 24)


def test_missing_price_in_part_of_the_interval_is_unknown() -> None:
    t = Tariff(co2e_g_per_kwh=100.0,
               segments=parse_schedule([{"from": "00:00", "co2e_g_per_kwh": 50},
                                        {"from": "12:00", "price_per_kwh": 0.4}]), tz=UTC)
    assert price_at(t, at(1)) is None
    assert energy_cost(1000.0, at(11), at(13), t) is None
    assert energy_cost(1000.0, at(12), at(13), t) == pytest.approx(0.4)
    assert energy_co2e(1000.0, at(11), at(13), t) == pytest.approx(50 + 100)


@pytest.mark.parametrize("entries, message", [
    ([{"from": "7am", "price_per_kwh": 1}], "must be a time like"),
    ([{"from": "24:00", "price_per_kwh": 1}], "must be a time like"),
    ([{"from": "07:00"}], "sets neither"),
    ([{"from": "07:00", "price_per_kwh": -1}], "non-negative"),
    ([{"from": "07:00", "price_per_kwh": True}], "non-negative"),
    ([{"from": "07:00", "price": 1}], "unknown key 'price'"),
    ([{"from": "07:00", "price_per_kwh": 1}, {"from": "7:00", "price_per_kwh": 2}], "same time"),
    (["07:00"], "not a table"),
])
def test_bad_schedules(entries, message) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(entries)
    # the config file reports the same reason as its own error (one line, exit 2 on the command line)
    reason = message if all(isinstance(e, dict) for e in entries) else "must be a list of tables"
    with pytest.raises(ConfigError, match=f"config: price_schedule.*{reason}"):
        settings_from_mapping({"price_schedule": entries})


def test_settings_to_tariff() -> None:
    s = settings_from_mapping({"price_per_kwh": 0.2, "co2e_g_per_kwh": 250, "currency": "£",
                               "price_schedule": [{"from": "06:00:30", "price_per_kwh": 0.3}]})
    t = tariff_from_settings(s, tz=UTC)
    assert t.currency == "£" and t.segments == (Segment(6 * 3600 + 30, 0.3, None),)
    assert price_at(t, at(6, 0, 30)) == 0.3 and co2e_at(t, at(1)) == 250
    assert tariff_from_settings(Settings()).has_price is False


def test_formatting() -> None:
    # One money and grams formatter for the TUI and report (common.formatting); report's own
    # copy showed €0.0123 where the TUI showed €0.012, and 2.50 kg where the TUI showed 2.5k.
    assert fmt_money(0.012345, "€") == "€0.012"
    assert fmt_money(12.345, "$") == "$12.35"  # 12.345 is 12.3450000000000006 in binary
    assert fmt_money(1234.5, "$") == "$1234"
    assert fmt_money(None, "$", missing="—") == "—"
    assert fmt_grams(12.34, unit=True) == "12 g" and fmt_grams(2500, unit=True) == "2500 g"
    assert fmt_grams(12500, unit=True) == "12.5 kg" and fmt_grams(9.94, unit=True) == "9.9 g"
