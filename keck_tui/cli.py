"""Argument parsing and mode dispatch for the ``keck-top`` command.

Each sub-command lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``; this file only wires them. Modules must stay cheap to
import (no textual, aiohttp or bcc at import time) so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from keck_tui import __version__
from keck_tui.config import IDLE_POLICIES, MODELS, PROBES, Settings, check_value, default_config_path, load_config
from keck_tui.errors import UsageError

if TYPE_CHECKING:
    from keck_tui.wiring import LocalSources

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("keck_tui.commands.doctor", "which power sources work here, which don't, why, and how to fix"),
    "serve": ("keck_tui.agent.command", "headless agent: JSON query API and Prometheus /metrics"),
    "attach": ("keck_tui.sources.command", "the TUI over remote agents, a fleet file, a Keck controller or Prometheus"),
    "record": ("keck_tui.commands.record", "record snapshots to a JSON Lines file (.gz/.zst by suffix)"),
    "replay": ("keck_tui.commands.replay", "replay a recording in the TUI (or print one instant)"),
    "report": ("keck_tui.commands.report", "energy, mean/peak watts, cost and CO2e per group over a recording"),
    "demo": ("keck_tui.commands.demo", "a simulated fleet, for trying keck-top out"),
    "debug": ("keck_tui.commands.debug", "support tools: parse powermetrics output or cgroup lines"),
}


class CliError(UsageError):
    """A usage problem reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one clear line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="TOML config file (default: ~/.config/keck-top/config.toml when present)")


