#!/usr/bin/env python3
"""`keck-top report`'s hottest loop alone: ``Aggregator.add`` over extracted rows.

Rows are extracted once (from demo-fleet snapshots padded to ``--rows`` rows, as
bench_record.py generates them); then the aggregation of ``--lines`` snapshots is
timed (CPU time of this process, so other load on the machine matters less) per ``--by``, ``--repeats`` times, and the median printed in µs per snapshot
and ns per row. Reading and decompressing the file are not in the figure (see
bench_record.py for the whole report).

    .venv/bin/python benchmarks/bench_report_add.py [--lines N] [--rows N] [--repeats N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_record import pad_tree  # noqa: E402
from keck_tui.recording import encode_line  # noqa: E402
from keck_tui.report import BY_LEVELS, Aggregator, _Extractor  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--variants", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    opts = ap.parse_args()
    from keck_tui.cost import Tariff
    from keck_tui.demo import demo_snapshots

    lines = [encode_line(pad_tree(s, opts.rows))
             for s in demo_snapshots(seed=1, count=opts.variants, interval=1.0)]
    for by in BY_LEVELS:
        probe = Aggregator(by, Tariff())
        extract = _Extractor(probe.levels)
        parsed = [extract(line) for line in lines]
        rows = sum(len(r) for _, _, r in parsed) / len(parsed)
        runs = []
        for _ in range(opts.repeats):
            agg = Aggregator(by, Tariff())
            t0 = time.process_time()
            for i in range(opts.lines):
                _, dt, r = parsed[i % len(parsed)]
                agg.add(float(i + 1), dt, r)
            agg.settle()
            runs.append(time.process_time() - t0)
        med = statistics.median(runs)
        print(f"--by {by:9s} {rows:6.1f} rows/snapshot  median {1e6 * med / opts.lines:7.2f} µs/snapshot  "
              f"{1e9 * med / (opts.lines * rows):6.1f} ns/row  (min {1e6 * min(runs) / opts.lines:.2f}, "
              f"max {1e6 * max(runs) / opts.lines:.2f}; {len(agg.groups)} groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
