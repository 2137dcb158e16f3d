"""`keck-top report FILE`: energy, mean/peak watts, cost and CO2e per group over a recording."""
from __future__ import annotations

import argparse
import json
import sys

from keck_tui.commands.base import CliError, add_config_option, ranged, settings_from_args
from keck_tui.common.timeparse import TIME_FORMS, parse_time_flag

FORMATS = ("table", "json", "csv")


def configure(parser: argparse.ArgumentParser) -> None:
    from keck_tui.report import BY_LEVELS

    parser.add_argument("file", metavar="FILE", help="a recording (.jsonl, .jsonl.gz or .jsonl.zst)")
    parser.add_argument("--by", choices=BY_LEVELS, default="process",
                        help="what a row of the report is (default process: per command name and node)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default), json or csv")
    parser.add_argument("--price", metavar="PER_KWH", type=ranged("price_per_kwh"),
                        help="price per kWh (overrides price_per_kwh and the config's schedule) "
                             f"{ranged('price_per_kwh').help('')}")
    parser.add_argument("--co2e", metavar="G_PER_KWH", type=ranged("co2e_g_per_kwh"),
                        help=f"grams CO2e per kWh (overrides co2e_g_per_kwh) {ranged('co2e_g_per_kwh').help('')}")
    parser.add_argument("--currency", metavar="SYMBOL", help="currency symbol shown with costs")
    parser.add_argument("--tz", metavar="ZONE",
                        help="time zone of the price schedule, e.g. Europe/Berlin (default: local)")
    parser.add_argument("--since", metavar="TIME", help=f"only from TIME: {TIME_FORMS}")
    parser.add_argument("--until", metavar="TIME", help="only up to TIME (same forms as --since)")
    parser.add_argument("--jobs", metavar="N", type=ranged("jobs"),
                        help="worker processes "
                             f"{ranged('jobs').help('1 for small files, else one per CPU up to 4')}")
    parser.add_argument("--full-parse", action="store_true",
                        help="parse every line completely (slower; the fast path is checked anyway)")
    add_config_option(parser)


def _tariff(args: argparse.Namespace):  # -> Tariff
    from dataclasses import replace

    from keck_tui.config import tariff_from_settings

    settings = settings_from_args(args)
    tz = None
    if args.tz:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CliError(f"--tz: unknown time zone {args.tz!r}") from None
    if args.price is not None:
        settings = replace(settings, price_per_kwh=args.price, price_schedule=())
    if args.co2e is not None:
        settings = replace(settings, co2e_g_per_kwh=args.co2e,
                           price_schedule=tuple({k: v for k, v in e.items() if k != "co2e_g_per_kwh"}
                                                for e in settings.price_schedule
                                                if "price_per_kwh" in e))
    if args.currency:
        settings = replace(settings, currency=args.currency)
    return tariff_from_settings(settings, tz=tz)


def run(args: argparse.Namespace) -> int:
    from keck_tui.recording import RecordingError
    from keck_tui.report import report_file

    tariff = _tariff(args)
    try:
        since, until = parse_time_flag(args.since, "--since"), parse_time_flag(args.until, "--until")
        if since is not None and until is not None and until <= since:
            raise CliError("--until must be after --since")
        report = report_file(args.file, args.by, tariff, fast=not args.full_parse, jobs=args.jobs,
                             since=since, until=until)
    except RecordingError as exc:
        raise CliError(str(exc)) from None
    if report.stats.skipped or report.stats.stream_error:
        print(f"keck-top: report: {report.stats.summary()}", file=sys.stderr)
    if report.snapshots == 0:
        if args.since or args.until:
            raise CliError(f"{args.file}: no snapshots between --since and --until")
        raise CliError(f"{args.file}: no snapshots in this file ({report.stats.summary()})")
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
    elif args.format == "csv":
        sys.stdout.write(report.to_csv())
    else:
        from keck_tui.report import render_report

        sys.stdout.write(render_report(report) + "\n")
    return 0
