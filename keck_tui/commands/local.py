"""The default mode, ``keck-top``: this node, live (TUI), once (``--once [--json]``) or as text
(``--batch``); ``--prometheus URL`` is ``keck-top attach --prometheus URL``."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from keck_tui.clock import SystemClock
from keck_tui.commands.base import (CliError, add_output_options, add_sampling_options, local_sources_from_args,
                                    print_snapshot, settings_from_args)
from keck_tui.commands.tui import require_terminal, start_tui
from keck_tui.config import Settings
from keck_tui.model import Snapshot
from keck_tui.textout import render_table

if TYPE_CHECKING:
    from keck_tui.wiring import LocalSources


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags of ``keck-top`` itself (the top-level parser: subcommands have their own)."""
    add_sampling_options(parser)
    add_output_options(parser)
    parser.add_argument("--prometheus", metavar="URL",
                        help="build the fleet tree from a Prometheus server instead of local sources "
                             "(the same as `keck-top attach --prometheus URL`)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="with --prometheus: bearer token for the Prometheus server; "
                             "with --host-power URL: this VM's token")
    parser.add_argument("--theme", choices=("dark", "light"), help="TUI colour theme (default dark)")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.prometheus:
        if getattr(args, "host_power", None):
            raise CliError("--host-power is for this node's own tree; --prometheus reads a fleet instead")
        return _run_prometheus(args, settings)
    if args.once or (args.json and not args.batch):
        snap = collect_once(settings, local_sources_from_args(args, settings))
        print_snapshot(snap, args.json)
        return 0
    if args.batch:
        return _run_batch(args, settings)
    from keck_tui.wiring import build_local_feed

    require_terminal()
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
        collector.settle_work(timeout=2.0)  # one snapshot: let its work counters have a rate
        return collector.collect()
    finally:
        collector.close()


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
    from keck_tui.commands import attach

    return attach.run(args)
