"""Recording writer/reader: round trips, compression, crashes and corruption."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zstandard

from keck_tui.feed import ThreadedFeed
from keck_tui.recording import (MAX_LINE_BYTES, Recorder, RecordingError, RecordingReader,
                                RecordingWriter, compression_for, encode_line, iter_lines,
                                peek_header, read_recording)
from record_helpers import T0, fleet_snapshot, snapshot

SUFFIXES = ["rec.jsonl", "rec.jsonl.gz", "rec.jsonl.zst"]


@pytest.mark.parametrize("name", SUFFIXES)
def test_round_trip_equal(tmp_path: Path, name: str) -> None:
    snaps = [snapshot(i) for i in range(20)]
    path = tmp_path / name
    with RecordingWriter(path) as w:
        for s in snaps:
            w.write(s)
    assert w.lines == 20
    got, stats = read_recording(path)
    assert got == snaps
    assert (stats.valid, stats.skipped, stats.truncated_tail) == (20, 0, False)


def test_compression_by_suffix(tmp_path: Path) -> None:
    assert compression_for("a.jsonl.zst") == "zstd"
    assert compression_for("A.ZSTD") == "zstd"
    assert compression_for("a.jsonl.gz") == "gzip"
    assert compression_for("a.jsonl") is None
    snaps = [snapshot(i) for i in range(3)]
    for name in SUFFIXES:
        with RecordingWriter(tmp_path / name) as w:
            for s in snaps:
                w.write(s)
    raw = (tmp_path / "rec.jsonl").read_bytes()
    # The compressed files hold exactly the plain file's bytes, readable by standard tools.
    assert gzip.decompress((tmp_path / "rec.jsonl.gz").read_bytes()) == raw
    zdata = (tmp_path / "rec.jsonl.zst").read_bytes()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zdata) == raw
    assert raw.count(b"\n") == 3 and b'"schema":"keck-top/1","time":' in raw.split(b"\n")[0]


def test_fleet_tree_kept(tmp_path: Path) -> None:
    snaps = [fleet_snapshot(i) for i in range(3)]
    with RecordingWriter(tmp_path / "f.jsonl.zst") as w:
        for s in snaps:
            w.write(s)
    got, _ = read_recording(tmp_path / "f.jsonl.zst")
    assert got == snaps
    assert [r.level for r in got[0].root.children[0].children] == ["node", "node"]


@pytest.mark.parametrize("name", SUFFIXES)
def test_every_line_is_flushed(tmp_path: Path, name: str) -> None:
    """Without close(), what is on disk already decodes to every written line."""
    path = tmp_path / name
    w = RecordingWriter(path)
    for i in range(5):
        w.write(snapshot(i))
        got, stats = read_recording(path)  # reads the file while the writer is open
        assert len(got) == i + 1 and stats.skipped == 0
    w.close()


@pytest.mark.parametrize("name", SUFFIXES)
def test_crash_loses_at_most_the_last_line(tmp_path: Path, name: str) -> None:
    """A writer process killed without closing: every written line survives."""
    path = tmp_path / name
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from record_helpers import snapshot
        from keck_tui.recording import RecordingWriter
        w = RecordingWriter({str(path)!r})
        for i in range(7):
            w.write(snapshot(i))
        os._exit(0)  # no close, no flush of Python buffers: like a kill -9
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    got, stats = read_recording(path)
    assert [s.time for s in got] == [T0 + i + 1 for i in range(7)]
    assert stats.skipped == 0


@pytest.mark.parametrize("name", SUFFIXES)
def test_truncated_file_keeps_whole_lines(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    w = RecordingWriter(path)
    for i in range(5):
        w.write(snapshot(i))
    size5 = path.stat().st_size
    w.write(snapshot(5))
    size6 = path.stat().st_size
    w.close()
    path.write_bytes(path.read_bytes()[: (size5 + size6) // 2])  # cut inside the 6th line
    got, stats = read_recording(path)
    assert [s.time for s in got] == [T0 + i + 1 for i in range(5)]
    if name.endswith(".jsonl"):
        assert stats.truncated_tail and stats.skipped == 1
        assert "truncated" in stats.problems[0] and stats.problems[0].startswith("line 6")
    else:  # a partial compressed block yields either nothing or a partial line
        assert stats.skipped == (1 if stats.truncated_tail else 0)


def test_corrupt_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    good = [encode_line(snapshot(i)) for i in range(4)]
    path = tmp_path / "c.jsonl"
    path.write_bytes(good[0] + b"garbage{\n" + good[1] + b'{"schema":"keck-top/9","time":1}\n'
                     + b"\n" + good[2][:100] + b"\n" + good[3])
    seen: list[int] = []
    reader = RecordingReader(path, on_skip=lambda n, why: seen.append(n))
    got = list(reader)
    assert [s.time for s in got] == [T0 + 1, T0 + 2, T0 + 4]
    assert reader.stats.valid == 3 and reader.stats.skipped == 3
    assert seen == [2, 4, 6]  # the blank line 5 is not counted
    assert "unsupported schema" in reader.stats.problems[1]
    assert reader.stats.summary().startswith("3 snapshots, 3 lines skipped (line 2: not JSON")


def test_corrupt_compressed_stream_stops_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with RecordingWriter(path) as w:
        for i in range(50):
            w.write(snapshot(i))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    got, stats = read_recording(path)  # never raises
    assert 0 < len(got) < 50
    assert all(s == snapshot(i) for i, s in enumerate(got[:5]))
    assert stats.stream_error and stats.stream_error.startswith("gzip")
    assert "unreadable after that" in stats.summary()


def test_long_line_is_skipped_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keck_tui.recording as rec

    monkeypatch.setattr(rec, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(rec, "CHUNK_BYTES", 64)
    path = tmp_path / "l.jsonl"
    small = b'{"a":1}\n'
    path.write_bytes(small + b"x" * 5000 + b"\n" + small + b"y" * 3000)
    stats = rec.ReadStats()
    lines = list(rec.iter_lines(path, stats))
    assert [n for n, _ in lines] == [1, 3]
    assert stats.skipped == 2 and "longer than 1000" in stats.problems[0]
    assert MAX_LINE_BYTES >= 1 << 20


def test_lines_split_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keck_tui.recording as rec

    monkeypatch.setattr(rec, "CHUNK_BYTES", 7)
    snaps = [snapshot(i) for i in range(3)]
    for name in SUFFIXES:
        with RecordingWriter(tmp_path / name) as w:
            for s in snaps:
                w.write(s)
        assert read_recording(tmp_path / name)[0] == snaps


def test_append_plain_repairs_unfinished_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(encode_line(snapshot(0)) + encode_line(snapshot(1))[:50])  # crashed mid-line
    with RecordingWriter(path, append=True) as w:
        w.write(snapshot(2))
    got, stats = read_recording(path)
    assert [s.time for s in got] == [T0 + 1, T0 + 3] and stats.skipped == 1


def test_append_compressed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.zst"
    with RecordingWriter(path) as w:
        w.write(snapshot(0))
    with pytest.raises(RecordingError, match="cannot append to compressed"):
        RecordingWriter(path, append=True)


def test_unwritable_and_missing(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot write"):
        RecordingWriter(tmp_path / "no" / "such" / "dir.jsonl")
    with pytest.raises(RecordingError, match="no such file"):
        RecordingReader(tmp_path / "missing.jsonl")
    with pytest.raises(RecordingError, match="cannot read"):
        list(iter_lines(tmp_path / "missing.jsonl"))


def test_recorder_toggle_and_feed(tmp_path: Path) -> None:
    rec = Recorder()
    rec(snapshot(0))  # inactive: ignored
    assert not rec.active
    assert rec.toggle(tmp_path / "r.jsonl") is True
    for i in range(1, 4):
        rec.feed(snapshot(i))
    assert rec.lines == 3
    assert rec.toggle(tmp_path / "ignored.jsonl") is False
    rec(snapshot(9))
    assert not (tmp_path / "ignored.jsonl").exists()
    got, _ = read_recording(tmp_path / "r.jsonl")
    assert [s.time for s in got] == [T0 + 2, T0 + 3, T0 + 4]


def test_recorder_write_error_stops_without_raising(tmp_path: Path) -> None:
    rec = Recorder()
    rec.start(tmp_path / "r.jsonl")
    rec._writer._raw.close()  # the disk went away
    rec.feed(snapshot(0))
    assert not rec.active and rec.error and "cannot write" in rec.error


def test_recorder_on_threaded_feed(tmp_path: Path) -> None:
    """The recorder as a feed's on_snapshot hook records what the feed produced."""
    rec = Recorder()
    rec.start(tmp_path / "t.jsonl.zst")
    counter = iter(range(1000))
    feed = ThreadedFeed(lambda: snapshot(next(counter)), interval=0.05, on_snapshot=rec)
    feed.start()
    import time

    deadline = time.monotonic() + 5
    while rec.lines < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    feed.stop()
    n = rec.stop()
    got, stats = read_recording(tmp_path / "t.jsonl.zst")
    assert n >= 5 and len(got) == n and stats.skipped == 0
    assert [s.time for s in got] == [T0 + i + 1 for i in range(n)]


