"""The TUI alone over the fake fleet, a new snapshot every interval (for bench_ui.py --ui-only).

Separates the UI's own CPU cost from the collector's: same app, no sampling.
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ui"))
sys.path.insert(0, str(REPO))

import fake_fleet as ff  # noqa: E402
from keck_tui.config import Settings  # noqa: E402
from keck_tui.feed import ThreadedFeed  # noqa: E402
from keck_tui.model import Snapshot  # noqa: E402
from keck_tui.ui.app import run_tui  # noqa: E402


def main() -> int:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    steps = itertools.count()

    def produce() -> Snapshot:
        return replace(ff.snapshot(next(steps)), time=time.time())

    feed = ThreadedFeed(produce, interval=interval)
    return run_tui(feed, settings=Settings(interval=interval))


if __name__ == "__main__":
    sys.exit(main())
