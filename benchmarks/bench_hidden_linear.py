#!/usr/bin/env python3
"""Bounds against a known truth on this machine's real CPU activity.

A fake powercap counter (a FakeSys tree: intel-rapl:0 ``energy_uj``) is driven
by this machine's *real* per-process CPU time through a hidden linear model,
``P = idle + k · busy CPU-seconds per second``, every ``--tick`` seconds. Two
worker processes burn CPU with varying duty cycles (a sine and random steps,
with idle phases, so the load varies). keck-top's real collector (procfs
activity, the real RaplSampler reading the fake counter, cpufreq) attributes the
counter's power every second; each worker's true watts over the same interval
are ``k × its CPU seconds`` as the driver measured them. Printed: how often the
bounds contain the truth (coverage), the median error, the median bound
half-width, and the idle baseline learned against the hidden one.

    .venv/bin/python benchmarks/bench_hidden_linear.py [--seconds 80]

Runs on any Linux (no sensor needed); the state directory is a temporary one.
Run it from another checkout (``PYTHONPATH=/path/to/other``) to compare versions.
"""
from __future__ import annotations

import argparse
import inspect
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakesys import FakeSys  # noqa: E402
from keck_tui.attribution.engine import AttributionConfig  # noqa: E402
from keck_tui.collector import Collector  # noqa: E402
from keck_tui.samplers.cpufreq import CpufreqSampler  # noqa: E402
from keck_tui.samplers.procfs import make_activity_sampler  # noqa: E402
from keck_tui.samplers.rapl import RaplSampler  # noqa: E402

HIDDEN_IDLE_W = 9.5
HIDDEN_K = 11.0  # W per busy CPU-second per second
ZONE = "intel-rapl:0"