def test_peek_header() -> None:
    line = encode_line(snapshot(3)).strip()
    assert peek_header(line) == (T0 + 4, 1.0)
    assert peek_header(line[:-2]) is None
    assert peek_header(b'{"a": 1}') is None
    spaced = snapshot(3).dumps().encode()  # keck-top --once --json style (", " and ": ")
    assert peek_header(spaced) == (T0 + 4, 1.0)


def test_plain_lines_are_canonical_json(tmp_path: Path) -> None:
    line = encode_line(snapshot(0))
    assert json.loads(line) == snapshot(0).to_json()
    assert b"NaN" not in line and line.endswith(b"}\n") and os.linesep.encode() in b"\n\r\n"


def test_encoded_lines_decode_to_the_snapshot_exactly() -> None:
    from dataclasses import replace
    from types import MappingProxyType

    from keck_tui.demo import demo_snapshots
    from keck_tui.model import Row, Snapshot

    odd = Row(level="process", id="pid-1", name="naïve \"quoted\" ✓", watts=1, watts_lo=0, watts_hi=2,
              components=MappingProxyType({"cpu": 1.0}), sources=("rapl", "nvml"), labels={"app": "x"},
              stale=True, age_s=3.5, error="e", has_children=False, note="n", freq_nominal=True,
              gpu_watts=0.5, container_id="c", pod_uid="u", namespace="ns", cpu=3, cmd="c m d", pid=1,
              extra={"future_field": [1, 2]})
    snaps = [snapshot(0), fleet_snapshot(1), *demo_snapshots(5, 2)]
    snaps.append(replace(snapshot(2), root=replace(snapshot(2).root, children=(odd,)), warnings=("w",),
                         idle_policy=None, extra={"a": 1}))
    for s in snaps:
        line = encode_line(s)
        assert line.endswith(b"}\n") and line.count(b"\n") == 1 and b", " not in line[:40]
        assert json.loads(line) == s.to_json()
        assert Snapshot.loads(line) == Snapshot.from_json(s.to_json())


