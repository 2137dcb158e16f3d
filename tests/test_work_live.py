"""Work counters end to end: a fake vLLM (aiohttp) serving the real exposition format with a
token counter that advances in real time, matched to a real busy process on this machine.

The truth the code under test does not share: the server's token rate (it computes the
counter from the clock). Joules per token must be the process row's watts divided by it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import shared_fixture
from keck_tui.attribution.engine import AttributionConfig
from keck_tui.collector import Collector
from keck_tui.hierarchy.grouping import make_grouper
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.work.attach import WorkMonitor
from keck_tui.work.scraper import Scraper
from keck_tui.work.spec import DEFAULT_TIMEOUT_S
from spinner import cpu_ticks

TOKENS_PER_S = 500.0


SERVER = r"""
import asyncio, re, sys, time
from aiohttp import web
template, port, rate = open(sys.argv[1]).read(), int(sys.argv[2]), float(sys.argv[3])
t0 = [time.monotonic()]
def text():
    n = int((time.monotonic() - t0[0]) * rate)
    out = re.sub(r'^(vllm:generation_tokens_total\{[^}]*\}) \S+$', rf"\g<1> {float(n)}", template, flags=re.M)
    return re.sub(r'^(vllm:prompt_tokens_total\{[^}]*\}) \S+$', rf"\g<1> {float(n // 4)}", out, flags=re.M)
async def metrics(request):
    return web.Response(text=text(), content_type="text/plain")
async def reset(request):
    t0[0] = time.monotonic()
    return web.Response(text="ok")
async def slow(request):
    await asyncio.sleep(30)
    return web.Response(text="")
app = web.Application()
app.add_routes([web.get("/metrics", metrics), web.get("/reset", reset), web.get("/slow/metrics", slow)])
web.run_app(app, host="127.0.0.1", port=port, print=lambda *a: print("ready", flush=True))
"""


class FakeVllm:
    """A separate process (like a real server): /metrics is the vLLM V1 fixture with its token
    counters advanced from the clock; /reset restarts them (a server restart); /slow/metrics
    answers after 30 s."""

    def __init__(self, template: Path) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(template), str(self.port), str(TOKENS_PER_S)],
                                     stdout=subprocess.PIPE, text=True)

    def start(self) -> "FakeVllm":
        assert self.proc.stdout is not None
        assert "ready" in self.proc.stdout.readline()
        return self

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BUSY = "import time\nwhile True:\n    t = time.process_time()\n    while time.process_time() - t < 0.05:\n        pass\n    time.sleep(0.05)\n"


@pytest.fixture
def server():
    template = shared_fixture("inference", "vllm-v1engine-engine-label-partial.txt")
    s = FakeVllm(template).start()
    yield s
    try:
        s.stop()
    except Exception:  # noqa: BLE001 - already stopped by the test
        pass


@pytest.fixture
def busy_vllm(tmp_path, server):
    """A real process whose command line is a vLLM server's (`vllm serve … --port N`): it burns ~50 % of a CPU."""
    script = tmp_path / "vllm"
    script.write_text(BUSY)
    p = subprocess.Popen([sys.executable, str(script), "serve", "llama-vllm-single", "--port", str(server.port)])
    _wait_running(p.pid)
    yield p
    p.kill()
    p.wait()


def _wait_running(pid: int, timeout: float = 60.0) -> None:
    """Until ``pid`` has run a little (its command line is then the script's): a fixed sleep is
    not enough for a Python start on a loaded machine."""
    deadline = time.monotonic() + timeout
    while cpu_ticks(pid) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)


def _collector() -> Collector:
    return Collector(activity=ProcfsSampler("/proc"), grouper=make_grouper(), host="n",
                     config=AttributionConfig(model="cpu-time", idle="separate"),
                     work=WorkMonitor([], Scraper()))


def _work_row(snap, pid):
    for _path, row in snap.root.walk():
        if row.level == "process" and row.pid == pid:
            return row
    return None


@pytest.mark.slow
def test_joules_per_token_is_the_process_watts_over_the_true_token_rate(busy_vllm, server):
    collector = _collector()
    collector.prime()
    units = window = joules = seconds = 0.0
    rated = 0
    try:
        # Until six intervals had their scrape back (a loaded machine delays some; a snapshot
        # shows the scrape that had come back when it was made).
        for _ in range(40):
            if rated >= 6:
                break
            time.sleep(1.0)
            snap = collector.collect()
            row = _work_row(snap, busy_vllm.pid)
            if row is None or "work" not in row.extra:
                continue
            w = row.extra["work"]
            assert w["source"] == "preset:vllm" and w["url"] == f"http://127.0.0.1:{server.port}/metrics"
            if w["status"] != "ok":
                continue
            rated += 1
            # every interval: the bound holds the truth (the process watts over the true rate)
            truth = row.watts / TOKENS_PER_S
            assert w["j_per_unit_lo"] <= truth <= w["j_per_unit_hi"], (w, truth)
            assert w["j_per_unit"] == pytest.approx(row.watts / w["rate"], rel=1e-5)
            assert w["also"][0]["unit"] == "prompt token" and w["also"][0]["rate"] > 0
            units += w["units"]
            window += w["window_s"]
            joules += row.watts * snap.interval_s
            seconds += snap.interval_s
    finally:
        collector.close()
    assert rated >= 6, "too few intervals with a rate"
    # over the run, joules per token = mean process watts ÷ tokens per second, within 1 %
    rate = units / window
    assert rate == pytest.approx(TOKENS_PER_S, rel=0.01)
    mean_watts = joules / seconds
    assert mean_watts / rate == pytest.approx(mean_watts / TOKENS_PER_S, rel=0.01)


