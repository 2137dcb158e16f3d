"""``keck-top doctor``: per source, found or missing, why, and how to fix.

It samples every local source for a short interval, exactly as the live modes
do, and explains the result. It always exits 0: a missing sensor is an answer,
not a failure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from keck_tui.commands.base import add_sampling_options, local_sources_from_args, settings_from_args
from keck_tui.common.table import Column, render_table
from keck_tui.config import Settings
from keck_tui.model import Snapshot, SourceStatus
from keck_tui.profiles import interval_for, profile_named
from keck_tui.selfwatch import ProcSelfUsage

if TYPE_CHECKING:
    from keck_tui.wiring import LocalSources

# Generic advice per source when the sampler gave no specific fix.
_FIXES = {
    "rapl": "on bare-metal Intel/AMD Linux: modprobe intel_rapl_common (AMD: kernel ≥ 5.11); "
            "energy_uj is root-only since CVE-2020-8694: run as root or grant read access; "
            "in a VM there is no RAPL: power is estimated (set --tdp for a better guess)",
    "hwmon": "load the sensor driver (e.g. modprobe amd_energy, acpi_power_meter) if the hardware has one",
    "cpufreq": "load a cpufreq driver (intel_pstate/acpi-cpufreq/amd-pstate); VMs usually have none, "
               "so nominal MHz from /proc/cpuinfo are shown, marked *",
    "procfs": "mount /proc (or pass --procfs-root)",
    "ebpf": "run as root with bcc: `sudo scripts/setup-ebpf.sh` installs python3-bpfcc's kernel "
            "headers (or the nearest cloud headers) and mounts tracefs; see docs/ebpf.md",
    "nvml": "install the NVIDIA driver (libnvidia-ml.so) on a machine with an NVIDIA GPU",
    "redfish": "check --redfish URL, credentials (--redfish-credentials FILE) and TLS (--redfish-insecure for self-signed)",
    "powermetrics": "macOS only: pass --apple-power and add the sudoers line shown in README.md",
    "estimate": "no power sensor: figures are estimates from CPU utilisation and public data for this CPU "
                "(keck_tui/data/SOURCES.md); set --tdp and --idle-watts for this CPU, run on a machine with "
                "RAPL/hwmon/NVML/Redfish, or in a VM read the host's figure with --host-power",
    "counters": "per-CPU hardware counters need a PMU and kernel.perf_event_paranoid ≤ 0 or CAP_PERFMON "
                "(docs/model.md, 'Hardware counters')",
    "memory-estimate": "no DRAM sensor: DRAM power is estimated from the memory size (0.392 W/GB, Cloud "
                       "Carbon Footprint); RAPL's dram domain measures it on servers that have one",
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_sampling_options(parser)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


SLOW_SOURCE_WAIT_S = 5.0

# When the node total is measured (BMC, psys) only the CPU's share inside it is estimated.
_ESTIMATE_SPLIT_FIX = ("the node total is measured; only the CPU's share of it is estimated from utilisation: "
                       "set --tdp and --idle-watts for this CPU, or make RAPL readable (bare metal, root)")
_NO_REDFISH = ("no --redfish URL given: wall power from a BMC is not read",
               "on a server with a BMC: --redfish https://BMC --redfish-credentials FILE (user:password)")


def diagnose(snap: Snapshot, redfish_configured: bool = True) -> list[dict[str, str]]:
    """One finding per source: name, state (found/missing/estimated/error), why, fix."""
    out = []
    for s in snap.sources:
        fix = str(s.extra.get("fix") or _FIXES.get(s.name, ""))
        if s.name == "estimate" and not snap.estimated and not s.extra.get("fix"):
            fix = _ESTIMATE_SPLIT_FIX
        if s.ok and s.detail.startswith("waiting for the first"):
            # a slow poller (BMC, kubelet) that has not answered within doctor's wait: not "found"
            out.append({"source": s.name, "state": "missing",
                        "why": f"{s.detail}: no answer within {SLOW_SOURCE_WAIT_S:.0f} s",
                        "fix": fix or "check that it answers from this machine"})
            continue
        # A working source can still carry the sampler's own advice (nominal-only cpufreq,
        # eBPF map overflow): show it.
        shown = fix if (not s.ok or s.kind == "estimated" or s.extra.get("fix")) else ""
        why = s.detail or "-"
        reasons = s.extra.get("why")
        if s.name == "estimate" and isinstance(reasons, list) and reasons:
            # which data entry matched and why (keck_tui/estimate/profile.py), and the data's source
            why = f"{why}; matched {s.extra.get('entry')}: " + "; ".join(str(r) for r in reasons)
            if s.extra.get("data"):
                why += f" [data: {s.extra['data']}]"
        out.append({"source": s.name, "state": _state(s), "why": why, "fix": shown})
    if not redfish_configured and not any(s.name == "redfish" for s in snap.sources):
        out.append({"source": "redfish", "state": "missing", "why": _NO_REDFISH[0], "fix": _NO_REDFISH[1]})
    calibration = calibration_finding(snap)
    if calibration is not None:
        out.append(calibration)
    return out


def calibration_finding(snap: Snapshot) -> dict[str, str] | None:
    """The model's self-calibration: how far along, how well it tracks, where it is kept."""
    cal = snap.extra.get("calibration")
    if not isinstance(cal, dict):
        return None
    model = cal.get("model", snap.model)
    saved = str(cal.get("saved") or "")
    samples, needed = cal.get("samples", 0), cal.get("needed", 0)
    if cal.get("status") == "calibrated":
        last = cal.get("last_recalibration")
        when = f", last fitted {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last))}" \
            if isinstance(last, (int, float)) else ""
        why = (f"model {model} fitted to the measured CPU power over {samples} intervals: tracking error "
               f"±{cal.get('rmse_w')} W, R² {cal.get('r2')}, {cal.get('recalibrations', 0)} recalibration(s){when}"
               f"{' (resumed from the saved state)' if cal.get('restored') else ''}; {saved}")
        return {"source": "calibration", "state": "found", "why": why, "fix": ""}
    if not samples:  # not one interval with a measured CPU power
        return {"source": "calibration", "state": "missing",
                "why": f"model {model} cannot calibrate: no measured CPU power (bounds use the models' spread)",
                "fix": "calibration needs RAPL (bare metal, root) or a node meter; it then runs by itself"}
    why = f"model {model}: {cal.get('reason') or f'{samples}/{needed} intervals'}; {saved}"
    return {"source": "calibration", "state": "calibrating", "why": why,
            "fix": f"let keck-top (or `keck-top serve`) run: it fits after {needed} intervals of measured "
                   "CPU power with varied load and keeps the fit in its state directory (--state-dir)"}


