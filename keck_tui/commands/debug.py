"""`keck-top debug`: support tools that drive keck-top's parsers on saved input.

- ``keck-top debug parse-powermetrics FILE [--json]``: the samples parsed from saved
  ``powermetrics --samplers cpu_power,gpu_power`` output (``-`` reads stdin).
- ``keck-top debug parse-cgroup``: one JSON object per stdin line of
  ``/proc/<pid>/cgroup`` text: pod_uid, container_id, qos, runtime (null when none).
"""
from __future__ import annotations

import argparse
import json
import sys

from keck_tui.commands.base import CliError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="debug_command", metavar="TOOL", required=True,
                                parser_class=type(parser))
    pm = sub.add_parser("parse-powermetrics", help="parse saved powermetrics cpu_power,gpu_power output",
                        description="Parse saved 'powermetrics --samplers cpu_power,gpu_power' output and "
                                    "print one line per complete sample.")
    pm.add_argument("file", metavar="FILE", help="the saved output ('-' for stdin)")
    pm.add_argument("--json", action="store_true",
                    help="one JSON object per sample: cpu_watts, gpu_watts, ane_watts, combined_watts")
    sub.add_parser("parse-cgroup", help="parse /proc/<pid>/cgroup lines from stdin",
                   description="Read /proc/<pid>/cgroup lines (or cgroup paths) on stdin and print one JSON "
                               "object per line: pod_uid, container_id, qos, runtime (null when none).")


def run(args: argparse.Namespace) -> int:
    if args.debug_command == "parse-powermetrics":
        return _parse_powermetrics(args.file, args.json)
    if args.debug_command == "parse-cgroup":
        return _parse_cgroup()
    raise CliError(f"unknown debug tool {args.debug_command!r}")  # pragma: no cover


def _parse_powermetrics(path: str, as_json: bool) -> int:
    from keck_tui.samplers.powermetrics_parse import parse_lines

    from keck_tui.common import bounded

    try:
        if path == "-":
            raw = bounded.read_stream(sys.stdin.buffer, bounded.DATA_FILE, "stdin")
        else:
            raw = bounded.read_file(path, bounded.DATA_FILE, "powermetrics output")
    except bounded.BoundedInputError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    lines = raw.decode("utf-8", "replace").splitlines()
    samples = list(parse_lines(lines))
    out = sys.stdout
    if as_json:
        for s in samples:
            out.write(json.dumps(s.to_json()) + "\n")
        return 0
    out.write(f"{'elapsed_s':>9} {'cpu_W':>8} {'gpu_W':>8} {'ane_W':>8} {'combined_W':>10}\n")
    for s in samples:
        out.write(f"{s.elapsed_s:9.3f} {_fmt(s.cpu_watts):>8} {_fmt(s.gpu_watts):>8} "
                  f"{_fmt(s.ane_watts):>8} {s.combined_watts:10.3f}\n")
    out.write(f"{len(samples)} complete samples\n")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _parse_cgroup() -> int:
    from keck_tui.hierarchy.cgroup import parse_cgroup

    for line in sys.stdin:
        sys.stdout.write(json.dumps(parse_cgroup(line.rstrip("\n")).to_json()) + "\n")
    return 0
