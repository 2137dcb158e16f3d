"""Recordings: one "keck-top/1" snapshot per line (JSON Lines), optionally compressed.

Compression follows the file name: ``.zst``/``.zstd`` → zstd, ``.gz`` → gzip,
anything else → plain text. The writer flushes after every line (zstd: a block
flush; gzip: a sync flush) so that a crash loses at most the line being
written; the reader decodes whatever whole lines a truncated or partly corrupt
file still holds, and counts the rest (``skipped``) instead of failing.

Reading streams in fixed-size chunks: memory is bounded by the longest line,
never by the file (lines over ``MAX_LINE_BYTES`` are skipped as corrupt).
Appending (``append=True``) adds a new gzip member / zstd frame, which every
gzip and zstd decoder (and this reader) reads as one stream.
"""
from __future__ import annotations

import json
import os
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from keck_tui.common import bounded, safefile
from keck_tui.model import Snapshot, SnapshotFormatError

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 256 << 20  # a 200-row snapshot is ~60 KB; 256 MiB is surely corrupt
ZSTD_SUFFIXES = (".zst", ".zstd")
GZIP_SUFFIXES = (".gz", ".gzip")


class RecordingError(OSError):
    """A recording cannot be opened or written (reported as one line, exit 2)."""


def compression_for(path: str | os.PathLike[str]) -> str | None:
    """``"zstd"``, ``"gzip"`` or ``None`` (plain JSON Lines), from the file name."""
    name = str(path).lower()
    if name.endswith(ZSTD_SUFFIXES):
        return "zstd"
    if name.endswith(GZIP_SUFFIXES):
        return "gzip"
    return None


try:  # orjson formats floats ~10× faster than the json module: recording overhead matters
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; stay usable without it
    _orjson = None

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False,
                           check_circular=False).encode


def encode_line(snapshot: Snapshot) -> bytes:
    """The bytes one snapshot occupies in a recording (compact JSON, UTF-8, newline included)."""
    plain = snapshot.to_json()
    if _orjson is not None:
        return _orjson.dumps(plain, option=_orjson.OPT_APPEND_NEWLINE)
    return _encode(plain).encode("utf-8") + b"\n"


# --------------------------------------------------------------------------- writing


class _PlainSink:
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def write_line(self, data: bytes) -> None:
        self._raw.write(data)
        self._raw.flush()

    def finish(self) -> None:
        self._raw.flush()


class _GzipSink:
    def __init__(self, raw: IO[bytes], level: int) -> None:
        self._raw = raw
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip header + trailer

    def write_line(self, data: bytes) -> None:
        self._raw.write(self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH))
        self._raw.flush()

    def finish(self) -> None:
        self._raw.write(self._z.flush(zlib.Z_FINISH))
        self._raw.flush()


#: A zstd recording starts a new frame after this many uncompressed bytes, always
#: at a line boundary, so that readers can split a long file between processes
#: (``split_points``) without decompressing what they skip.
FRAME_BYTES = 4 << 20


class _ZstdSink:
    def __init__(self, raw: IO[bytes], level: int) -> None:
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._w = zstandard.ZstdCompressor(level=level).stream_writer(raw, closefd=False)
        self._in_frame = 0

    def write_line(self, data: bytes) -> None:
        self._w.write(data)
        self._in_frame += len(data)
        if self._in_frame >= FRAME_BYTES:
            self._w.flush(self._zstd.FLUSH_FRAME)  # the next line starts a new frame
            self._in_frame = 0
        else:
            self._w.flush(self._zstd.FLUSH_BLOCK)  # decodable up to here, context kept
        self._raw.flush()

    def finish(self) -> None:
        self._w.flush(self._zstd.FLUSH_FRAME)
        self._w.close()
        self._raw.flush()


