"""Power and energy sensors from the Linux hwmon class (``<sysfs>/class/hwmon/hwmon*``).

Reads ``power*_input`` / ``power*_average`` (µW, instantaneous or driver-averaged) and
``energy*_input`` (µJ counters, e.g. ``amd_energy``), with the device ``name`` and the
sensors' ``*_label``. Counters are differentiated over the measured interval; a power
sensor's interval value is the mean of its readings at both ends of the interval
(the trapezoid rule — better than the last value alone, still a sample, not an integral).

Domain kinds (only kinds the collector sums get a summable kind; the rest are OTHER so
they are shown and never double-counted):

- ``amd_energy`` / ``zenergy``: ``Esocket<N>`` → package-N, ``Ecore<M>`` → core-M;
- ``acpi_power_meter``: the node's meter → node (its ``power1_accuracy`` gives the accuracy);
- ``amdgpu``, ``radeon``, ``nouveau``, ``i915``, ``xe``: a GPU's board/package power → gpu;
- anything else (``zenpower``'s SVI2 rails, PMBus rails, ...): other.

When powercap RAPL zones exist too (AMD Zen with a recent kernel and zenergy loaded),
``amd_energy``/``zenergy`` sockets and cores become OTHER (shown, not summed): the RAPL
sampler already reports the same package energy, and adding both would double it.

hwmon does not document a counter width, so an energy counter that goes backwards is
treated as a reset (driver reload): that interval is dropped and the status says so.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.discovery import Discovery
from keck_tui.samplers.fileio import ReadFile, listdir, read_file, read_opt_text
from keck_tui.samplers.types import (
    DOMAIN_CORE, DOMAIN_GPU, DOMAIN_NODE, DOMAIN_OTHER, DOMAIN_PACKAGE, PowerDomain, PowerReading,
)

_SENSOR_RE = re.compile(r"^(power|energy)(\d+)_(input|average)$")
_SOCKET_RE = re.compile(r"^Esocket(\d+)$")
_CORE_RE = re.compile(r"^Ecore(\d+)$")

ENERGY_DRIVERS = ("amd_energy", "zenergy")
GPU_DRIVERS = ("amdgpu", "radeon", "nouveau", "i915", "xe")

# Accuracy by kind: AMD's socket/core energy is the same on-die model as AMD RAPL (±10 %,
# see rapl.py); GPU drivers report their board sensor (±5 %); an ACPI meter states its own
# accuracy (used when present, else ±5 %); unknown sensors get ±10 %.
ACCURACY = {DOMAIN_PACKAGE: 0.10, DOMAIN_CORE: 0.10, DOMAIN_NODE: 0.05, DOMAIN_GPU: 0.05,
            DOMAIN_OTHER: 0.10}

NEEDS_ROOT_FIX = ("run keck-top as root: amd_energy-style energy counters are root-only "
                  "(CVE-2020-12912)")
NO_SENSORS_FIX = ("nothing to fix unless the machine has a power meter: load its driver "
                  "(e.g. modprobe acpi_power_meter, amd_energy)")


@dataclass(frozen=True)
class HwmonSensor:
    """One power or energy sensor file and what it means."""

    path: str
    hwmon: str  # "hwmon3"
    driver: str  # the hwmon ``name``
    sensor: str  # "power1", "energy17"
    is_energy: bool
    label: str | None
    domain: str
    kind: str
    socket: int | None
    accuracy: float


class HwmonSampler:
    """PowerSampler over hwmon power/energy sensors; see the module docstring."""

    name = "hwmon"

    def __init__(self, sysfs_root: Path | str = "/sys", clock: Clock | None = None, *,
                 read_file: ReadFile = read_file) -> None:
        self.sysfs_root = Path(sysfs_root)
        self.clock: Clock = clock or SystemClock()
        self._read = read_file
        self._sensors: Discovery[HwmonSensor] = Discovery(self._discover, self.clock)
        self._devices: list[str] = []
        self._prev: dict[str, tuple[int, float]] = {}
        self._deferred = False  # AMD socket energy demoted because RAPL reports it

    @property
    def sensors(self) -> tuple[HwmonSensor, ...]:
        """The sensors; where there are none, looked for again every ``REDISCOVER_S``."""
        return self._sensors.get()

    def _discover(self) -> tuple[HwmonSensor, ...]:
        base = self.sysfs_root / "class" / "hwmon"
        out: list[HwmonSensor] = []
        self._devices = []
        used: set[str] = set()
        self._deferred = False
        rapl = self._rapl_present()
        for hw in sorted(listdir(base), key=_natural):
            if not hw.startswith("hwmon"):
                continue
            folder = base / hw
            driver = read_opt_text(self._read, str(folder / "name"))
            files = listdir(folder)
            if not any(_SENSOR_RE.match(f) for f in files) and "device" in files:
                folder = folder / "device"  # pre-3.x drivers keep sensors on the device
                files = listdir(folder)
                driver = driver or read_opt_text(self._read, str(folder / "name"))
            driver = driver or hw
            self._devices.append(driver)
            chosen: dict[str, str] = {}  # "power1" -> file; prefer _average over _input
            for f in files:
                m = _SENSOR_RE.match(f)
                if not m:
                    continue
                key = m.group(1) + m.group(2)
                if key not in chosen or m.group(3) == "average":
                    chosen[key] = f
            for key in sorted(chosen, key=_natural):
                label = read_opt_text(self._read, str(folder / f"{key}_label"))
                sensor = self._describe(str(folder), hw, driver, key, chosen[key], label, used)
                if rapl and sensor.kind in (DOMAIN_PACKAGE, DOMAIN_CORE):
                    sensor = replace(sensor, kind=DOMAIN_OTHER)
                    self._deferred = True
                used.add(sensor.domain)
                out.append(sensor)
        return tuple(out)

    def _rapl_present(self) -> bool:
        cls = self.sysfs_root / "class" / "powercap"
        if any(e.startswith("intel-rapl:") for e in listdir(cls)):
            return True
        return bool(listdir(self.sysfs_root / "devices" / "virtual" / "powercap" / "intel-rapl"))

    def _describe(self, folder: str, hw: str, driver: str, key: str, fname: str,
                  label: str | None, used: set[str]) -> HwmonSensor:
        is_energy = key.startswith("energy")
        kind, socket, domain = DOMAIN_OTHER, None, f"{driver}/{hw}/{key}"
        accuracy = ACCURACY[DOMAIN_OTHER]
        if driver in ENERGY_DRIVERS and label:
            if m := _SOCKET_RE.match(label):
                kind, socket = DOMAIN_PACKAGE, int(m.group(1))
                domain = f"package-{socket}"
            elif m := _CORE_RE.match(label):
                kind, domain = DOMAIN_CORE, f"core-{int(m.group(1))}"
        elif driver == "acpi_power_meter" and not is_energy:
            kind, domain = DOMAIN_NODE, "node"
        elif driver in GPU_DRIVERS:
            kind = DOMAIN_GPU
        accuracy = ACCURACY[kind]
        if driver == "acpi_power_meter":
            stated = _accuracy_file(read_opt_text(self._read, os.path.join(folder, key + "_accuracy")))
            if stated is not None:
                accuracy = stated
        if domain in used:
            domain = f"{domain}@{hw}"
        return HwmonSensor(path=os.path.join(folder, fname), hwmon=hw, driver=driver, sensor=key,
                           is_energy=is_energy, label=label, domain=domain, kind=kind,
                           socket=socket, accuracy=accuracy)

    def sample(self) -> PowerReading:
        sensors = self.sensors
        if not sensors:
            return PowerReading(self._sensors.absent(self._no_sensors))
        denied: list[str] = []
        failed: list[str] = []
        notes: list[str] = []
        domains: list[PowerDomain] = []
        primed = 0
        for s in sensors:
            try:
                value = int(self._read(s.path).strip())
            except PermissionError:
                denied.append(os.path.basename(s.path))
                continue
            except (OSError, ValueError) as exc:
                failed.append(f"{s.driver}/{s.sensor}: {type(exc).__name__}")
                continue
            now = self.clock.monotonic()
            prev = self._prev.get(s.path)
            self._prev[s.path] = (value, now)
            if prev is None:
                primed += 1
                continue
            dt = now - prev[1]
            if dt <= 0:
                continue
            if s.is_energy:
                delta = value - prev[0]
                if delta < 0:
                    notes.append(f"{s.domain}: energy counter went backwards (reset?); interval dropped")
                    continue
                joules: float | None = delta / 1e6
                watts = delta / 1e6 / dt
            else:
                if value < 0:
                    continue
                joules = None
                watts = (value + prev[0]) / 2 / 1e6
            domains.append(PowerDomain(
                name=s.domain, kind=s.kind, watts=watts, interval_s=dt, accuracy=s.accuracy,
                joules=joules, socket=s.socket, label=s.label or s.sensor))
        extra: dict[str, object] = {"sensors": len(sensors)}
        if len(denied) + len(failed) == len(sensors):
            if denied:
                kinds = sorted({_pattern(f) for f in denied})
                return PowerReading(SourceStatus(
                    self.name, STATUS_UNAVAILABLE, f"{', '.join(kinds)} needs root",
                    extra={**extra, "fix": NEEDS_ROOT_FIX}))
            return PowerReading(SourceStatus(
                self.name, STATUS_ERROR, "could not read " + "; ".join(failed), extra=extra))
        if denied:
            notes.append(f"{len(denied)} sensor(s) need root ({', '.join(sorted({_pattern(f) for f in denied}))})")
            extra["fix"] = NEEDS_ROOT_FIX
        if failed:
            notes.append("could not read " + "; ".join(failed))
        if not domains and primed:
            notes.insert(0, "warming up")
        if self._deferred:
            notes.append("socket energy is also in RAPL: shown, not summed")
        return PowerReading(
            SourceStatus(self.name, STATUS_OK, "; ".join(notes), watts=_headline(domains), extra=extra),
            tuple(domains))

    def _no_sensors(self) -> SourceStatus:
        base = self.sysfs_root / "class" / "hwmon"
        if not base.is_dir():
            detail = f"no hwmon: {base} does not exist"
        elif self._devices:
            detail = ("no hwmon power or energy sensors (devices: "
                      + ", ".join(sorted(set(self._devices))) + ")")
        else:
            detail = f"no hwmon power or energy sensors: {base} is empty"
        return SourceStatus(self.name, STATUS_UNAVAILABLE, detail, extra={"fix": NO_SENSORS_FIX})


def _headline(domains: list[PowerDomain]) -> float | None:
    """Node meter where present, else the sum of packages; None when neither."""
    for kind in (DOMAIN_NODE, DOMAIN_PACKAGE):
        values = [d.watts for d in domains if d.kind == kind]
        if values:
            return sum(values)
    return None


def _accuracy_file(text: str | None) -> float | None:
    """``power1_accuracy`` as written by acpi_power_meter ("95.0%": the meter is 95 % accurate)."""
    if not text:
        return None
    try:
        value = float(text.rstrip("%").strip())
    except ValueError:
        return None
    if not 0 < value <= 100:
        return None
    return (100.0 - value) / 100.0 if value > 50 else value / 100.0


def _pattern(fname: str) -> str:
    """"energy12_input" -> "energy*_input"."""
    return re.sub(r"\d+", "*", fname, count=1)


def _natural(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))
