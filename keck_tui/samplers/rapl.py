"""RAPL energy counters from the Linux powercap framework (Intel; AMD Zen on recent kernels).

Reads ``<sysfs>/class/powercap/intel-rapl:*`` (every zone and subzone); when that
folder is absent, walks ``<sysfs>/devices/virtual/powercap/intel-rapl/``.
``intel-rapl-mmio:*`` zones duplicate the package zones through another interface
and are ignored; ``intel-rapl-tpmi:*`` zones (TPMI, Granite Rapids and later) are
used only where there are no MSR zones, for the same reason. Each ``energy_uj`` is timestamped with the injected clock right
after it is read, so power is over the *measured* interval of that counter.

Counters wrap at ``max_energy_range_uj``: a negative delta is one wrap (flag
``wrapped``); with no usable range a negative delta is flagged ``backwards`` and
that domain is dropped for the interval (never a made-up 0 W). An interval long
enough for the counter to wrap more than once at the zone's maximum power is
flagged ``multi-wrap?``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.discovery import Discovery
from keck_tui.samplers.fileio import ReadFile, listdir, read_file, read_opt_int, read_opt_text
from keck_tui.samplers.types import (
    DOMAIN_CORE, DOMAIN_DRAM, DOMAIN_OTHER, DOMAIN_PACKAGE, DOMAIN_PSYS, DOMAIN_UNCORE,
    PowerDomain, PowerReading,
)

_PACKAGE_RE = re.compile(r"^package-(\d+)$")

# Relative accuracy we attach to RAPL readings. RAPL is a calibrated on-die model
# (measured with voltage regulators on Intel since Haswell server parts), and the
# published validations (Hähnel et al. 2012; Desrochers et al. 2016; Khan et al.,
# "RAPL in Action", 2018) find package energy within a few percent of external
# meters on average but not for every workload, and DRAM worse (modelled, not
# measured, on client parts and on pre-Haswell servers; AMD Zen's package value is
# modelled too). We therefore say ±5 % for package/core/uncore/psys and ±10 % for
# DRAM: honest rather than flattering, and narrow enough to be useful.
ACCURACY = {DOMAIN_PACKAGE: 0.05, DOMAIN_CORE: 0.05, DOMAIN_UNCORE: 0.05,
            DOMAIN_PSYS: 0.05, DOMAIN_DRAM: 0.10, DOMAIN_OTHER: 0.10}

#: Power assumed for the multi-wrap check when a zone gives no ``constraint_*_max_power_uw``.
#: Deliberately high (beyond any single socket today), so the check flags only intervals that
#: really could hide a second wrap (a 262 kJ range lasts ~9 min at 500 W).
DEFAULT_MAX_POWER_W = 500.0

NEEDS_ROOT_FIX = (
    "run keck-top as root (sudo keck-top), or make the counters readable until reboot: "
    "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj "
    "(root-only since CVE-2020-8694; a udev rule or systemd-tmpfiles makes it permanent)"
)
NO_RAPL_FIX = (
    "on bare metal load the driver (modprobe intel_rapl_msr; AMD Zen needs a kernel whose intel_rapl_msr knows AMD); "
    "in a VM there is no RAPL: power is estimated (set --tdp for a better estimate)"
)


@dataclass(frozen=True)
class RaplZone:
    """Static facts about one powercap zone (read once)."""

    zone: str  # "intel-rapl:0:1"
    path: str  # directory holding energy_uj
    hw_name: str  # the zone's own ``name`` ("package-0", "dram", "psys", ...)
    domain: str  # our stable domain name ("package-0", "dram-0", "psys")
    kind: str
    socket: int | None
    max_range_uj: int | None  # None or 0: wrap range unknown
    max_power_w: float | None


class RaplSampler:
    """PowerSampler over powercap RAPL zones; see the module docstring."""

    name = "rapl"

    def __init__(self, sysfs_root: Path | str = "/sys", clock: Clock | None = None, *,
                 read_file: ReadFile = read_file) -> None:
        self.sysfs_root = Path(sysfs_root)
        self.clock: Clock = clock or SystemClock()
        self._read = read_file
        self._zones: Discovery[RaplZone] = Discovery(self._discover, self.clock)
        self._mmio_ignored = 0
        self._prev: dict[str, tuple[int, float]] = {}

    # -- discovery ---------------------------------------------------------------------

    @property
    def zones(self) -> tuple[RaplZone, ...]:
        """The zones; where there are none, looked for again every ``REDISCOVER_S``."""
        return self._zones.get()

    def _discover(self) -> tuple[RaplZone, ...]:
        """MSR zones (``intel-rapl:*``); where there are none, TPMI zones (``intel-rapl-tpmi:*``,
        Granite Rapids and later), which otherwise repeat them. MMIO zones are always duplicates."""
        self._mmio_ignored = len(self._find("intel-rapl-mmio"))
        for control in ("intel-rapl", "intel-rapl-tpmi"):
            found = self._find(control)
            if found:
                return self._describe(control, found)
        return ()

    def _find(self, control: str) -> dict[str, str]:
        """zone id -> folder for one powercap control type: ``class/powercap`` links, else a
        walk of ``devices/virtual/powercap/<control>``."""
        pattern = re.compile(rf"^{re.escape(control)}:\d+(?::\d+)*$")
        found: dict[str, str] = {}
        class_dir = self.sysfs_root / "class" / "powercap"
        for entry in listdir(class_dir):
            if pattern.match(entry):
                found[entry] = str(class_dir / entry)
        if not found:
            stack = [self.sysfs_root / "devices" / "virtual" / "powercap" / control]
            while stack:
                here = stack.pop()
                for entry in listdir(here):
                    if pattern.match(entry) and entry not in found:
                        found[entry] = str(here / entry)
                        stack.append(here / entry)
        return found

    def _describe(self, control: str, found: dict[str, str]) -> tuple[RaplZone, ...]:
        def key(zone: str) -> tuple[int, ...]:
            return tuple(int(p) for p in zone.split(":")[1:])

        sockets: dict[str, int | None] = {}
        zones: list[RaplZone] = []
        used: set[str] = set()
        for zone in sorted(found, key=key):
            path = found[zone]
            idx = key(zone)
            hw_name = read_opt_text(self._read, os.path.join(path, "name")) or zone
            parent = f"{control}:" + ":".join(str(i) for i in idx[:-1]) if len(idx) > 1 else None
            kind, socket = _classify(hw_name, idx, sockets.get(parent) if parent else None)
            sockets[zone] = socket
            base = hw_name.split("-")[0] if kind != DOMAIN_OTHER else hw_name
            if kind == DOMAIN_PACKAGE:
                domain = f"package-{socket}"
            elif socket is not None:
                domain = f"{base}-{socket}"
            else:
                domain = base
            if domain in used:
                domain = f"{domain}@{zone}"
            used.add(domain)
            max_range = read_opt_int(self._read, os.path.join(path, "max_energy_range_uj"))
            zones.append(RaplZone(
                zone=zone, path=path, hw_name=hw_name, domain=domain, kind=kind, socket=socket,
                max_range_uj=max_range if max_range and max_range > 0 else None,
                max_power_w=self._max_power_w(path),
            ))
        return tuple(zones)

    def _max_power_w(self, path: str) -> float | None:
        best = 0
        for entry in listdir(Path(path)):
            if entry.startswith("constraint_") and entry.endswith("_max_power_uw"):
                best = max(best, read_opt_int(self._read, os.path.join(path, entry)) or 0)
        return best / 1e6 if best > 0 else None

    # -- sampling ----------------------------------------------------------------------

    def sample(self) -> PowerReading:
        zones = self.zones
        if not zones:
            return PowerReading(self._zones.absent(self._no_rapl))
        denied: list[str] = []
        failed: list[str] = []
        notes: list[str] = []
        domains: list[PowerDomain] = []
        primed = 0
        for z in zones:
            try:
                uj = int(self._read(os.path.join(z.path, "energy_uj")).strip())
            except PermissionError:
                denied.append(z.zone)
                continue
            except (OSError, ValueError) as exc:
                failed.append(f"{z.zone}: {type(exc).__name__}")
                continue
            now = self.clock.monotonic()
            prev = self._prev.get(z.zone)
            self._prev[z.zone] = (uj, now)
            if prev is None:
                primed += 1
                continue
            dom = self._domain(z, prev, uj, now, notes)
            if dom is not None:
                domains.append(dom)
        readable = len(zones) - len(denied) - len(failed)
        extra: dict[str, object] = {"zones": len(zones)}
        if self._mmio_ignored:
            extra["mmio_ignored"] = self._mmio_ignored
        if readable == 0:
            if denied:
                return PowerReading(SourceStatus(
                    self.name, STATUS_UNAVAILABLE, "energy_uj needs root",
                    extra={**extra, "fix": NEEDS_ROOT_FIX}))
            return PowerReading(SourceStatus(
                self.name, STATUS_ERROR, "could not read energy_uj (" + "; ".join(failed) + ")",
                extra=extra))
        if denied:
            notes.append(f"energy_uj of {', '.join(denied)} needs root")
            extra["fix"] = NEEDS_ROOT_FIX
        if failed:
            notes.append("could not read " + "; ".join(failed))
        if not domains and primed:
            notes.insert(0, "warming up")
        watts = _headline_watts(domains)
        return PowerReading(
            SourceStatus(self.name, STATUS_OK, "; ".join(notes), watts=watts, extra=extra),
            tuple(domains),
        )

    def _domain(self, z: RaplZone, prev: tuple[int, float], uj: int, now: float,
                notes: list[str]) -> PowerDomain | None:
        prev_uj, prev_t = prev
        dt = now - prev_t
        if dt <= 0:
            return None
        delta = uj - prev_uj
        flags: list[str] = []
        if delta < 0:
            if z.max_range_uj is None:
                notes.append(f"{z.domain}: counter went backwards with no max_energy_range_uj; "
                             "interval dropped")
                return None
            delta += z.max_range_uj
            flags.append("wrapped")
        if z.max_range_uj is not None:
            max_w = z.max_power_w or DEFAULT_MAX_POWER_W
            if dt * max_w * 1e6 > z.max_range_uj:
                flags.append("multi-wrap?")
                notes.append(f"{z.domain}: interval {dt:.0f} s is long enough for more than one "
                             "counter wrap; energy may be undercounted")
        joules = delta / 1e6
        return PowerDomain(
            name=z.domain, kind=z.kind, watts=joules / dt, interval_s=dt,
            accuracy=ACCURACY[z.kind], joules=joules, socket=z.socket, label=z.hw_name,
            flags=tuple(flags),
        )

    def _no_rapl(self) -> SourceStatus:
        where = self.sysfs_root / "class" / "powercap"
        if where.is_dir():
            detail = f"no RAPL: {where} has no intel-rapl zones (a VM without powercap?); power is estimated"
        else:
            detail = f"no RAPL: {where} does not exist (a VM, or no powercap driver?); power is estimated"
        return SourceStatus(self.name, STATUS_UNAVAILABLE, detail, extra={"fix": NO_RAPL_FIX})


def _classify(hw_name: str, idx: tuple[int, ...], parent_socket: int | None) -> tuple[str, int | None]:
    """Domain kind and socket of a zone from its ``name`` and position."""
    m = _PACKAGE_RE.match(hw_name)
    if m:
        return DOMAIN_PACKAGE, int(m.group(1))
    top = len(idx) == 1
    if hw_name == "psys":
        return DOMAIN_PSYS, None
    if hw_name == "dram":
        return DOMAIN_DRAM, parent_socket if not top else idx[0]
    if hw_name == "core" and not top:
        return DOMAIN_CORE, parent_socket
    if hw_name == "uncore" and not top:
        return DOMAIN_UNCORE, parent_socket
    return DOMAIN_OTHER, parent_socket


def _headline_watts(domains: list[PowerDomain]) -> float | None:
    """The source's one number: psys where present, else packages + DRAM."""
    if not domains:
        return None
    psys = [d.watts for d in domains if d.kind == DOMAIN_PSYS]
    if psys:
        return sum(psys)
    return sum(d.watts for d in domains if d.kind in (DOMAIN_PACKAGE, DOMAIN_DRAM))
