#!/usr/bin/env python3
"""What each profile costs: the idle agent's CPU and RSS under --profile minimal|standard|full.

For every (probes, profile) pair, a real ``keck-top serve`` samples this machine with
CHILDREN extra sleeping processes while nobody queries it, beside one
``ps -e -o pid,stat,time,rss,cmd`` per second (as in bench_peers.py). CPU is the agent's
whole process from /proc over the window, given per second (the profile's interval is
5 s for minimal, so per second is what compares); RSS at the end. The budget is set
far above what any profile uses, so no profile steps down during the run.

    sudo .venv/bin/python benchmarks/bench_profiles.py [--seconds 20] [--probes procfs --probes auto]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers import bench_agent, load_avg  # noqa: E402
from bench_sampling import kill, spawn  # noqa: E402

PROFILES = ("minimal", "standard", "full")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--probes", action="append", default=None, help="procfs and/or auto (default procfs)")
    args = ap.parse_args(argv)
    probes_list = args.probes or ["procfs"]
    children: list[subprocess.Popen[bytes]] = []
    rows = []
    try:
        spawn(args.children, children)
        time.sleep(1.0)
        print(f"{args.children} extra sleeping processes; load average {load_avg()}")
        for probes in probes_list:
            for profile in PROFILES:
                args.agent_args = f"--profile {profile} --budget-cpu 1000 --budget-mem 100000"
                r = bench_agent(args, probes)
                rows.append((probes, profile, r))
                print(f"  --probes {probes:6s} --profile {profile:8s} ({r['activity']}, {r['processes']} processes): "
                      f"{r['per_cycle_ms']:5.1f} ms CPU per second ({r['per_cycle_ms'] / 10:.2f} % of one CPU), "
                      f"RSS {r['rss_mib']:5.1f} MiB; ps -e per run {r['ps_ms']:.1f} ms "
                      f"(ratio {r['per_cycle_ms'] / r['ps_ms']:.2f}); load {r['load_after']}")
    finally:
        kill(children)
    return 0


if __name__ == "__main__":
    sys.exit(main())
