"""A memory-bounded ring buffer of per-row watts, for ``GET /api/v1/history``.

Each entry keeps one snapshot's ``(watts, watts_lo, watts_hi)`` for every row
as a flat ``array('d')`` (24 bytes a row), in the order of a :class:`KeySet`:
the rows' id paths ("node/ns/pod"). Consecutive snapshots with the same tree
shape share one key set; when the shape changes (processes come and go) a new
key set costs 8 bytes a row, because the path strings themselves are interned
once per buffer and shared. The buffer holds at most ``max_entries`` entries
(minutes × 60 / interval) and at most ``max_bytes`` by that accounting; the
oldest entries go first.
"""
from __future__ import annotations

import sys
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Iterable

from keck_tui.model import Snapshot

_ENTRY_OVERHEAD = 96
_KEYSET_OVERHEAD = 120


@dataclass(eq=False)
class KeySet:
    """The id paths of one tree shape; the value arrays follow its order."""

    keys: tuple[str, ...]

    @property
    def nbytes(self) -> int:
        return 8 * len(self.keys) + _KEYSET_OVERHEAD

    def position(self, path: str) -> int | None:
        try:
            return self.keys.index(path)
        except ValueError:
            return None


@dataclass(eq=False)
class _Entry:
    time: float
    keyset: KeySet
    values: array  # 3 floats per key

    @property
    def nbytes(self) -> int:
        return 8 * len(self.values) + _ENTRY_OVERHEAD


class History:
    """Ring buffer of snapshots' row watts, bounded by entries and by bytes."""

    def __init__(self, max_entries: int, max_bytes: int = 32 * 1024 * 1024) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("history needs room for at least one entry")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: deque[_Entry] = deque()
        self._keysets: dict[int, tuple[KeySet, int]] = {}  # id -> (keyset, entries using it)
        self._strings: dict[str, tuple[str, int]] = {}  # path -> (shared str, key sets using it)
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
            keyset = KeySet(tuple(self._intern(k) for k in keys))
        self._last_keyset = keyset
        entry = _Entry(snap.time, keyset, values)
        self._ref(keyset, +1)
        self._entries.append(entry)
        self.nbytes += entry.nbytes
        while len(self._entries) > 1 and (len(self._entries) > self.max_entries or self.nbytes > self.max_bytes):
            old = self._entries.popleft()
            self.nbytes -= old.nbytes
            self._ref(old.keyset, -1)
            self.dropped += 1

    def _intern(self, key: str) -> str:
        shared, count = self._strings.get(key, (key, 0))
        if count == 0:
            self.nbytes += sys.getsizeof(key) + 72  # the str and its table slot
        self._strings[key] = (shared, count + 1)
        return shared

    def _release(self, key: str) -> None:
        shared, count = self._strings[key]
        if count <= 1:
            del self._strings[key]
            self.nbytes -= sys.getsizeof(key) + 72
        else:
            self._strings[key] = (shared, count - 1)

    def _ref(self, keyset: KeySet, delta: int) -> None:
        ks, count = self._keysets.get(id(keyset), (keyset, 0))
        if count == 0 and delta > 0:
            self.nbytes += keyset.nbytes
        count += delta
        if count == 0:
            del self._keysets[id(keyset)]
            self.nbytes -= keyset.nbytes
            for k in keyset.keys:
                self._release(k)
            if self._last_keyset is keyset:
                self._last_keyset = None
        else:
            self._keysets[id(keyset)] = (ks, count)

    @property
    def oldest(self) -> float | None:
        return self._entries[0].time if self._entries else None

    def known(self, path: str) -> bool:
        return path in self._strings

    def series(self, path: str, since: float | None = None) -> list[dict[str, float]]:
        """Points ``{time, watts, watts_lo, watts_hi}`` for one id path, oldest first."""
        out: list[dict[str, float]] = []
        cache: dict[int, int | None] = {}
        for e in self._iter_since(since):
            i = cache.get(id(e.keyset), -1)
            if i == -1:
                i = cache[id(e.keyset)] = e.keyset.position(path)
            if i is None:
                continue
            w, lo, hi = e.values[3 * i: 3 * i + 3]
            out.append({"time": e.time, "watts": w, "watts_lo": lo, "watts_hi": hi})
        return out

    def _iter_since(self, since: float | None) -> Iterable[_Entry]:
        for e in self._entries:
            if since is None or e.time >= since:
                yield e
