"""What every command shares: the parser class, CliError, option groups and settings from flags.

Library code below ``keck_tui.commands`` never sees argparse: a command turns its
flags into typed configuration (``Settings``, ``LocalSources``, ``AttachConfig``, …)
here or in its own module, and library errors (any ``UsageError``) come back to
``keck_tui.cli.main`` as one line and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keck_tui.common.errors import UsageError
from keck_tui.common.ranges import RANGES, RangeError
from keck_tui.config import (COUNTERS, IDLE_POLICIES, MODELS, PROBES, PROFILES, Settings, check_value,
                             default_config_path, load_config)

if TYPE_CHECKING:
    from keck_tui.model import Snapshot
    from keck_tui.wiring import HostPowerConfig, LocalSources


class CliError(UsageError):
    """A usage problem reported as one line with exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one clear line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class ranged:
    """An argparse ``type`` for the number ``name`` of :data:`keck_tui.common.ranges.RANGES`.

    Out of range, not finite or not a number: ``keck-top: error: argument --x: …`` and exit 2.
    Every numeric flag uses one (tests/test_ranges.py checks), so each has a documented range.
    """

    def __init__(self, name: str) -> None:
        self.range = RANGES[name]
        self.name = name
        self.__name__ = name  # argparse names the type in some messages

    def __call__(self, text: str) -> Any:
        try:
            return self.range.parse(text, "the value")
        except RangeError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("the value ")) from None

    def help(self, default: str) -> str:
        """``(default 1.0; 0.05 – 3600 s)`` for the flag's help text."""
        return f"(default {default}; {self.range.text()})" if default else f"({self.range.text()})"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="TOML config file (default: ~/.config/keck-top/config.toml when present)")


def add_interval_option(parser: argparse.ArgumentParser) -> None:
    kind = ranged("interval")
    parser.add_argument("--interval", metavar="S", type=kind,
                        help=f"sampling/refresh interval in seconds {kind.help('1.0')}")


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
    idle_watts, tdp = ranged("idle_watts"), ranged("tdp")
    g.add_argument("--idle-watts", metavar="W", type=idle_watts,
                   help="CPU idle baseline in watts "
                        f"{idle_watts.help('learned as the low-utilisation intercept')}")
    g.add_argument("--state-dir", metavar="DIR",
                   help="where the calibrated model is kept so a restart resumes it "
                        "(default $XDG_CACHE_HOME/keck-top, i.e. ~/.cache/keck-top; 'none': keep nothing)")
    g.add_argument("--tdp", metavar="W", type=tdp,
                   help="CPU watts at full load for the estimate when no sensor exists "
                        f"{tdp.help('from the CPU model and public data, see `keck-top doctor`')}")
    g.add_argument("--probes", choices=PROBES,
                   help="per-process CPU time from eBPF or procfs; auto uses eBPF when root+bcc work (default auto)")
    g.add_argument("--counters", choices=COUNTERS,
                   help="hardware counters (cycles, instructions, LLC misses) per CPU through perf_event_open: "
                        "auto opens them where the PMU and perf_event_paranoid allow; off never does (default auto)")
    g.add_argument("--profile", choices=PROFILES,
                   help="how much keck-top itself may cost: minimal (every 5 s at the fastest, no PSS, "
                        "cpu-time model), standard, full (PSS of the busiest every sample, per-core "
                        "rows, full model); see README 'Profiles' (default standard)")
    g.add_argument("--host-name", metavar="NAME", help="node name shown and exported (default: hostname)")
    g.add_argument("--no-gpu", action="store_true", help="do not query NVIDIA GPUs through NVML")
    g.add_argument("--redfish", metavar="URL", help="read wall power from a Redfish BMC at URL")
    g.add_argument("--redfish-credentials", metavar="FILE",
                   help="file with 'user:password' for the BMC (or KECK_REDFISH_USER/KECK_REDFISH_PASSWORD)")
    g.add_argument("--redfish-auth", choices=("basic", "session"), default=None,
                   help="Redfish authentication (default basic)")
    g.add_argument("--redfish-insecure", action="store_true",
                   help="accept a self-signed BMC certificate (TLS is verified by default)")
    g.add_argument("--redfish-interval", metavar="S", type=ranged("redfish_interval"),
                   help=f"seconds between BMC polls {ranged('redfish_interval').help('10')}")
    g.add_argument("--apple-power", action="store_true",
                   help="read Apple Silicon power via 'sudo -n powermetrics' (needs the documented sudoers line)")
    g.add_argument("--kubelet", metavar="URL",
                   help="kubelet /pods endpoint for pod names (default: auto on a Kubernetes node)")
    g.add_argument("--host-power", metavar="URL",
                   help="in a VM: this guest's power as its host measured it, from the host's `keck-top serve` "
                        "(http(s)://HOST:9464) or a shared file (file:///MOUNT/power.json); falls back to the "
                        "estimate, labelled, while the host does not answer")
    g.add_argument("--vm", metavar="NAME", help="with --host-power URL: this VM's name on the host (libvirt domain, "
                                                "KubeVirt NAMESPACE.VMI, Firecracker id)")
    g.add_argument("--host-power-token", metavar="FILE",
                   help="with --host-power URL: file holding this VM's token (sent only to that URL's origin); "
                        "at the top level --token-file works too")
    g.add_argument("--no-work-presets", action="store_true",
                   help="do not look for inference servers (vLLM, llama.cpp, TGI, SGLang) to count their "
                        "tokens; [[work]] entries of the config still apply")