@pytest.mark.slow
def test_counter_reset_and_dead_endpoint_are_said_and_the_sampler_never_waits(busy_vllm, server):
    import urllib.request

    collector = _collector()
    collector.prime()
    try:
        statuses = []
        # A snapshot shows the scrape that had come back when it was made; settle_work
        # (scrape now and wait) makes each one here show the state just set up.
        for _ in range(3):
            time.sleep(0.5)
            collector.settle_work(timeout=10.0)
            statuses.append(_work_row(collector.collect(), busy_vllm.pid).extra["work"]["status"])
        assert statuses[-1] == "ok", statuses
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/reset", timeout=5).read()
        time.sleep(0.5)
        collector.settle_work(timeout=10.0)
        w = _work_row(collector.collect(), busy_vllm.pid).extra["work"]
        assert w["status"] == "reset" and "restarted" in w["why"]
        server.stop()
        time.sleep(0.5)
        t0 = time.monotonic()
        snap = collector.collect()
        spent = time.monotonic() - t0
        w = _work_row(snap, busy_vllm.pid).extra["work"]
        deadline = time.monotonic() + 30
        # until the failed scrape has finished: the first may be the pooled connection's reset
        # ("connection lost (Connection reset by peer)"), the dead endpoint's state is then "cannot connect"
        while not (w["status"] == "error" and "cannot connect" in (w["why"] or "")) and time.monotonic() < deadline:
            time.sleep(0.5)
            snap = collector.collect()
            w = _work_row(snap, busy_vllm.pid).extra["work"]
        assert w["status"] == "error" and "cannot connect" in w["why"] and w["j_per_unit"] is None
        # a sample of /proc, not a scrape's timeout (the hanging-endpoint test is the proof)
        assert spent < DEFAULT_TIMEOUT_S
        assert "error" in snap.source("work").detail
    finally:
        collector.close()


def test_a_hanging_endpoint_times_out_and_never_delays_a_snapshot(tmp_path, server):
    from keck_tui.work.spec import parse_entries

    spec = parse_entries([{"cmdline": f"keck-hang-{os.getpid()}", "url": f"http://127.0.0.1:{server.port}/slow/metrics",
                           "counter": "x_total", "unit": "thing", "timeout": 5.0}])
    p = subprocess.Popen([sys.executable, "-c", BUSY, f"keck-hang-{os.getpid()}"])
    try:
        _wait_running(p.pid)
        scraper = Scraper()
        collector = Collector(activity=ProcfsSampler("/proc"), grouper=make_grouper(), host="n",
                              config=AttributionConfig(model="cpu-time", idle_watts=1.0),
                              work=WorkMonitor(spec, scraper, presets=False))
        collector.prime()
        worst = 0.0
        w = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (w and w["status"] == "error"):
            time.sleep(0.25)
            t0 = time.monotonic()
            snap = collector.collect()
            worst = max(worst, time.monotonic() - t0)
            for _path, row in snap.root.walk():
                if row.pid == p.pid:
                    w = row.extra.get("work", w)
        collector.close()
        # the endpoint hangs for 30 s and each scrape waits 5 s for it: no snapshot waited
        # for either (a sample of /proc takes well under a second, and under half of it on a
        # loaded machine)
        assert worst < 2.5
        assert w is not None and w["status"] == "error" and "timed out after 5 s" in w["why"]
    finally:
        p.kill()
        p.wait()


def test_body_size_is_capped(tmp_path):
    scraper = Scraper(max_bytes=1000)

    async def big(url, timeout, max_bytes):
        from keck_tui.common.http import HttpError
        raise HttpError(f"answer too large: more than {max_bytes} bytes", "too-large")

    scraper._fetch = big  # the cap itself is the common HTTP client's (tested there); the row says why
    from keck_tui.work.spec import CounterSpec
    c = CounterSpec("x_total", "x")
    scraper.set_targets({"http://127.0.0.1:1/metrics": ((c,), 1.0)})
    scraper.kick()
    assert scraper.wait_idle(5)
    got = scraper.latest("http://127.0.0.1:1/metrics")
    scraper.close()
    assert got is not None and got.values is None and "too large" in got.error


@pytest.mark.slow
def test_the_first_snapshot_after_priming_already_has_a_rate(busy_vllm, server):
    """--once: prime, one interval, collect — the priming sample's scrape is the first of two."""
    collector = _collector()  # the busy process is running (the fixture waited for it)
    collector.prime()
    try:
        time.sleep(1.0)
        collector.settle_work(timeout=30.0)  # what --once does, with room for a loaded machine
        row = _work_row(collector.collect(), busy_vllm.pid)
        w = row.extra["work"] if row is not None else None
        assert w is not None and w["status"] == "ok", w
        # the first scrape of a session can be slow: the bound says how uncertain its window is,
        # and when the scrape took longer than its window there is no upper bound (None)
        truth = row.watts / TOKENS_PER_S
        hi = w["j_per_unit_hi"]
        assert w["j_per_unit_lo"] <= truth and (hi is None or truth <= hi), (w, truth)
    finally:
        collector.close()