def worker(kind: str, seconds: float, seed: int) -> None:
    """Burn CPU in 10 ms slices with a duty cycle that changes over time."""
    import random

    rng = random.Random(seed)
    start = time.monotonic()
    level, next_change = 0.5, 0.0
    while (now := time.monotonic() - start) < seconds:
        if kind == "sine":
            duty = max(0.0, math.sin(2 * math.pi * now / 23.0)) ** 1.5
        else:
            if now >= next_change:
                level, next_change = rng.choice((0.0, 0.25, 0.6, 1.0)), now + rng.uniform(3.0, 7.0)
            duty = level
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.01 * duty:
            pass
        time.sleep(max(0.0, 0.01 * (1.0 - duty)))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    with open("/proc/stat", "rb") as f:
        parts = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in parts[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class Driver(threading.Thread):
    """Advances the fake energy counter from real CPU activity through the hidden model."""

    def __init__(self, sys_root: Path, pids: list[int], tick: float) -> None:
        super().__init__(daemon=True)
        self.energy_path = next(sys_root.rglob(f"{ZONE}/energy_uj"))
        self.pids, self.tick = pids, tick
        self.truth_j = {pid: 0.0 for pid in pids}  # cumulative true joules per worker
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.energy_uj = 0.0

    def _write(self) -> None:
        tmp = self.energy_path.with_name(".energy_uj.tmp")
        tmp.write_text(f"{int(self.energy_uj)}\n")
        os.replace(tmp, self.energy_path)  # a reader never sees half a number

    def run(self) -> None:
        last_t, last_busy = time.monotonic(), busy_seconds()
        last_cpu = {pid: cpu_seconds(pid) for pid in self.pids}
        while not self.stop_flag.wait(self.tick):
            now, busy = time.monotonic(), busy_seconds()
            cpu = {}
            for pid in self.pids:
                try:
                    cpu[pid] = cpu_seconds(pid)
                except OSError:
                    cpu[pid] = last_cpu[pid]
            with self.lock:
                self.energy_uj += 1e6 * (HIDDEN_IDLE_W * (now - last_t) + HIDDEN_K * max(0.0, busy - last_busy))
                for pid in self.pids:
                    self.truth_j[pid] += HIDDEN_K * max(0.0, cpu[pid] - last_cpu[pid])
                self._write()
            last_t, last_busy, last_cpu = now, busy, cpu

    def truth(self) -> dict[int, float]:
        with self.lock:
            return dict(self.truth_j)


def find(row, pid: int):
    for _, r in row.walk():
        if r.pid == pid and r.level == "process":
            return r
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=80.0)
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds not scored at the start")
    ap.add_argument("--tick", type=float, default=0.01, help="driver period (s)")
    ap.add_argument("--show-misses", action="store_true", help="print every row whose bound missed the truth")
    opts = ap.parse_args()
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="keck-hidden-"))
    fakesys = FakeSys(tmp / "sys")
    fakesys.add_rapl_zone(ZONE, "package-0", energy_uj=0, max_power_uw=200_000_000)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=worker, args=(kind, opts.seconds + 5, i), daemon=True)
             for i, kind in enumerate(("sine", "steps"))]
    for p in procs:
        p.start()
    pids = [p.pid for p in procs]
    driver = Driver(tmp / "sys", pids, opts.tick)
    driver.start()
    kwargs = dict(activity=make_activity_sampler("/proc"), grouper=_NoGroups(), host="bench",
                  power=[RaplSampler(str(tmp / "sys"))], frequency=CpufreqSampler("/sys", "/proc"),
                  config=AttributionConfig())
    if "state_dir" in inspect.signature(Collector).parameters:
        kwargs["state_dir"] = tmp / "state"
    collector = Collector(**kwargs)
    collector.prime()
    prev_truth, prev_t = driver.truth(), time.monotonic()
    rows: list[tuple[float, float, float, float]] = []  # (truth, watts, lo, hi)
    terms: list[dict] = []  # the bound's terms of each scored row
    cal_status: list[str | None] = []
    stamps: list[float] = []
    snap = None
    start = time.monotonic()
    try:
        while time.monotonic() - start < opts.seconds:
            time.sleep(max(0.0, 1.0 - (time.monotonic() - prev_t)))
            snap = collector.collect()
            truth, now = driver.truth(), time.monotonic()
            interval = snap.interval_s or (now - prev_t)
            if now - start >= opts.warmup:
                for pid in pids:
                    row = find(snap.root, pid)
                    true_w = (truth[pid] - prev_truth[pid]) / interval
                    if row is not None and true_w > 0.05:
                        rows.append((true_w, row.watts, row.watts_lo, row.watts_hi))
                        terms.append((row.extra or {}).get("bound") or {})
                        cal_status.append((snap.extra.get("calibration") or {}).get("status"))
                        stamps.append(now - start)
            prev_truth, prev_t = truth, now
    finally:
        driver.stop_flag.set()
        for p in procs:
            p.terminate()
        collector.close()
    if not rows or snap is None:
        print("no rows scored")
        return 1
    load_end = os.getloadavg()[0]
    covered = sum(lo - 1e-9 <= t <= hi + 1e-9 for t, _, lo, hi in rows)
    if opts.show_misses:
        for i, (t, w, lo, hi) in enumerate(rows):
            if not lo - 1e-9 <= t <= hi + 1e-9:
                print(f"  miss at {stamps[i]:.0f} s ({cal_status[i]}): truth {t:.3f} W, row {w:.3f} W "
                      f"[{lo:.3f}, {hi:.3f}], terms {terms[i]}")
    errors = [abs(w - t) / t for t, w, _, _ in rows]
    widths = [(hi - lo) / 2 / w for t, w, lo, hi in rows if w > 0]
    if any(terms):
        for key in ("sensor_w", "idle_w", "model_w", "tick_w"):
            rel = [t.get(key, 0.0) / r[1] for t, r in zip(terms, rows) if r[1] > 0 and t]
            if rel:
                print(f"  median {key[:-2]} term: ±{100 * statistics.median(rel):.1f} % of the row")
        calibrated = [i for i, st in enumerate(cal_status) if st == "calibrated"]
        if calibrated:
            cw = [(rows[i][3] - rows[i][2]) / 2 / rows[i][1] for i in calibrated if rows[i][1] > 0]
            cc = sum(rows[i][2] - 1e-9 <= rows[i][0] <= rows[i][3] + 1e-9 for i in calibrated)
            for i in calibrated[-4:]:
                print("   ", [round(x, 3) for x in rows[i]], terms[i])
            ce = [abs(rows[i][1] - rows[i][0]) / rows[i][0] for i in calibrated]
            print(f"  once calibrated ({len(calibrated)} worker-intervals): coverage {100 * cc / len(calibrated):.1f} %, "
                  f"median |error| {100 * statistics.median(ce):.1f} %, median half-width ±{100 * statistics.median(cw):.1f} %")
    idle = snap.extra.get("idle_watts")
    print(f"hidden model: P = {HIDDEN_IDLE_W} W + {HIDDEN_K} W × busy CPU-s/s; {len(rows)} worker-intervals "
          f"scored over {opts.seconds:.0f} s (first {opts.warmup:.0f} s not scored); model {snap.model}; "
          f"load average (1 min) {load_start:.2f} at the start, {load_end:.2f} at the end")
    print(f"coverage (truth inside [lo, hi]): {100 * covered / len(rows):.1f} %")
    print(f"median |error|: {100 * statistics.median(errors):.1f} %   (p90 {100 * _q(errors, 0.9):.1f} %)")
    print(f"median bound half-width: ±{100 * statistics.median(widths):.1f} %   (p90 ±{100 * _q(widths, 0.9):.1f} %)")
    if isinstance(idle, (int, float)):
        print(f"idle baseline: {idle:.3f} W learned ({snap.extra.get('idle_method')}), hidden {HIDDEN_IDLE_W} W "
              f"({100 * (idle - HIDDEN_IDLE_W) / HIDDEN_IDLE_W:+.2f} %)")
    cal = snap.extra.get("calibration")
    if isinstance(cal, dict):
        print("calibration: " + ", ".join(f"{k}={cal[k]}" for k in ("model", "status", "samples", "rmse_w", "r2",
                                                                   "recalibrations") if k in cal))
    return 0


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class _NoGroups:
    def group_of(self, process):  # noqa: ANN001, ANN201
        return ()


if __name__ == "__main__":
    raise SystemExit(main())
