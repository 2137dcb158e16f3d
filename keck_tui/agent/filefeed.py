"""A feed that serves snapshots read from a file: one keck-top/1 JSON document, or JSON Lines.

``keck-top serve --from-file F`` uses it to publish a recording (or a fixed
snapshot) through the agent API, e.g. for demos and for tests that need real
agent processes with known numbers. Snapshots cycle and get fresh timestamps.
"""
from __future__ import annotations

import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

from keck_tui.common import bounded
from keck_tui.model import Snapshot, SnapshotFormatError


def read_snapshots(path: Path, limit: int = bounded.DATA_FILE) -> list[Snapshot]:
    """All snapshots in ``path`` (.json, .jsonl, optionally .gz); raises ValueError when none.

    Read bounded: a regular file of at most ``limit`` bytes, inflated to at most ``limit``.
    """
    try:
        raw = bounded.read_file(path, limit, "snapshot file")
    except bounded.BoundedInputError as exc:
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        raw = _gunzip(raw, limit, path)
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        raise ValueError(f"{path} is empty")
    try:
        if text.startswith("{") and "\n{" not in text:
            return [Snapshot.loads(text)]
        return [Snapshot.loads(line) for line in text.splitlines() if line.strip()]
    except SnapshotFormatError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _gunzip(data: bytes, limit: int, path: Path) -> bytes:
    """Every gzip member of ``data`` (an appended recording has several), at most ``limit`` bytes."""
    out = bytearray()
    while data:
        inflate = zlib.decompressobj(31)
        try:
            out += inflate.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise ValueError(f"{path}: not gzip ({exc})") from None
        if len(out) > limit:
            raise ValueError(f"{path} inflates to more than {limit // (1024 * 1024)} MiB")
        data = inflate.unused_data if inflate.eof else b""
    return bytes(out)


class CyclingFeed:
    """Serves the given snapshots in a loop, one per interval, stamped with the current time."""

    def __init__(self, snapshots: list[Snapshot], interval: float = 1.0,
                 wall: Callable[[], float] = time.time) -> None:
        if not snapshots:
            raise ValueError("CyclingFeed needs snapshots")
        self._snaps = snapshots
        self.interval = interval
        self._wall = wall
        self._lock = threading.Lock()
        self._started = wall()
        self._index = -1
        self._latest: Snapshot | None = None

    def start(self) -> None:
        self._started = self._wall()

    def stop(self) -> None:
        pass

    def latest(self) -> Snapshot | None:
        now = self._wall()
        index = int(max(0.0, now - self._started) // self.interval)
        with self._lock:
            if index != self._index:
                base = self._snaps[index % len(self._snaps)]
                self._latest = replace(base, time=self._started + index * self.interval,
                                       interval_s=self.interval)
                self._index = index
            return self._latest

    def set_interval(self, seconds: float) -> None:
        self.interval = max(0.05, seconds)

    def last_error(self) -> str | None:
        return None
