"""`keck-top attach`: the TUI (or --once/--batch output) over remote data.

Agents by URL or fleet file, Keck controllers, and Prometheus all merge into
one fleet → cluster → node tree. Cheap to import: aiohttp is imported in run().
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from keck_tui.commands.base import (CliError, add_config_option, add_interval_option, add_output_options,
                                    ranged, require_once_for_json, settings_from_args)

if TYPE_CHECKING:
    from keck_tui.sources.attach import AttachConfig
    from keck_tui.sources.fleet import Fleet


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show remote power data: keck-top agents (URL... or --fleet FILE), Keck controllers (--keck URL) "
        "and Prometheus (--prometheus URL), merged into fleet → cluster → node. See docs/remote.md.")
    parser.add_argument("urls", nargs="*", metavar="URL", help="keck-top agent URLs (http[s]://host:9464)")
    g = parser.add_argument_group("remote sources")
    g.add_argument("--fleet", metavar="FILE", type=Path, help="TOML fleet file: clusters → agent URLs, token files")
    g.add_argument("--keck", metavar="URL", action="append", default=[],
                   help="a Keck controller's API (repeatable)")
    g.add_argument("--prometheus", metavar="URL", help="build the tree from a Prometheus server (PromQL)")
    g.add_argument("--cluster", metavar="NAME", help="cluster name for agent URLs and --keck (default: 'default' / the controller's host)")
    add_token_options(g)
    g.add_argument("--ca-file", metavar="PEM", help="trust this CA for https:// sources")
    g.add_argument("--insecure-tls", action="store_true", help="do not verify https:// certificates")
    timeout, depth = ranged("timeout"), ranged("depth")
    g.add_argument("--timeout", metavar="S", type=timeout, default=None,
                   help=f"per-request timeout in seconds {timeout.help('2')}")
    g.add_argument("--depth", metavar="N", type=depth,
                   help="levels fetched below each agent's node; deeper rows are fetched when expanded "
                        f"{depth.help('2 in the TUI, all with --once')}")
    p = parser.add_argument_group("prometheus")
    p.add_argument("--cluster-label", metavar="LABEL", help="label naming the cluster (default 'cluster')")
    p.add_argument("--node-label", metavar="LABEL",
                   help="label naming the node (default: node, then node_name, then instance)")
    p.add_argument("--rate-window", metavar="DUR", help="window for rate() over joule counters (default 1m)")
    add_config_option(parser)
    add_interval_option(parser)
    add_output_options(parser)


def add_token_options(group: Any, agents: str = "agent URLs") -> None:
    """--token-file (for the agents) and the Keck controllers' and Prometheus's own token files."""
    group.add_argument("--token-file", metavar="FILE",
                       help=f"bearer token for the {agents} (without any: for the --keck or --prometheus "
                            "URL given); sent to no other server")
    group.add_argument("--keck-token-file", metavar="FILE", help="bearer token for the --keck URLs")
    group.add_argument("--prometheus-token-file", metavar="FILE", help="bearer token for the --prometheus URL")


def token_files(args: argparse.Namespace, agent_urls: Any) -> tuple[str | None, str | None, str | None]:
    """(agents', Keck controllers', Prometheus's) token files: a token goes only to the URLs it
    was given for. ``--token-file`` is the agents'; with no agent URL it is for the one other
    kind of source named (``keck-top --prometheus URL --token-file F``). Given beside agent URLs
    it is never sent to --keck or --prometheus: they take their own ``--*-token-file``."""
    token = getattr(args, "token_file", None)
    keck = getattr(args, "keck_token_file", None)
    prometheus = getattr(args, "prometheus_token_file", None)
    if not token:
        return token, keck, prometheus
    if agent_urls:
        left = [f"--{k}-token-file for --{k}" for k, own in (("keck", keck), ("prometheus", prometheus))
                if getattr(args, k, None) and not own]
        if left:
            print(f"keck-top: note: --token-file goes to the agent URLs only; give {' and '.join(left)}",
                  file=sys.stderr)
        return token, keck, prometheus
    kinds = [k for k in ("keck", "prometheus") if getattr(args, k, None)]
    if len(kinds) > 1:
        raise CliError("--token-file with both --keck and --prometheus: say which server gets which token "
                       "(--keck-token-file FILE, --prometheus-token-file FILE)")
    if kinds == ["keck"]:
        return None, keck or token, prometheus
    if kinds == ["prometheus"]:
        return None, keck, prometheus or token
    return token, keck, prometheus


def attach_config_from_args(args: argparse.Namespace, default_depth: int | None) -> AttachConfig:
    """The remote sources the flags name (also for `keck-top --prometheus URL`, which lacks some)."""
    from keck_tui.sources.attach import DEFAULT_TIMEOUT_S, AttachConfig
    from keck_tui.sources.prometheus import PrometheusConfig

    timeout = getattr(args, "timeout", None)
    prometheus = None
    if getattr(args, "prometheus", None):
        prometheus = PrometheusConfig(args.prometheus,
                                      cluster_label=getattr(args, "cluster_label", None) or "cluster",
                                      node_label=getattr(args, "node_label", None) or None,
                                      rate_window=getattr(args, "rate_window", None) or "1m",
                                      timeout=float(timeout or 5.0))
    depth = getattr(args, "depth", None)
    agents, keck, prometheus_token = token_files(args, getattr(args, "urls", None))
    return AttachConfig(agent_urls=tuple(getattr(args, "urls", None) or ()),
                        fleet_file=getattr(args, "fleet", None), keck_urls=tuple(getattr(args, "keck", None) or ()),
                        prometheus=prometheus, cluster=getattr(args, "cluster", None),
                        token_file=agents, keck_token_file=keck, prometheus_token_file=prometheus_token,
                        ca_file=getattr(args, "ca_file", None),
                        insecure_tls=bool(getattr(args, "insecure_tls", False)),
                        timeout=DEFAULT_TIMEOUT_S if timeout is None else float(timeout),
                        depth=depth if depth is not None else default_depth)


def build_fleet(args: argparse.Namespace, default_depth: int | None) -> Fleet:
    from keck_tui.commands.exposure import print_warnings
    from keck_tui.sources.attach import build_fleet as build

    fleet = build(attach_config_from_args(args, default_depth))
    print_warnings("keck-top", fleet.warnings)
    return fleet


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.batch and args.once:
        raise CliError("--once and --batch don't go together")
    require_once_for_json(args)
    if args.once or args.batch:
        fleet = build_fleet(args, default_depth=None)
    else:
        fleet = build_fleet(args, default_depth=2)
    fleet.interval = settings.interval

    import asyncio

    from keck_tui.sources.fleet import RemoteFeed, poll_once
    from keck_tui.textout import render_fleet_table

    if args.once:
        snap = asyncio.run(poll_once(fleet))
        if args.json:
            print(snap.dumps(indent=1))
        else:
            print(render_fleet_table(snap))
        if snap.sources and not any(s.ok for s in snap.sources):
            # Print what we have (stale rows carry the errors) but tell scripts nothing answered.
            print(f"keck-top: error: no source answered ({'; '.join(s.detail for s in snap.sources)[:300]})",
                  file=sys.stderr)
            return 1
        return 0
    feed = RemoteFeed(fleet, interval=settings.interval)
    if args.batch:
        feed.start()
        try:
            shown = 0
            last = None
            while args.iterations is None or shown < args.iterations:
                snap = feed.latest()
                if snap is not None and snap is not last:
                    print(render_fleet_table(snap), flush=True)
                    print(flush=True)
                    last = snap
                    shown += 1
                time.sleep(0.05)
        finally:
            feed.stop()
        return 0
    title = _title(args)
    from keck_tui.commands.tui import start_tui

    return start_tui(feed, settings, title=title)


def _title(args: argparse.Namespace) -> str:
    parts = []
    if args.fleet:
        parts.append(f"fleet {args.fleet.name}")
    if args.urls:
        parts.append(f"{len(args.urls)} agent(s)")
    if args.keck:
        parts.append("keck " + ", ".join(args.keck))
    if args.prometheus:
        parts.append(f"prometheus {args.prometheus}")
    return "keck-top attach: " + "; ".join(parts)
