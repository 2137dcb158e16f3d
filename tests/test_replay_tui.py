"""Pilot tests of the replay timeline: keys move the timeline and the screen follows."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("textual")

from keck_tui.clock import FakeClock
from keck_tui.config import Settings
from keck_tui.recording import RecordingWriter
from keck_tui.replay import RecordingIndex, ReplayFeed
from keck_tui.ui.replay import ReplayApp, timeline_text
from record_helpers import T0, snapshot

N = 200  # 200 one-second snapshots: scale 1,2,3,... → node 100/200/300 W
SIZE = (140, 36)


def make(tmp_path: Path, playing: bool = False) -> tuple[ReplayApp, ReplayFeed, FakeClock]:
    path = tmp_path / "r.jsonl.zst"
    with RecordingWriter(path) as w:
        for i in range(N):
            w.write(snapshot(i))
    clock = FakeClock(now=0.0)
    feed = ReplayFeed(RecordingIndex(path), clock=clock, playing=playing)
    return ReplayApp(feed, settings=Settings(), title="replay r", clock=clock), feed, clock


def shown(app: ReplayApp) -> float:
    assert app.snapshot is not None
    return app.snapshot.time


async def test_step_and_seek_keys(tmp_path: Path) -> None:
    app, feed, _ = make(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert shown(app) == T0 + 1 and app.paused
        await pilot.press("full_stop", "full_stop")
        assert shown(app) == T0 + 3
        await pilot.press("comma")
        assert shown(app) == T0 + 2
        await pilot.press("right_square_bracket")  # +60 s
        assert shown(app) == T0 + 62
        await pilot.press("left_square_bracket")
        assert shown(app) == T0 + 2
        await pilot.press("end")
        assert shown(app) == T0 + N and feed.current_index() == N - 1
        await pilot.press("home")
        assert shown(app) == T0 + 1
        await pilot.press("right_curly_bracket")  # a tenth of 199 s
        assert feed.current_index() == 19
        # the tree shows the replayed snapshot's numbers (scale 1 + i % 3)
        assert app.view.root is not None and app.view.root.watts == 100.0 * (1 + 19 % 3)


async def test_play_pause_and_speed(tmp_path: Path) -> None:
    app, feed, clock = make(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("space")
        assert feed.playing and not app.paused
        await pilot.press("plus", "plus")  # ×4
        assert feed.speed == 4.0
        clock.advance(5.0)  # 20 recording seconds
        app.tick()
        await pilot.pause()
        assert feed.current_index() == 20 and shown(app) == T0 + 21
        await pilot.press("minus", "minus", "minus", "minus")
        assert feed.speed == 0.5
        await pilot.press("greater_than_sign")
        assert feed.speed == 1.0
        await pilot.press("p")
        assert not feed.playing and app.paused
        clock.advance(30.0)
        app.tick()
        assert shown(app) == T0 + 21


async def test_header_and_timeline_text(tmp_path: Path) -> None:
    app, feed, _ = make(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("full_stop")
        text = timeline_text(feed, 20).plain
        assert text.startswith(" ⏸ ×1  ") and "2/200" in text
        assert app.header_state().age == 0.0 and not app.header_state().stale
        await pilot.press("r")  # recording a recording: refused with a message, no crash
        assert not app.recording


async def test_seeking_back_restarts_history(tmp_path: Path) -> None:
    app, feed, _ = make(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        before = app.history
        await pilot.press("home")
        assert app.history is not before