def _state(s: SourceStatus) -> str:
    if s.kind == "estimated":
        return "estimated"
    return {"ok": "found", "unavailable": "missing"}.get(s.status, s.status)


def summary(snap: Snapshot) -> str:
    root = snap.root
    if snap.estimated:
        head = (f"power is ESTIMATED (~{root.watts:.1f} W, ±{100 * (root.watts_hi - root.watts) / root.watts:.0f} %): "
                "no power sensor was found" if root.watts > 0 else "power is ESTIMATED: no power sensor was found")
    else:
        srcs = ", ".join(root.sources or ()) or "measured sources"
        head = f"power is MEASURED ({root.watts:.1f} W from {srcs})"
    return f"{head}; model {snap.model} ({snap.extra.get('model_reason', '')}); idle {snap.idle_policy}"


def exposure_warnings(settings: Settings, sources: LocalSources) -> list[str]:
    """Secret files others can read (this node's sources, the config's ``[agent]``), an agent
    configured to listen beyond loopback without a token, certificates expired or expiring."""
    from keck_tui.commands.exposure import agent_section_warnings, local_source_secrets, secret_file_warnings

    out = secret_file_warnings(local_source_secrets(sources))
    agent = settings.extra.get("agent")
    if agent:
        out += [w for w in agent_section_warnings(agent) if w not in out]
    return out


def run(args: argparse.Namespace) -> int:
    from keck_tui.clock import SystemClock
    from keck_tui.wiring import build_collector

    settings = settings_from_args(args)
    sources = local_sources_from_args(args, settings, warn=False)
    exposure = exposure_warnings(settings, sources)
    clock = SystemClock()
    collector = build_collector(settings, sources, clock)
    usage = ProcSelfUsage()
    try:
        collector.wait_for_slow_sources(timeout=SLOW_SOURCE_WAIT_S)
        collector.prime()
        clock.sleep(min(settings.interval, 0.5))
        cpu0, _ = usage()
        snap = collector.collect()
        cpu1, rss = usage()
    finally:
        collector.close()
    findings = diagnose(snap, redfish_configured=sources.redfish is not None)
    cost = profile_cost(settings, cpu1 - cpu0, rss)
    if args.json:
        json.dump({"host": snap.host, "root": os.geteuid() == 0, "findings": findings,
                   "summary": summary(snap), "warnings": list(snap.warnings) + exposure, "profile": cost},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"keck-top doctor: {snap.host} (running as {'root' if os.geteuid() == 0 else 'uid ' + str(os.geteuid())})")
    rows: list[list[str]] = []
    for f in findings:
        rows.append([f["source"], f["state"], f["why"]])
        if f["fix"]:
            rows.append(["", "", f"fix: {f['fix']}"])
    columns = [Column(), Column(gap=2), Column(gap=2)]
    for line in render_table(columns, rows, indent="  ", header=False):
        print(line)
    for warning in (*snap.warnings, *exposure):
        print(f"  warning: {warning}")
    print(summary(snap))
    print(profile_line(cost))
    return 0


def profile_cost(settings: Settings, sample_cpu_s: float, rss_bytes: int) -> dict[str, Any]:
    """The profile, what one sample cost here, and the budget `serve` would keep it to."""
    profile = profile_named(settings.profile)
    section = settings.extra.get("agent") or {}
    interval = interval_for(profile, settings.interval)
    return {"name": profile.name, "interval_s": interval,
            "sample_cpu_ms": round(sample_cpu_s * 1e3, 1),
            "cpu_pct": round(100.0 * sample_cpu_s / interval, 2), "rss_mib": round(rss_bytes / 2**20, 1),
            "budget_cpu_pct": float(section.get("budget_cpu", profile.budget_cpu_pct)),
            "budget_mem_mib": float(section.get("budget_mem", profile.budget_mem_mib))}


def profile_line(cost: dict[str, Any]) -> str:
    over = [what for what, value, budget in (("CPU", cost["cpu_pct"], cost["budget_cpu_pct"]),
                                              ("memory", cost["rss_mib"], cost["budget_mem_mib"]))
            if value > budget]
    verdict = ("within budget" if not over else
               f"OVER the {' and '.join(over)} budget: serve would step down a profile (--profile minimal)")
    return (f"profile {cost['name']}: one sample cost {cost['sample_cpu_ms']:.1f} ms CPU "
            f"(~{cost['cpu_pct']:.1f} % of one CPU every {cost['interval_s']:g} s), RSS {cost['rss_mib']:.0f} MiB; "
            f"serve's budget {cost['budget_cpu_pct']:g} % CPU, {cost['budget_mem_mib']:g} MiB: {verdict}")