class RecordingWriter:
    """Appends snapshots to a recording, one flushed line each. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False, overwrite: bool = False,
                 fsync: bool = False, level: int | None = None) -> None:
        self.path = Path(path)
        self.compression = compression_for(self.path)
        self.fsync = fsync
        self.lines = 0
        self.bytes_in = 0  # uncompressed bytes written
        self._lock = threading.Lock()
        if append and self.compression and self.path.exists() and self.path.stat().st_size:
            # A crash leaves a compressed stream unfinished; data appended after it
            # would be unreadable. Start a new file instead.
            raise RecordingError(f"cannot append to compressed recording {self.path}: "
                                 "write a new file")
        mode = safefile.APPEND if append else safefile.OVERWRITE if overwrite else safefile.NEW
        try:
            self._raw: IO[bytes] = safefile.open_for_writing(self.path, mode)
            if append and self._raw.tell() > 0:
                with open(self.path, "rb") as f:  # end a line a crash left unfinished
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        self._raw.write(b"\n")
        except OSError as exc:
            raise RecordingError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if self.compression == "zstd":
            self._sink: _PlainSink | _GzipSink | _ZstdSink = _ZstdSink(self._raw, 3 if level is None else level)
        elif self.compression == "gzip":
            self._sink = _GzipSink(self._raw, 6 if level is None else level)
        else:
            self._sink = _PlainSink(self._raw)
        self.closed = False

    def write(self, snapshot: Snapshot) -> int:
        """Write one snapshot; returns the uncompressed size of its line."""
        return self.write_line(encode_line(snapshot))

    def write_line(self, data: bytes) -> int:
        if not data.endswith(b"\n"):
            data += b"\n"
        with self._lock:
            if self.closed:
                raise RecordingError(f"{self.path} is closed")
            try:
                self._sink.write_line(data)
                if self.fsync:
                    os.fsync(self._raw.fileno())
            except (OSError, ValueError) as exc:  # ValueError: the file was closed under us
                raise RecordingError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
            self.lines += 1
            self.bytes_in += len(data)
        return len(data)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._sink.finish()
            finally:
                self._raw.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Recorder:
    """A switchable recorder for a live view (the TUI's ``r`` key).

    Feed it every snapshot with ``__call__`` (or ``feed``); it writes only while
    ``active``. Write errors stop the recording and are kept in ``error`` rather
    than raised into the UI or the feed thread.
    """

    def __init__(self, *, append: bool = False, fsync: bool = False) -> None:
        self._writer: RecordingWriter | None = None
        self._lock = threading.Lock()
        self._append = append
        self._fsync = fsync
        self.error: str | None = None
        self.path: Path | None = None

    @property
    def active(self) -> bool:
        return self._writer is not None

    @property
    def lines(self) -> int:
        w = self._writer
        return w.lines if w is not None else 0

    def start(self, path: str | os.PathLike[str]) -> None:
        """Start recording to ``path`` (stopping any recording in progress)."""
        self.stop()
        writer = RecordingWriter(path, append=self._append, fsync=self._fsync)
        with self._lock:
            self._writer = writer
            self.path = writer.path
            self.error = None

    def stop(self) -> int:
        """Stop and close; returns how many snapshots the recording got."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            return 0
        writer.close()
        return writer.lines

    def toggle(self, path: str | os.PathLike[str]) -> bool:
        """Start if stopped, stop if started; returns the new ``active``."""
        if self.active:
            self.stop()
        else:
            self.start(path)
        return self.active

    def feed(self, snapshot: Snapshot) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            writer.write(snapshot)
        except RecordingError as exc:
            if writer.closed and self._writer is not writer:
                return  # stopped while this snapshot was on its way: not an error
            self.error = str(exc)
            with self._lock:
                if self._writer is writer:
                    self._writer = None
            try:
                writer.close()
            except (OSError, ValueError):
                pass

    __call__ = feed


def default_recording_name(now: float, directory: str | os.PathLike[str] = ".") -> Path:
    """``keck-top-YYYYmmdd-HHMMSS.jsonl.zst`` in ``directory`` (the TUI's ``r`` key)."""
    import time as _time

    stamp = _time.strftime("%Y%m%d-%H%M%S", _time.localtime(now))
    return Path(directory) / f"keck-top-{stamp}.jsonl.zst"


# --------------------------------------------------------------------------- reading


@dataclass
class ReadStats:
    """What a reader saw: whole valid lines, and what it had to skip and why."""

    valid: int = 0
    skipped: int = 0
    truncated_tail: bool = False  # the file ends inside a line (a crash while writing)
    stream_error: str | None = None  # compressed data stopped decoding here
    problems: list[str] = field(default_factory=list)  # the first few reasons, with line numbers
    lines: int = 0  # lines read (whole or not), for numbering lines across split reads
    skips: list[tuple[int, str]] = field(default_factory=list)  # (line number, why) behind ``problems``
    stream_resumed: int = 0  # damaged spots in a zstd stream skipped to the next intact frame

    MAX_PROBLEMS = 10

    def skip(self, lineno: int, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(f"line {lineno}: {why}")
            self.skips.append((lineno, why))

    @classmethod
    def merged(cls, parts: list["ReadStats"]) -> "ReadStats":
        """Statistics of consecutive pieces of one file read separately (line numbers
        of each piece continue from the previous piece's)."""
        out = cls()
        offset = 0
        for p in parts:
            out.valid += p.valid
            out.skipped += p.skipped
            out.stream_error = out.stream_error or p.stream_error
            out.stream_resumed += p.stream_resumed
            for lineno, why in p.skips:
                if len(out.problems) < cls.MAX_PROBLEMS:
                    out.problems.append(f"line {lineno + offset}: {why}")
                    out.skips.append((lineno + offset, why))
            offset += p.lines
        out.lines = offset
        out.truncated_tail = bool(parts) and parts[-1].truncated_tail
        return out

    def summary(self) -> str:
        """One line for the user, e.g. ``86398 snapshots, 2 lines skipped (line 7: not JSON …)``."""
        text = f"{self.valid} snapshot{'s' if self.valid != 1 else ''}"
        if self.skipped:
            text += f", {self.skipped} line{'s' if self.skipped != 1 else ''} skipped"
            if self.problems:
                text += f" ({self.problems[0]}{', …' if self.skipped > 1 else ''})"
        if self.stream_error and self.stream_resumed:
            text += f"; compressed data damaged ({self.stream_error}): read on from the next intact frame"
        elif self.stream_error:
            text += f"; compressed data unreadable after that: {self.stream_error}"
        return text


class _Limited:
    """A file object that ends at byte ``end`` (for reading one piece of a file)."""

    def __init__(self, raw: IO[bytes], end: int | None) -> None:
        self._raw = raw
        self._left = None if end is None else max(0, end - raw.tell())

    def read(self, n: int) -> bytes:
        if self._left is None:
            return self._raw.read(n)
        data = self._raw.read(min(n, self._left))
        self._left -= len(data)
        return data


def _chunks_plain(raw: IO[bytes], stats: ReadStats) -> Iterator[bytes]:
    while chunk := raw.read(CHUNK_BYTES):
        yield chunk


# Compressed input is fed in small slices so that the lines before a corrupt
# spot are still produced (a decoder that fails returns nothing for its input).
FEED_BYTES = 16 << 10


def _slices(raw: IO[bytes]) -> Iterator[bytes]:
    while chunk := raw.read(CHUNK_BYTES):
        for i in range(0, len(chunk), FEED_BYTES):
            yield chunk[i:i + FEED_BYTES]


def _chunks_gzip(raw: IO[bytes], stats: ReadStats) -> Iterator[bytes]:
    d = zlib.decompressobj(31)
    for chunk in _slices(raw):
        while chunk:
            backup = d.copy()
            try:
                out = d.decompress(chunk)
            except zlib.error as exc:
                # Salvage the output before the bad spot: replay the slice in small steps.
                d = backup
                for i in range(0, len(chunk), 64):
                    try:
                        out = d.decompress(chunk[i:i + 64])
                    except zlib.error:
                        break
                    if out:
                        yield out
                stats.stream_error = f"gzip: {exc}"
                return
            if out:
                yield out
            if d.eof:  # next member (appended recording) or trailing garbage
                chunk = d.unused_data
                d = zlib.decompressobj(31)
            else:
                chunk = b""


SALVAGE_BYTES = 16 << 20


def _chunks_zstd(raw: IO[bytes], stats: ReadStats) -> Iterator[bytes]:
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    slices = _slices(raw)
    d = dctx.decompressobj()
    # Compressed bytes of the current frame so far, to salvage from if it turns out damaged;
    # None once over SALVAGE_BYTES (another tool's one-frame file): memory stays bounded.
    frame: bytearray | None = bytearray()
    done = 0  # decompressed bytes of the current frame already yielded
    chunk = b""
    while True:
        if not chunk:
            chunk = next(slices, b"")
            if not chunk:
                return
        try:
            out = d.decompress(chunk)
        except zstandard.ZstdError as exc:
            # A failing call yields nothing, not even the blocks before the bad spot
            # (keck-top flushes a block per line): replay the frame in small steps.
            if frame is not None:
                yield from _salvage_zstd(dctx, bytes(frame) + chunk, done)
            stats.stream_error = stats.stream_error or f"zstd: {exc}"
            # keck-top starts a new frame every FRAME_BYTES of lines: go on from the next one.
            chunk = _next_frame(dctx, bytearray(chunk[1:]), slices)
            if not chunk:
                return
            stats.stream_resumed += 1
            yield b"\n"  # the damaged line ends here; a frame starts with a whole line
            d, done, frame = dctx.decompressobj(), 0, bytearray()
            continue
        if out:
            done += len(out)
            yield out
        if d.eof:  # next frame (appended recording)
            chunk = d.unused_data
            d = dctx.decompressobj()
            frame, done = bytearray(), 0
        else:
            if frame is not None and len(frame) + len(chunk) > SALVAGE_BYTES:
                frame = None
            elif frame is not None:
                frame += chunk
            chunk = b""


def _next_frame(dctx: Any, buf: bytearray, slices: Iterator[bytes]) -> bytes:
    """``buf`` and what follows from ``slices``, from the next frame start that decodes to a line; b"" at the end."""
    while True:
        i = buf.find(ZSTD_MAGIC)
        if i < 0:
            nxt = next(slices, b"")
            if not nxt:
                return b""
            buf = buf[-3:] + nxt
            continue
        del buf[:i]
        while len(buf) < _PROBE_BYTES and (nxt := next(slices, b"")):
            buf += nxt
        if _frame_starts_line(dctx, bytes(buf[:_PROBE_BYTES])):
            return bytes(buf)
        del buf[:1]


def _frame_starts_line(dctx: Any, data: bytes) -> bool:
    """Whether ``data`` (up to ``_PROBE_BYTES``) begins a zstd frame that decodes to a
    snapshot line: a real frame start, not the magic bytes by chance."""
    import zstandard

    try:
        return dctx.decompressobj().decompress(data).startswith(b"{")
    except zstandard.ZstdError:
        return False


def _salvage_zstd(dctx: Any, data: bytes, skip: int, step: int = 4096) -> Iterator[bytes]:
    """What ``data`` (one frame from its start) decodes to before the damage, less its first ``skip`` bytes.

    A failing call returns nothing of what it decoded: find the step that
    fails, then decode everything before it at once and that step byte by byte."""
    import zstandard

    d = dctx.decompressobj()
    bad = None
    for i in range(0, len(data), step):
        try:
            d.decompress(data[i:i + step])
        except zstandard.ZstdError:
            bad = i
            break
        if d.eof:
            break
    pieces = [data] if bad is None else \
        [data[:bad]] + [data[j:j + 1] for j in range(bad, min(len(data), bad + step))]
    d = dctx.decompressobj()
    for piece in pieces:
        try:
            out = d.decompress(piece)
        except zstandard.ZstdError:
            return
        if len(out) > skip:
            yield out[skip:]
        skip = max(0, skip - len(out))
        if d.eof:
            return


def open_recording(path: str | os.PathLike[str]) -> IO[bytes]:
    """A recording opened for reading; RecordingError (one line) unless it is a readable regular
    file (``/dev/zero`` would be read for ever, a FIFO nobody writes would hang)."""
    try:
        return bounded.open_regular(path, "recording")
    except bounded.BoundedInputError:
        raise RecordingError(f"cannot read {path}: not a regular file") from None
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None


def iter_lines(path: str | os.PathLike[str], stats: ReadStats | None = None,
               start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, bytes without newline)`` for each whole line.

    Blank lines are ignored. A final line without its newline is yielded too
    (parsers decide: a truncated snapshot fails to parse and is skipped).
    Over-long lines are skipped and counted in ``stats``. ``start``/``end``
    read one piece of the file: byte offsets from ``split_points`` (line
    numbers then count from the piece's start).
    """
    stats = stats if stats is not None else ReadStats()
    kind = compression_for(path)
    raw = open_recording(path)
    chunks = {"zstd": _chunks_zstd, "gzip": _chunks_gzip}.get(kind or "", _chunks_plain)
    if start:
        raw.seek(start)
    source = _Limited(raw, end) if end is not None else raw
    with raw:
        parts: list[bytes] = []
        size = 0
        lineno = 0
        oversize = False
        for chunk in chunks(source, stats):  # type: ignore[arg-type]
            pos = 0
            while True:
                nl = chunk.find(b"\n", pos)
                if nl < 0:
                    tail = chunk[pos:]
                    if tail and not oversize:
                        size += len(tail)
                        if size > MAX_LINE_BYTES:
                            oversize, parts = True, []
                        else:
                            parts.append(tail)
                    break
                piece = chunk[pos:nl]
                pos = nl + 1
                lineno += 1
                stats.lines = lineno
                if oversize or size + len(piece) > MAX_LINE_BYTES:
                    stats.skip(lineno, f"line longer than {MAX_LINE_BYTES} bytes")
                elif parts:
                    parts.append(piece)
                    line = b"".join(parts)
                    if line.strip():
                        yield lineno, line
                elif piece.strip():
                    yield lineno, piece
                parts, size, oversize = [], 0, False
        if oversize:
            stats.lines = lineno + 1
            stats.skip(lineno + 1, f"line longer than {MAX_LINE_BYTES} bytes")
        elif parts:
            line = b"".join(parts)
            if line.strip():
                stats.lines = lineno + 1
                stats.truncated_tail = True
                yield lineno + 1, line


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PROBE_BYTES = 64 << 10


def split_points(path: str | os.PathLike[str], parts: int) -> list[int] | None:
    """Byte offsets cutting a recording into about ``parts`` pieces at line starts.

    Plain files are cut after a newline. zstd files are cut where a frame
    begins (keck-top starts a new frame every ``FRAME_BYTES`` of lines): a
    candidate is accepted only if it decodes to text starting with ``{``. gzip
    streams cannot be cut: None. The list starts with 0 and ends with the size.
    """
    kind = compression_for(path)
    if kind == "gzip":
        return None
    cuts = [0]
    with open_recording(path) as f:
        size = os.fstat(f.fileno()).st_size
        for k in range(1, parts):
            at = max(cuts[-1] + 1, size * k // parts)
            cut = _next_zstd_frame(f, at, size) if kind == "zstd" else _next_line(f, at, size)
            if cut is None or cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
    cuts.append(size)
    return cuts


def _next_line(f: IO[bytes], at: int, size: int) -> int | None:
    f.seek(at - 1)
    pos = at - 1
    while pos < size:
        block = f.read(CHUNK_BYTES)
        if not block:
            return None
        nl = block.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(block)
    return None


def _next_zstd_frame(f: IO[bytes], at: int, size: int) -> int | None:
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    pos = at
    while pos < size:
        f.seek(pos)
        block = f.read(CHUNK_BYTES + 3)
        if len(block) < 4:
            return None
        i = block.find(ZSTD_MAGIC)
        if i < 0:
            pos += max(1, len(block) - 3)
            continue
        cand = pos + i
        f.seek(cand)
        if _frame_starts_line(dctx, f.read(_PROBE_BYTES)):
            return cand
        pos = cand + 1
    return None


def parse_line(line: bytes) -> Snapshot:
    """A line's snapshot; raises SnapshotFormatError when it is not one."""
    return Snapshot.loads(line)


class RecordingReader:
    """Iterates the valid snapshots of a recording, counting what it skips.

    ``for snap in RecordingReader(path)`` streams; ``reader.stats`` is complete
    once iteration ends. ``on_skip(lineno, why)`` is called for each skipped line.
    """

    def __init__(self, path: str | os.PathLike[str],
                 on_skip: Callable[[int, str], None] | None = None) -> None:
        self.path = Path(path)
        self.stats = ReadStats()
        self._on_skip = on_skip
        if not self.path.exists():
            raise RecordingError(f"{self.path}: no such file")

    def __iter__(self) -> Iterator[Snapshot]:
        for lineno, line in iter_lines(self.path, self.stats):
            try:
                snap = parse_line(line)
            except SnapshotFormatError as exc:
                why = (str(exc).splitlines() or ["unreadable"])[0][:200]
                if self.stats.truncated_tail:  # only the last line can set it
                    why = f"truncated: the file ends inside this line ({why})"
                self.stats.skip(lineno, why)
                if self._on_skip is not None:
                    self._on_skip(lineno, why)
                continue
            self.stats.valid += 1
            yield snap


def read_recording(path: str | os.PathLike[str]) -> tuple[list[Snapshot], ReadStats]:
    """All valid snapshots of a (small) recording, and the read statistics."""
    reader = RecordingReader(path)
    snaps = list(reader)
    return snaps, reader.stats


# A cheap check that a line is a whole keck-top/1 snapshot and where it sits in
# time, without parsing the whole document (used to index long recordings).
_HEADER = re.compile(
    rb'"schema": ?"keck-top/1", ?"time": ?(-?[0-9][0-9.eE+-]*), ?"interval_s": ?(-?[0-9][0-9.eE+-]*)')


def peek_header(line: bytes) -> tuple[float, float] | None:
    """``(time, interval_s)`` of a line that looks like a whole snapshot, else None."""
    stripped = line.strip()
    if not (stripped.startswith(b"{") and stripped.endswith(b"}")):
        return None
    m = _HEADER.search(stripped, 0, 4096) or _HEADER.search(stripped)
    if m is None:
        return None
    try:
        return float(m.group(1)), float(m.group(2))
    except ValueError:
        return None


def record_toggle(recorder: Recorder, directory: str | os.PathLike[str] = ".",
                  now: Callable[[], float] | None = None) -> Callable[[bool], bool]:
    """The TUI's ``r`` key: ``toggle(want)`` starts a new timestamped file or stops.

    Pass the recorder as the feed's ``on_snapshot`` so it sees every snapshot::

        recorder = Recorder()
        feed = build_local_feed(settings, sources, on_snapshot=recorder)
        run_tui(feed, settings=settings, on_record_toggle=record_toggle(recorder))
    """
    import time as _time

    clock = now or _time.time

    def toggle(want: bool) -> bool:
        if want and not recorder.active:
            recorder.start(default_recording_name(clock(), directory))
        elif not want and recorder.active:
            recorder.stop()
        return recorder.active

    return toggle
