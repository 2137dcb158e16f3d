"""A memory-bounded ring buffer of per-row watts, for ``GET /api/v1/history``.

Each entry keeps one snapshot's ``(watts, watts_lo, watts_hi)`` for every row,
as a flat ``array('d')`` indexed by the row's id path. The id paths of an entry
live in a shared :class:`KeySet`: while the tree keeps its shape (the usual
case) consecutive entries share one, so an entry costs ~24 bytes a row. The
buffer holds at most ``max_entries`` entries (minutes × 60 / interval) and at
most ``max_bytes`` by that estimate; the oldest entries go first.
"""
from __future__ import annotations

import sys
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from keck_tui.model import Snapshot


@dataclass(eq=False)
class KeySet:
    """The id paths ("a/b/c") of one tree shape, with their index in the value arrays."""

    keys: tuple[str, ...]
    index: dict[str, int] = field(init=False)
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}
        # str object + dict slot + tuple slot, roughly.
        self.nbytes = sum(sys.getsizeof(k) + 48 for k in self.keys) + 64


@dataclass(eq=False)
class _Entry:
    time: float
    keyset: KeySet
    values: array  # 3 floats per key

    @property
    def nbytes(self) -> int:
        return 8 * len(self.values) + 96


class History:
    """Ring buffer of snapshots' row watts, bounded by entries and by bytes."""

    def __init__(self, max_entries: int, max_bytes: int = 32 * 1024 * 1024) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("history needs room for at least one entry")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: deque[_Entry] = deque()
        self._keysets: dict[int, tuple[KeySet, int]] = {}  # id -> (keyset, refcount)
        self._last_keyset: KeySet | None = None
        self.nbytes = 0
        self.dropped = 0  # entries evicted so far

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, snap: Snapshot) -> None:
        keys: list[str] = []
        values = array("d")
        for path, row in snap.root.walk():
            keys.append("/".join(path))
            values.extend((row.watts, row.watts_lo, row.watts_hi))
        keyset = self._last_keyset
        if keyset is None or keyset.keys != tuple(keys):
            keyset = KeySet(tuple(keys))
        self._last_keyset = keyset
        entry = _Entry(snap.time, keyset, values)
        self._ref(keyset, +1)
        self._entries.append(entry)
        self.nbytes += entry.nbytes
        while self._entries and (len(self._entries) > self.max_entries or self.nbytes > self.max_bytes):
            if len(self._entries) == 1 and len(self._entries) <= self.max_entries:
                break  # always keep the newest, even if it alone exceeds the byte cap
            old = self._entries.popleft()
            self.nbytes -= old.nbytes
            self._ref(old.keyset, -1)
            self.dropped += 1

    def _ref(self, keyset: KeySet, delta: int) -> None:
        ks, count = self._keysets.get(id(keyset), (keyset, 0))
        count += delta
        if count == 0:
            del self._keysets[id(keyset)]
            self.nbytes -= keyset.nbytes
        else:
            if id(keyset) not in self._keysets:
                self.nbytes += keyset.nbytes
            self._keysets[id(keyset)] = (ks, count)

    @property
    def oldest(self) -> float | None:
        return self._entries[0].time if self._entries else None

    def known(self, path: str) -> bool:
        return any(path in e.keyset.index for e in self._entries)

    def series(self, path: str, since: float | None = None) -> list[dict[str, float]]:
        """Points ``{time, watts, watts_lo, watts_hi}`` for one id path, oldest first."""
        out: list[dict[str, float]] = []
        for e in self._iter_since(since):
            i = e.keyset.index.get(path)
            if i is None:
                continue
            w, lo, hi = e.values[3 * i: 3 * i + 3]
            out.append({"time": e.time, "watts": w, "watts_lo": lo, "watts_hi": hi})
        return out

    def _iter_since(self, since: float | None) -> Iterable[_Entry]:
        for e in self._entries:
            if since is None or e.time >= since:
                yield e
