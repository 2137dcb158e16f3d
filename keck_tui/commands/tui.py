"""The TUI over any feed (local, remote, demo), with `r` recording what it shows."""
from __future__ import annotations

import sys
import threading

from keck_tui.commands.base import CliError
from keck_tui.config import Settings
from keck_tui.feed import SnapshotFeed


def require_terminal() -> None:
    """A usage error unless stdout is a terminal: said before any source is opened (a pipe
    used to wait for the local samplers, eBPF probe included, to be set up first)."""
    if not sys.stdout.isatty():
        raise CliError("the TUI needs a terminal; use --once --json or --batch for pipes")


def start_tui(feed: SnapshotFeed, settings: Settings, title: str | None = None) -> int:
    """Run the TUI over any feed, with `r` recording what it shows to a timestamped file."""
    require_terminal()
    try:
        from keck_tui.ui.app import run_tui
    except ImportError as exc:
        raise CliError(f"the TUI is not available ({exc}); use --once --json or --batch") from None
    from keck_tui.recording import Recorder, record_toggle

    recorder = Recorder()
    pump = RecordPump(feed, recorder)
    pump.start()
    toggle = record_toggle(recorder)

    def on_record_toggle(want: bool) -> bool:
        active = toggle(want)
        pump.wake()
        return active

    try:
        return run_tui(feed, settings=settings, title=title, on_record_toggle=on_record_toggle)
    finally:
        pump.stop()
        recorder.stop()


class RecordPump:
    """Hands each new snapshot of a feed to a recorder while it records.

    Works for every feed (local, remote, Prometheus) through ``latest()`` alone;
    it only polls while the recorder is active, and sleeps until ``wake()`` (the ``r``
    key) otherwise: ten idle wake-ups a second were a measurable part of an idle TUI.
    """

    def __init__(self, feed: SnapshotFeed, recorder, poll_s: float = 0.1) -> None:
        self._feed, self._recorder, self._poll_s = feed, recorder, poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keck-record-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """The recorder may have started: look again."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            if not self._recorder.active:
                last = None
                self._wake.wait()
                self._wake.clear()
                continue
            if self._stop.wait(self._poll_s):
                break
            snap = self._feed.latest()
            if snap is not None and snap is not last:
                self._recorder(snap)
                last = snap
