#!/usr/bin/env python3
"""Per-process error of every attribution model against a hidden physical truth, and bound coverage.

The simulated machine (tests/physsim.py) hosts processes of equal mean CPU time
but different kinds (compute-bound, memory-bound, the same code at a low and at a
turbo frequency, two small background ones). Its power follows a physical model
keck-top does not share (V(f)²·f with an affine V, activity saturating in IPC,
leakage ∝ V^2.5, miss energy with bandwidth saturation, ±2 % per-process noise).
The package and DRAM energy drive fake powercap counters read by the real
RaplSampler; keck-top's real Collector attributes them under each model.

Printed per model: each process's CPU-energy error over the scored intervals
(after ``--warmup`` intervals of calibration), the share of (process, interval)
pairs whose CPU bound contains the true watts, the median bound half-width, and
the idle baseline learned; then the DRAM split's per-process error under each
method. ``--seeds`` repeats with other random machines.

    .venv/bin/python benchmarks/bench_model.py [--steps 900] [--warmup 300] [--seeds 1 2 3]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from keck_tui.attribution.components import dram_shares  # noqa: E402
from physsim import MAIN_KINDS, PhysSim, coverage, energy_errors, median_half_width, run_collector  # noqa: E402

MODELS = ("cpu-time", "frequency-weighted", "full")


def dram_errors(run) -> dict[int, float]:  # noqa: ANN001
    att: dict[int, float] = {}
    tru: dict[int, float] = {}
    for s in run.scores:
        att[s.pid] = att.get(s.pid, 0.0) + s.dram_w
        tru[s.pid] = tru.get(s.pid, 0.0) + s.true_dram_w
    return {pid: (att[pid] - tru[pid]) / tru[pid] for pid in att if tru[pid] > 0}


def keck_dram_errors(seed: int, steps: int) -> dict[int, float]:
    """The DRAM split with Keck's fixed weights against the truth, on the same simulated machine."""
    att: dict[int, float] = {}
    tru: dict[int, float] = {}
    sim = PhysSim(seed=seed)
    for _ in range(steps):
        act, _, truth = sim.step(1.0)
        mem = {p.pid: float(p.pss_bytes or 0) for p in act.processes}
        misses = {p.pid: math.fsum(d.llc_misses or 0.0 for d in (p.counters or {}).values()) for p in act.processes}
        shares, *_ = dram_shares(mem, misses)
        for pid, share in shares.items():
            att[pid] = att.get(pid, 0.0) + share * truth.dram_total_w
            tru[pid] = tru.get(pid, 0.0) + truth.dram_w[pid]
    return {pid: (att[pid] - tru[pid]) / tru[pid] for pid in att if tru[pid] > 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=900, help="simulated 1 s intervals per run")
    ap.add_argument("--warmup", type=int, default=300, help="intervals not scored (calibration)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    opts = ap.parse_args()
    names: dict[int, str] = {}
    rows = []
    for seed in opts.seeds:
        for model in MODELS:
            t0 = time.process_time()
            run = run_collector(Path(tempfile.mkdtemp(prefix="keck-model-")), model, seed=seed,
                                steps=opts.steps, warmup=opts.warmup)
            cpu_ms = 1000 * (time.process_time() - t0) / opts.steps
            names.update(run.names)
            rows.append((seed, model, run, cpu_ms))
    pids = sorted(names)
    main_pids = {p for p in pids if names[p] in MAIN_KINDS}
    head = f"{'seed':>4} {'model':<19}" + "".join(f"{names[p]:>9}" for p in pids) + \
        f"{'max|main|':>10}{'coverage':>10}{'±median':>9}{'idle W':>8}{'ms/int':>7}"
    print("CPU energy error per process (attributed − true) / true, over the scored intervals")
    print(head)
    for seed, model, run, cpu_ms in rows:
        err = energy_errors(run)
        worst = max(abs(err[p]) for p in main_pids)
        print(f"{seed:>4} {model:<19}" + "".join(f"{100 * err.get(p, math.nan):>+8.1f}%" for p in pids)
              + f"{100 * worst:>9.1f}%{100 * coverage(run):>9.1f}%{100 * median_half_width(run):>8.1f}%"
              + f"{run.idle_w:>8.2f}{cpu_ms:>7.2f}")
    print(f"(true idle baseline {rows[0][2].true_idle_w:.2f} W; coverage: (process, interval) pairs whose CPU "
          "bound contains the true watts; ±median: median bound half-width relative to the row's watts)")
    full = [r for _, m, r, _ in rows if m == "full"]
    if full:
        print("\nfull model, per process: coverage and median half-width")
        for p in pids:
            cov = [coverage(r, {p}) for r in full]
            wid = [median_half_width(r, {p}) for r in full]
            print(f"  {names[p]:<9} coverage {100 * min(cov):5.1f}–{100 * max(cov):5.1f} %   "
                  f"±median {100 * min(wid):4.1f}–{100 * max(wid):4.1f} %")
        cal = full[-1].calibration
        print("\ncalibration (last full run): " + ", ".join(
            f"{k}={cal.get(k)}" for k in ("status", "samples", "rmse_w", "r2", "recalibrations", "idle_watts")))
        print("model_reason: " + full[-1].reason)
        print("\nDRAM energy error per process, split by PSS + LLC misses with the miss share learned "
              "from the measured DRAM power (full run)")
        err = dram_errors(full[-1])
        print("  " + "  ".join(f"{names[p]} {100 * err.get(p, math.nan):+.1f}%" for p in pids))
    print("DRAM energy error per process under Keck's fixed 60 % PSS + 40 % LLC misses (same machine, offline)")
    err = keck_dram_errors(opts.seeds[0], opts.steps)
    print("  " + "  ".join(f"{names[p]} {100 * err.get(p, math.nan):+.1f}%" for p in pids))
    nocounters = run_collector(Path(tempfile.mkdtemp(prefix="keck-model-")), "auto", seed=opts.seeds[0],
                               steps=min(opts.steps, 200), warmup=min(opts.warmup, 100), counters=False)
    print(f"\nwithout counters, auto runs {nocounters.model}: {nocounters.reason}")
    err = dram_errors(nocounters)
    print("DRAM energy error per process (by PSS alone)\n  " + "  ".join(
        f"{names[p]} {100 * err.get(p, math.nan):+.1f}%" for p in pids))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
