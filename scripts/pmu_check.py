"""The body of scripts/pmu-check.sh: every attribution model on a machine with a PMU and RAPL.

Two workers of equal CPU time, each pinned to its own CPU: a compute-bound loop
(SHA-256 over a buffer that fits in L2: high IPC, few misses) and a memory-bound
one (page-strided reads over a large array: low IPC, an LLC miss per access).
keck-top's own collector (the production wiring: activity sampler, RAPL, cpufreq,
hardware counters) samples them once a second; the same readings are attributed
under cpu-time, frequency-weighted and full (three collectors fed by one set of
samplers). First a calibration phase with varied load (the workers alone,
together, at different duty cycles) so the full model can learn its coefficients
against RAPL, then the measured phase at 100 % each. Prints each worker's watts
under every model beside the RAPL package total, its counters and IPC.

Exit status: 0 ran, 2 usage, 3 this machine lacks a PMU or RAPL (what and why is
printed; --force runs anyway, with figures that prove nothing).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

# the tree this script is in, so ``python3 scripts/pmu_check.py`` works from a copy with nothing installed
# (pmu-check.sh sets PYTHONPATH too)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("cpu-time", "frequency-weighted", "full")
NOT_APPLICABLE = 3


def say(*parts: object) -> None:
    print(*parts, flush=True)


# ---- the workers ---------------------------------------------------------------------------
def _compute_chunk(state: dict) -> None:
    buf = state.setdefault("buf", os.urandom(64 * 1024))
    for _ in range(8):
        buf = hashlib.sha256(buf).digest() * 2048  # 64 KiB again: stays in L2


def _memory_chunk(state: dict) -> None:
    big = state["big"]
    off = state.get("off", 0)
    _ = big[off::4099]  # one byte every 4099: a new page (and an LLC miss) each read
    state["off"] = (off + 1) % 4099


def worker(kind: str, cpu: int, duty: Any, stop: Any, mem_mb: int) -> None:
    """Run ``kind`` on ``cpu`` at the shared duty cycle (0..1, per 20 ms slice) until ``stop``."""
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass
    state: dict = {}
    if kind == "memory":
        big = bytearray(mem_mb << 20)
        big[::4096] = b"\x01" * len(range(0, len(big), 4096))  # fault every page in (not the zero page)
        state["big"] = big
    chunk = _compute_chunk if kind == "compute" else _memory_chunk
    while not stop.value:
        d = duty.value
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.02 * d:
            chunk(state)
        rest = 0.02 * (1.0 - d) - max(0.0, time.perf_counter() - t0 - 0.02 * d)
        if rest > 0:
            time.sleep(rest)


# ---- keck-top's samplers, shared by one collector per model ------------------------------------
class Tee:
    """One real sampler read once per tick, handed to every collector."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.name = getattr(sampler, "name", "tee")
        self.value: Any = None

    def tick(self) -> None:
        self.value = self.sampler.sample()

    def sample(self) -> Any:
        return self.value

    def close(self) -> None:
        for name in ("stop", "close"):
            fn = getattr(self.sampler, name, None)
            if callable(fn):
                fn()
                return


def build(args: argparse.Namespace) -> tuple[dict[str, Any], list[Tee], Any]:
    from keck_tui.config import Settings
    from keck_tui.wiring import build_collector

    settings = Settings(model="full", probes=args.probes, state_dir=args.state_dir or "none")
    base = build_collector(settings)
    tees: list[Tee] = []

    def tee(s: Any) -> Any:
        if s is None:
            return None
        t = Tee(s)
        tees.append(t)
        return t

    shared: dict[str, Any] = {"activity": tee(base.activity), "power": [tee(s) for s in base.power],
                              "gpus": [], "frequency": tee(base.frequency)}
    if getattr(base, "counters", None) is not None:
        shared["counters"] = tee(base.counters)
    if hasattr(base, "work"):
        shared["work"] = None  # work counters (inference servers) are not part of this check
    collectors = {m: replace(base, config=replace(base.config, model=m), **shared) for m in MODELS}
    return collectors, tees, base


def status_of(snap: Any, name: str) -> Any:
    return next((s for s in snap.sources if s.name == name), None)


def probe_counters(activity: Any) -> str:
    """Where each process's counters come from: the eBPF probe (read at every context switch)
    or the cores' counters shared by on-CPU time."""
    extra = (activity.extra or {}) if activity is not None else {}
    got = extra.get("counters")
    if activity is None or activity.name != "ebpf":
        return "none measured per process (no eBPF probe: --probes ebpf as root with bcc); cores' counters shared by time"
    if not got or got == "none":
        return "none: the eBPF probe has no hardware counters (the activity line says why); cores' counters shared by time"
    ratio = extra.get("counter_running_ratio")
    mux = f", running {ratio:.0%} of the time (multiplexed, scaled)" if isinstance(ratio, float) and ratio < 0.999 else ""
    return f"eBPF probe at every sched_switch: {got}{mux}"


