"""Snapshot feeds: what the TUI, the agent and the recorder consume.

A feed produces snapshots on its own thread; consumers call ``latest()``, which
never blocks, so a stalled source can make a snapshot old but never freezes a
screen or an HTTP handler. The UI shows a snapshot as stale from its age.
"""
from __future__ import annotations

import threading
from typing import Callable, Protocol, Sequence

from keck_tui.clock import Clock, SystemClock
from keck_tui.common.ranges import RANGES
from keck_tui.model import Snapshot


class SnapshotFeed(Protocol):
    interval: float

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def latest(self) -> Snapshot | None: ...
    def set_interval(self, seconds: float) -> None: ...
    def last_error(self) -> str | None: ...
    # Optional: ``alive() -> bool``, False when the feed's thread ended without stop();
    # ``subscribe(fn)``: ``fn()`` is called on the feed's thread after each new snapshot
    # (a screen then need not poll for them).


class Listeners:
    """Who asked to be told of new snapshots (``subscribe``): called on the feed's thread."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def add(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def notify(self) -> str | None:
        """Call each listener; what the last one that raised said (a listener's trouble
        is the feed's error to report, never the end of the feed)."""
        error = None
        for listener in list(self._listeners):
            try:
                listener()
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
        return error


class ThreadedFeed:
    """Runs ``produce()`` every ``interval`` seconds on a daemon thread.

    ``produce`` is expected to block for about one interval (a collector
    measures over the interval itself) or to return at once (remote polling);
    the feed sleeps only the part of the interval that ``produce`` did not use.
    Exceptions from ``produce`` are kept as ``last_error()``, never raised.
    """

    def __init__(self, produce: Callable[[], Snapshot], interval: float = 1.0,
                 clock: Clock | None = None, on_snapshot: Callable[[Snapshot], None] | None = None,
                 name: str = "keck-feed", initial_delay: float = 0.0,
                 on_stop: Callable[[], None] | None = None) -> None:
        self._produce = produce
        self._on_stop = on_stop
        self._initial_delay = initial_delay
        self.interval = _clamp_interval(interval)
        self._clock = clock or SystemClock()
        self._on_snapshot = on_snapshot
        self._latest: Snapshot | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name
        self._listeners = Listeners()
        self.produced = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval + 1)
        if self._on_stop is not None:
            on_stop, self._on_stop = self._on_stop, None
            on_stop()

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._latest

    def last_error(self) -> str | None:
        return self._error

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on this feed's thread after each new snapshot (it must not block)."""
        self._listeners.add(listener)

    def alive(self) -> bool:
        """False once the thread has ended without ``stop()`` (it never should: see ``_loop``)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def set_interval(self, seconds: float) -> None:
        self.interval = _clamp_interval(seconds)
        self._wake.set()

    def _loop(self) -> None:
        try:
            if self._initial_delay > 0:
                self._wake.wait(_wait_s(self._initial_delay))
                self._wake.clear()
            while not self._stop.is_set():
                started = self._clock.monotonic()
                self._step()
                spent = self._clock.monotonic() - started
                self._wake.clear()
                self._wake.wait(_wait_s(self.interval - spent))
        except BaseException as exc:  # a feed must never end silently: say why it stopped
            self._error = f"{self._name} thread stopped: {type(exc).__name__}: {exc}"

    def _step(self) -> None:
        """One ``produce()``; whatever it (or ``on_snapshot``) raises becomes ``last_error()``."""
        try:
            snap = self._produce()
        except Exception as exc:  # noqa: BLE001 - a feed must survive its source
            self._error = f"{type(exc).__name__}: {exc}"
            return
        self._error = None
        with self._lock:
            self._latest = snap
        self.produced += 1
        if self._on_snapshot is not None:
            try:
                self._on_snapshot(snap)
            except Exception as exc:  # noqa: BLE001
                self._error = f"{type(exc).__name__}: {exc}"
        self._error = self._listeners.notify() or self._error


#: The interval a feed accepts (keck_tui.common.ranges "interval"); a wait is never longer.
MIN_INTERVAL_S = RANGES["interval"].low
MAX_INTERVAL_S = RANGES["interval"].high


def _clamp_interval(seconds: float) -> float:
    seconds = float(seconds)
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, seconds)) if seconds == seconds else 1.0


def _wait_s(seconds: float) -> float:
    """A timeout ``Event.wait`` accepts: finite, 0 … MAX_INTERVAL_S (1e308 overflowed it)."""
    if not seconds > 0:  # also nan
        return 0.0
    return min(seconds, MAX_INTERVAL_S)


class StaticFeed:
    """A feed over fixed snapshots (tests, replay): ``advance()`` moves to the next."""

    def __init__(self, snapshots: Sequence[Snapshot], interval: float = 1.0) -> None:
        if not snapshots:
            raise ValueError("StaticFeed needs at least one snapshot")
        self._snapshots = list(snapshots)
        self.index = 0
        self.interval = interval

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def latest(self) -> Snapshot | None:
        return self._snapshots[self.index]

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds

    def last_error(self) -> str | None:
        return None

    def advance(self, steps: int = 1) -> Snapshot:
        self.index = max(0, min(len(self._snapshots) - 1, self.index + steps))
        return self._snapshots[self.index]
