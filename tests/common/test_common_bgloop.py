"""keck_tui.common.bgloop: start/stop/submit, exceptions kept as state, a poller that outlives its polls."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from keck_tui.common.bgloop import BackgroundLoop, Poller, describe


def _until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_start_submit_stop():
    bg = BackgroundLoop("test-loop")
    assert not bg.running and bg.stop()  # stopping one never started is fine

    bg = BackgroundLoop("test-loop")

    async def where() -> str:
        return threading.current_thread().name

    assert bg.submit(where()).result(5) == "test-loop"
    assert bg.running and bg.thread is not None and bg.thread.daemon
    assert bg.start() is bg.start()  # one loop, one thread
    assert bg.stop(5) and not bg.thread.is_alive() and not bg.running
    with pytest.raises(RuntimeError):
        bg.start()


def test_stop_cancels_what_runs_and_lets_it_clean_up():
    bg = BackgroundLoop("test-cancel")
    cleaned = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    fut = bg.submit(forever())
    time.sleep(0.05)
    t0 = time.monotonic()
    assert bg.stop(5)
    assert time.monotonic() - t0 < 1.0 and cleaned.is_set() and fut.cancelled()
    assert bg.error is None  # a cancellation is no error


def test_an_uncollected_exception_is_kept_not_lost():
    bg = BackgroundLoop("test-error")

    async def boom() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    fut = bg.submit(boom())
    assert _until(lambda: bg.error is not None)
    assert bg.error == "RecursionError: maximum recursion depth exceeded"
    assert isinstance(fut.exception(), RecursionError)
    assert bg.running  # the loop lives on
    assert bg.submit(asyncio.sleep(0, result=7)).result(5) == 7
    bg.stop()


def test_poller_keeps_its_error_visible_and_retries():
    calls: list[float] = []

    async def poll() -> None:
        calls.append(time.monotonic())
        if len(calls) in (2, 3):
            raise ValueError("bad answer\nwith a second line")

    p = Poller("test-poller", poll, 0.05)
    assert p.wait_for_first(5) and p.error is None
    assert _until(lambda: p.failures == 2 and p.error is not None)
    assert p.error == "ValueError: bad answer with a second line"  # one line
    assert _until(lambda: len(calls) >= 4 and p.error is None)  # it came back
    assert p.loop.thread is not None and p.loop.thread.is_alive()
    assert p.stop(5) and not p.loop.thread.is_alive()
    n = len(calls)
    time.sleep(0.15)
    assert len(calls) == n  # stopped means stopped
    p.start()  # not again after stop
    assert len(calls) == n


def test_poller_interval_from_start_or_end_wake_and_min_gap():
    calls: list[float] = []

    async def slow_poll() -> None:
        calls.append(time.monotonic())
        await asyncio.sleep(0.1)

    p = Poller("test-from-start", slow_poll, 0.2)
    p.start()
    assert _until(lambda: len(calls) >= 4)
    p.stop()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert all(0.15 < g < 0.35 for g in gaps), gaps  # start to start

    calls.clear()
    p = Poller("test-from-end", slow_poll, 0.2, from_end=True)
    p.start()
    assert _until(lambda: len(calls) >= 3)
    p.stop()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert all(0.25 < g < 0.5 for g in gaps), gaps  # 0.1 s poll + 0.2 s wait

    calls.clear()
    p = Poller("test-wake", slow_poll, 60.0, min_gap=0.3)
    assert p.wait_for_first(5)
    p.wake()  # early, but not sooner than 0.3 s after the last poll started
    assert _until(lambda: len(calls) == 2, 3)
    assert 0.28 < calls[1] - calls[0] < 1.0
    p.stop()


def test_poller_stop_cancels_a_slow_poll_and_runs_on_stop():
    events: list[str] = []

    async def start() -> None:
        events.append("start")

    async def hang() -> None:
        events.append("poll")
        await asyncio.sleep(3600)

    async def stop() -> None:
        events.append("stop")

    p = Poller("test-slow", hang, 1.0, on_start=start, on_stop=stop)
    p.start()
    assert _until(lambda: "poll" in events)
    t0 = time.monotonic()
    assert p.stop(5)
    assert time.monotonic() - t0 < 1.0 and events == ["start", "poll", "stop"]
    assert p.first_done.is_set()  # wait_for_first never hangs on a stopped poller


def test_submit_on_a_poller_and_after_stop():
    async def poll() -> None:
        pass

    p = Poller("test-submit", poll, 10.0)

    async def seven() -> int:
        return 7

    assert p.submit(seven()) is None  # not started
    p.start()
    fut = p.submit(seven())
    assert fut is not None and fut.result(5) == 7
    p.stop()
    assert p.submit(seven()) is None


def test_describe():
    assert describe(ValueError("x\ny")) == "ValueError: x y"
    assert describe(TimeoutError()) == "TimeoutError"
    assert len(describe(RuntimeError("x" * 1000))) == 300
