"""Every number a user gives has a documented range; out of range is one line and exit 2 (issue 12).

The checks are over the class, not examples: every numeric flag of every command
is found by walking the parsers, and every numeric config key by walking the
config schema; README's table must be the table in keck_tui/common/ranges.py.
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keck_tui.cli import build_parser, main
from keck_tui.commands.base import ranged
from keck_tui.common.ranges import RANGES, Range, RangeError
from keck_tui.config import _FLOAT_KEYS, _SECTION_KEYS, ConfigError, settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_NUMBERS = ("1e308", "-1e308", "inf", "-inf", "nan", "1e400", "9" * 400, "abc", "")


def _parsers() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """(argv prefix, parser) for keck-top itself and every subcommand."""
    top = build_parser()
    out: list[tuple[list[str], argparse.ArgumentParser]] = [([], top)]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.extend(([name], p) for name, p in action.choices.items())
    return out


def _numeric_flags() -> list[tuple[list[str], str, argparse.Action]]:
    flags = []
    for prefix, parser in _parsers():
        for action in parser._actions:
            if action.option_strings and action.type is not None and action.type not in (str, Path):
                flags.append((prefix, action.option_strings[-1], action))
    return flags


def test_every_numeric_flag_has_a_range() -> None:
    flags = _numeric_flags()
    assert len(flags) >= 20  # the walk finds them (interval, tdp, timeout, depth, -n, …)
    for prefix, flag, action in flags:
        assert isinstance(action.type, ranged), f"keck-top {' '.join(prefix)} {flag}: type {action.type!r} has no range"
        assert action.type.range.text() in (action.help or ""), f"{flag}: --help does not show its range"


@pytest.mark.parametrize("prefix, flag", [(p, f) for p, f, _ in _numeric_flags()],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_hostile_numbers_on_every_numeric_flag_are_one_line_and_exit_2(prefix, flag, capsys) -> None:
    for value in HOSTILE_NUMBERS:
        assert main([*prefix, f"{flag}={value}"]) == 2, (prefix, flag, value)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err
        assert flag in err, err


@pytest.mark.parametrize("name", list(RANGES))
def test_each_range_refuses_its_edges_and_accepts_its_inside(name: str) -> None:
    r = RANGES[name]
    assert r.check(r.high, "x") == r.high
    if not r.low_open:
        assert r.check(r.low, "x") == r.low
    with pytest.raises(RangeError):
        r.check(r.high * 2 + 1, "x")
    with pytest.raises(RangeError):
        r.check(r.low - 1 if not r.low_open else r.low, "x")
    for bad in (math.inf, -math.inf, math.nan, True, "1", None, 10**400):
        with pytest.raises(RangeError) as exc:
            r.check(bad, "where")
        assert str(exc.value).startswith("where ") and "\n" not in str(exc.value)
    if r.integer:
        with pytest.raises(RangeError, match="whole number"):
            r.check(r.low + 0.5, "x")


def test_range_arithmetic_stays_finite() -> None:
    """The bound that mattered: products of the largest values a user can give stay finite."""
    biggest = {k: r.high for k, r in RANGES.items()}
    assert math.isfinite(biggest["tdp"] * biggest["interval"] * biggest["price_per_kwh"] * 1e6)
    assert biggest["interval"] < threading_timeout_max()


def threading_timeout_max() -> float:
    import threading
    return threading.TIMEOUT_MAX


def test_readme_table_is_the_ranges_table() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Numbers and their ranges", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.M)
    rows = [r for r in rows if r != ("number", "range") and not set(r[0]) <= {"-"}]
    assert rows == [(r.what, r.text()) for r in RANGES.values()]


def _config_numbers() -> list[tuple[str, str | None, str]]:
    """(key, section or None, range name) of every numeric config key."""
    keys = [(k, None, k) for k in sorted(_FLOAT_KEYS)]
    for section, schema in _SECTION_KEYS.items():
        keys += [(k, section, kind) for k, kind in schema.items() if kind not in ("str", "bool")]
    return keys


def test_every_numeric_config_key_has_a_range() -> None:
    keys = _config_numbers()
    assert len(keys) >= 12
    for key, section, kind in keys:
        assert kind in RANGES, (section, key)


@pytest.mark.parametrize("key, section, kind", _config_numbers(), ids=lambda v: str(v))
def test_hostile_numbers_in_every_numeric_config_key(key, section, kind) -> None:
    r: Range = RANGES[kind]
    for value in (1e308, -1e308, math.inf, math.nan, r.high * 10 + 1, "x", True):
        data = {section: {key: value}} if section else {key: value}
        with pytest.raises(ConfigError) as exc:
            settings_from_mapping(data, where="c.toml")
        assert "\n" not in str(exc.value) and key in str(exc.value)
    data = {section: {key: r.high}} if section else {key: r.high}
    settings_from_mapping(data, where="c.toml")  # the edge itself is fine


def test_price_schedule_rates_have_the_same_ranges() -> None:
    for key in ("price_per_kwh", "co2e_g_per_kwh"):
        with pytest.raises(ConfigError, match=key):
            settings_from_mapping({"price_schedule": [{"from": "07:00", key: 1e308}]})


def test_interval_1e308_under_serve_is_exit_2_not_a_dead_collector(tmp_path) -> None:
    """QA: `serve --interval 1e308` started, its collector thread died of OverflowError and
    /healthz said "starting" forever."""
    r = subprocess.run([sys.executable, "-m", "keck_tui", "serve", "--interval", "1e308", "--config", "/dev/null"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--interval" in r.stderr, r.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("tdp = 1e308\n")
    r = subprocess.run([sys.executable, "-m", "keck_tui", "--once", "--json", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "tdp must be 1 – 10000 W, got 1e+308" in r.stderr, r.stderr


@pytest.mark.parametrize("where", ["top", "cluster"])
def test_fleet_file_timeout_1e308_is_a_one_line_error(tmp_path, where) -> None:
    """QA: a fleet `timeout = 1e308` passed as "positive" and overflowed the request timeout."""
    from keck_tui.sources.fleet import FleetError, load_fleet

    top = "timeout = 1e308\n" if where == "top" else ""
    cluster = "timeout = 1e308\n" if where == "cluster" else ""
    f = tmp_path / "fleet.toml"
    f.write_text(f'{top}[clusters.a]\nagents = ["http://127.0.0.1:1"]\n{cluster}')
    with pytest.raises(FleetError) as exc:
        load_fleet(f)
    assert "timeout must be > 0 – 300 s, got 1e+308" in str(exc.value) and "\n" not in str(exc.value)
