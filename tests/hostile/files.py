"""Hostile files: what a careless operator or another user can put where keck-top reads a file.

Each builder makes the thing at ``path`` and returns it: the null device's endless twin
``/dev/zero``, a FIFO nobody writes (a plain ``open`` blocks for ever), a 300 MB sparse
file, a symlink to ``/dev/zero``, TOML nested 100,000 deep (``tomllib`` recurses), a
directory. keck-top must answer each with one line and exit 2 (or a source's status),
quickly, without reading it whole.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

MB = 1024 * 1024


def dev_zero(path: Path) -> Path:
    return Path("/dev/zero")


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def huge(path: Path) -> Path:
    with open(path, "wb") as fh:  # sparse: costs no disk
        fh.truncate(300 * MB)
    return path


def link_to_dev_zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


def deep_toml(path: Path) -> Path:
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    return path


#: name → builder(path) for every hostile file.
HOSTILE_FILES: dict[str, Callable[[Path], Path]] = {
    "/dev/zero": dev_zero, "FIFO": fifo, "300 MB file": huge, "symlink to /dev/zero": link_to_dev_zero,
    "TOML 100000 deep": deep_toml, "directory": directory,
}
