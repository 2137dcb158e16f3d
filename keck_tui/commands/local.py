"""The default mode: this node, live (TUI), once (``--once [--json]``) or as text (``--batch``)."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING

from keck_tui.cli import CliError, local_sources_from_args, settings_from_args
from keck_tui.clock import SystemClock
from keck_tui.config import Settings
from keck_tui.feed import SnapshotFeed
from keck_tui.model import Snapshot
from keck_tui.textout import render_table

if TYPE_CHECKING:
    from keck_tui.wiring import LocalSources


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.iterations is not None and args.iterations < 1:
        raise CliError("-n/--iterations must be at least 1")
    if args.prometheus:
        return _run_prometheus(args, settings)
    if args.once or (args.json and not args.batch):
        snap = collect_once(settings, local_sources_from_args(args, settings))
        _print(snap, args.json)
        return 0
    if args.batch:
        return _run_batch(args, settings)
    from keck_tui.wiring import build_local_feed

    return start_tui(build_local_feed(settings, local_sources_from_args(args, settings)), settings)


def collect_once(settings: Settings, sources: LocalSources) -> Snapshot:
    """Sample one interval of this node (blocks for ``settings.interval`` seconds)."""
    from keck_tui.wiring import build_collector

    clock = SystemClock()
    collector = build_collector(settings, sources, clock)
    try:
        # Slow pollers (BMC, kubelet) first, so that the interval measured is the one asked for.
        collector.wait_for_slow_sources(timeout=max(5.0, settings.interval))
        collector.prime()
        clock.sleep(settings.interval)
        return collector.collect()
    finally:
        collector.close()


def _print(snap: Snapshot, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(snap.dumps() + "\n")
    else:
        sys.stdout.write(render_table(snap) + "\n")
    sys.stdout.flush()


def _run_batch(args: argparse.Namespace, settings: Settings) -> int:
    from keck_tui.wiring import build_collector

    clock = SystemClock()
    collector = build_collector(settings, local_sources_from_args(args, settings), clock)
    try:
        return _batch_loop(args, settings, collector, clock)
    finally:
        collector.close()


def _batch_loop(args: argparse.Namespace, settings: Settings, collector, clock: SystemClock) -> int:
    collector.prime()
    count = 0
    next_at = clock.monotonic() + settings.interval
    while args.iterations is None or count < args.iterations:
        clock.sleep(next_at - clock.monotonic())
        # Missed ticks (a stopped process, a slow sample) are skipped, never caught up with a
        # burst of near-zero intervals whose figures would be noise.
        next_at += settings.interval
        if next_at < clock.monotonic():
            next_at = clock.monotonic() + settings.interval
        snap = collector.collect()
        if args.json:
            sys.stdout.write(json.dumps(snap.to_json(), allow_nan=False) + "\n")
        else:
            sys.stdout.write(render_table(snap) + "\n\n")
        sys.stdout.flush()
        count += 1
    return 0


def _run_prometheus(args: argparse.Namespace, settings: Settings) -> int:
    """`keck-top --prometheus URL` is `keck-top attach --prometheus URL` (TUI, --once, --batch)."""
    from keck_tui.sources import command as attach

    return attach.run(args)


def start_tui(feed: SnapshotFeed, settings: Settings, title: str | None = None) -> int:
    """Run the TUI over any feed, with `r` recording what it shows to a timestamped file."""
    if not sys.stdout.isatty():
        raise CliError("the TUI needs a terminal; use --once --json or --batch for pipes")
    try:
        from keck_tui.ui.app import run_tui
    except ImportError as exc:
        raise CliError(f"the TUI is not available ({exc}); use --once --json or --batch") from None
    from keck_tui.recording import Recorder, record_toggle

    recorder = Recorder()
    pump = RecordPump(feed, recorder)
    pump.start()
    try:
        return run_tui(feed, settings=settings, title=title, on_record_toggle=record_toggle(recorder))
    finally:
        pump.stop()
        recorder.stop()


class RecordPump:
    """Hands each new snapshot of a feed to a recorder while it records.

    Works for every feed (local, remote, Prometheus) through ``latest()`` alone;
    it only polls while the recorder is active.
    """

    def __init__(self, feed: SnapshotFeed, recorder, poll_s: float = 0.1) -> None:
        self._feed, self._recorder, self._poll_s = feed, recorder, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keck-record-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        last = None
        while not self._stop.wait(self._poll_s):
            if not self._recorder.active:
                last = None
                continue
            snap = self._feed.latest()
            if snap is not None and snap is not last:
                self._recorder(snap)
                last = snap
