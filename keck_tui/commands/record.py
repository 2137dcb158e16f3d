"""`keck-top record FILE`: keep what keck-top sees, one snapshot per line."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

from keck_tui.commands.base import (CliError, add_sampling_options, local_sources_from_args, ranged,
                                    settings_from_args)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Record snapshots of this node (or, with --attach/--fleet/--keck/--prometheus, of remote data: the "
        "fleet tree is kept) to FILE as JSON Lines, one keck-top/1 snapshot per line, flushed per line. "
        "FILE ending in .zst or .gz is compressed. Stop with Ctrl-C, --duration or --count. "
        "See docs/record-replay.md.")
    parser.add_argument("file", metavar="FILE", type=Path, help="where to record (.jsonl, .jsonl.zst, .jsonl.gz)")
    parser.add_argument("--duration", metavar="S", type=ranged("duration"),
                        help=f"stop after S seconds {ranged('duration').help('')}")
    parser.add_argument("--count", metavar="N", type=ranged("count"),
                        help=f"stop after N snapshots {ranged('count').help('')}")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument("--append", action="store_true", help="append to FILE (plain .jsonl only)")
    parser.add_argument("--fsync", action="store_true",
                        help="fsync after every line (survives power loss, not just a crash; slower)")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    r = parser.add_argument_group("remote (instead of this node)")
    r.add_argument("--attach", metavar="URL", action="append", default=[],
                   help="record a keck-top agent (repeatable); the fleet → cluster → node tree is kept")
    r.add_argument("--fleet", metavar="FILE", type=Path, help="record the agents of a fleet file")
    r.add_argument("--keck", metavar="URL", action="append", default=[],
                   help="record a Keck controller's cluster (repeatable)")
    r.add_argument("--prometheus", metavar="URL", help="record the fleet tree a Prometheus server holds")
    from keck_tui.commands.attach import add_token_options

    add_token_options(r, "--attach agents")
    r.add_argument("--ca-file", metavar="PEM", help="trust this CA for https:// agents")
    add_sampling_options(parser)


def _check(args: argparse.Namespace) -> None:
    if args.force and args.append:
        raise CliError("--force and --append don't go together")
    if args.file.exists() and not (args.force or args.append):
        raise CliError(f"{args.file} exists; use --force to overwrite or --append to add to it")
    if args.file.is_dir():
        raise CliError(f"{args.file} is a directory")


def _remote_feed(args: argparse.Namespace, settings):  # -> RemoteFeed
    from keck_tui.commands.attach import token_files
    from keck_tui.commands.exposure import print_warnings
    from keck_tui.sources.attach import AttachConfig, build_fleet
    from keck_tui.sources.fleet import RemoteFeed
    from keck_tui.sources.prometheus import PrometheusConfig

    agents, keck, prometheus = token_files(args, args.attach)
    config = AttachConfig(agent_urls=tuple(args.attach), fleet_file=args.fleet, keck_urls=tuple(args.keck),
                          prometheus=PrometheusConfig(args.prometheus) if args.prometheus else None,
                          token_file=agents, keck_token_file=keck, prometheus_token_file=prometheus,
                          ca_file=args.ca_file)
    fleet = build_fleet(config)
    print_warnings("keck-top", fleet.warnings)
    return RemoteFeed(fleet, interval=settings.interval)


def run(args: argparse.Namespace) -> int:
    from keck_tui.recording import RecordingError, RecordingWriter

    _check(args)
    settings = settings_from_args(args)
    remote = bool(args.attach or args.fleet or args.keck or args.prometheus)
    progress = not args.quiet and sys.stderr.isatty()
    state = {"error": None}
    import threading

    done = threading.Event()

    def sink(snap) -> None:  # runs on the feed's thread (local) or the loop below (remote)
        if done.is_set():
            return
        try:
            writer.write(snap)
        except RecordingError as exc:
            state["error"] = str(exc)
            done.set()
            return
        if progress:
            print(f"\r{writer.lines} snapshots, {writer.bytes_in / 1e6:.1f} MB", end="",
                  file=sys.stderr, flush=True)
        if args.count is not None and writer.lines >= args.count:
            done.set()

    # The feed first: a bad --attach URL, fleet file or sampling flag must not
    # leave an empty FILE behind (the next run would refuse to overwrite it).
    feed = _remote_feed(args, settings) if remote else _local_feed(args, settings, sink)
    try:
        writer = RecordingWriter(args.file, append=args.append, overwrite=args.force, fsync=args.fsync)
    except RecordingError as exc:
        feed.stop()
        raise CliError(str(exc)) from None
    if not args.quiet:
        print(f"keck-top: recording to {args.file} every {settings.interval:g} s (Ctrl-C stops)",
              file=sys.stderr)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    last = None
    restore = _stop_on_sigterm(done)
    feed.start()
    try:
        while not done.is_set():
            if remote:  # the remote feed has no hook: write each new snapshot it holds
                snap = feed.latest()
                if snap is not None and snap is not last:
                    last = snap
                    sink(snap)
            if deadline is not None and time.monotonic() >= deadline:
                break
            done.wait(0.02 if remote else 0.1)
    except KeyboardInterrupt:
        pass
    finally:
        done.set()
        feed.stop()
        writer.close()
        restore()
    if progress:
        print(file=sys.stderr)
    if state["error"]:
        raise CliError(str(state["error"]))
    if not args.quiet:
        print(f"keck-top: {writer.lines} snapshots written to {args.file}", file=sys.stderr)
    return 0


def _stop_on_sigterm(done) -> Callable[[], None]:
    """SIGTERM (systemctl stop, timeout, kill) ends the recording like Ctrl-C: the compressed
    stream gets its proper end. Returns the function that puts the old handler back."""
    import signal

    try:
        old = signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    except ValueError:  # not the main thread (embedded, tests): leave signals alone
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)


def _local_feed(args: argparse.Namespace, settings, sink):  # -> ThreadedFeed
    from keck_tui.wiring import build_local_feed

    return build_local_feed(settings, local_sources_from_args(args, settings), on_snapshot=sink)
