"""Per-core frequency from cpufreq sysfs, else the nominal value from /proc/cpuinfo.

Live: ``<sysfs>/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq`` (kHz) with
``cpuinfo_max_freq`` (else ``scaling_max_freq``) as the maximum. Offline CPUs
(``online`` = 0) are left out.

Nominal (most VMs have no cpufreq): per processor ``cpu MHz`` from ``<procfs>/cpuinfo``,
else the "@ 2.20GHz" of its ``model name``; marked ``nominal=True``. /proc/cpuinfo is read
once and cached: on x86 each read of ``cpu MHz`` samples APERF/MPERF on every CPU, which is
not free, and where there is no cpufreq the value is the base clock anyway.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from keck_tui.estimate.cpuinfo import cpuinfo_blocks
from keck_tui.model import STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.fileio import ReadFile, listdir, read_file, read_opt_int, read_opt_text
from keck_tui.samplers.types import CoreFrequency, FrequencyReading

_CPU_RE = re.compile(r"^cpu(\d+)$")
_GHZ_RE = re.compile(r"@\s*([0-9.]+)\s*GHz", re.IGNORECASE)

NOMINAL_FIX = ("cpufreq is absent in most VMs (nothing to fix there); on bare metal load a "
               "cpufreq driver (intel_pstate, amd-pstate or acpi-cpufreq)")


class CpufreqSampler:
    """FrequencySampler: live cpufreq where present, nominal /proc/cpuinfo values elsewhere."""

    name = "cpufreq"

    def __init__(self, sysfs_root: Path | str = "/sys", procfs_root: Path | str = "/proc", *,
                 read_file: ReadFile = read_file) -> None:
        self.sysfs_root = Path(sysfs_root)
        self.procfs_root = Path(procfs_root)
        self._read = read_file
        self._nominal: dict[int, tuple[float, float | None]] | None = None

    def sample(self) -> FrequencyReading:
        cpu_dir = self.sysfs_root / "devices" / "system" / "cpu"
        cpus = sorted(int(m.group(1)) for e in listdir(cpu_dir) if (m := _CPU_RE.match(e)))
        if not cpus:
            cpus = sorted(self.nominal())
        cores: list[CoreFrequency] = []
        nominal_cpus: list[int] = []
        missing: list[int] = []
        for cpu in cpus:
            base = os.path.join(cpu_dir, f"cpu{cpu}")
            if read_opt_text(self._read, os.path.join(base, "online")) == "0":
                continue
            khz = read_opt_int(self._read, os.path.join(base, "cpufreq", "scaling_cur_freq"))
            if khz is not None and khz > 0:
                max_khz = (read_opt_int(self._read, os.path.join(base, "cpufreq", "cpuinfo_max_freq"))
                           or read_opt_int(self._read, os.path.join(base, "cpufreq", "scaling_max_freq")))
                cores.append(CoreFrequency(cpu, khz / 1000.0, False, max_khz / 1000.0 if max_khz else None))
                continue
            nominal = self.nominal().get(cpu)
            if nominal is None:
                missing.append(cpu)
                continue
            cores.append(CoreFrequency(cpu, nominal[0], True, nominal[1]))
            nominal_cpus.append(cpu)
        if not cores:
            return FrequencyReading(SourceStatus(
                self.name, STATUS_UNAVAILABLE,
                f"no cpufreq in {cpu_dir} and no MHz in {self.procfs_root / 'cpuinfo'}",
                extra={"fix": NOMINAL_FIX}))
        notes: list[str] = []
        extra: dict[str, object] = {}
        if nominal_cpus:
            which = "" if len(nominal_cpus) == len(cores) else f" for cpus {_ranges(nominal_cpus)}"
            notes.append(f"frequencies are nominal{which} (from /proc/cpuinfo: no cpufreq)")
            extra["fix"] = NOMINAL_FIX
        if missing:
            notes.append(f"no frequency for cpus {_ranges(missing)}")
        return FrequencyReading(SourceStatus(self.name, STATUS_OK, "; ".join(notes), extra=extra),
                                tuple(cores))

    def nominal(self) -> dict[int, tuple[float, float | None]]:
        """cpu -> (nominal MHz, max MHz from the model name or None), from /proc/cpuinfo (cached)."""
        if self._nominal is None:
            try:
                text = self._read(str(self.procfs_root / "cpuinfo"))
            except OSError:
                text = ""
            self._nominal = parse_cpuinfo(text)
        return self._nominal


def parse_cpuinfo(text: str) -> dict[int, tuple[float, float | None]]:
    """Per processor: (``cpu MHz`` or the model name's GHz, the model name's GHz)."""
    out: dict[int, tuple[float, float | None]] = {}
    for fields in cpuinfo_blocks(text):
        if not fields.get("processor", "").isdigit():
            continue
        m = _GHZ_RE.search(fields.get("model name", ""))
        rated = float(m.group(1)) * 1000.0 if m else None
        try:
            mhz: float | None = float(fields["cpu MHz"])
        except (KeyError, ValueError):
            mhz = rated
        if mhz is not None and mhz > 0:
            out[int(fields["processor"])] = (mhz, rated)
    return out


def _ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    parts: list[str] = []
    start = prev = cpus[0]
    for c in cpus[1:] + [None]:  # type: ignore[list-item]
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev != start else str(start))
        if c is not None:
            start = prev = c
    return ",".join(parts)
