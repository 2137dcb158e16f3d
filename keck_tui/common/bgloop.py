"""An asyncio loop on a daemon thread, and a poller on top of it.

The collector and the TUI must never wait for the network, so slow sources (Redfish
BMCs, the kubelet, remote agents) poll on a thread of their own. :class:`BackgroundLoop`
is that thread: ``start``, ``submit`` coroutines from any thread, ``stop`` (cancels what
runs, lets it clean up, closes the loop). :class:`Poller` calls one coroutine every
``interval`` seconds on it.

No thread dies silently: an exception from a poll is kept as ``error`` (and counted) and
the poller polls again at the next interval; an exception from a submitted coroutine that
nobody collects is kept as the loop's ``error``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, Awaitable, Callable, Coroutine

STOP_GRACE_S = 2.0


def describe(exc: BaseException) -> str:
    """``RecursionError: maximum recursion depth exceeded`` (one line, at most 300 characters)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:300]


class BackgroundLoop:
    """A daemon thread running an asyncio event loop until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: str | None = None  # the last exception nobody else collected
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread (once) and return its loop, running."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"{self.name}: started after stop()")
            if self._loop is None:
                ready = threading.Event()
                self._loop = asyncio.new_event_loop()
                self._loop.set_exception_handler(self._on_loop_error)
                self._thread = threading.Thread(target=self._run, args=(ready,), name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
            return self._loop

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.error = describe(exc) if exc is not None else str(context.get("message", "error"))[:300]

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro`` on the loop (starting it if needed); its exception, if nobody asks the
        future for it, is kept as :attr:`error`."""
        loop = self.start()
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        fut.add_done_callback(self._note_failure)
        return fut

    def _note_failure(self, fut: concurrent.futures.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.error = describe(fut.exception())  # type: ignore[arg-type]

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` on the loop's thread; nothing when the loop is not running."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed meanwhile
            pass

    def stop(self, timeout: float = 5.0) -> bool:
        """Cancel every task (their ``finally`` blocks run), stop the loop and join the thread.

        Returns True when the thread has ended within ``timeout``.
        """
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return True
        if not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            except RuntimeError:
                pass
        thread.join(timeout)
        return not thread.is_alive()

    async def _shutdown(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_S + 0.5)
        asyncio.get_running_loop().stop()


class Poller:
    """Calls ``poll()`` every ``interval`` seconds on its own :class:`BackgroundLoop`.

    ``interval`` (a number or a callable read before each wait) is counted from the start of
    a poll, or from its end with ``from_end``. :meth:`wake` polls early, but never sooner than
    ``min_gap`` seconds after the last poll started. ``on_start``/``on_stop`` run on the loop
    before the first poll and after the last (open and close a session, log out).

    A poll that raises does not end the poller: ``error`` says why (``None`` after a poll
    that succeeds), ``failures`` counts them, and the next poll comes at the next interval.
    """

    def __init__(self, name: str, poll: Callable[[], Awaitable[Any]], interval: float | Callable[[], float], *,
                 from_end: bool = False, min_gap: float = 0.0,
                 on_start: Callable[[], Awaitable[Any]] | None = None,
                 on_stop: Callable[[], Awaitable[Any]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.loop = BackgroundLoop(name)
        self._poll = poll
        self._interval = interval
        self._from_end = from_end
        self._min_gap = min_gap
        self._on_start = on_start
        self._on_stop = on_stop
        self._mono = monotonic
        self.polls = 0
        self.failures = 0
        self.error: str | None = None
        self.first_done = threading.Event()  # the first poll has finished, either way
        self._wake: asyncio.Event | None = None
        self._main: concurrent.futures.Future[Any] | None = None
        self._stopping = False

    @property
    def started(self) -> bool:
        return self._main is not None

    def interval(self) -> float:
        return float(self._interval() if callable(self._interval) else self._interval)

    def start(self) -> None:
        """Start polling (once; not again after :meth:`stop`)."""
        if self._main is None and not self._stopping:
            self._main = self.loop.submit(self._run())

    def wake(self) -> None:
        """Poll now (rate-limited by ``min_gap``) instead of at the end of the wait."""
        self.loop.call_soon(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any] | None:
        """Run another coroutine on the poller's loop (None once stopped)."""
        if self._stopping or self._main is None:
            coro.close()
            return None
        return self.loop.submit(coro)

    def wait_for_first(self, timeout: float) -> bool:
        """Start if needed and block until the first poll finished (either way) or ``timeout``."""
        self.start()
        return self.first_done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> bool:
        """Cancel a poll in flight (a slow peer is not waited for), run ``on_stop``, end the thread."""
        self._stopping = True
        return self.loop.stop(timeout)

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        try:
            if self._on_start is not None:
                await self._guarded(self._on_start)
            while True:
                started = self._mono()
                await self._guarded(self._poll, count=True)
                self.first_done.set()
                await self._sleep(started)
        finally:
            self.first_done.set()
            if self._on_stop is not None:
                await asyncio.shield(self._close())

    async def _close(self) -> None:
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await self._on_stop()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            self.error = describe(exc)

    async def _guarded(self, fn: Callable[[], Awaitable[Any]], count: bool = False) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the poller must outlive any one poll
            self.failures += 1
            self.error = describe(exc)
        else:
            if count:
                self.error = None
        finally:
            if count:
                self.polls += 1

    async def _sleep(self, started: float) -> None:
        assert self._wake is not None
        wait = self.interval() if self._from_end else self.interval() - (self._mono() - started)
        self._wake.clear()
        if wait > 0:
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                return
        gap = self._min_gap - (self._mono() - started)
        if gap > 0:
            await asyncio.sleep(gap)
