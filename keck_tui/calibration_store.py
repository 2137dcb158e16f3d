"""Keeping what calibration learned across restarts, per machine.

One JSON file per machine in keck-top's state directory (default
``$XDG_CACHE_HOME/keck-top``, i.e. ``~/.cache/keck-top``; the agent can point it
at its own state dir), named after a key derived from the machine's identity:
``/etc/machine-id``, the DMI product UUID where readable, the CPU model and the
number of logical CPUs. The key is also inside the file and checked on load, so
a file copied from another machine (or a cloned image) is not used. The file
holds each model's calibration window (``Calibrator.to_json``); the fits are
recomputed from it, never trusted from the file. It is written atomically and
never through a symlink (common/safefile), in a directory keck-top creates 0700
and refuses to use when it is a symlink, and read size-capped, without following
a symlink, and validated (common/bounded, ``Calibrator.load_json``); anything
wrong with it is reported and calibration starts afresh.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from keck_tui.common.bounded import BoundedInputError, parse_json, read_file
from keck_tui.common.safefile import replace_atomically
from keck_tui.samplers.fileio import ReadFile, read_bytes

SCHEMA = "keck-top-calibration/1"
MAX_BYTES = 4 << 20  # a few windows of 600 samples are ~100 KB each


@dataclass(frozen=True)
class MachineIdentity:
    key: str  # hex digest of what follows
    cpu_model: str
    cpus: int
    machine_id: str  # "" when unreadable

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "cpu_model": self.cpu_model, "cpus": self.cpus}


def _read_text(read: ReadFile, path: str) -> str:
    try:
        return read(path).strip()
    except (OSError, UnicodeError):
        return ""


def _read_cpuinfo(path: str) -> str:
    return read_bytes(path, 8 << 20).decode("utf-8", "replace")


def machine_identity(procfs_root: str = "/proc", sysfs_root: str = "/sys", etc_root: str = "/etc",
                     read: ReadFile = _read_cpuinfo) -> MachineIdentity:
    """Who this machine is, for keying its calibration (never raises)."""
    cpuinfo = _read_text(read, f"{procfs_root}/cpuinfo")
    model = ""
    cpus = 0
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            cpus += 1
        elif not model and key in ("model name", "Model", "Hardware", "cpu model", "uarch"):
            model = value.strip()
    machine_id = _read_text(read, f"{etc_root}/machine-id")
    product = _read_text(read, f"{sysfs_root}/class/dmi/id/product_uuid")
    digest = hashlib.sha256("\0".join((machine_id, product, model, str(cpus))).encode()).hexdigest()[:20]
    return MachineIdentity(key=digest, cpu_model=model or "unknown CPU", cpus=cpus, machine_id=machine_id)


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path(env.get("HOME") or "~").expanduser() / ".cache"
    return root / "keck-top"


class CalibrationStore:
    """Loads and saves the calibration entries (one per model) of one machine."""

    def __init__(self, directory: Path, machine: MachineIdentity) -> None:
        self.directory = Path(directory)
        self.machine = machine
        self.entries: dict[str, dict[str, Any]] = {}

    @property
    def path(self) -> Path:
        return self.directory / f"calibration-{self.machine.key}.json"

    def load(self) -> str:
        """Read the file into ``entries``; returns what happened, in one line."""
        self.entries = {}
        try:
            doc = parse_json(read_file(self.path, MAX_BYTES, "saved calibration", follow_symlinks=False),
                             what=f"saved calibration {self.path}")
        except FileNotFoundError:
            return f"no saved calibration ({self.path})"
        except BoundedInputError as exc:
            return f"saved calibration not used: {exc}"
        except OSError as exc:
            return f"saved calibration not used: cannot read {self.path}: {exc.strerror or exc}"
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            return f"saved calibration not used: {self.path} is not a {SCHEMA} file"
        machine = doc.get("machine")
        if not isinstance(machine, dict) or machine.get("key") != self.machine.key:
            other = machine.get("cpu_model") if isinstance(machine, dict) else None
            return (f"saved calibration not used: {self.path} was made on another machine"
                    + (f" ({other})" if isinstance(other, str) else ""))
        models = doc.get("models")
        if not isinstance(models, dict):
            return f"saved calibration not used: {self.path} has no models"
        self.entries = {str(k): v for k, v in models.items() if isinstance(v, dict)}
        return f"resumed from {self.path}"

    def save(self, entries: Mapping[str, Mapping[str, Any]], wall: float) -> str | None:
        """Write ``entries`` (merged over what was loaded); returns an error line, or None."""
        merged = {**self.entries, **{k: dict(v) for k, v in entries.items()}}
        doc = {"schema": SCHEMA, "saved": wall, "machine": self.machine.to_json(), "models": merged}
        data = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        if len(data) > MAX_BYTES:
            return f"calibration not saved: {len(data)} bytes is over the {MAX_BYTES}-byte limit"
        try:
            _private_dir(self.directory)
            replace_atomically(self.path, data, perms=0o600)
        except OSError as exc:
            return f"calibration not saved: {exc.strerror or exc}"
        self.entries = merged
        return None


def _private_dir(directory: Path) -> None:
    """Create keck-top's state directory (0700); a symlink there is refused, not followed."""
    if directory.is_symlink():
        raise OSError(f"{directory} is a symbolic link: refused")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.is_symlink() or not directory.is_dir():
        raise OSError(f"{directory} is not a directory: refused")
