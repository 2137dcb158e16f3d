"""keck_tui.common.timeparse: one rule for every time flag (naive ISO 8601 = local time)."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from keck_tui.common.timeparse import TimeParseError, check_unix_time, parse_time


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch):
    """Local time +05:30 (no DST), so local and UTC readings of a naive time differ."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


T = datetime(2026, 6, 15, 14, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("text, expected", [
    ("2026-06-15T14:00Z", T), ("2026-06-15T14:00:00+00:00", T), ("2026-06-15T16:00+02:00", T),
    ("2026-06-15 14:00z", T), (str(T), T), (" 1781532000 ", 1781532000.0), ("0", 0.0), ("-1.5", -1.5),
    ("1e9", 1e9),
])
def test_aware_iso_and_unix_seconds(text, expected):
    assert parse_time(text) == expected


def test_naive_is_local_time(kolkata):
    assert parse_time("2026-06-15T14:00") == T - 5.5 * 3600
    assert parse_time("2026-06-15") == datetime(2026, 6, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))).timestamp()
    assert parse_time("2026-06-15T14:00", tz=timezone.utc) == T  # an explicit zone for naive times


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "yesterday", "", "2026-13-01",
                                  "14:00", "2026-06-15T25:00"])
def test_not_a_time(text):
    with pytest.raises(TimeParseError) as e:
        parse_time(text)
    assert str(e.value) == f"not a unix time or ISO 8601 date: {text.strip()!r}"


@pytest.mark.parametrize("text", ["1e20", "-1e20", "1e308", "253402300800"])  # the last: year 10000
def test_unix_times_no_calendar_holds(text):
    with pytest.raises(TimeParseError, match=r"^not a usable unix time: '.*' \(outside the years 1-9999\)$"):
        parse_time(text)
    with pytest.raises(TimeParseError):
        check_unix_time(float(text))
    assert check_unix_time(1.5) == 1.5


def test_every_time_flag_reads_a_naive_time_the_same_way(kolkata, tmp_path, capsys):
    """demo --start took a naive time as UTC, report --since and replay --at as local time."""
    from keck_tui.cli import main
    from keck_tui.common.errors import UsageError
    from keck_tui.common.timeparse import parse_time_flag

    naive, aware = "2026-06-15T14:00", "2026-06-15T14:00+05:30"
    outs = []
    for start in (naive, aware):
        assert main(["demo", "--once", "--json", "--steps", "1", "--start", start, "--config", "/dev/null"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert parse_time_flag(naive, "--since") == parse_time_flag(aware, "--since") == parse_time(aware)
    assert parse_time_flag(None, "--since") is None
    with pytest.raises(UsageError, match=r"^--until: not a unix time or ISO 8601 date: 'x'$"):
        parse_time_flag("x", "--until")
    for flag in ("nan", "inf"):
        assert main(["report", str(tmp_path / "none.jsonl"), "--since", flag, "--config", "/dev/null"]) == 2
        assert capsys.readouterr().err.count("\n") == 1
