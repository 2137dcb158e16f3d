"""`keck-top demo`: the TUI (or one snapshot) over a deterministic simulated fleet."""
from __future__ import annotations

import argparse
import time

from keck_tui.commands.base import (CliError, add_config_option, add_once_options, print_snapshot, ranged,
                                    require_once_for_json, settings_from_args)
from keck_tui.common.timeparse import TIME_FORMS, parse_time_flag


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "A simulated fleet — 2 clusters, 5 nodes (CPU-only Intel and AMD, a GPU node with a BMC, an Apple "
        "laptop), namespaces, pods and processes with a daily load curve — run through keck-top's real "
        "attribution and fleet merge. Same --seed and --start, same numbers.")
    parser.add_argument("--seed", type=ranged("seed"), default=1, help=f"random seed {ranged('seed').help('1')}")
    parser.add_argument("--start", metavar="TIME",
                        help=f"simulated start time: {TIME_FORMS} (default: now for the TUI, "
                             "2026-06-15T14:00Z with --once)")
    parser.add_argument("--steps", metavar="N", type=ranged("steps"), default=5,
                        help=f"with --once: intervals simulated before printing {ranged('steps').help('5')}")
    parser.add_argument("--node", metavar="NAME", help="with --once: print that node's own snapshot")
    add_once_options(parser)
    parser.add_argument("--interval", metavar="S", type=ranged("interval"), default=None,
                        help=f"simulated interval and refresh in seconds {ranged('interval').help('1')}")
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    from keck_tui.demo import DemoFleet

    require_once_for_json(args)
    interval = args.interval if args.interval is not None else 1.0
    settings = settings_from_args(args)
    start = parse_time_flag(args.start, "--start")
    if args.once:
        fleet = DemoFleet(args.seed, start, interval)
        snap = None
        for _ in range(args.steps):
            snap = fleet.step()
        if args.node:
            snap = fleet.node_snapshot(args.node)
            if snap is None:
                names = ", ".join(n.spec.name for n in fleet.nodes)
                raise CliError(f"--node: no node {args.node!r} in the demo (nodes: {names})")
        assert snap is not None
        print_snapshot(snap, args.json)
        return 0
    if args.node:
        raise CliError("--node needs --once")
    from dataclasses import replace

    from keck_tui.commands.tui import start_tui
    from keck_tui.feed import ThreadedFeed

    fleet = DemoFleet(args.seed, start if start is not None else round(time.time()) - interval, interval)
    feed = ThreadedFeed(fleet.step, interval=interval, name="keck-demo")
    settings = replace(settings, interval=interval)
    return start_tui(feed, settings, title=f"demo fleet (seed {args.seed})")
