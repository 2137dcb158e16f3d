"""Scraping the work counters' endpoints on a background loop, never in the sampler's way.

``kick()`` starts one scrape of every target that has none in flight and returns at
once; ``latest(url)`` is the newest finished scrape (or why it failed). Scrapes run on a
:class:`keck_tui.common.bgloop.BackgroundLoop` through the one HTTP client
(:mod:`keck_tui.common.http`): one total timeout per scrape (the entry's ``timeout``),
the body capped at ``max_bytes`` (4 MiB: a vLLM exposition is ~20 kB), a redirect followed
only within the origin asked (the client's rule). A target still in flight when the next interval kicks is simply not asked
again, so a hanging endpoint costs one open request, not a pile.

Each result carries the monotonic time the counters were read at — the middle of the
request — and a new id, so that :class:`keck_tui.work.rate.CounterTrack` consumes it
exactly once.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from keck_tui.work.exposition import CounterValue, ExpositionError, read_counters
from keck_tui.work.spec import CounterSpec

MAX_BYTES = 4 * 1024 * 1024
#: fetch(url, timeout_s, max_bytes) -> body; raises with a one-line message on failure.
Fetch = Callable[[str, float, int], Awaitable[bytes]]


@dataclass(frozen=True)
class Result:
    id: int
    t: float  # monotonic: when the counters were read (the middle of the request)
    values: Mapping[CounterSpec, CounterValue] | None
    error: str | None = None
    duration_s: float = 0.0


class HttpFetch:
    """GET with the one bounded HTTP client over one kept-alive session (made on the loop).

    Keeping the connection shortens a scrape to a few milliseconds, and the time the
    counters were read is known only to within the scrape's duration."""

    def __init__(self) -> None:
        self._session = None

    async def prepare(self) -> None:
        """Import the client and open the session (the first time takes a while: outside the
        timed part of a scrape)."""
        from keck_tui.common import http

        if self._session is None or self._session.closed:
            self._session = http.client_session(connections=8)

    async def __call__(self, url: str, timeout: float, max_bytes: int) -> bytes:
        from keck_tui.common import http

        await self.prepare()
        answer = await http.request(self._session, "GET", url, timeout=timeout, max_bytes=max_bytes,
                                    headers={"Accept": "text/plain;version=0.0.4"}, peer="metrics endpoint")
        if answer.status >= 400:
            raise http.status_error(answer)
        return answer.body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Scraper:
    """See the module docstring."""

    def __init__(self, fetch: Fetch | None = None, *, max_bytes: int = MAX_BYTES,
                 monotonic: Callable[[], float] = time.monotonic, name: str = "keck-work") -> None:
        self._fetch = fetch or HttpFetch()
        self.max_bytes = max_bytes
        self._mono = monotonic
        self._name = name
        self._loop = None
        self._targets: dict[str, tuple[tuple[CounterSpec, ...], float]] = {}
        self._latest: dict[str, Result] = {}
        self._previous: dict[str, Result] = {}  # the one before the latest (a new track's baseline)
        self._inflight: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self.scrapes = 0

    def set_targets(self, targets: Mapping[str, tuple[tuple[CounterSpec, ...], float]]) -> None:
        with self._lock:
            self._targets = dict(targets)
            for url in [u for u in self._latest if u not in self._targets]:
                del self._latest[url]
                self._previous.pop(url, None)

    def kick(self) -> None:
        with self._lock:
            if self._closed:
                return
            due = [(u, c, t) for u, (c, t) in self._targets.items() if u not in self._inflight]
            self._inflight.update(u for u, _, _ in due)
        if not due:
            return
        loop = self._ensure_loop()
        for url, counters, timeout in due:
            loop.submit(self._scrape(url, counters, timeout))

    def _ensure_loop(self):
        if self._loop is None:
            from keck_tui.common.bgloop import BackgroundLoop

            self._loop = BackgroundLoop(self._name)
        return self._loop

    async def _scrape(self, url: str, counters: tuple[CounterSpec, ...], timeout: float) -> None:
        t0 = self._mono()
        try:
            prepare = getattr(self._fetch, "prepare", None)
            if prepare is not None:
                await prepare()
                t0 = self._mono()  # the counters are read during the request, not the set-up
            body = await self._fetch(url, timeout, self.max_bytes)
            t1 = self._mono()
            result = Result(next(self._ids), (t0 + t1) / 2, read_counters(body, counters), None, t1 - t0)
        except ExpositionError as exc:
            result = Result(next(self._ids), self._mono(), None, str(exc))
        except Exception as exc:  # noqa: BLE001 - HttpError and anything else: the row says why
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            result = Result(next(self._ids), self._mono(), None, text[:200])
        finally:
            with self._lock:
                self._inflight.discard(url)
        with self._lock:
            if url in self._targets:
                if url in self._latest:
                    self._previous[url] = self._latest[url]
                self._latest[url] = result
            self.scrapes += 1

    def latest(self, url: str) -> Result | None:
        with self._lock:
            return self._latest.get(url)

    def previous(self, url: str) -> Result | None:
        """The finished scrape before :meth:`latest` (None when there is none)."""
        with self._lock:
            return self._previous.get(url)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no scrape is in flight (tests, and the last interval of a run)."""
        deadline = self._mono() + timeout
        while self._mono() < deadline:
            with self._lock:
                if not self._inflight:
                    return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if self._loop is not None:
            closer = getattr(self._fetch, "close", None)
            if closer is not None:
                try:
                    self._loop.submit(closer()).result(timeout=2.0)
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass
            self._loop.stop(timeout=2.0)
