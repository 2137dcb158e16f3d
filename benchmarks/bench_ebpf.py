"""Overhead of keck-top's eBPF probes, and the sampler's own CPU cost.

1. Context-switch cost: ``perf bench sched pipe`` (two tasks ping-ponging over a
   pipe: 2 context switches per op) with no probe, the probe, and the probe with
   hardware counters (per-CPU perf events read at every switch; software clocks
   stand in where there is no PMU, ``--counter-events``), rotating in the same run;
   reported as the median of the per-rep ratios against no probe, with their spread.
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

from keck_tui.probes.counters import PROBE_DEFAULT, open_counters  # noqa: E402
from keck_tui.probes.loader import OnCpuProbe, ProbeUnavailable, possible_cpus  # noqa: E402
from keck_tui.probes.perfevent import CPU_CLOCK  # noqa: E402


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


#: Stand-ins for the probe's hardware counters where there is no PMU: the software cpu-clock,
#: opened and read exactly like the hardware group (the leader with its times, the members
#: count only). Each software read is a clock read (pmu->read), where a hardware one is rdpmc.
SOFTWARE_STANDINS = {slot: CPU_CLOCK for slot in PROBE_DEFAULT}


def open_counter_probe(kind: str, **probe_kw) -> tuple[OnCpuProbe | None, str]:
    """The probe with counters installed (``kind``: hardware, software or auto), and which."""
    cpus = possible_cpus()
    ctrs = None
    if kind in ("hardware", "auto"):
        ctrs = open_counters(cpus)
        if not ctrs.slots:
            why = ctrs.reason()
            ctrs.close()
            ctrs = None
            if kind == "hardware":
                return None, f"no hardware counters: {why}"
    label = "hardware"
    if ctrs is None:
        ctrs = open_counters(cpus, SOFTWARE_STANDINS)
        label = "software stand-ins"
    probe = OnCpuProbe.open(counter_slots=ctrs.slots, **probe_kw)
    ctrs.install(probe.bpf)
    probe.counters = ctrs
    return probe, f"{label}: " + ", ".join(f"{s}={ctrs.events[s]}" for s in ctrs.slots)


def _spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": min(values), "max": max(values)}


def bench_switch(reps: int, loops: int, pin: bool, counter_events: str = "auto", **probe_kw) -> dict:
    """Rotate no probe / probe / probe + counters (order rotated every rep, each probe's
    sched_switch program attached only for its own runs); the slowdown of each is the
    median of its per-rep ratios to the rep's no-probe run, which cancels slow drifts
    in machine load."""
    probes: dict[str, OnCpuProbe | None] = {"off": None, "probe": OnCpuProbe.open(**probe_kw)}
    counters, label = (None, "skipped") if counter_events == "none" else open_counter_probe(counter_events, **probe_kw)
    if counters is not None:
        probes["probe+counters"] = counters
    runs: dict[str, list[float]] = {name: [] for name in probes}
    try:
        for p in probes.values():
            if p is not None:
                set_attached(p, False)
        pipe_usecs(loops // 4, pin)  # warm-up
        names = list(probes)
        for rep in range(reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:
                p = probes[name]
                if p is not None:
                    set_attached(p, True)
                try:
                    runs[name].append(pipe_usecs(loops, pin))
                finally:
                    if p is not None:
                        set_attached(p, False)
        misses = sum(p.prog_misses() for p in probes.values() if p is not None)
    finally:
        for p in probes.values():
            if p is not None:
                p.close()
    off = runs["off"]
    out: dict = {"pin": pin, "loops": loops, "reps": reps, "counters": label, "usecs_op": runs,
                 "median_off": statistics.median(off), "prog_misses": misses, "variants": {}}
    for name in names[1:]:
        ratios = [v / o for v, o in zip(runs[name], off)]
        med = statistics.median(runs[name])
        out["variants"][name] = {"median_usecs_op": med, "slowdown": _spread(ratios),
                                 "added_ns_per_switch": (med - out["median_off"]) * 1000 / 2}
    return out


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


def bench_prog_ns(loops: int, counter_events: str = "auto") -> dict:
    """Mean run time of the sched_switch program per event (kernel BPF stats,
    enabled only for this measurement), for keck-top's probe (with and without
    counters) and references. Stats add two clock reads per run to every figure;
    compare the differences."""
    from keck_tui.bcc_import import load_bcc
    bcc, _ = load_bcc()
    progs = {"keck-top": OnCpuProbe.open().bpf}
    holders = []
    if counter_events != "none":
        with_counters, _label = open_counter_probe(counter_events)
        if with_counters is not None:
            holders.append(with_counters)  # keeps the perf events (closed with it)
            progs["keck-top+counters"] = with_counters.bpf
            # the breakdown: the counter code with one event (the leader, read with its times),
            # and with four slots compiled in but no event installed (every read fails at once)
            one = open_counters(possible_cpus(), {"cycles": SOFTWARE_STANDINS["cycles"]})
            single = OnCpuProbe.open(counter_slots=one.slots)
            one.install(single.bpf)
            single.counters = one
            empty = OnCpuProbe.open(counter_slots=("cycles", "instructions", "llc_misses", "ref_cycles"))
            holders += [single, empty]
            progs["keck-top+1 software event"] = single.bpf
            progs["keck-top+counter code, no event"] = empty.bpf
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
        for h in holders:
            h.close()
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
    ap.add_argument("--counter-events", choices=("auto", "hardware", "software", "none"), default="auto",
                    help="counters for the probe+counters variant: the PMU's (auto falls back to software "
                         "clocks as stand-ins where there is no PMU), software only, or none")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        OnCpuProbe.open().close()
    except ProbeUnavailable as exc:
        print(f"bench_ebpf: probe unavailable: {exc}", file=sys.stderr)
        return 2
    results: dict = {}
    if not args.skip_switch:
        results["prog_ns"] = bench_prog_ns(args.loops, args.counter_events)
        results["pinned"] = bench_switch(args.reps, args.loops, pin=True, counter_events=args.counter_events)
    if args.no_pin and not args.skip_switch:
        results["unpinned"] = bench_switch(args.reps, max(1000, args.loops // 20), pin=False,
                                           counter_events=args.counter_events)
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
            print(f"perf bench sched pipe ({name}, -l {r['loops']}, {r['reps']} rotating reps; "
                  f"counters: {r['counters']}): no probe {r['median_off']:.3f} us/op; missed runs {r['prog_misses']}")
            for variant, v in r["variants"].items():
                sp = v["slowdown"]
                print(f"  {variant:<15} {v['median_usecs_op']:.3f} us/op  slowdown x{sp['median']:.3f} "
                      f"(per-rep ratios: IQR {sp['q1']:.3f}-{sp['q3']:.3f}, range {sp['min']:.3f}-{sp['max']:.3f}), "
                      f"{v['added_ns_per_switch']:+.0f} ns/switch")
            for variant, values in r["usecs_op"].items():
                print(f"  {variant + ':':<15} {' '.join(f'{x:.3f}' for x in values)}")
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
