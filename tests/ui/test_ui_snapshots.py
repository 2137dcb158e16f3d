"""SVG snapshots of the main views (pytest-textual-snapshot).

Regenerate after an intended change with
``.venv/bin/python -m pytest tests/ui/test_ui_snapshots.py --snapshot-update`` and
look at the diff report before committing.
"""
from __future__ import annotations

import fake_fleet as ff
from ui_helpers import make_app

EXPAND_TO_CORES = ("down", "down", "enter", "down", "enter", "down", "enter")


def test_default_view(snap_compare, clock):
    app, _ = make_app(clock)
    assert snap_compare(app, terminal_size=(120, 40))


def test_expanded_pod_process_core(snap_compare, clock):
    app, _ = make_app(clock)
    assert snap_compare(app, terminal_size=(120, 40), press=EXPAND_TO_CORES)


def test_zoomed_with_breadcrumb(snap_compare, clock):
    app, _ = make_app(clock, fleet=True)
    assert snap_compare(app, terminal_size=(120, 40), press=("down", "down", "z", "down", "down", "z"))


def test_filter_active(snap_compare, clock):
    app, _ = make_app(clock)
    assert snap_compare(app, terminal_size=(120, 40), press=("slash", "e", "n", "v", "o", "enter"))


def test_detail_pane_with_history(snap_compare, clock):
    app, _ = make_app(clock, history_points=30)  # one history sample per 20 s

    async def feed_history(pilot):
        for step in range(1, 30):
            clock.advance(20.0)
            app.show_snapshot(ff.snapshot(step, clock=clock))
        await pilot.press(*EXPAND_TO_CORES[:-1])

    assert snap_compare(app, terminal_size=(120, 40), run_before=feed_history)


def test_synthetic_row_explains_itself(snap_compare, clock):
    app, _ = make_app(clock)
    assert snap_compare(app, terminal_size=(120, 40), press=("end", "up"))


def test_help_screen(snap_compare, clock):
    app, _ = make_app(clock)
    assert snap_compare(app, terminal_size=(120, 40), press=("question_mark",))


def test_stale_estimated(snap_compare, clock):
    app, _ = make_app(clock, estimated=True)
    clock.advance(7.0)  # the newest sample is 7.3 s old at a 1 s interval
    assert snap_compare(app, terminal_size=(120, 40))


def test_80x24(snap_compare, clock):
    app, _ = make_app(clock)
    assert snap_compare(app, terminal_size=(80, 24), press=("down", "down", "enter"))


def test_160x50_fleet_with_cost(snap_compare, clock):
    app, _ = make_app(clock, fleet=True)
    assert snap_compare(app, terminal_size=(160, 50), press=("down", "down", "enter", "c"))


def test_threshold_and_light_theme(snap_compare, clock):
    from dataclasses import replace

    from ui_helpers import SETTINGS
    app, _ = make_app(clock, settings=replace(SETTINGS, theme="light"))
    assert snap_compare(app, terminal_size=(120, 40), press=("t",))


def test_no_color_stays_readable(snap_compare, clock, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app(clock, estimated=True)
    assert app.no_color
    clock.advance(7.0)
    assert snap_compare(app, terminal_size=(100, 30), press=("down", "t"))
