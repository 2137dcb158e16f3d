"""No thread dies silently (issue 12): feeds survive their source, say when they can't, and
the agent's /healthz tells a dead or failing collector from one that is starting."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from keck_tui.agent.app import AgentService, build_app
from fakes.snapshots import fake_snapshot
from keck_tui.feed import MAX_INTERVAL_S, StaticFeed, ThreadedFeed
from keck_tui.model import Snapshot


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_feed_whose_source_raises_keeps_the_error_and_recovers() -> None:
    calls = {"n": 0}

    def produce() -> Snapshot:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OverflowError("timeout value is too large")
        return fake_snapshot("n", 10.0, time=time.time())

    feed = ThreadedFeed(produce, interval=0.05)
    feed.start()
    try:
        assert _wait_until(lambda: feed.last_error() is not None)
        assert "OverflowError" in feed.last_error()
        assert _wait_until(lambda: feed.latest() is not None)
        assert feed.last_error() is None and feed.alive()
    finally:
        feed.stop()


@pytest.mark.parametrize("interval", [1e308, math.inf, math.nan, -1.0, 0.0])
def test_a_feed_never_passes_an_unusable_timeout_to_wait(interval: float) -> None:
    """QA: `--interval 1e308` reached Event.wait, whose OverflowError killed the collector thread."""
    feed = ThreadedFeed(lambda: fake_snapshot("n", 1.0), interval=interval)
    assert 0.05 <= feed.interval <= MAX_INTERVAL_S
    feed.set_interval(interval)
    assert 0.05 <= feed.interval <= MAX_INTERVAL_S
    feed.start()
    try:
        assert _wait_until(lambda: feed.latest() is not None)
        assert feed.alive() and feed.last_error() is None
    finally:
        started = time.monotonic()
        feed.stop()
        assert time.monotonic() - started < 2.0  # stop() wakes it, whatever the interval


def test_feed_listeners_hear_each_snapshot_on_its_thread_and_cannot_stop_it() -> None:
    import threading

    heard: list[tuple[int, str]] = []
    feed = ThreadedFeed(lambda: fake_snapshot("n", 1.0, time=time.time()), interval=0.05, name="keck-feed-t")

    def listener() -> None:
        heard.append((feed.produced, threading.current_thread().name))

    def broken() -> None:
        raise RuntimeError("a screen that went away")

    feed.subscribe(broken)
    feed.subscribe(listener)
    feed.start()
    try:
        assert _wait_until(lambda: len(heard) >= 3)
        assert "RuntimeError: a screen that went away" in (feed.last_error() or "")
        assert feed.alive()
    finally:
        feed.stop()
    # once per snapshot, after it is the latest, on the feed's own thread
    assert [n for n, _ in heard] == list(range(1, len(heard) + 1))
    assert {name for _, name in heard} == {"keck-feed-t"}


def test_a_feed_thread_that_ends_says_so() -> None:
    def produce() -> Snapshot:
        raise SystemExit("a library called sys.exit()")  # not an Exception: the loop can't go on

    feed = ThreadedFeed(produce, interval=0.05, name="keck-collector")
    feed.start()
    assert _wait_until(lambda: not feed.alive())
    assert feed.last_error().startswith("keck-collector thread stopped: SystemExit")


async def _health(svc: AgentService) -> tuple[int, dict, int]:
    client = TestClient(TestServer(build_app(svc)))
    await client.start_server()
    try:
        resp = await client.get("/healthz")
        snap = await client.get("/api/v1/snapshot")
        return resp.status, await resp.json(), snap.status
    finally:
        await client.close()


async def test_healthz_ok_then_failing_when_the_collector_keeps_failing() -> None:
    state = {"fail": False}

    def produce() -> Snapshot:
        if state["fail"]:
            raise ValueError("BMC reading is Infinity")
        return fake_snapshot("n", 10.0, time=time.time())

    feed = ThreadedFeed(produce, interval=0.05)
    svc = AgentService(feed)
    feed.start()
    try:
        assert _wait_until(lambda: feed.latest() is not None)
        status, doc, _ = await _health(svc)
        assert (status, doc["status"], doc["error"]) == (200, "ok", None)
        state["fail"] = True
        assert _wait_until(lambda: feed.last_error() is not None)
        svc._ingested_at -= 60  # no new snapshot for a minute (3 intervals + 10 s is 10.15 s)
        status, doc, api = await _health(svc)
        assert status == 503 and doc["status"] == "failing" and "Infinity" in doc["error"]
        assert api == 200  # the last good snapshot is still served
    finally:
        feed.stop()


async def test_healthz_failing_not_starting_when_the_first_sample_fails() -> None:
    """QA: a BMC reading of Infinity made serve answer 500 while /healthz said "starting"."""
    def produce() -> Snapshot:
        raise ValueError("Out of range float values are not JSON compliant")

    feed = ThreadedFeed(produce, interval=0.05)
    svc = AgentService(feed)
    feed.start()
    try:
        assert _wait_until(lambda: feed.last_error() is not None)
        status, doc, api = await _health(svc)
        assert status == 503 and doc["status"] == "failing" and "JSON" in doc["error"]
        assert api == 503
    finally:
        feed.stop()


async def test_a_snapshot_that_cannot_be_encoded_is_skipped_not_a_500() -> None:
    good = fake_snapshot("n", 10.0, time=time.time())
    bad = replace(good, root=replace(good.root, watts=math.inf))
    feed = StaticFeed([good, bad])
    svc = AgentService(feed)
    assert svc.ingest()
    feed.advance()
    assert not svc.ingest() and svc.current is good
    assert "could not be served" in svc.ingest_error
    status, doc, api = await _health(svc)
    assert api == 200 and doc["error"] == svc.ingest_error
    svc._ingested_at -= 60
    status, doc, api = await _health(svc)
    assert status == 503 and doc["status"] == "failing"


async def test_healthz_stopped_when_the_collector_thread_is_gone() -> None:
    def produce() -> Snapshot:
        raise SystemExit(1)

    feed = ThreadedFeed(produce, interval=0.05)
    svc = AgentService(feed)
    feed.start()
    assert _wait_until(lambda: not feed.alive())
    status, doc, _ = await _health(svc)
    assert status == 503 and doc["status"] == "stopped" and "thread stopped" in doc["error"]


async def test_healthz_starting_while_the_first_sample_is_taken() -> None:
    release = threading.Event()

    def produce() -> Snapshot:
        release.wait(5)
        return fake_snapshot("n", 1.0, time=time.time())

    feed = ThreadedFeed(produce, interval=0.05)
    svc = AgentService(feed)
    feed.start()
    try:
        status, doc, api = await _health(svc)
        assert (status, doc["status"], api) == (200, "starting", 503)
    finally:
        release.set()
        feed.stop()