def add_once_options(parser: Any, once_help: str = "print one snapshot and exit") -> None:
    """``--once`` and ``--json``: one snapshot on stdout, as a table or as keck-top/1 JSON."""
    parser.add_argument("--once", action="store_true", help=once_help)
    parser.add_argument("--json", action="store_true", help="print the snapshot as keck-top/1 JSON (with --once)")


def require_once_for_json(args: argparse.Namespace) -> None:
    if args.json and not args.once:
        raise CliError("--json needs --once")


def print_snapshot(snap: Snapshot, as_json: bool) -> None:
    """One snapshot on stdout: its JSON document, or the plain table."""
    from keck_tui.textout import render_table

    sys.stdout.write((snap.dumps() if as_json else render_table(snap)) + "\n")
    sys.stdout.flush()


def add_output_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output")
    add_once_options(g, once_help="sample one interval, print it and exit")
    g.add_argument("--batch", action="store_true", help="print a plain table each interval, like top -b")
    g.add_argument("-n", "--iterations", metavar="N", type=ranged("iterations"),
                   help="with --batch: stop after N tables "
                        f"{ranged('iterations').help('run until interrupted')}")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Config file values overridden by the flags that were given."""
    explicit = getattr(args, "config", None)
    path = explicit if explicit is not None else default_config_path()
    settings = load_config(Path(path), explicit=explicit is not None)
    overrides = {}
    for flag in ("interval", "model", "idle", "idle_watts", "tdp", "sysfs_root", "procfs_root",
                 "probes", "counters", "profile", "theme", "state_dir"):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[flag] = check_value(flag, value, where=f"--{flag.replace('_', '-')}")
    if getattr(args, "host_name", None):
        overrides["host"] = args.host_name
    if getattr(args, "no_work_presets", False):
        overrides["work_presets"] = False
    return replace(settings, **overrides)


def local_sources_from_args(args: argparse.Namespace, settings: Settings, *, warn: bool = True) -> "LocalSources":
    """The optional local sources: flags first, then the config's ``[redfish]`` and ``[kubelet]``.

    ``warn``: say on stderr which of their secret files (BMC credentials, tokens) other users
    can read (``doctor`` lists them instead).
    """
    sources = _local_sources(args, settings)
    if warn:
        from keck_tui.commands.exposure import local_source_secrets, print_warnings, secret_file_warnings

        print_warnings("keck-top", secret_file_warnings(local_source_secrets(sources)))
    return sources


def _local_sources(args: argparse.Namespace, settings: Settings) -> "LocalSources":
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
        host_power=host_power_from_args(args, settings),
        redfish=redfish,
        kubelet=KubeletConfig(url=getattr(args, "kubelet", None) or kubelet.get("url"),
                              token_file=kubelet.get("token_file"), ca_file=kubelet.get("ca_file"),
                              insecure=bool(kubelet.get("insecure", False)),
                              refresh_s=float(kubelet.get("refresh_s", 30.0))),
        apple_power=bool(getattr(args, "apple_power", False)),
        gpu=not getattr(args, "no_gpu", False))


def host_power_from_args(args: argparse.Namespace, settings: Settings) -> "HostPowerConfig | None":
    """``--host-power``/``--vm``/``--host-power-token``, else ``[host_power]`` in the config.

    The top-level ``--token-file`` is this VM's token too; a subcommand's ``--token-file`` (the
    agent's own token for ``serve``, the agents' for ``record``) never is: it must not be sent.
    """
    from keck_tui.wiring import HostPowerConfig

    section = settings.extra.get("host_power") or {}
    url = getattr(args, "host_power", None) or section.get("url")
    if not url:
        return None
    top_level_token = getattr(args, "token_file", None) if getattr(args, "command", None) is None else None
    token = getattr(args, "host_power_token", None) or top_level_token or section.get("token_file")
    return HostPowerConfig(url=str(url), vm=getattr(args, "vm", None) or section.get("vm"),
                           token_file=str(token) if token else None, stale_after_s=section.get("stale_after_s"))
