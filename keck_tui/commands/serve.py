"""`keck-top serve`: the headless agent (JSON query API, history and Prometheus /metrics).

Cheap to import: aiohttp and prometheus-client are imported inside run().
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keck_tui.commands.base import (CliError, add_sampling_options, local_sources_from_args, ranged,
                                    settings_from_args)
from keck_tui.config import Settings
from keck_tui.profiles import PROFILES as PROFILE_LIST, profile_named
from keck_tui.selfwatch import Budget
from keck_tui.profiles import PROFILES as PROFILE_LIST, profile_named
from keck_tui.selfwatch import Budget

DEFAULT_LISTEN = "127.0.0.1:9464"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run keck-top headless and serve its snapshots: GET /api/v1/snapshot[?path=a/b&depth=N], "
        "/api/v1/history?path=&since=, /metrics (Prometheus), /healthz and, on a hypervisor, "
        "/api/v1/vm/NAME. Read-only; loopback only unless you give a token. See docs/remote.md "
        "and docs/vms.md.")
    g = parser.add_argument_group("agent")
    g.add_argument("--listen", metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_LISTEN}; [::1]:PORT for IPv6)")
    g.add_argument("--token-file", metavar="FILE",
                   help="file holding a bearer token; required on every endpoint but /healthz")
    g.add_argument("--insecure-no-auth", action="store_true",
                   help="allow listening beyond loopback without a token (anyone who can reach it can read it)")
    g.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    g.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    minutes, max_mb = ranged("history_minutes"), ranged("history_max_mb")
    top, pods = ranged("top_processes"), ranged("max_pods")
    g.add_argument("--history-minutes", metavar="M", type=minutes,
                   help=f"minutes of per-row history kept for /api/v1/history {minutes.help('10')}")
    g.add_argument("--history-max-mb", metavar="MB", type=max_mb,
                   help=f"memory cap for the history in MiB; oldest entries go first {max_mb.help('32')}")
    g.add_argument("--top-processes", metavar="N", type=top,
                   help=f"processes exported to /metrics (top N by watts, rest summed as (other)) {top.help('20')}")
    g.add_argument("--max-pods", metavar="N", type=pods,
                   help=f"pod series in /metrics before the smallest are summed as (other) {pods.help('500')}")
    g.add_argument("--from-file", metavar="FILE", type=Path,
                   help="serve snapshots from a keck-top/1 JSON or JSON Lines file (cycled) instead of sampling")
    g.add_argument("--access-log", action="store_true", help="log every request (never the token)")
    g.add_argument("--vm-token-dir", metavar="DIR",
                   help="on a hypervisor: one file per VM (DIR/<vm name>) holding that VM's token; it reads "
                        "GET /api/v1/vm/<vm name> and nothing else (re-read when DIR changes)")
    g.add_argument("--vm-export-dir", metavar="DIR",
                   help="on a hypervisor: write each VM's power to DIR/<vm name>/power.json every interval "
                        "(atomically; share DIR/<vm name> with the guest over virtiofs/9p)")
    cpu_budget, mem_budget = ranged("budget_cpu"), ranged("budget_mem")
    g.add_argument("--budget-cpu", metavar="PCT", type=cpu_budget,
                   help="CPU budget in percent of one CPU: over it for 30 s, the agent steps down one "
                        "profile (back up after 5 min under half of it) " + cpu_budget.help(
                            ", ".join(f"{p.name} {p.budget_cpu_pct:g}" for p in PROFILE_LIST)))
    g.add_argument("--budget-mem", metavar="MIB", type=mem_budget,
                   help="memory (RSS) budget in MiB, the same way " + mem_budget.help(
                       ", ".join(f"{p.name} {p.budget_mem_mib:g}" for p in PROFILE_LIST)))
    add_sampling_options(parser)


def _opt(args: argparse.Namespace, section: dict[str, Any], name: str, default: Any) -> Any:
    value = getattr(args, name, None)
    if value is not None:
        return value
    return section.get(name, section.get(name.replace("_", "-"), default))


@dataclass(frozen=True)
class ServeConfig:
    """The agent's options: flags first, then the config's ``[agent]`` table, then defaults."""

    host: str
    port: int
    token: str | None  # bearer token required on every endpoint but /healthz
    token_file: str | None
    tls_cert: str | None
    tls_key: str | None
    history_minutes: float
    history_max_mb: float
    top_processes: int
    max_pods: int
    budget: Budget = Budget(cpu_pct=5.0, mem_mib=128.0)  # own CPU and RSS kept to by stepping profiles down
    vm_token_dir: str | None = None  # one token file per VM: it reads /api/v1/vm/<name> only
    vm_export_dir: str | None = None  # <dir>/<vm>/power.json written every interval


def serve_config(args: argparse.Namespace, settings: Settings) -> ServeConfig:
    """Checks the agent's options (one-line errors) and reads the token file."""
    from keck_tui.agent.auth import is_loopback
    from keck_tui.agent.server import parse_listen
    from keck_tui.common.tokens import TokenError, load_token

    section = dict(settings.extra.get("agent", {}))
    try:
        host, port = parse_listen(str(_opt(args, section, "listen", DEFAULT_LISTEN)))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    token_file = _opt(args, section, "token_file", None)
    try:
        token = load_token(token_file) if token_file else None
    except TokenError as exc:
        raise CliError(str(exc)) from None
    insecure = bool(args.insecure_no_auth or section.get("insecure_no_auth", False))
    if token is None and not is_loopback(host) and not insecure:
        raise CliError(f"refusing to listen on {host} without a token: give --token-file FILE "
                       "(or --insecure-no-auth to accept that anyone who reaches it can read it)")
    cert, key = _opt(args, section, "tls_cert", None), _opt(args, section, "tls_key", None)
    if bool(cert) != bool(key):
        raise CliError("--tls-cert and --tls-key go together")
    # Flags are checked by their argparse type and the [agent] table by the config loader,
    # both against keck_tui.common.ranges.
    minutes = float(_opt(args, section, "history_minutes", settings.history_minutes))
    max_mb = float(_opt(args, section, "history_max_mb", 32.0))
    top = int(_opt(args, section, "top_processes", 20))
    max_pods = int(_opt(args, section, "max_pods", 500))
    token_dir = _opt(args, section, "vm_token_dir", None)
    export_dir = _opt(args, section, "vm_export_dir", None)
    if token_dir and not os.path.isdir(token_dir):
        raise CliError(f"--vm-token-dir {token_dir}: not a directory")
    if export_dir and (not os.path.isdir(export_dir) or os.path.islink(export_dir)):
        raise CliError(f"--vm-export-dir {export_dir}: not a directory (symlinks are refused)")
    profile = profile_named(settings.profile)
    budget = Budget(cpu_pct=float(_opt(args, section, "budget_cpu", profile.budget_cpu_pct)),
                    mem_mib=float(_opt(args, section, "budget_mem", profile.budget_mem_mib)))
    return ServeConfig(host=host, port=port, token=token, token_file=str(token_file) if token_file else None,
                       tls_cert=str(cert) if cert else None, tls_key=str(key) if key else None,
                       history_minutes=minutes, history_max_mb=max_mb, top_processes=top, max_pods=max_pods,
                       budget=budget, vm_token_dir=str(token_dir) if token_dir else None,
                       vm_export_dir=str(export_dir) if export_dir else None)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    config = serve_config(args, settings)

    import asyncio

    from keck_tui.agent.app import AgentService, build_app
    from keck_tui.agent.history import History
    from keck_tui.agent.metrics import MetricsState, default_families
    from keck_tui.agent.server import serve, tls_context

    ssl_ctx = None
    if config.tls_cert and config.tls_key:
        try:
            ssl_ctx = tls_context(config.tls_cert, config.tls_key)
        except ValueError as exc:
            raise CliError(str(exc)) from None

    from keck_tui.commands.exposure import listener_warnings, print_warnings

    print_warnings("keck-top serve", listener_warnings(
        config.host, config.port, token=config.token is not None, tls_cert=config.tls_cert,
        tls_key=config.tls_key, token_file=config.token_file))
    vm_tokens = None
    if config.vm_token_dir:
        from keck_tui.vm.tokens import VmTokens

        vm_tokens = VmTokens(config.vm_token_dir)
        vm_tokens.reload(force=True)
        for problem in vm_tokens.problems:  # names of files that are no tokens, never their content
            print(f"keck-top serve: {problem}", file=sys.stderr)
        from keck_tui.commands.exposure import secret_file_warnings

        print_warnings("keck-top serve", secret_file_warnings(
            (os.path.join(config.vm_token_dir, name), "VM token file") for name in sorted(vm_tokens.tokens)))
    feed = _build_feed(args, settings, config.budget)
    entries = max(1, int(config.history_minutes * 60 / max(settings.interval, 0.05)))
    service = AgentService(feed, History(entries, int(config.history_max_mb * 1024 * 1024)),
                           MetricsState(default_families(max_pods=config.max_pods,
                                                         top_processes=config.top_processes)),
                           vm_tokens=vm_tokens, vm_export_dir=config.vm_export_dir)
    app = build_app(service, config.token)

    def ready(url: str) -> None:
        auth = "bearer token required" if config.token else "no auth"
        print(f"keck-top serve: listening on {url} ({auth})", file=sys.stderr, flush=True)

    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="keck-top serve: %(message)s")
    if args.access_log:
        logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    feed.start()
    try:
        asyncio.run(serve(app, config.host, config.port, ssl_ctx, on_ready=ready,
                          access_log=bool(args.access_log)))
    except OSError as exc:
        raise CliError(str(exc)) from None
    finally:
        feed.stop()
    return 0


def _build_feed(args: argparse.Namespace, settings: Any, budget: Budget) -> Any:
    if args.from_file is not None:
        from keck_tui.agent.filefeed import CyclingFeed, read_snapshots
        try:
            return CyclingFeed(read_snapshots(args.from_file), interval=settings.interval)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    try:
        from keck_tui.wiring import SelfLimit, build_local_feed
    except ImportError:
        raise CliError("local sampling is not available in this build; use --from-file FILE") from None
    return build_local_feed(settings, local_sources_from_args(args, settings),
                            limit=SelfLimit(budget=budget, upstream=True))
