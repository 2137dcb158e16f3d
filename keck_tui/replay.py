"""Replaying a recording: a seekable index over its lines and a feed with a timeline.

``RecordingIndex`` reads the file once, keeps each whole line's time and where
its bytes are (decompressed into a temporary file for .gz/.zst, so memory
stays bounded however long the recording), and parses a snapshot only when it
is shown. ``ReplayFeed`` is a ``SnapshotFeed`` whose ``latest()`` is the
snapshot at the timeline's position: play/pause, step, seek and speed change
the position; time comes from an injected clock (tests use FakeClock).
"""
from __future__ import annotations

import bisect
import os
import tempfile
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import IO

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import Snapshot, SnapshotFormatError
from keck_tui.recording import ReadStats, RecordingError, iter_lines, parse_line, peek_header

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class RecordingIndex:
    """Random access to the snapshots of a recording.

    Lines that do not look like whole snapshots are skipped while indexing;
    a line that looks whole but fails to parse later is skipped when met
    (``stats`` counts both).
    """

    def __init__(self, path: str | os.PathLike[str], cache_size: int = 16) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RecordingError(f"{self.path}: no such file")
        self.stats = ReadStats()
        self._times = array("d")
        self._intervals = array("d")
        self._offsets = array("q")
        self._lengths = array("l")
        self._lines = array("l")  # line numbers, for messages
        self._bad: set[int] = set()
        self._cache: OrderedDict[int, Snapshot] = OrderedDict()
        self._cache_size = cache_size
        self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="keck-replay-")
        pos = 0
        for lineno, line in iter_lines(self.path, self.stats):
            head = peek_header(line)
            if head is None:
                why = "truncated: the file ends inside this line" if self.stats.truncated_tail \
                    else "not a whole keck-top/1 snapshot"
                self.stats.skip(lineno, why)
                continue
            self._spool.write(line)
            self._times.append(head[0])
            self._intervals.append(head[1])
            self._offsets.append(pos)
            self._lengths.append(len(line))
            self._lines.append(lineno)
            pos += len(line)
        self._spool.flush()
        self.stats.valid = len(self._times)
        self.sorted = all(a <= b for a, b in zip(self._times, self._times[1:]))

    def close(self) -> None:
        self._spool.close()

    def __len__(self) -> int:
        return len(self._times)

    def time_at(self, i: int) -> float:
        return self._times[i]

    @property
    def start(self) -> float:
        return self._times[0] - self._intervals[0] if len(self) else 0.0

    @property
    def end(self) -> float:
        return self._times[-1] if len(self) else 0.0

    def snapshot(self, i: int) -> Snapshot:
        """The i-th snapshot (raises SnapshotFormatError for a line that does not parse)."""
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        snap = self._cache.get(i)
        if snap is not None:
            self._cache.move_to_end(i)
            return snap
        if i in self._bad:
            raise SnapshotFormatError(f"line {self._lines[i]} is corrupt")
        self._spool.seek(self._offsets[i])
        data = self._spool.read(self._lengths[i])
        try:
            snap = parse_line(data)
        except SnapshotFormatError as exc:
            self._bad.add(i)
            self.stats.valid -= 1
            self.stats.skip(self._lines[i], (str(exc).splitlines() or ["corrupt"])[0][:200])
            raise
        self._cache[i] = snap
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return snap

    def nearest_valid(self, i: int, direction: int = -1) -> int | None:
        """``i`` or the closest index from it in ``direction`` (then the other) that parses."""
        n = len(self)
        if n == 0:
            return None
        i = max(0, min(n - 1, i))
        order = list(range(i, -1, -1)) + list(range(i + 1, n)) if direction < 0 \
            else list(range(i, n)) + list(range(i - 1, -1, -1))
        for j in order:
            try:
                self.snapshot(j)
                return j
            except SnapshotFormatError:
                continue
        return None

    def index_at_time(self, t: float) -> int:
        """The last snapshot taken at or before ``t`` (the first one if ``t`` is earlier)."""
        if not len(self):
            raise IndexError("empty recording")
        if self.sorted:
            return max(0, bisect.bisect_right(self._times, t) - 1)
        best = 0
        for j, tj in enumerate(self._times):
            if tj <= t and (self._times[best] > t or tj >= self._times[best]):
                best = j
        return best

    def resolve(self, at: str | None) -> int:
        """``--at`` value: an index (negative from the end), or a unix time."""
        if at is None:
            return len(self) - 1
        try:
            value = float(at)
        except ValueError:
            raise ValueError(f"--at must be an index or a unix time, got {at!r}") from None
        if value.is_integer() and -len(self) <= value < len(self) and abs(value) < 1e8:
            i = int(value)
            return i + len(self) if i < 0 else i
        if abs(value) >= 1e8:
            return self.index_at_time(value)
        raise ValueError(f"--at {at}: the recording has {len(self)} snapshots (0..{len(self) - 1}); "
                         "or give a unix time")


