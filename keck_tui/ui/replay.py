"""The replay timeline: KeckApp over a ReplayFeed, with play/pause, step, seek and speed.

Keys (besides the live view's): space or p play/pause · ``.``/``,`` step one
snapshot · ``]``/``[`` one minute forward/back · ``}``/``{`` a tenth of the
recording · Home/End first/last · ``+``/``-`` (or ``>``/``<``) speed ×0.5–×16.
The header shows the recorded snapshot's own time, so a replay is never "stale".
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widget import Widget

from keck_tui.clock import Clock
from keck_tui.config import Settings
from keck_tui.replay import ReplayFeed
from keck_tui.ui.app import KeckApp, run_app
from keck_tui.ui.header import HeaderState
from keck_tui.ui.history import History
from keck_tui.ui.widgets import TextPanel

TICK_S = 0.1
SEEK_S = 60.0
BAR_WIDTH = 40


def timeline_text(feed: ReplayFeed, width: int = BAR_WIDTH) -> Text:
    """``▶ ×2  [█████░░░░░]  1234/86400  2023-11-14 22:13:20  (3 skipped)``."""
    index = feed.index
    i = feed.current_index()
    n = len(index)
    frac = 0.0 if n <= 1 else i / (n - 1)
    filled = int(round(frac * width))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" ▶ " if feed.playing else " ⏸ ", "bold")
    text.append(f"×{feed.speed:g}  ", "bold")
    text.append("█" * filled)
    text.append("░" * (width - filled), "dim")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(index.time_at(i)))
    text.append(f"  {i + 1}/{n}  {stamp}")
    if index.stats.skipped:
        text.append(f"  ({index.stats.skipped} skipped)", "bold")
    text.append("   space play/pause · ,. step · [] ±1 min · Home/End · +- speed", "dim")
    return text


class TimelineBar(TextPanel):
    DEFAULT_CSS = "TimelineBar { height: 1; background: $panel; }"

    def show(self, feed: ReplayFeed) -> None:
        width = max(10, min(BAR_WIDTH, (self.size.width or 120) // 4))
        self.show_lines([timeline_text(feed, width)])


class ReplayApp(KeckApp):
    """The live view's app, fed by a recording's timeline instead of a collector."""

    BINDINGS = [
        Binding("space", "pause", "play/pause", priority=True),
        Binding("full_stop", "step(1)", "step", key_display="."),
        Binding("comma", "step(-1)", "back", key_display=",", show=False),
        Binding("right_square_bracket", "seek(60)", "+1 min", key_display="]"),
        Binding("left_square_bracket", "seek(-60)", "-1 min", key_display="[", show=False),
        Binding("right_curly_bracket", "seek_fraction(0.1)", "+10 %", key_display="}", show=False),
        Binding("left_curly_bracket", "seek_fraction(-0.1)", "-10 %", key_display="{", show=False),
        Binding("home", "seek_home", "start", priority=True, show=False),
        Binding("end", "seek_end", "end", priority=True, show=False),
        Binding("greater_than_sign", "faster", "faster", show=False),
        Binding("less_than_sign", "slower", "slower", show=False),
    ]

    def __init__(self, feed: ReplayFeed, *, settings: Settings | None = None, title: str | None = None,
                 clock: Clock | None = None, **kw) -> None:
        super().__init__(feed, settings=settings, title=title, clock=clock or feed.clock,
                         auto_poll=False, **kw)
        self.replay = feed
        self._shown_index: int | None = None

    def compose_extra(self) -> Iterable[Widget]:
        self.timeline = TimelineBar(id="timeline")
        yield self.timeline

    def on_mount(self) -> None:
        super().on_mount()
        self.tick()
        self.set_interval(TICK_S, self.tick)

    # ---- timeline → screen ------------------------------------------------
    def tick(self) -> None:
        """Show the snapshot at the timeline's position when it changed."""
        try:
            self._tick()
        except NoMatches:  # a timer firing while the screen is being built or torn down
            pass

    def _tick(self) -> None:
        i = self.replay.current_index()
        if i != self._shown_index:
            snap = self.replay.latest()
            if snap is not None:
                if self._shown_index is not None and i < self._shown_index:
                    self._reset_history()
                self._shown_index = i
                self.show_snapshot(snap)
        self.paused = not self.replay.playing
        if self.is_mounted:
            self.timeline.show(self.replay)
            self.refresh_header()

    def _reset_history(self) -> None:
        """Going back in time: sparklines restart rather than mixing two timelines."""
        self.history = History(span_s=self.history.span_s, points=self.history.points)
        self.session_start = None

    def header_state(self) -> HeaderState:
        # "now" is the replayed instant: the age shown is the sample's own, not days.
        state = super().header_state()
        snap = self.snapshot
        if snap is None:
            return state
        return replace(state, now=snap.time, interval=max(snap.interval_s, 0.05) / self.replay.speed)

    # ---- actions --------------------------------------------------------
    def action_pause(self) -> None:
        self.replay.toggle()
        self.tick()

    def action_step(self, n: int) -> None:
        self.replay.step(int(n))
        self.tick()

    def action_seek(self, seconds: float) -> None:
        self.replay.seek_by(float(seconds))
        self.tick()

    def action_seek_fraction(self, fraction: float) -> None:
        index = self.replay.index
        span = max(index.end - index.time_at(0), 0.0)
        self.replay.seek_by(span * float(fraction) or (1 if fraction > 0 else -1))
        self.tick()

    def action_seek_home(self) -> None:
        self.replay.home()
        self.tick()

    def action_seek_end(self) -> None:
        self.replay.end()
        self.tick()

    def action_faster(self) -> None:
        self.replay.faster()
        self.notify(f"replay speed ×{self.replay.speed:g}", timeout=1.5)
        self.tick()

    def action_slower(self) -> None:
        self.replay.slower()
        self.notify(f"replay speed ×{self.replay.speed:g}", timeout=1.5)
        self.tick()

    def action_record(self) -> None:
        self.notify("this is a recording already", timeout=2)


def run_replay(feed: ReplayFeed, *, settings: Settings, title: str | None = None) -> int:
    return run_app(ReplayApp(feed, settings=settings, title=title), feed)
