"""Settings: defaults, then the TOML config file, then command-line flags.

The config file is ``--config FILE`` or ``~/.config/keck-top/config.toml``
(``$XDG_CONFIG_HOME`` respected). Unknown keys and wrong types are errors: a
typo in a config file must not silently change what keck-top measures.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any, Mapping

from keck_tui.cost import ScheduleError, Tariff, parse_schedule
from keck_tui.common.bounded import CONFIG_FILE, BoundedInputError, parse_toml, read_file
from keck_tui.common.errors import UsageError
from keck_tui.common.ranges import RANGES, RangeError

MODELS = ("auto", "cpu-time", "frequency-weighted", "full")
IDLE_POLICIES = ("separate", "proportional", "none")
PROBES = ("auto", "ebpf", "procfs")
COUNTERS = ("auto", "off")  # per-core hardware counters through perf_event_open
PROFILES = ("minimal", "standard", "full")  # cheapest first; what each sets: keck_tui/profiles.py


class ConfigError(UsageError):
    """The config file or a flag value is unusable (reported in one line, exit 2)."""


@dataclass(frozen=True)
class Settings:
    interval: float = 1.0
    model: str = "auto"
    idle: str = "separate"
    idle_watts: float | None = None  # idle baseline; learned from history when None
    tdp: float | None = None  # CPU power at full load for the estimate (W)
    price_per_kwh: float | None = None  # currency units per kWh
    currency: str = "€"
    co2e_g_per_kwh: float | None = None  # grams CO2e per kWh
    # Time-of-day price schedule: [{"from": "07:00", "price_per_kwh": 0.30}, ...]
    price_schedule: tuple[Mapping[str, Any], ...] = ()
    sysfs_root: str = "/sys"
    procfs_root: str = "/proc"
    probes: str = "auto"
    counters: str = "auto"  # hardware counters (cycles, instructions, LLC misses): auto | off
    profile: str = "standard"  # how much keck-top itself may cost (keck_tui/profiles.py)
    host: str | None = None  # node name override
    history_minutes: float = 10.0
    theme: str = "dark"
    # [[work]] entries (keck_tui.work.spec.WorkSpec) and whether inference servers are detected
    work: tuple[Any, ...] = ()
    work_presets: bool = True
    # Where learned state (the calibrated model) is kept: None = $XDG_CACHE_HOME/keck-top, "none" = nowhere.
    state_dir: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # [sections] for other parts


_FLOAT_KEYS = {"interval", "idle_watts", "tdp", "price_per_kwh", "co2e_g_per_kwh", "history_minutes"}
_CHOICES = {"model": MODELS, "idle": IDLE_POLICIES, "probes": PROBES, "counters": COUNTERS, "profile": PROFILES,
            "theme": ("dark", "light")}
# Sections other modules read ([agent], [redfish], [kubelet]); their keys are checked in _SECTION_KEYS.
# Any other table is an unknown key: a typo must not be silently ignored.
_SECTIONS = {"agent", "redfish", "kubelet", "host_power"}


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "keck-top" / "config.toml"


def load_config(path: Path | None, *, explicit: bool) -> Settings:
    """Read a config file. A missing default file is fine; a missing explicit one is not.

    Read bounded (regular file, at most 4 MiB, nesting at most 64 deep): ``/dev/zero``,
    a FIFO or ``a = [[[[…]]]]`` are one-line errors, not a hang or a RecursionError.
    """
    if path is None:
        return Settings()
    try:
        raw = read_file(path, CONFIG_FILE, "config file")
        data = parse_toml(raw, what=f"config file {path}")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        return Settings()
    except BoundedInputError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return settings_from_mapping(data, where=str(path))


# Keys of the sections this package reads: "str", "bool", or the name of a number's range in
# keck_tui.common.ranges.RANGES. A typo or a wrong type there is an error like at the top level.
_SECTION_KEYS: dict[str, dict[str, str]] = {
    "agent": {"listen": "str", "token_file": "str", "insecure_no_auth": "bool", "tls_cert": "str",
              "tls_key": "str", "history_minutes": "history_minutes", "history_max_mb": "history_max_mb",
              "top_processes": "top_processes", "max_pods": "max_pods", "vm_token_dir": "str", "vm_export_dir": "str",
              "budget_cpu": "budget_cpu", "budget_mem": "budget_mem"},
    "kubelet": {"url": "str", "token_file": "str", "ca_file": "str", "insecure": "bool",
                "refresh_s": "kubelet_refresh_s"},
    "redfish": {"url": "str", "credentials_file": "str", "auth": "str", "insecure": "bool",
                "interval": "redfish_interval"},
    "host_power": {"url": "str", "vm": "str", "token_file": "str", "stale_after_s": "host_power_stale_s"},
}


def _check_section(section: str, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    schema = _SECTION_KEYS[section]
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        kind = schema.get(name)
        if kind is None:
            raise ConfigError(f"{where}: unknown key {key!r} in [{section}]")
        if kind in RANGES:
            try:
                value = RANGES[kind].check(value, f"{where}: [{section}] {key}")
            except RangeError as exc:
                raise ConfigError(str(exc)) from None
        elif not isinstance(value, {"str": str, "bool": bool}[kind]):
            want = {"str": "a string", "bool": "true or false"}[kind]
            raise ConfigError(f"{where}: [{section}] {key} must be {want}, got {value!r}")
        if kind == "str" and (name.endswith(("_file", "_dir")) or name in ("tls_cert", "tls_key")):
            value = os.path.expanduser(value)  # no shell expands "~" in a config file
        out[name] = value
    if section == "redfish" and out.get("auth", "basic") not in ("basic", "session"):
        raise ConfigError(f"{where}: [redfish] auth must be basic or session, got {out['auth']!r}")
    return out


def settings_from_mapping(data: Mapping[str, Any], where: str = "config") -> Settings:
    known = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if key in _SECTIONS and isinstance(value, Mapping):
            extra[key] = _check_section(key, value, where)
            continue
        if name == "work":
            from keck_tui.work.spec import WorkSpecError, parse_entries

            try:
                values["work"] = parse_entries(value, where)
            except WorkSpecError as exc:
                raise ConfigError(str(exc)) from None
            continue
        if name not in known:
            raise ConfigError(f"{where}: unknown key {key!r}")
        values[name] = check_value(name, value, where)
    return replace(Settings(), extra=extra, **values)


def check_value(name: str, value: Any, where: str = "config") -> Any:
    """Validate one setting's value; raise ConfigError with a readable reason."""
    if name in _FLOAT_KEYS:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
        try:
            return float(RANGES[name].check(value, f"{where}: {name}"))
        except RangeError as exc:
            raise ConfigError(str(exc)) from None
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ConfigError(f"{where}: {name} must be one of {', '.join(_CHOICES[name])}, got {value!r}")
        return value
    if name == "price_schedule":
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise ConfigError(f"{where}: price_schedule must be a list of tables")
        try:  # bad times/rates: fail at start-up
            parse_schedule(value, where=f"{where}: price_schedule")
        except ScheduleError as exc:
            raise ConfigError(str(exc)) from None
        return tuple(dict(v) for v in value)
    if name == "work_presets":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: work_presets must be true or false, got {value!r}")
        return value
    if name in ("sysfs_root", "procfs_root", "host", "currency"):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be a string, got {value!r}")
        return value
    if name == "state_dir":
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ConfigError(f"{where}: state_dir must be a directory or 'none', got {value!r}")
        return value if value == "none" else os.path.expanduser(value)
    return value


def tariff_from_settings(settings: Settings, tz: tzinfo | None = None) -> Tariff:
    """The prices and carbon intensity the settings give (``tz``: the schedule's zone, None: local)."""
    for key in ("price_per_kwh", "co2e_g_per_kwh"):
        value = getattr(settings, key)
        if value is not None and not math.isfinite(value):  # TOML allows nan and inf
            raise ConfigError(f"{key} must be a finite number, got {value}")
    try:
        segments = parse_schedule(settings.price_schedule)
    except ScheduleError as exc:
        raise ConfigError(str(exc)) from None
    return Tariff(price_per_kwh=settings.price_per_kwh, co2e_g_per_kwh=settings.co2e_g_per_kwh,
                  currency=settings.currency, segments=segments, tz=tz)
