#!/usr/bin/env python3
"""CPU cost of one ProcfsSampler cycle with ~1,000 processes, next to ``ps``.

Spawns N sleeping children, primes the sampler, then measures the CPU time
(user + system, i.e. including the kernel time spent generating /proc files for
us) of each sampling cycle with ``resource.getrusage(RUSAGE_SELF)``, and the CPU
time of ``ps -e -o pid,stat,time,rss,cmd`` over the same processes with the
``RUSAGE_CHILDREN`` delta (fork/exec of ps included: that is what running it costs).
Reports medians and the ratio. The children are killed at the end, always.

    .venv/bin/python benchmarks/bench_sampling.py [--children 1000] [--cycles 10]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keck_tui.samplers.procfs import ProcfsSampler  # noqa: E402

PS_CMD = ["ps", "-e", "-o", "pid,stat,time,rss,cmd"]


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sys_self() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def spawn(n: int, children: list[subprocess.Popen[bytes]]) -> None:
    """Start ``n`` sleepers, appending each to ``children`` at once (so a failure part-way
    still leaves every started child in the list for ``kill``)."""
    for _ in range(n):
        children.append(subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def kill(children: list[subprocess.Popen[bytes]]) -> None:
    for c in children:
        try:
            c.kill()
        except OSError:
            pass
    for c in children:
        try:
            c.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass


def measure_sampler(sampler: ProcfsSampler, cycles: int, pause: float,
                    kernel: list[float] | None = None) -> tuple[list[float], list[float], int]:
    cpu, wall = [], []
    n = 0
    for _ in range(cycles):
        time.sleep(pause)
        k0, c0, w0 = sys_self(), cpu_self(), time.perf_counter()
        act = sampler.sample()
        c1, w1, k1 = cpu_self(), time.perf_counter(), sys_self()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
        if kernel is not None:
            kernel.append(k1 - k0)
        n = len(act.processes)
    return cpu, wall, n


def measure_ps(cycles: int) -> tuple[list[float], list[float], int]:
    cpu, wall = [], []
    lines = 0
    for _ in range(cycles):
        c0, w0 = cpu_children(), time.perf_counter()
        out = subprocess.run(PS_CMD, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
        c1, w1 = cpu_children(), time.perf_counter()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
        lines = out.count(b"\n") - 1
    return cpu, wall, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--pause", type=float, default=0.1, help="seconds between cycles")
    ap.add_argument("--pss-every", type=int, default=10)
    ap.add_argument("--procfs-root", default="/proc")
    args = ap.parse_args(argv)

    children: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.perf_counter()
        spawn(args.children, children)
        print(f"spawned {len(children)} sleeping children in {time.perf_counter() - t0:.1f} s")
        sampler = ProcfsSampler(args.procfs_root, pss_every=args.pss_every)
        c0 = cpu_self()
        sampler.sample()  # prime: reads everybody's cmdline, cgroup and PSS once
        prime = cpu_self() - c0
        kernel: list[float] = []
        s_cpu, s_wall, n = measure_sampler(sampler, args.cycles, args.pause, kernel)
        p_cpu, p_wall, lines = measure_ps(args.cycles)
        s_cpu2, _, _ = measure_sampler(sampler, args.cycles, args.pause, kernel)  # again, after ps
        s_all = s_cpu + s_cpu2
        ms = statistics.median(s_all) * 1e3
        ps_ms = statistics.median(p_cpu) * 1e3
        print(f"processes seen by the sampler: {n}; lines from ps: {lines}")
        print(f"ProcfsSampler priming cycle: {prime * 1e3:.1f} ms CPU")
        print(f"ProcfsSampler cycle: median {ms:.1f} ms CPU (min {min(s_all) * 1e3:.1f}, "
              f"max {max(s_all) * 1e3:.1f}; wall median {statistics.median(s_wall) * 1e3:.1f} ms) "
              f"over {len(s_all)} cycles, of which kernel (system) time median "
              f"{statistics.median(kernel) * 1e3:.1f} ms")
        print(f"ps -e -o pid,stat,time,rss,cmd: median {ps_ms:.1f} ms CPU (min {min(p_cpu) * 1e3:.1f}, "
              f"max {max(p_cpu) * 1e3:.1f}; wall median {statistics.median(p_wall) * 1e3:.1f} ms)")
        print(f"ratio sampler/ps: {ms / ps_ms:.2f}" if ps_ms > 0 else "ratio: ps cost not measurable")
        target = 30.0
        print(f"target <= {target:.0f} ms per cycle: {'met' if ms <= target else 'NOT met'}")
        return 0 if ms <= target else 1
    finally:
        kill(children)


if __name__ == "__main__":
    sys.exit(main())
