"""Helpers for the TUI tests: settings, a feed that records what the UI asks, an app factory.

(Not in conftest.py: ``from conftest import`` is ambiguous next to tests/conftest.py.)
"""
from __future__ import annotations

from typing import Any

import fake_fleet as ff
from keck_tui.clock import FakeClock
from keck_tui.config import Settings
from keck_tui.ui.app import KeckApp

SETTINGS = Settings(price_per_kwh=0.30, currency="€", co2e_g_per_kwh=250.0, history_minutes=10.0)


class RecordingFeed:
    """A StaticFeed-like feed that records what the UI asked of it."""

    def __init__(self, snaps, interval: float = 1.0, lazy: bool = False) -> None:
        self.snaps = list(snaps)
        self.index = len(self.snaps) - 1
        self.interval = interval
        self.intervals: list[float] = []
        self.subtrees: list[tuple[str, ...]] = []
        self.started = self.stopped = 0
        if lazy:
            self.request_subtree = self.subtrees.append

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def latest(self):
        return self.snaps[self.index]

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        self.intervals.append(seconds)

    def last_error(self) -> str | None:
        return None


def make_app(clock: FakeClock, *, n: int = 1, fleet: bool = False, estimated: bool = False,
             settings: Settings = SETTINGS, **kw: Any) -> tuple[KeckApp, RecordingFeed]:
    feed = RecordingFeed(ff.series(n, clock, fleet=fleet, estimated=estimated))
    return KeckApp(feed, settings=settings, clock=clock, **kw), feed
