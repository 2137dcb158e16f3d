"""Overhead of keck-top's eBPF probes, and the sampler's own CPU cost.

1. Context-switch cost: ``perf bench sched pipe`` (two tasks ping-ponging over a
   pipe: 2 context switches per op) with the probe unloaded and loaded,
   alternating in the same run; reported as the ratio of median usecs/op.
   The default run puts both tasks on one CPU at SCHED_FIFO: every op is two
   switches and nothing else, the worst case for a sched_switch probe. ``--no-pin`` lets
   them cross CPUs (dominated by wake-up IPIs and idle exits on a VM).
2. Per-event cost: the program's mean run time (kernel BPF stats), next to an
   empty program and one that only reads the clock.
3. Sampler cost: CPU seconds per wall second of the ``ebpf`` sampler vs the
   ``procfs`` sampler, each calling ``sample()`` at --hz for --seconds.

Needs root, bcc and linux-perf. Run: ``sudo .venv/bin/python benchmarks/bench_ebpf.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keck_tui.probes.loader import OnCpuProbe, ProbeUnavailable  # noqa: E402


PIN_CPU = "1"
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
REFERENCES = {
    # The floor: a raw tracepoint program that does nothing.
    "empty": "RAW_TRACEPOINT_PROBE(sched_switch) { return 0; }",
    # One clock read: what a ktime-based probe pays on top (a VM's clock can be slow).
    "ktime": ("BPF_PERCPU_ARRAY(a, u64, 1);\nRAW_TRACEPOINT_PROBE(sched_switch) {\n"
              "u32 z = 0; u64 *v = a.lookup(&z); if (v) *v = bpf_ktime_get_ns(); return 0; }"),
}


def pipe_usecs(loops: int, pin: bool) -> float:
    cmd = ["perf", "bench", "sched", "pipe", "-l", str(loops)]
    if pin:
        # One CPU, SCHED_FIFO: every op is two switches, and other load on the
        # machine cannot interleave (it made CFS runs noisy by +-30 % here).
        cmd = ["chrt", "-f", "50", "taskset", "-c", PIN_CPU] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"([\d.]+)\s+usecs/op", out)
    if not m:
        raise RuntimeError(f"cannot parse perf output: {out!r}")
    return float(m.group(1))


SWITCH_FN = b"raw_tracepoint__sched_switch"


def set_attached(probe: OnCpuProbe, on: bool) -> None:
    """Attach or detach the sched_switch program (compiled once; toggling is cheap)."""
    bpf = probe.bpf
    if on:
        bpf.attach_raw_tracepoint(tp=b"sched_switch", fn_name=SWITCH_FN)
    else:
        bpf.detach_raw_tracepoint(tp=b"sched_switch")


def bench_switch(reps: int, loops: int, pin: bool, **probe_kw) -> dict:
    """Alternate unloaded/loaded runs (order flipped every rep, the probe's
    sched_switch program detached/attached in between); the slowdown is the
    median of the per-pair ratios, which cancels slow drifts in machine load."""
    off: list[float] = []
    on: list[float] = []
    ratios: list[float] = []
    probe = OnCpuProbe.open(**probe_kw)
    try:
        pipe_usecs(loops // 4, pin)  # warm-up
        attached = True
        for rep in range(reps):
            pair = {}
            for state in ((False, True) if rep % 2 == 0 else (True, False)):
                if state != attached:
                    set_attached(probe, state)
                    attached = state
                pair[state] = pipe_usecs(loops, pin)
            off.append(pair[False])
            on.append(pair[True])
            ratios.append(pair[True] / pair[False])
        misses = probe.prog_misses()
    finally:
        probe.close()
    mo, mn = statistics.median(off), statistics.median(on)
    return {"pin": pin, "loops": loops, "reps": reps, "off_usecs_op": off, "on_usecs_op": on,
            "median_off": mo, "median_on": mn, "slowdown": statistics.median(ratios),
            "slowdown_of_medians": mn / mo,
            "added_ns_per_switch": (mn - mo) * 1000 / 2, "prog_misses": misses}


def _prog_stats(bpf) -> tuple[int, int]:
    rt = cnt = 0
    for fn in getattr(bpf, "funcs", {}).values():
        if b"sched_switch" not in fn.name:
            continue
        for line in Path(f"/proc/self/fdinfo/{fn.fd}").read_text().splitlines():
            if line.startswith("run_time_ns:"):
                rt += int(line.split()[1])
            elif line.startswith("run_cnt:"):
                cnt += int(line.split()[1])
    return rt, cnt


def bench_prog_ns(loops: int) -> dict:
    """Mean run time of the sched_switch program per event (kernel BPF stats,
    enabled only for this measurement), for keck-top's probe and references.
    Stats add two clock reads per run to every figure; compare the differences."""
    from keck_tui.bcc_import import load_bcc
    bcc, _ = load_bcc()
    progs = {"keck-top": OnCpuProbe.open().bpf}
    for name, text in REFERENCES.items():
        progs[name] = bcc.BPF(text=text.encode(), cflags=["-Wno-ignored-attributes"])
    was = STATS.read_text().strip()
    out: dict = {}
    try:
        STATS.write_text("1")
        before = {n: _prog_stats(b) for n, b in progs.items()}
        pipe_usecs(loops, True)
        for n, b in progs.items():
            rt, cnt = _prog_stats(b)
            rt, cnt = rt - before[n][0], cnt - before[n][1]
            out[n] = round(rt / cnt, 1) if cnt else None
    finally:
        STATS.write_text(was or "0")
        for b in progs.values():
            b.cleanup()
    return out


def cpu_per_second(sampler, seconds: float, hz: float) -> float:
    sampler.sample()
    t0 = time.monotonic()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    while time.monotonic() - t0 < seconds:
        time.sleep(1 / hz)
        sampler.sample()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - t0
    return (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / wall


def bench_samplers(seconds: float, hz: float, rounds: int = 4) -> dict:
    """CPU seconds per second of each sampler, alternating ebpf/procfs rounds so a
    change in the machine's process count hits both alike."""
    out: dict = {"hz": hz, "seconds": seconds, "rounds": rounds}
    from keck_tui.samplers.ebpf import open_ebpf_sampler
    from keck_tui.samplers.procfs import ProcfsSampler
    sampler, status = open_ebpf_sampler()
    if sampler is None:
        out["ebpf"] = f"unavailable: {status.detail}"
        return out
    procfs = ProcfsSampler()
    ebpf_runs, procfs_runs = [], []
    try:
        for _ in range(rounds):
            ebpf_runs.append(cpu_per_second(sampler, seconds / rounds, hz))
            procfs_runs.append(cpu_per_second(procfs, seconds / rounds, hz))
    finally:
        sampler.close()
    out["ebpf_cpu_s_per_s"] = statistics.mean(ebpf_runs)
    out["procfs_cpu_s_per_s"] = statistics.mean(procfs_runs)
    out["processes"] = len(procfs.sample().processes)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--loops", type=int, default=50_000, help="perf bench -l for the pinned runs")
    ap.add_argument("--no-pin", action="store_true", help="also run the cross-CPU variant")
    ap.add_argument("--sampler-seconds", type=float, default=10.0)
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--skip-samplers", action="store_true")
    ap.add_argument("--skip-switch", action="store_true", help="only the sampler CPU cost")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        OnCpuProbe.open().close()
    except ProbeUnavailable as exc:
        print(f"bench_ebpf: probe unavailable: {exc}", file=sys.stderr)
        return 2
    results: dict = {}
    if not args.skip_switch:
        results["prog_ns"] = bench_prog_ns(args.loops)
        results["pinned"] = bench_switch(args.reps, args.loops, pin=True)
    if args.no_pin and not args.skip_switch:
        results["unpinned"] = bench_switch(args.reps, max(1000, args.loops // 20), pin=False)
    if not args.skip_samplers:
        results["samplers"] = bench_samplers(args.sampler_seconds, args.hz)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    p = results.get("prog_ns")
    if p:
        print("sched_switch program, mean ns per event (kernel BPF stats; each includes the "
              "stats' own clock reads): " + ", ".join(f"{k} {v}" for k, v in p.items()))
    for name in ("pinned", "unpinned"):
        r = results.get(name)
        if r:
            print(f"perf bench sched pipe ({name}, -l {r['loops']}, {r['reps']} alternating reps): "
                  f"off {r['median_off']:.3f} us/op, on {r['median_on']:.3f} us/op, "
                  f"slowdown x{r['slowdown']:.3f} (median of pair ratios; of medians "
                  f"x{r['slowdown_of_medians']:.3f}, {r['added_ns_per_switch']:+.0f} ns/switch), "
                  f"missed runs {r['prog_misses']}")
            print(f"  off: {' '.join(f'{v:.3f}' for v in r['off_usecs_op'])}")
            print(f"  on:  {' '.join(f'{v:.3f}' for v in r['on_usecs_op'])}")
    s = results.get("samplers")
    if s:
        if "ebpf" in s:
            print(f"sampler CPU: ebpf {s['ebpf']}")
        else:
            print(f"sampler CPU at {s['hz']} Hz, {s['seconds']} s each, {s['rounds']} alternating "
                  f"rounds, {s['processes']} processes: ebpf {s['ebpf_cpu_s_per_s']:.4f} CPU-s/s, "
                  f"procfs {s['procfs_cpu_s_per_s']:.4f} CPU-s/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
