"""RecordPump: the TUI's `r` key records every new snapshot, and costs nothing while off."""
from __future__ import annotations

import threading
import time

from keck_tui.commands.tui import RecordPump


class CountingFeed:
    def __init__(self) -> None:
        self.calls = 0
        self.snap = object()

    def latest(self):
        self.calls += 1
        return self.snap


class FakeRecorder:
    def __init__(self) -> None:
        self.active = False
        self.got: list[object] = []
        self.seen = threading.Event()

    def __call__(self, snap) -> None:
        self.got.append(snap)
        self.seen.set()


def test_pump_sleeps_while_not_recording_and_records_once_woken():
    feed, rec = CountingFeed(), FakeRecorder()
    pump = RecordPump(feed, rec, poll_s=0.01)
    pump.start()
    try:
        time.sleep(0.2)  # twenty poll periods, not recording
        assert feed.calls == 0
        rec.active = True
        pump.wake()
        assert rec.seen.wait(5)
        time.sleep(0.1)
        assert rec.got == [feed.snap]  # the same snapshot is recorded once
        feed.snap = object()
        deadline = time.monotonic() + 5
        while len(rec.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rec.got[1] is feed.snap
        rec.active = False
        time.sleep(0.05)
        calls = feed.calls
        time.sleep(0.2)
        assert feed.calls == calls  # asleep again
    finally:
        pump.stop()
    assert not pump._thread.is_alive()
