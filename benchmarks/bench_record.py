#!/usr/bin/env python3
"""Recording overhead and `keck-top report` speed over a day-long recording.

1. Overhead: CPU (user+system, getrusage) of ``Collector.collect()`` on this
   machine versus CPU of writing the same snapshot to a recording
   (``RecordingWriter.write``: JSON encoding + compression + flush), per
   snapshot, medians over the cycles. Target: writing ≤ 5 % of collecting.
2. Report: a 24 h recording at 1 s (86,400 snapshots of a 200-row fleet tree,
   zstd) is generated once under /tmp/keck-bench (from demo-fleet snapshots,
   cycled, so its energy is known by construction); then ``keck-top report``
   runs on it in a subprocess per ``--by``: wall time and peak RSS. Target ≤ 20 s.
   The same on a tenth of the file shows the memory does not grow with length.

    .venv/bin/python benchmarks/bench_record.py              # both parts
    .venv/bin/python benchmarks/bench_record.py --quick      # smaller, for a smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampling import kill, spawn  # noqa: E402
from keck_tui.model import Row, Snapshot  # noqa: E402
from keck_tui.recording import RecordingWriter, encode_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = 1234567890.0625  # a time that appears nowhere else in a line


# ----------------------------------------------------------------- part 1


BLINKER = "while :; do i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; sleep 0.05; done"


def cpu_self() -> float:
    """CPU seconds of this process, all threads (CLOCK_PROCESS_CPUTIME_ID: not tick-sampled)."""
    return time.process_time()


def overhead(children: int, busy: int, cycles: int, interval: float) -> None:
    from keck_tui.config import Settings
    from keck_tui.wiring import LocalSources, build_collector

    procs: list = []
    spawn(children, procs)
    try:
        for _ in range(busy):  # processes that use a little CPU in every interval: rows in the tree
            procs.append(subprocess.Popen(["sh", "-c", BLINKER], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        collector = build_collector(Settings(probes="procfs"), LocalSources(gpu=False))
        collector.prime()
        with tempfile.TemporaryDirectory() as tmp:
            writers = {ext: RecordingWriter(Path(tmp) / f"r.jsonl{ext}") for ext in ("", ".gz", ".zst")}
            collect: list[float] = []
            write: dict[str, list[float]] = {ext: [] for ext in writers}
            rows = size = 0
            for _ in range(cycles):
                time.sleep(interval)
                t0 = cpu_self()
                snap = collector.collect()
                collect.append(cpu_self() - t0)
                for ext, w in writers.items():
                    t1 = cpu_self()
                    w.write(snap)
                    write[ext].append(cpu_self() - t1)
                rows = sum(1 for _ in snap.root.walk())
                size = len(encode_line(snap))
            for w in writers.values():
                w.close()
            sizes = {ext: (Path(tmp) / f"r.jsonl{ext}").stat().st_size for ext in writers}
    finally:
        kill(procs)
    mc = statistics.median(collect) * 1000
    print(f"[overhead] {cycles} cycles, {rows} rows/snapshot, {size} bytes/line, "
          f"{children} idle + {busy} busy extra processes")
    print(f"[overhead] collect() CPU median {mc:.2f} ms")
    for ext, values in write.items():
        mw = statistics.median(values) * 1000
        name = {"": "plain", ".gz": "gzip", ".zst": "zstd"}[ext]
        ratio = sizes[""] / sizes[ext] if sizes[ext] else 0
        print(f"[overhead] write {name:5s} CPU median {mw:.2f} ms = {100 * mw / mc:.1f} % of collect()"
              f"   (file {sizes[ext] / cycles / 1024:.1f} KiB/snapshot, ratio {ratio:.1f}×)")


# ----------------------------------------------------------------- part 2


def pad_tree(snap: Snapshot, rows: int) -> Snapshot:
    """Add process rows under the laptop node (taken out of its (idle) row) up to ``rows`` rows."""
    have = sum(1 for _ in snap.root.walk())
    missing = rows - have
    if missing <= 0:
        return snap

    def fix(row: Row) -> Row:
        if row.level == "node" and row.id == "mbp-m3":
            idle = next(c for c in row.children if c.id == "(idle)")
            share = idle.watts / (2 * missing)
            extra = tuple(Row(level="process", id=f"pid-{9000 + k}", name=f"helper-{k} ({9000 + k})",
                              watts=share, watts_lo=share * 0.5, watts_hi=share * 1.5, pid=9000 + k,
                              cmd=f"/usr/libexec/helper --id {k}", cpu_s=0.01, cpu_util=0.01)
                          for k in range(missing))
            new_idle = replace(idle, watts=idle.watts - share * missing,
                               watts_lo=max(0.0, idle.watts_lo - share * missing),
                               watts_hi=idle.watts_hi - share * missing)
            kids = tuple(new_idle if c.id == "(idle)" else c for c in row.children) + extra
            return replace(row, children=kids)
        if row.children:
            return replace(row, children=tuple(fix(c) for c in row.children))
        return row

    return replace(snap, root=fix(snap.root))


def make_day(path: Path, lines: int, variants: int, rows: int) -> float:
    """Write the recording; returns its node energy in joules, known by construction."""
    from keck_tui.demo import demo_snapshots

    t0 = time.perf_counter()
    snaps = [pad_tree(s, rows) for s in demo_snapshots(seed=1, count=variants, interval=1.0)]
    templates = [encode_line(replace(s, time=PLACEHOLDER, interval_s=1.0)) for s in snaps]
    node_w = [sum(r.watts for _, r in s.root.walk() if r.level == "node") for s in snaps]
    assert all(t.count(repr(PLACEHOLDER).encode()) == 1 for t in templates)
    start = snaps[0].time - 1.0
    energy = 0.0
    tmp = path.parent / (".part-" + path.name)  # same suffix: same compression
    with RecordingWriter(tmp) as w:
        for i in range(lines):
            k = i % variants
            w.write_line(templates[k].replace(repr(PLACEHOLDER).encode(), repr(start + i + 1).encode(), 1))
            energy += node_w[k]
    tmp.rename(path)
    print(f"[report] generated {path} ({lines} lines × {sum(1 for _ in snaps[0].root.walk())} rows, "
          f"{path.stat().st_size / 1e6:.0f} MB zstd, {w.bytes_in / 1e9:.2f} GB JSON) "
          f"in {time.perf_counter() - t0:.0f} s")
    return energy


def run_report(path: Path, by: str) -> tuple[float, float, float, dict]:
    """Wall seconds, peak RSS (MiB: the largest of the report process and its workers)
    and the JSON of `keck-top report` in a child process."""
    code = ("import resource, sys; from keck_tui.cli import main; rc = main(sys.argv[1:]); "
            "s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN); "
            "sys.stderr.write('CPU %f\\n' % (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime)); "
            "sys.stderr.write('MAXRSS %d\\n' % max(s.ru_maxrss, c.ru_maxrss)); sys.exit(rc)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "report", str(path), "--by", by,
                           "--format", "json", "--config", "/dev/null"], capture_output=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"report failed: {proc.stderr.decode()}")
    err = proc.stderr.decode()
    rss_kib = int(err.rsplit("MAXRSS ", 1)[1].split()[0])
    cpu = float(err.rsplit("CPU ", 1)[1].split()[0])
    return wall, cpu, rss_kib / 1024, json.loads(proc.stdout)


def generate(lines: int, variants: int, rows: int, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for n in (lines, lines // 10):
        path = workdir / f"day-{n}-{rows}.jsonl.zst"
        meta = path.with_suffix(".energy")
        if not path.exists() or not meta.exists():
            meta.write_text(repr(make_day(path, n, variants, rows)))


def report_bench(lines: int, variants: int, rows: int, workdir: Path) -> None:
    # Generate in a separate process: Linux keeps a process's peak RSS across
    # exec, so the report children would otherwise inherit the generator's peak.
    subprocess.run([sys.executable, __file__, "--part", "generate", "--lines", str(lines), "--rows", str(rows),
                    "--variants", str(variants), "--workdir", str(workdir)], check=True)
    path = workdir / f"day-{lines}-{rows}.jsonl.zst"
    energy = float(path.with_suffix(".energy").read_text())
    small = workdir / f"day-{lines // 10}-{rows}.jsonl.zst"
    print(f"[report] {path.name}: {path.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows the wall times)")
    for by in ("node", "namespace", "pod", "process"):
        wall, cpu, rss, doc = run_report(path, by)
        got = doc["total"]["energy_wh"] * 3600
        check = "ok" if abs(got - energy) <= 1e-6 * energy else f"MISMATCH (expected {energy:.1f} J)"
        swall, _, srss, _ = run_report(small, by)
        print(f"[report] --by {by:9s} {wall:6.1f} s wall, {cpu:6.1f} s CPU   peak RSS {rss:5.1f} MiB   "
              f"({lines // 10} lines: {swall:5.1f} s, {srss:5.1f} MiB)   "
              f"groups {len(doc['groups']):3d}   energy {got / 3.6e6:.3f} kWh {check}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not the targets")
    ap.add_argument("--part", choices=("overhead", "report", "both", "generate"), default="both")
    ap.add_argument("--children", type=int, default=500, help="extra idle processes during part 1")
    ap.add_argument("--busy", type=int, default=60, help="extra processes using a little CPU (part 1)")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--lines", type=int, default=86_400)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--variants", type=int, default=120, help="distinct demo snapshots cycled in the file")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "keck-bench")
    opts = ap.parse_args()
    if opts.quick:
        opts.children, opts.busy, opts.cycles, opts.lines, opts.variants = 20, 5, 5, 2_000, 10
    if opts.part in ("overhead", "both"):
        overhead(opts.children, opts.busy, opts.cycles, 1.0)
    if opts.part == "generate":
        generate(opts.lines, opts.variants, opts.rows, opts.workdir)
    if opts.part in ("report", "both"):
        report_bench(opts.lines, opts.variants, opts.rows, opts.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
