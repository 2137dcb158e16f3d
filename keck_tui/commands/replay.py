"""`keck-top replay FILE`: the TUI over a recording, with a timeline; or one instant as JSON."""
from __future__ import annotations

import argparse
import sys

from keck_tui.commands.base import (CliError, add_config_option, add_once_options, print_snapshot, ranged,
                                    require_once_for_json, settings_from_args)
from keck_tui.common.timeparse import TIME_FORMS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Replay a recording in the TUI with a timeline (space: play/pause, . and , step, "
        "[ and ] seek a minute, { and } a tenth, Home/End, + and - speed ×0.5–×16), or print one "
        "instant with --once --json [--at INDEX|TIME]. Corrupt or truncated lines are skipped and counted.")
    parser.add_argument("file", metavar="FILE", help="a recording (.jsonl, .jsonl.gz or .jsonl.zst)")
    add_once_options(parser)
    parser.add_argument("--at", metavar="INDEX|TIME",
                        help=f"which snapshot: an index (0 first, -1 last), or a time ({TIME_FORMS}): the "
                             "last snapshot at or before it; default: the last one, or the first for the TUI")
    parser.add_argument("--speed", metavar="X", type=ranged("speed"), default=1.0,
                        help=f"replay speed {ranged('speed').help('1')}")
    parser.add_argument("--paused", action="store_true", help="start paused")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    from keck_tui.recording import RecordingError
    from keck_tui.replay import SPEEDS, RecordingIndex

    require_once_for_json(args)
    if not SPEEDS[0] <= args.speed <= SPEEDS[-1]:
        raise CliError(f"--speed must be between {SPEEDS[0]:g} and {SPEEDS[-1]:g}")
    settings = settings_from_args(args)
    try:
        index = RecordingIndex(args.file)
    except RecordingError as exc:
        raise CliError(str(exc)) from None
    try:
        if len(index) == 0:
            raise CliError(f"{args.file}: no snapshots to replay ({index.stats.summary()})")
        if args.once:
            return _once(index, args)
        if index.stats.skipped or index.stats.stream_error:
            print(f"keck-top: replay: {index.stats.summary()}", file=sys.stderr)
        if not sys.stdout.isatty():
            raise CliError("the TUI needs a terminal; use --once --json [--at N] for pipes")
        from keck_tui.replay import ReplayFeed
        from keck_tui.ui.replay import run_replay

        feed = ReplayFeed(index, speed=args.speed, playing=not args.paused, loop=args.loop)
        if args.at is not None:
            try:
                feed.seek_index(index.resolve(args.at))
            except ValueError as exc:
                raise CliError(str(exc)) from None
        return run_replay(feed, settings=settings, title=f"replay {args.file}")
    finally:
        index.close()


def _once(index, args: argparse.Namespace) -> int:
    from keck_tui.model import SnapshotFormatError

    try:
        i = index.resolve(args.at)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        snap = index.snapshot(i)
    except SnapshotFormatError:
        j = index.nearest_valid(i)
        if j is None:
            raise CliError(f"{args.file}: no readable snapshot ({index.stats.summary()})") from None
        snap = index.snapshot(j)
    if index.stats.skipped or index.stats.stream_error:
        print(f"keck-top: replay: {index.stats.summary()}", file=sys.stderr)
    print_snapshot(snap, args.json)
    return 0