class ReplayFeed:
    """A SnapshotFeed over a recording, driven by a timeline.

    The position is a recording time; while playing it advances by
    ``speed × elapsed`` of the injected clock. ``latest()`` returns the last
    snapshot at or before the position (never blocks, never raises).
    """

    def __init__(self, index: RecordingIndex, *, clock: Clock | None = None, speed: float = 1.0,
                 playing: bool = True, loop: bool = False) -> None:
        if not len(index):
            raise RecordingError(f"{index.path}: no snapshots to replay ({index.stats.summary()})")
        self.index = index
        self.clock = clock or SystemClock()
        self.speed = speed
        self.loop = loop
        self.interval = 0.25  # how often a UI should poll latest()
        self._playing = playing
        self._pos = index.time_at(0)
        self._anchor = self.clock.monotonic()
        self._i = index.nearest_valid(0, +1) or 0
        self._error: str | None = None

    # SnapshotFeed protocol
    def start(self) -> None:
        self._anchor = self.clock.monotonic()

    def stop(self) -> None:
        pass

    def set_interval(self, seconds: float) -> None:
        self.interval = max(0.05, float(seconds))

    def last_error(self) -> str | None:
        return self._error

    def latest(self) -> Snapshot | None:
        i = self.current_index()
        try:
            return self.index.snapshot(i)
        except SnapshotFormatError:
            j = self.index.nearest_valid(i)
            self._error = f"{self.index.stats.skipped} corrupt line(s) skipped"
            return None if j is None else self.index.snapshot(j)

    # timeline
    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def position(self) -> float:
        """The recording time shown now."""
        if self._playing:
            now = self.clock.monotonic()
            pos = self._pos + (now - self._anchor) * self.speed
            end = self.index.end
            if pos >= end:
                if self.loop and end > self.index.time_at(0):
                    span = end - self.index.time_at(0)
                    pos = self.index.time_at(0) + (pos - self.index.time_at(0)) % span
                else:
                    pos = end
                    self._pos, self._anchor, self._playing = end, now, False  # stop at the end
            return pos
        return self._pos

    @property
    def at_end(self) -> bool:
        return self.current_index() >= len(self.index) - 1

    def current_index(self) -> int:
        pos = self.position
        i = self._i
        # Step-exact index when not moved by time; else from the position.
        if self.index.time_at(i) != pos or not self.index.sorted:
            i = self.index.index_at_time(pos)
        return i

    def _set(self, i: int) -> None:
        i = max(0, min(len(self.index) - 1, i))
        self._i = i
        self._pos = self.index.time_at(i)
        self._anchor = self.clock.monotonic()

    def play(self) -> None:
        if not self._playing:
            if self.at_end:
                self._set(0)
            self._anchor = self.clock.monotonic()
            self._playing = True

    def pause(self) -> None:
        if self._playing:
            self._pos = self.position
            self._i = self.current_index()
            self._playing = False

    def toggle(self) -> bool:
        if self._playing:
            self.pause()
        else:
            self.play()
        return self._playing

    def step(self, n: int = 1) -> int:
        """Pause and move ``n`` snapshots (negative: back); returns the new index."""
        self.pause()
        self._set(self.current_index() + n)
        return self._i

    def seek_index(self, i: int) -> int:
        if i < 0:
            i += len(self.index)
        self._set(i)
        return self._i

    def seek_time(self, t: float) -> int:
        return self.seek_index(self.index.index_at_time(t))

    def seek_by(self, seconds: float) -> int:
        """Move the position by ``seconds`` of recording time (``[``/``]``)."""
        target = self.position + seconds
        i = self.index.index_at_time(target)
        if seconds > 0 and self.index.time_at(i) <= self.position and i < len(self.index) - 1:
            i += 1  # always move at least one snapshot forward
        return self.seek_index(i)

    def home(self) -> int:
        return self.seek_index(0)

    def end(self) -> int:
        self.pause()
        return self.seek_index(len(self.index) - 1)

    def set_speed(self, speed: float) -> float:
        speed = min(SPEEDS[-1], max(SPEEDS[0], float(speed)))
        if self._playing:
            self._pos = self.position
            self._anchor = self.clock.monotonic()
        self.speed = speed
        return speed

    def faster(self) -> float:
        higher = [s for s in SPEEDS if s > self.speed]
        return self.set_speed(higher[0] if higher else SPEEDS[-1])

    def slower(self) -> float:
        lower = [s for s in SPEEDS if s < self.speed]
        return self.set_speed(lower[-1] if lower else SPEEDS[0])

    def describe(self) -> str:
        """``▶ ×2  1234/86400  2023-11-14 22:13:20`` style status text."""
        import time as _time

        i = self.current_index()
        stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(self.index.time_at(i)))
        state = "▶" if self._playing else "⏸"
        speed = f"×{self.speed:g}"
        skipped = f"  ({self.index.stats.skipped} skipped)" if self.index.stats.skipped else ""
        return f"{state} {speed}  {i + 1}/{len(self.index)}  {stamp}{skipped}"
