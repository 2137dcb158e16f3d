"""Replaying a recording: a seekable index over its lines and a feed with a timeline.

``RecordingIndex`` reads the file once and keeps each whole line's time and
where its bytes are: an offset in a plain file; for keck-top's zstd files the
frame (keck-top starts one every 4 MiB) and the offset in it, the frame being
decompressed again when shown (three are cached); for gzip and other zstd
files, an offset in a temporary decompressed copy. Memory stays bounded
however long the recording; a snapshot is parsed only when it is shown. ``ReplayFeed`` is a ``SnapshotFeed`` whose ``latest()`` is the
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
from keck_tui.common.timeparse import TimeParseError, check_unix_time, parse_time
from keck_tui.model import Snapshot, SnapshotFormatError
from keck_tui.recording import (CHUNK_BYTES, MAX_LINE_BYTES, ReadStats, RecordingError, compression_for,
                                iter_lines, open_recording, parse_line, peek_header)

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: A zstd frame bigger than this is not held in memory: the file is spooled instead.
FRAME_LIMIT = 64 << 20


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
        self._cache: OrderedDict[int, Snapshot] = OrderedDict()
        self._cache_size = cache_size
        self._frames: OrderedDict[int, bytes] = OrderedDict()  # decompressed zstd frames in use
        self._spool: IO[bytes] | None = None
        self._file: IO[bytes] | None = None
        self._bad: set[int] = set()
        kind = compression_for(self.path)
        try:
            if not (kind == "zstd" and self._index_zstd_frames()):
                if kind is None:
                    self._index_plain()
                else:
                    self._index_spooled()
        except RecordingError:
            self.close()
            raise
        except OSError as exc:  # a directory, no permission, an I/O error: one line, not a traceback
            self.close()
            raise RecordingError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self.stats.valid = len(self._times)
        self.sorted = all(a <= b for a, b in zip(self._times, self._times[1:]))

    def _reset(self) -> None:
        self.stats = ReadStats()
        self._times = array("d")
        self._intervals = array("d")
        self._segs = array("q")  # zstd: compressed offset of the line's frame; -1: spool or file
        self._seglens = array("q")  # zstd: compressed length of that frame
        self._offsets = array("q")  # where the line starts (in the frame, the spool or the file)
        self._lengths = array("q")
        self._lines = array("q")  # line numbers, for messages

    def _add(self, lineno: int, line: bytes, seg: int, seglen: int, offset: int) -> None:
        head = peek_header(line)
        if head is None:
            why = "truncated: the file ends inside this line" if self.stats.truncated_tail \
                else "not a whole keck-top/1 snapshot"
            self.stats.skip(lineno, why)
            return
        self._times.append(head[0])
        self._intervals.append(head[1])
        self._segs.append(seg)
        self._seglens.append(seglen)
        self._offsets.append(offset)
        self._lengths.append(len(line))
        self._lines.append(lineno)

    def _index_spooled(self) -> None:
        """gzip (and odd zstd): decompress once into a temporary file, index that."""
        self._reset()
        self._spool = tempfile.TemporaryFile(prefix="keck-replay-")
        pos = 0
        for lineno, line in iter_lines(self.path, self.stats):
            n = len(self._times)
            self._add(lineno, line, -1, 0, pos)
            if len(self._times) > n:
                self._spool.write(line)
                pos += len(line)
        self._spool.flush()

    def _index_plain(self) -> None:
        """Plain JSON Lines: index byte offsets in the file itself (nothing copied).

        A line longer than MAX_LINE_BYTES is skipped and counted (as the reader does) without
        being held: a 300 MB file without a newline costs one pass, not 300 MB of memory.
        """
        self._reset()
        self._file = open_recording(self.path)
        buf = bytearray()
        base = 0  # file offset of buf[0]
        lineno = 0
        oversize = False  # inside a line already too long: its bytes are dropped
        while chunk := self._file.read(CHUNK_BYTES):
            searched = len(buf)
            buf += chunk
            start = 0
            while (nl := buf.find(b"\n", max(start, searched))) >= 0:
                lineno += 1
                if oversize:
                    self.stats.skip(lineno, f"line longer than {MAX_LINE_BYTES} bytes")
                    oversize = False
                else:
                    line = bytes(buf[start:nl])
                    if line.strip():
                        self._add(lineno, line, -1, 0, base + start)
                start = nl + 1
            if start:
                del buf[:start]
                base += start
            if len(buf) > MAX_LINE_BYTES:
                base += len(buf)
                buf.clear()
                oversize = True
        self.stats.lines = lineno
        if oversize:
            self.stats.lines = lineno + 1
            self.stats.skip(lineno + 1, f"line longer than {MAX_LINE_BYTES} bytes")
        elif bytes(buf).strip():
            self.stats.truncated_tail = True
            self._add(lineno + 1, bytes(buf), -1, 0, base)

    def _index_zstd_frames(self) -> bool:
        """keck-top's zstd recordings: remember each line's frame, decompress frames on demand.

        Returns False (nothing kept) for a file whose frames do not end at line
        ends or are too big to hold (another tool's single-frame file).
        """
        import zstandard

        self._reset()
        dctx = zstandard.ZstdDecompressor()
        lineno = 0
        with open_recording(self.path) as f:
            d = dctx.decompressobj()
            frame_at = consumed = 0
            out: list[bytes] = []
            size = 0

            def finish(frame_len: int, last: bool) -> bool:
                nonlocal lineno
                data = b"".join(out)
                if not data:
                    return True
                if not last and not data.endswith(b"\n"):
                    return False
                start = 0
                while start < len(data):
                    nl = data.find(b"\n", start)
                    end = len(data) if nl < 0 else nl
                    lineno += 1
                    if nl < 0:
                        self.stats.truncated_tail = True
                    line = data[start:end]
                    if line.strip():
                        self._add(lineno, line, frame_at, frame_len, start)
                    start = end + 1
                return True

            while chunk := f.read(CHUNK_BYTES):
                feed = chunk
                while feed:
                    try:
                        piece = d.decompress(feed)
                    except zstandard.ZstdError:
                        return False  # damaged: the spooling reader salvages what it can
                    out.append(piece)
                    size += len(piece)
                    if size > FRAME_LIMIT:
                        return False
                    if d.eof:
                        used = len(feed) - len(d.unused_data)
                        consumed += used
                        if not finish(consumed - frame_at, False):
                            return False
                        frame_at, out, size = consumed, [], 0
                        feed = d.unused_data
                        d = dctx.decompressobj()
                    else:
                        consumed += len(feed)
                        feed = b""
            if not finish(consumed - frame_at, True):
                return False
        self.stats.lines = lineno
        self._file = open_recording(self.path)
        return True

    def _line_bytes(self, i: int) -> bytes:
        seg, offset, length = self._segs[i], self._offsets[i], self._lengths[i]
        if seg < 0:
            src = self._spool if self._spool is not None else self._file
            assert src is not None
            src.seek(offset)
            return src.read(length)
        frame = self._frames.get(seg)
        if frame is None:
            import zstandard

            assert self._file is not None
            self._file.seek(seg)
            raw = self._file.read(self._seglens[i])
            try:
                frame = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
            except zstandard.ZstdError as exc:
                raise SnapshotFormatError(f"zstd: {exc}") from None
            self._frames[seg] = frame
            if len(self._frames) > 3:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(seg)
        return frame[offset:offset + length]

    def close(self) -> None:
        for f in (self._spool, self._file):
            if f is not None:
                f.close()

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
        try:
            snap = parse_line(self._line_bytes(i))
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
        """``--at`` value: an index (negative from the end), a unix time or an ISO 8601 time."""
        if at is None:
            return len(self) - 1
        try:
            value = float(at)
        except ValueError:
            try:  # ISO 8601, the same rule as report --since (naive: local time)
                return self.index_at_time(parse_time(at))
            except TimeParseError:
                raise ValueError(f"--at must be an index or a unix time (or an ISO 8601 time), got {at!r}") from None
        try:
            check_unix_time(value, at)
        except TimeParseError as exc:  # nan and inf are neither an index nor a time
            raise ValueError(f"--at: {exc}") from None
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
