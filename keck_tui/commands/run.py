"""``keck-top run [options] -- CMD ARGS…``: the energy of one command's process tree.

CMD keeps its own stdin, stdout and stderr; keck-top's report (text, or JSON with
``--json``) goes to stderr or ``--output FILE``. keck-top exits with CMD's exit
status (128+N when a signal N ended it; 127/126 when CMD could not start).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import IO

from keck_tui.commands.base import (CliError, add_sampling_options, local_sources_from_args, ranged,
                                    settings_from_args)

DEFAULT_INTERVAL_S = 0.1


def configure(parser: argparse.ArgumentParser) -> None:
    from keck_tui.runmeter.meter import IDLE_POLICIES
    from keck_tui.runmeter.tracking import METHODS

    parser.description = (
        "Run CMD and measure the energy of its whole process tree (children and short-lived "
        "grandchildren included) until it exits, like `time` or `perf stat`: wall and CPU time, "
        "energy with its bound, mean and peak watts, the CPU/DRAM/GPU split, its share of the node, "
        "cost and CO2e. CMD keeps its stdin/stdout/stderr; the report goes to stderr (or --output). "
        "keck-top exits with CMD's status.")
    parser.usage = "keck-top run [options] -- CMD [ARGS ...]"
    add_sampling_options(parser)
    # run's own --interval default and --idle choices replace the shared ones
    parser.conflict_handler = "resolve"
    g = parser.add_argument_group("run")
    g.add_argument("--interval", metavar="S", type=ranged("interval"),
                   help=f"sampling period in seconds (default: {DEFAULT_INTERVAL_S:g}, lengthened up to 1 s "
                        "when sampling this machine costs more than 5 %% of a CPU; peak watts are means over it, "
                        f"energy totals do not depend on it) {ranged('interval').help('')}")
    g.add_argument("--idle", dest="run_idle", choices=IDLE_POLICIES + ("separate", "none"),
                   help="the command's share of the node's idle power: active (none of it; = separate, "
                        "none), proportional (by its share of activity) or whole (all of it while it ran). "
                        "All three are reported; this picks the headline (default: the config's idle, "
                        "i.e. active)")
    g.add_argument("--json", action="store_true", help="print the keck-top-run/1 JSON document instead of text")
    g.add_argument("--output", "-o", metavar="FILE",
                   help="write the report to FILE instead of stderr (never through a symbolic link)")
    g.add_argument("--repeat", "-r", metavar="N", type=ranged("repeat"), default=1,
                   help=f"run CMD N times; report the mean ± 95 %% confidence interval {ranged('repeat').help('1')}")
    g.add_argument("--keep-going", action="store_true",
                   help="with --repeat: go on after a run that exits non-zero (default: stop there)")
    g.add_argument("--track", choices=METHODS, default="auto",
                   help="how the process tree is followed (default auto: the strongest available, "
                        "cgroup > systemd-scope > ebpf > ppid)")
    g.add_argument("--as-root", action="store_true",
                   help="under sudo, run CMD as root (default: as the invoking user, SUDO_UID/SUDO_GID)")
    parser.add_argument("cmd_argv", nargs=argparse.REMAINDER, metavar="CMD", help="the command and its arguments")


def _open_output(path: str, creds) -> IO[bytes]:
    """The report file, opened before CMD starts (a bad path fails at once, exit 2): never
    through a symbolic link, never a FIFO or device; a file keck-top creates under sudo is
    given to the invoking user."""
    from keck_tui.common.safefile import OVERWRITE, open_for_writing

    existed = os.path.lexists(path)
    try:
        fh = open_for_writing(path, OVERWRITE)
    except OSError as exc:
        raise CliError(f"--output: {exc.strerror or exc}") from None
    if creds is not None and not existed:
        try:
            os.fchown(fh.fileno(), creds.uid, creds.gid)
        except OSError:
            pass
    return fh


def _policy(args: argparse.Namespace, settings_idle: str) -> str:
    from keck_tui.runmeter.meter import IDLE_ALIASES

    return IDLE_ALIASES[args.run_idle or settings_idle]


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from keck_tui.config import tariff_from_settings
    from keck_tui.runmeter.launch import LaunchError, invoking_user
    from keck_tui.runmeter.output import json_text, measurement_json, render_text
    from keck_tui.runmeter.session import RunRequest, measure
    from keck_tui.runmeter.tracking import TrackingUnavailable

    argv = list(args.cmd_argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CliError("run: no command given (keck-top run [options] -- CMD [ARGS ...])")
    if args.repeat < 1:
        raise CliError("--repeat must be at least 1")
    interval = args.interval if args.interval is not None else DEFAULT_INTERVAL_S
    if interval < 0.02:
        raise CliError("--interval must be at least 0.02 s")
    settings = settings_from_args(args)
    policy = _policy(args, settings.idle)
    tariff = tariff_from_settings(settings)
    sources = local_sources_from_args(args, settings)
    creds = None if args.as_root else invoking_user(os.environ)
    out = _open_output(args.output, creds) if args.output else None

    def build():
        from keck_tui.wiring import build_collector

        collector = build_collector(settings, sources)
        collector.config = replace(collector.config, idle="separate", tick_s=0.0)
        try:
            collector.wait_for_slow_sources(timeout=5.0)
        except Exception:  # noqa: BLE001 - a slow source only lacks its first reading
            pass
        return collector

    request = RunRequest(argv=tuple(argv), interval=interval, adaptive=args.interval is None,
                         repeat=args.repeat, track=args.track,
                         credentials=creds, stop_on_failure=not args.keep_going)
    try:
        try:
            m = measure(request, build)
        except LaunchError as exc:
            print(f"keck-top: run: {exc}", file=sys.stderr)
            return exc.exit_status
        except TrackingUnavailable as exc:
            raise CliError(f"--track {args.track}: {exc}") from None
        doc = measurement_json(m, policy, tariff)
        text = json_text(doc) if args.json else render_text(doc)
        if out is not None:
            out.write(text.encode("utf-8"))
        else:
            sys.stderr.write(text)
            sys.stderr.flush()
    finally:
        if out is not None:
            out.close()
    return int(doc["exit_status"] if doc["exit_status"] is not None else 1)
