#!/usr/bin/env python3
"""Agent and attach load benchmark.

1. Agent: a real `keck-top serve` process (local sampling, or --from-file with a
   synthetic tree) gets RATE snapshot requests/s for DURATION s from an open-loop
   aiohttp load generator; reports latency percentiles and the agent's CPU.
2. Attach: AGENTS simulated agents (aiohttp, in a separate process) are polled by
   the attach fleet poller every interval; reports the time per fleet refresh
   (poll of every agent + merge into one fleet snapshot).

    .venv/bin/python benchmarks/bench_agent.py            # full: 200 req/s × 30 s, 100 agents
    .venv/bin/python benchmarks/bench_agent.py --quick    # a few seconds, for smoke tests
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the tests' synthetic snapshots

from fakes.snapshots import fake_snapshot  # noqa: E402
from keck_tui.sources.agents import AgentSource, AgentSpec  # noqa: E402
from keck_tui.sources.fleet import Fleet  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def start_agent(tmp: Path, mode: str, interval: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = tmp / "empty.toml"
    cfg.write_text("")
    args = [sys.executable, "-m", "keck_tui", "serve", "--listen", f"127.0.0.1:{port}", "--interval", str(interval),
            "--config", str(cfg)]
    if mode == "file":
        snap = tmp / "snap.json"
        snap.write_text(fake_snapshot("bench", 250.0, namespaces=10, pods=10, processes=4).dumps())
        args += ["--from-file", str(snap)]
    else:
        args += ["--no-gpu"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    import urllib.request
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/snapshot", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"agent exited: {proc.stderr.read().decode()}")
            time.sleep(0.1)
    raise SystemExit("agent did not start")


async def load(url: str, rate: float, duration: float, path: str) -> dict:
    latencies: list[float] = []
    errors = 0
    sizes: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def one() -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                async with session.get(url + path) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        errors += 1
                        return
                    sizes.append(len(body))
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append(time.perf_counter() - t0)

        tasks = []
        start = time.perf_counter()
        n = int(rate * duration)
        for i in range(n):
            target = start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return {"requests": n, "errors": errors, "wall_s": wall, "achieved_rps": len(latencies) / wall,
            "p50_ms": 1000 * pct(latencies, 50), "p99_ms": 1000 * pct(latencies, 99),
            "max_ms": 1000 * max(latencies), "mean_bytes": statistics.mean(sizes) if sizes else 0}


def bench_agent(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_agent(Path(tmp), args.agent_mode, args.interval)
        try:
            time.sleep(2 * args.interval)
            ps = psutil.Process(proc.pid)
            idle_t0 = sum(ps.cpu_times()[:2])
            time.sleep(args.idle_s)
            idle_cpu = (sum(ps.cpu_times()[:2]) - idle_t0) / args.idle_s
            c0 = sum(ps.cpu_times()[:2])
            res = asyncio.run(load(url, args.rate, args.duration, "/api/v1/snapshot"))
            res["agent_cpu_pct_under_load"] = 100 * (sum(ps.cpu_times()[:2]) - c0) / res["wall_s"]
            res["agent_cpu_pct_idle"] = 100 * idle_cpu
            res["agent_rss_mib"] = ps.memory_info().rss / 2**20
            res["mode"] = args.agent_mode
        finally:
            proc.terminate()
            proc.wait(10)
    return res


FAKE_FLEET = r"""
import asyncio, sys
sys.path.insert(0, "tests")
from aiohttp import web
from keck_tui.agent.app import AgentService, build_app
from fakes.snapshots import fake_snapshot
from keck_tui.feed import StaticFeed

async def main(n):
    ports = []
    for i in range(n):
        app = build_app(AgentService(StaticFeed([fake_snapshot(f"sim{i:03d}", 100.0 + i)])), ingest=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(runner.addresses[0][1])
    print(" ".join(map(str, ports)), flush=True)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


async def poll_fleet(ports: list[int], rounds: int, interval: float, depth: int | None) -> dict:
    fleet = Fleet(AgentSource([AgentSpec(f"http://127.0.0.1:{p}", cluster=f"c{i % 4}") for i, p in enumerate(ports)],
                              depth=depth))
    times = []
    snap = None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        for _ in range(rounds):
            t0 = time.perf_counter()
            await fleet.poll(session)
            snap = fleet.snapshot()
            spent = time.perf_counter() - t0
            times.append(spent)
            await asyncio.sleep(max(0.0, interval - spent))
    assert snap is not None
    nodes = sum(1 for _, r in snap.root.walk() if r.level == "node")
    stale = sum(1 for _, r in snap.root.walk() if r.level == "node" and r.stale)
    return {"agents": len(ports), "rounds": rounds, "depth": depth, "nodes": nodes, "stale": stale,
            "refresh_p50_ms": 1000 * pct(times, 50), "refresh_max_ms": 1000 * max(times),
            "first_refresh_ms": 1000 * times[0], "fleet_watts": snap.root.watts}


def bench_attach(args: argparse.Namespace) -> list[dict]:
    proc = subprocess.Popen([sys.executable, "-c", FAKE_FLEET, str(args.agents)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        ports = [int(p) for p in line.split()]
        if len(ports) != args.agents:
            raise SystemExit(f"simulated fleet failed: {proc.stderr.read()}")
        out = []
        for depth in (2, None):
            c0 = time.process_time()
            res = asyncio.run(poll_fleet(ports, args.rounds, 1.0, depth))
            res["attach_cpu_s_per_refresh"] = (time.process_time() - c0) / args.rounds
            out.append(res)
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--interval", type=float, default=1.0, help="agent sampling interval")
    p.add_argument("--agent-mode", choices=("sample", "file"), default="sample",
                   help="sample: real local sampling; file: serve a synthetic 10×10×4 tree")
    p.add_argument("--idle-s", type=float, default=5.0, help="seconds to measure the idle agent's CPU")
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    args = p.parse_args()
    if args.quick:
        args.rate, args.duration, args.agents, args.rounds, args.idle_s = 50.0, 1.0, 5, 2, 0.5
        args.agent_mode = "file"
    agent = bench_agent(args)
    attach = bench_attach(args)
    if args.json:
        print(json.dumps({"agent": agent, "attach": attach}, indent=1))
        return 0
    print(f"agent ({agent['mode']}): {agent['requests']} requests at {args.rate:g}/s for {args.duration:g} s, "
          f"{agent['errors']} errors, achieved {agent['achieved_rps']:.1f}/s, "
          f"{agent['mean_bytes'] / 1024:.1f} KiB each")
    print(f"  latency p50 {agent['p50_ms']:.1f} ms, p99 {agent['p99_ms']:.1f} ms (target <= 50), "
          f"max {agent['max_ms']:.1f} ms")
    print(f"  agent CPU: {agent['agent_cpu_pct_idle']:.1f} % idle (sampling only), "
          f"{agent['agent_cpu_pct_under_load']:.1f} % under load; RSS {agent['agent_rss_mib']:.0f} MiB")
    for r in attach:
        print(f"attach: {r['agents']} agents, depth {r['depth'] if r['depth'] is not None else 'all'}: "
              f"fleet refresh p50 {r['refresh_p50_ms']:.0f} ms, max {r['refresh_max_ms']:.0f} ms "
              f"(target <= 1000), first {r['first_refresh_ms']:.0f} ms, "
              f"{r['attach_cpu_s_per_refresh'] * 1000:.0f} ms CPU/refresh, {r['stale']} stale")
    return 0


if __name__ == "__main__":
    sys.exit(main())