def test_recorder_stopped_mid_write_is_not_an_error(tmp_path: Path) -> None:
    rec = Recorder()
    rec.start(tmp_path / "r.jsonl")
    writer = rec._writer
    original = writer.write

    def racing_write(snap):  # the UI thread stops the recording just as the feed thread writes
        rec.stop()
        return original(snap)

    writer.write = racing_write
    rec.feed(snapshot(0))
    assert not rec.active and rec.error is None


def test_damaged_zstd_keeps_the_lines_before_and_reads_on_from_the_next_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: one damaged spot in a zstd recording used to lose every line of its 16 KiB feed slice
    before it and everything after it; now only the damaged frame's lines are lost."""
    import zstandard

    import keck_tui.recording as rec

    monkeypatch.setattr(rec, "FRAME_BYTES", 1)  # one line per frame
    path = tmp_path / "d.jsonl.zst"
    with RecordingWriter(path) as w:
        for i in range(12):
            w.write(snapshot(i))
    data = bytearray(path.read_bytes())
    starts = []
    pos = 0
    while pos < len(data):  # walk the frames
        d = zstandard.ZstdDecompressor().decompressobj()
        d.decompress(bytes(data[pos:]))
        starts.append(pos)
        pos = len(data) - len(d.unused_data)
    a, b = starts[6], starts[7]  # line 7 (index 6)
    data[a + 20:b - 4] = b"\xff" * (b - 4 - a - 20)  # garbage that the decoder rejects
    path.write_bytes(bytes(data))
    got, stats = read_recording(path)
    assert [s.time for s in got] == [T0 + i + 1 for i in range(12) if i != 6]
    assert stats.stream_error and stats.stream_error.startswith("zstd") and stats.stream_resumed == 1
    assert "read on from the next intact frame" in stats.summary()


def test_damaged_zstd_single_frame_yields_the_lines_before_the_damage(tmp_path: Path) -> None:
    """QA: the blocks decoded before the bad spot of one frame are kept (one flushed block per line)."""
    path = tmp_path / "s.jsonl.zst"
    sizes = []
    with RecordingWriter(path) as w:
        for i in range(6):
            w.write(snapshot(i))
            sizes.append(path.stat().st_size)
    data = bytearray(path.read_bytes())
    data[sizes[3] + 10:sizes[4] - 2] = b"\xff" * (sizes[4] - 2 - sizes[3] - 10)  # inside line 5
    path.write_bytes(bytes(data))
    got, stats = read_recording(path)
    assert [s.time for s in got] == [T0 + i + 1 for i in range(4)]
    assert stats.stream_error and "unreadable after that" in stats.summary()
