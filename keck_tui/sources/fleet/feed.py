"""The feed over a fleet: polls every interval on its own thread, for the TUI, batch and record."""
from __future__ import annotations

import threading
from typing import Callable

import aiohttp

from keck_tui.common.bgloop import Poller, describe
from keck_tui.common.http import client_session
from keck_tui.feed import Listeners
from keck_tui.model import Snapshot
from keck_tui.sources.fleet.merge import Fleet


class RemoteFeed:
    """A SnapshotFeed over a :class:`Fleet`: polls on its own thread and asyncio loop
    (:class:`keck_tui.common.bgloop.Poller`).

    ``latest()`` never blocks; ``request_subtree(path)`` asks for a lazy
    drill-down and returns at once (the subtree appears in a later snapshot).
    """

    def __init__(self, fleet: Fleet, interval: float = 1.0, connections: int = 256) -> None:
        self.fleet = fleet
        self.interval = interval
        fleet.interval = interval
        self._connections = connections
        self._latest: Snapshot | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._listeners = Listeners()
        self._session: aiohttp.ClientSession | None = None
        self._poller = Poller("keck-remote", self._poll, lambda: self.interval,
                              on_start=self._open, on_stop=self._close)
        self.polls = 0

    def start(self) -> None:
        self._poller.start()

    async def _open(self) -> None:
        self._session = client_session(self._connections)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _poll(self) -> None:
        if self._session is not None:
            await self.poll_once(self._session)

    async def poll_once(self, session: aiohttp.ClientSession) -> Snapshot | None:
        try:
            await self.fleet.poll(session)
            snap = self.fleet.snapshot()
        except Exception as exc:  # noqa: BLE001 - a feed must survive its sources
            self._error = describe(exc)
            return None
        with self._lock:
            self._latest = snap
        self.polls += 1
        self._error = self._listeners.notify()  # None: this poll, and what it told, went well
        return snap

    def stop(self) -> None:
        self._poller.stop(timeout=10.0)

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._latest

    def last_error(self) -> str | None:
        return self._error or self._poller.error

    def set_interval(self, seconds: float) -> None:
        self.interval = max(0.05, float(seconds))
        self.fleet.interval = self.interval
        self._poller.wake()

    def request_subtree(self, path: tuple[str, ...] | list[str]) -> None:
        async def go() -> None:
            session = self._session
            if session is not None and await self.fleet.expand(session, tuple(path)):
                snap = self.fleet.snapshot()
                with self._lock:
                    self._latest = snap
                self._error = self._listeners.notify() or self._error

        self._poller.submit(go())

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on the poller's thread after each new snapshot (it must not block)."""
        self._listeners.add(listener)


async def poll_once(fleet: Fleet, connections: int = 256) -> Snapshot:
    """One poll of every source (for ``--once``)."""
    async with client_session(connections) as session:
        await fleet.poll(session)
        return fleet.snapshot()