def process_row(snap: Any, pid: int) -> Any:
    return next((r for _, r in snap.root.walk() if r.level == "process" and r.pid == pid), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pmu-check.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--calibrate-s", type=float, default=150.0,
                    help="seconds of varied load for the full model to calibrate (default 150)")
    ap.add_argument("--measure-s", type=float, default=30.0, help="seconds of the measured phase (default 30)")
    ap.add_argument("--cpus", type=int, nargs=2, metavar=("COMPUTE", "MEMORY"),
                    help="CPUs to pin the two workers to (default: the last two online)")
    ap.add_argument("--mem-mb", type=int, default=512, help="memory-bound worker's array (MiB, default 512)")
    ap.add_argument("--probes", choices=("auto", "ebpf", "procfs"), default="auto")
    ap.add_argument("--state-dir", help="reuse/keep the calibration there (default: none, a fresh calibration)")
    ap.add_argument("--force", action="store_true", help="run even without a PMU or RAPL (numbers prove nothing)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if args.calibrate_s < 0 or args.measure_s <= 0 or args.mem_mb <= 0:
        say("pmu-check: --calibrate-s ≥ 0, --measure-s > 0 and --mem-mb > 0 please")
        return 2
    say(f"pmu-check: {platform.node()} · Linux {platform.release()} · {platform.machine()} · "
        f"python {platform.python_version()}")
    collectors, tees, base = build(args)
    for t in tees:
        t.tick()
    for c in collectors.values():
        c.prime()
    time.sleep(0.5)
    for t in tees:
        t.tick()
    probe = collectors["full"].collect()
    rapl = status_of(probe, "rapl")
    counters = status_of(probe, "counters")
    activity = probe.sources[0] if probe.sources else None
    say(f"  activity: {activity.name if activity else '?'}" + (f" ({activity.detail})" if activity and activity.detail else ""))
    say(f"  per-process counters: {probe_counters(activity)}")
    say(f"  RAPL:     {'ok' if rapl and rapl.ok else 'MISSING'} — {rapl.detail if rapl else 'no RAPL sampler'}")
    say(f"  counters: {'ok' if counters and counters.ok else 'MISSING'} — "
        f"{counters.detail if counters else 'this keck-top has no hardware-counter sampler'}")
    say(f"  the full model here: {probe.model} — {probe.extra.get('model_reason', '')}")
    missing = [what for what, st in (("RAPL", rapl), ("a PMU (hardware counters)", counters))
               if st is None or not st.ok]
    if missing and not args.force:
        say(f"pmu-check: this machine lacks {' and '.join(missing)}: nothing to check here. Run it on bare metal "
            "with RAPL readable (root) and a PMU (not most VMs); --force runs anyway.")
        for t in tees:
            t.close()
        return NOT_APPLICABLE
    if missing:
        say(f"pmu-check: --force without {' and '.join(missing)}: the figures below prove nothing")

    online = sorted(os.sched_getaffinity(0))
    cpus = args.cpus or (online[-2:] if len(online) >= 2 else online * 2)
    ctx = mp.get_context("fork")
    stop = ctx.Value("b", 0)
    duties = {k: ctx.Value("d", 0.0) for k in ("compute", "memory")}
    procs = {k: ctx.Process(target=worker, args=(k, cpu, duties[k], stop, args.mem_mb), daemon=True)
             for k, cpu in zip(("compute", "memory"), cpus)}
    for p in procs.values():
        p.start()
    pids = {k: p.pid for k, p in procs.items()}
    say(f"  workers: compute pid {pids['compute']} on CPU {cpus[0]}, memory pid {pids['memory']} on CPU {cpus[1]}")
    rows: list[dict[str, Any]] = []
    try:
        _phase(collectors, tees, duties, args.calibrate_s, pids, rows=None, varied=True)
        cal = collectors["full"].collect().extra.get("calibration") or {}
        say(f"  calibration after {args.calibrate_s:.0f} s: {_calibration_line(cal)}")
        _phase(collectors, tees, duties, args.measure_s, pids, rows=rows, varied=False)
    finally:
        stop.value = 1
        for p in procs.values():
            p.join(timeout=3)
            if p.is_alive():
                p.terminate()
        for c in collectors.values():
            c.save_calibration(force=True) if hasattr(c, "save_calibration") else None
        for t in tees:
            t.close()
    _report(rows, pids)
    return 0


def _calibration_line(cal: dict[str, Any]) -> str:
    """``calibrated (120/60, tracking ±0.31 W, R² 0.997)``; the reason where it has no fit."""
    out = f"{cal.get('status')} ({cal.get('samples')}/{cal.get('needed')}"
    if isinstance(cal.get("rmse_w"), (int, float)) and isinstance(cal.get("r2"), (int, float)):
        return out + f", tracking ±{cal['rmse_w']:.2f} W, R² {cal['r2']:.3f})"
    return out + f": {cal.get('reason') or 'no fit yet'})"


def _phase(collectors: dict[str, Any], tees: list[Tee], duties: dict[str, Any], seconds: float,
           pids: dict[str, int], rows: list | None, varied: bool) -> None:
    """Sample once a second for ``seconds``; ``varied``: cycle the workers through mixes and duty cycles."""
    mixes = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0), (0.5, 1.0), (1.0, 0.3), (0.3, 0.6), (0.8, 0.8)]
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        if varied:
            c, m = mixes[(n // 4) % len(mixes)]
        else:
            c, m = 1.0, 1.0
        duties["compute"].value, duties["memory"].value = c, m
        time.sleep(max(0.0, start + n + 1 - time.monotonic()))
        n += 1
        for t in tees:
            t.tick()
        snaps = {name: col.collect() for name, col in collectors.items()}
        if rows is None:
            continue
        rapl = status_of(snaps["full"], "rapl")
        entry: dict[str, Any] = {"rapl_w": (snaps["full"].root.components or {}).get("cpu"),
                                 "rapl_ok": bool(rapl and rapl.ok),
                                 "ran": {name: snap.model for name, snap in snaps.items()}}
        for kind, pid in pids.items():
            for name, snap in snaps.items():
                row = process_row(snap, pid)
                if row is not None:
                    entry[(kind, name)] = ((row.components or {}).get("cpu", row.watts), row.watts_lo, row.watts_hi)
                    entry[(kind, "cpu_s")] = row.cpu_s
                    entry[(kind, "counters")] = {
                        "ipc": row.ipc, "mhz": row.freq_mhz if row.freq_source == "cycles" else None,
                        "llc_misses": (row.llc_misses / snap.interval_s
                                       if row.llc_misses is not None and snap.interval_s > 0 else None)}
        rows.append(entry)


def _mean(values: list[float]) -> float:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return statistics.fmean(vals) if vals else math.nan


def _report(rows: list[dict[str, Any]], pids: dict[str, int]) -> None:
    if not rows:
        say("pmu-check: no intervals measured")
        return
    say(f"\nmeasured phase: {len(rows)} intervals, both workers at 100 % (equal CPU time)")
    measured = all(r["rapl_ok"] for r in rows)
    say(f"  RAPL package (Σ CPU): {_mean([r['rapl_w'] for r in rows]):.2f} W mean"
        + ("" if measured else "  (NOT measured: the estimate, no RAPL)"))
    ran = rows[-1]["ran"]
    label = {m: m if ran.get(m) == m else f"{m}→{ran.get(m)}" for m in MODELS}
    head = f"  {'worker':<8} {'CPU s/s':>8}" + "".join(f"{label[m]:>25}" for m in MODELS) + \
        f"{'IPC':>6}{'LLC miss/s':>12}{'MHz':>7}"
    say(head)
    for kind in pids:
        cells = []
        for m in MODELS:
            w = _mean([r[(kind, m)][0] for r in rows if (kind, m) in r])
            half = _mean([(r[(kind, m)][2] - r[(kind, m)][1]) / 2 for r in rows if (kind, m) in r])
            cells.append(f"{w:8.2f} W ±{half:5.2f}".rjust(25))
        cpu = _mean([r.get((kind, "cpu_s")) for r in rows])
        ctr = [r.get((kind, "counters")) or {} for r in rows]
        ipc = _mean([c.get("ipc") for c in ctr])
        misses = _mean([c.get("llc_misses") for c in ctr])
        mhz = _mean([c.get("mhz") for c in ctr])
        say(f"  {kind:<8} {cpu:>8.2f}" + "".join(cells) + f"{ipc:>6.2f}{misses:>12.3g}{mhz:>7.0f}")
    for m in MODELS:
        c = _mean([r[("compute", m)][0] for r in rows if ("compute", m) in r])
        mm = _mean([r[("memory", m)][0] for r in rows if ("memory", m) in r])
        say(f"  {label[m]:<24} compute/memory = {c / mm if mm else math.nan:.2f}")
    say("  (equal CPU time: cpu-time gives both the same watts; full splits by what the counters say, with "
        "coefficients learned against RAPL in the calibration phase)")


if __name__ == "__main__":
    sys.exit(main())