def add_interval_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", metavar="S", type=_positive_float,
                        help="sampling/refresh interval in seconds (default 1.0)")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """Flags that choose and tune the local power sources and the attribution."""
    add_config_option(parser)
    add_interval_option(parser)
    g = parser.add_argument_group("local sources and attribution")
    g.add_argument("--sysfs-root", metavar="DIR", help="read sysfs from DIR instead of /sys (testing, containers)")
    g.add_argument("--procfs-root", metavar="DIR", help="read procfs from DIR instead of /proc")
    g.add_argument("--model", choices=MODELS,
                   help="attribution model; auto picks the richest the node supports (default auto)")
    g.add_argument("--idle", choices=IDLE_POLICIES,
                   help="idle power: separate (an (idle) row), proportional (shared by activity), "
                        "none (active power only) (default separate)")
    g.add_argument("--idle-watts", metavar="W", type=_non_negative_float,
                   help="CPU idle baseline in watts (default: learned as the low-utilisation intercept)")
    g.add_argument("--tdp", metavar="W", type=_positive_float,
                   help="CPU watts at full load for the estimate when no sensor exists "
                        "(default 10 W per logical CPU, at least 15 W)")
    g.add_argument("--probes", choices=PROBES,
                   help="per-process CPU time from eBPF or procfs; auto uses eBPF when root+bcc work (default auto)")
    g.add_argument("--host-name", metavar="NAME", help="node name shown and exported (default: hostname)")
    g.add_argument("--no-gpu", action="store_true", help="do not query NVIDIA GPUs through NVML")
    g.add_argument("--redfish", metavar="URL", help="read wall power from a Redfish BMC at URL")
    g.add_argument("--redfish-credentials", metavar="FILE",
                   help="file with 'user:password' for the BMC (or KECK_REDFISH_USER/KECK_REDFISH_PASSWORD)")
    g.add_argument("--redfish-auth", choices=("basic", "session"), default=None,
                   help="Redfish authentication (default basic)")
    g.add_argument("--redfish-insecure", action="store_true",
                   help="accept a self-signed BMC certificate (TLS is verified by default)")
    g.add_argument("--redfish-interval", metavar="S", type=_positive_float,
                   help="seconds between BMC polls (default 10)")
    g.add_argument("--apple-power", action="store_true",
                   help="read Apple Silicon power via 'sudo -n powermetrics' (needs the documented sudoers line)")
    g.add_argument("--kubelet", metavar="URL",
                   help="kubelet /pods endpoint for pod names (default: auto on a Kubernetes node)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("--once", action="store_true", help="sample one interval, print it and exit")
    g.add_argument("--json", action="store_true", help="print the snapshot as keck-top/1 JSON (with --once)")
    g.add_argument("--batch", action="store_true", help="print a plain table each interval, like top -b")
    g.add_argument("-n", "--iterations", metavar="N", type=int,
                   help="with --batch: stop after N tables (default: run until interrupted)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keck-top",
        description="keck-top shows where a machine's power goes: node → group → process → core, "
                    "with watts, frequency and an error bound on every row. With no command it "
                    "starts the live TUI on this node.",
        epilog="Commands have their own --help. Docs: README.md; design: DESIGN.md.",
    )
    parser.add_argument("--version", action="version", version=f"keck-top {__version__}")
    add_sampling_options(parser)
    add_output_options(parser)
    parser.add_argument("--prometheus", metavar="URL",
                        help="build the fleet tree from a Prometheus server instead of local sources "
                             "(the same as `keck-top attach --prometheus URL`)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="with --prometheus: bearer token for the Prometheus server")
    parser.add_argument("--theme", choices=("dark", "light"), help="TUI colour theme (default dark)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_module=module_name)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Config file values overridden by the flags that were given."""
    explicit = getattr(args, "config", None)
    path = explicit if explicit is not None else default_config_path()
    settings = load_config(Path(path), explicit=explicit is not None)
    overrides = {}
    for flag in ("interval", "model", "idle", "idle_watts", "tdp", "sysfs_root", "procfs_root",
                 "probes", "theme"):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[flag] = check_value(flag, value, where=f"--{flag.replace('_', '-')}")
    if getattr(args, "host_name", None):
        overrides["host"] = args.host_name
    from dataclasses import replace
    return replace(settings, **overrides)


def local_sources_from_args(args: argparse.Namespace, settings: Settings) -> "LocalSources":
    """The optional local sources: flags first, then the config's ``[redfish]`` and ``[kubelet]``."""
    from keck_tui.hierarchy.kubelet import KubeletConfig
    from keck_tui.wiring import LocalSources

    redfish = None
    section = settings.extra.get("redfish") or {}
    if getattr(args, "redfish", None) or section.get("url"):
        from keck_tui.samplers.redfish import RedfishConfig

        redfish = RedfishConfig(
            url=getattr(args, "redfish", None) or section["url"],
            credentials_file=getattr(args, "redfish_credentials", None) or section.get("credentials_file"),
            auth=getattr(args, "redfish_auth", None) or section.get("auth") or "basic",
            insecure=bool(getattr(args, "redfish_insecure", False) or section.get("insecure", False)),
            interval=float(getattr(args, "redfish_interval", None) or section.get("interval") or 10.0))
    kubelet = settings.extra.get("kubelet") or {}
    return LocalSources(
        redfish=redfish,
        kubelet=KubeletConfig(url=getattr(args, "kubelet", None) or kubelet.get("url"),
                              token_file=kubelet.get("token_file"), ca_file=kubelet.get("ca_file"),
                              insecure=bool(kubelet.get("insecure", False)),
                              refresh_s=float(kubelet.get("refresh_s", 30.0))),
        apple_power=bool(getattr(args, "apple_power", False)),
        gpu=not getattr(args, "no_gpu", False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command:
            module = importlib.import_module(args._module)
            return int(module.run(args) or 0)
        from keck_tui.commands import local
        return int(local.run(args) or 0)
    except UsageError as exc:  # CliError, ConfigError and every library's own usage error
        print(f"keck-top: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `keck-top --batch | head`: the reader left; exit quietly.
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return 0


if __name__ == "__main__":  # pragma: no cover - `python -m keck_tui.cli`
    # Run the package's module, not this __main__ copy, so exception classes are shared.
    from keck_tui.cli import main as _main

    sys.exit(_main())
