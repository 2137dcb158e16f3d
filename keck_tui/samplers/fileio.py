"""Small, fast file reads for sysfs/procfs samplers, with an injectable reader.

Samplers take a ``read_file`` callable (path -> text) so tests can inject the
failures that a root test process cannot provoke with ``chmod`` (root reads a
mode-000 file anyway): e.g. ``PermissionError`` for ``energy_uj`` as a
non-root user sees it since CVE-2020-8694.
"""
from __future__ import annotations

import os
from typing import Callable

#: Read a whole (small) file as text. Raises OSError like ``open`` would.
ReadFile = Callable[[str], str]


def read_bytes(path: str, limit: int = 65536) -> bytes:
    """Read up to ``limit`` bytes of a small pseudo-file with one ``read`` syscall."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def listdir(path: str | os.PathLike[str]) -> list[str]:
    """The names in a folder, or ``[]`` when it is absent or unreadable (an optional sysfs class)."""
    try:
        return os.listdir(path)
    except OSError:
        return []


def read_file(path: str) -> str:
    """Read a small pseudo-file with one ``read`` syscall (sysfs values are < 4 KiB)."""
    return read_bytes(path).decode("utf-8", "replace")


def parse_cpu_list(text: str) -> list[int]:
    """A kernel CPU list (``0-3,8``) → [0, 1, 2, 3, 8]; nonsense → []."""
    cpus: list[int] = []
    try:
        for part in text.strip().split(","):
            if not part:
                continue
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        return []
    return sorted(set(c for c in cpus if 0 <= c < 65536))


def online_cpus(sysfs_root: str | os.PathLike[str] = "/sys") -> list[int]:
    """The online CPUs (``devices/system/cpu/online``); [] where it cannot be read."""
    try:
        raw = read_bytes(os.path.join(sysfs_root, "devices", "system", "cpu", "online"), 4096)
    except OSError:
        return []
    return parse_cpu_list(raw.decode("ascii", "replace"))


def read_opt_int(read: ReadFile, path: str) -> int | None:
    """An integer file, or None when it is absent, unreadable or not an integer."""
    try:
        return int(read(path).strip())
    except (OSError, ValueError):
        return None


def read_opt_text(read: ReadFile, path: str) -> str | None:
    """A one-line text file stripped, or None when absent or unreadable."""
    try:
        return read(path).strip()
    except OSError:
        return None
