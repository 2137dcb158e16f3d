#!/usr/bin/env python3
"""CPU cost of one whole local cycle (sample + attribute + snapshot + JSON) with ~1,000 processes.

Complements bench_sampling.py (sampler only): this measures ``Collector.collect()``
as the TUI and the agent run it, then ``Snapshot.dumps()``, beside
``ps -e -o pid,stat,time,rss,cmd`` over the same processes in the same run.
CPU = user + system of this process (getrusage), medians over the cycles.

    .venv/bin/python benchmarks/bench_collect.py [--children 1000] [--cycles 10]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampling import PS_CMD, cpu_children, cpu_self, kill, spawn  # noqa: E402
from keck_tui.config import Settings  # noqa: E402
from keck_tui.wiring import build_collector  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=10)
    opts = ap.parse_args()
    children: list[subprocess.Popen[bytes]] = []
    try:
        spawn(opts.children, children)
        time.sleep(1.0)
        collector = build_collector(Settings(probes="procfs"))
        collector.prime()
        collect, dump, ps = [], [], []
        rows = 0
        for _ in range(opts.cycles):
            time.sleep(0.3)
            t0 = cpu_self()
            snap = collector.collect()
            t1 = cpu_self()
            text = snap.dumps()
            t2 = cpu_self()
            collect.append(t1 - t0)
            dump.append(t2 - t1)
            rows = sum(1 for _ in snap.root.walk())
            c0 = cpu_children()
            subprocess.run(PS_CMD, stdout=subprocess.DEVNULL, check=True)
            ps.append(cpu_children() - c0)
        n_proc = len(collector.activity.sample().processes)
    finally:
        kill(children)
    mc, md, mp = (statistics.median(x) * 1000 for x in (collect, dump, ps))
    print(f"processes seen: {n_proc}, rows in snapshot: {rows}, JSON bytes: {len(text)}")
    print(f"collect() CPU median: {mc:.1f} ms   (target ≤ 30 ms)   max {max(collect) * 1000:.1f} ms")
    print(f"dumps()   CPU median: {md:.1f} ms")
    print(f"ps -e     CPU median: {mp:.1f} ms")
    print(f"ratio collect()/ps: {mc / mp:.2f}   (collect()+dumps())/ps: {(mc + md) / mp:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
