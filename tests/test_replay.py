"""Replay: the seekable index, the timeline feed, `replay --once --json`, and the TUI timeline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from keck_tui.cli import main
from keck_tui.clock import FakeClock
from keck_tui.model import Snapshot
from keck_tui.recording import RecordingError, RecordingWriter, encode_line
from keck_tui.replay import RecordingIndex, ReplayFeed
from record_helpers import T0, snapshot

N = 10


@pytest.fixture(params=["r.jsonl", "r.jsonl.zst", "r.jsonl.gz"])
def rec(tmp_path: Path, request) -> Path:
    path = tmp_path / request.param
    with RecordingWriter(path) as w:
        for i in range(N):
            w.write(snapshot(i))
    return path


def test_round_trip_through_the_index(rec: Path) -> None:
    idx = RecordingIndex(rec)
    assert len(idx) == N and idx.stats.skipped == 0 and idx.sorted
    assert [idx.snapshot(i) for i in range(N)] == [snapshot(i) for i in range(N)]
    assert idx.snapshot(-1) == snapshot(N - 1)
    assert (idx.start, idx.end) == (T0, T0 + N)
    assert idx.index_at_time(T0 + 3.5) == 2  # taken at T0+3
    assert idx.index_at_time(T0 - 100) == 0 and idx.index_at_time(T0 + 1e6) == N - 1
    assert [idx.resolve(a) for a in (None, "0", "-1", "4", str(T0 + 5))] == [N - 1, 0, N - 1, 4, 4]
    with pytest.raises(ValueError, match="has 10 snapshots"):
        idx.resolve("10")
    with pytest.raises(ValueError, match="index or a unix time"):
        idx.resolve("yesterday")
    idx.close()


def test_index_skips_and_counts_bad_lines(tmp_path: Path) -> None:
    lines = [encode_line(snapshot(i)) for i in range(5)]
    bad_middle = lines[2].replace(b'"watts":', b'"watts":"x', 1)  # looks whole, fails to parse
    path = tmp_path / "bad.jsonl"
    path.write_bytes(lines[0] + b"junk\n" + lines[1] + bad_middle + lines[3] + lines[4][:-50])
    idx = RecordingIndex(path)
    assert len(idx) == 4  # junk and the truncated tail are not indexed
    assert idx.stats.skipped == 2 and idx.stats.truncated_tail
    with pytest.raises(Exception):
        idx.snapshot(2)
    assert idx.stats.skipped == 3 and idx.stats.valid == 3
    assert idx.nearest_valid(2) == 1 and idx.nearest_valid(2, +1) == 3
    feed = ReplayFeed(idx, clock=FakeClock(), playing=False)
    feed.seek_index(2)
    assert feed.latest() == snapshot(1)  # the corrupt one is skipped, never shown
    assert "corrupt" in (feed.last_error() or "")


def test_empty_or_missing(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such file"):
        RecordingIndex(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(RecordingError, match="no snapshots"):
        ReplayFeed(RecordingIndex(tmp_path / "e.jsonl"))


def test_feed_plays_at_speed_with_a_fake_clock(rec: Path) -> None:
    clock = FakeClock(now=0.0)
    feed = ReplayFeed(RecordingIndex(rec), clock=clock)
    assert feed.latest() == snapshot(0) and feed.playing
    clock.advance(2.0)
    assert feed.current_index() == 2
    assert feed.set_speed(4.0) == 4.0
    clock.advance(1.0)  # 4 recording seconds
    assert feed.current_index() == 6
    clock.advance(100.0)  # past the end: stop on the last snapshot
    assert feed.current_index() == N - 1 and not feed.playing and feed.at_end
    feed.play()  # at the end, play starts over
    assert feed.current_index() == 0 and feed.playing


def test_pause_step_seek_speed(rec: Path) -> None:
    clock = FakeClock(now=0.0)
    feed = ReplayFeed(RecordingIndex(rec), clock=clock)
    clock.advance(3.0)
    feed.pause()
    clock.advance(50.0)
    assert feed.current_index() == 3 and not feed.playing
    assert feed.step() == 4 and feed.step(-2) == 2 and feed.step(-10) == 0
    assert feed.seek_by(5.0) == 5
    assert feed.seek_by(0.2) == 6  # always at least one snapshot forward
    assert feed.seek_by(-60.0) == 0
    assert feed.end() == N - 1 and feed.home() == 0
    assert feed.seek_time(T0 + 7.2) == 6
    assert [feed.faster() for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0]
    assert [feed.slower() for _ in range(7)] == [8.0, 4.0, 2.0, 1.0, 0.5, 0.5, 0.5]
    assert feed.set_speed(100) == 16.0 and feed.set_speed(0.01) == 0.5
    assert feed.toggle() is True
    assert feed.describe().startswith("▶ ×0.5  7/10")


def test_loop(rec: Path) -> None:
    clock = FakeClock(now=0.0)
    feed = ReplayFeed(RecordingIndex(rec), clock=clock, loop=True)
    clock.advance(N - 1 + 2.0)  # 9 s to the end, then 2 more from the start
    assert feed.playing and feed.current_index() == 2


def test_cli_once_json(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(rec), "--once", "--json"]) == 0
    assert Snapshot.loads(capsys.readouterr().out) == snapshot(N - 1)
    assert main(["replay", str(rec), "--once", "--json", "--at", "3"]) == 0
    assert Snapshot.loads(capsys.readouterr().out) == snapshot(3)
    assert main(["replay", str(rec), "--once", "--json", "--at", str(T0 + 5.5)]) == 0
    assert json.loads(capsys.readouterr().out)["time"] == T0 + 5
    assert main(["replay", str(rec), "--once", "--at", "0"]) == 0
    assert "n1" in capsys.readouterr().out  # the plain table


def test_cli_reports_skipped_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(encode_line(snapshot(0)) + b"{oops\n" + encode_line(snapshot(1))[:77])
    assert main(["replay", str(path), "--once", "--json"]) == 0
    out, err = capsys.readouterr()
    assert Snapshot.loads(out) == snapshot(0)
    assert "1 snapshot, 2 lines skipped" in err


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], rec: Path) -> None:
    assert main(["replay", str(tmp_path / "none.jsonl"), "--once", "--json"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["replay", str(rec), "--json"]) == 2
    assert "--json needs --once" in capsys.readouterr().err
    assert main(["replay", str(rec), "--once", "--at", "99"]) == 2
    assert main(["replay", str(rec), "--speed", "32"]) == 2
    (tmp_path / "junk.jsonl").write_text("x\n")
    assert main(["replay", str(tmp_path / "junk.jsonl"), "--once", "--json"]) == 2
    assert "no snapshots to replay" in capsys.readouterr().err


def test_index_modes_give_the_same_snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zstd frames decompressed on demand, plain offsets, gzip spooled, odd zstd spooled."""
    import zstandard

    import keck_tui.recording as rec
    import keck_tui.replay as rp

    monkeypatch.setattr(rec, "FRAME_BYTES", 5000)  # a frame every two lines or so
    snaps = [snapshot(i) for i in range(30)]
    for name in ("f.jsonl.zst", "f.jsonl", "f.jsonl.gz"):
        with RecordingWriter(tmp_path / name) as w:
            for s in snaps:
                w.write(s)
    zdata = (tmp_path / "f.jsonl.zst").read_bytes()
    assert zdata.count(zstandard.FRAME_HEADER) >= 10
    one_frame = tmp_path / "one.jsonl.zst"  # another tool's single frame
    one_frame.write_bytes(zstandard.ZstdCompressor().compress((tmp_path / "f.jsonl").read_bytes()))
    monkeypatch.setattr(rp, "FRAME_LIMIT", 20_000)  # ... too big to hold: spooled
    for name, spooled in (("f.jsonl.zst", False), ("f.jsonl", False), ("f.jsonl.gz", True),
                          ("one.jsonl.zst", True)):
        idx = RecordingIndex(tmp_path / name)
        assert (idx._spool is not None) == spooled, name
        order = [29, 0, 15, 3, 28, 1] + list(range(30))  # random access across frames (cache evictions)
        assert [idx.snapshot(i) for i in order] == [snaps[i] for i in order], name
        idx.close()


def test_truncated_zstd_frames_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keck_tui.recording as rec

    monkeypatch.setattr(rec, "FRAME_BYTES", 5000)
    path = tmp_path / "t.jsonl.zst"
    w = RecordingWriter(path)
    for i in range(10):
        w.write(snapshot(i))
    size9 = path.stat().st_size
    w.write(snapshot(10))
    size10 = path.stat().st_size
    w.close()
    path.write_bytes(path.read_bytes()[: (size9 + size10) // 2])
    idx = RecordingIndex(path)
    assert [idx.snapshot(i) for i in range(len(idx))] == [snapshot(i) for i in range(10)]
    assert idx.stats.skipped == (1 if idx.stats.truncated_tail else 0)


def test_cli_directory_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: replaying a directory was a traceback (IsADirectoryError)."""
    for name in ("d.jsonl", "d.jsonl.zst"):
        (tmp_path / name).mkdir()
        assert main(["replay", str(tmp_path / name), "--once", "--json"]) == 2
        err = capsys.readouterr().err
        assert "cannot read" in err and "Traceback" not in err


def test_cli_says_when_compressed_data_was_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: a damaged gzip stream with no partial line left was replayed without a word."""
    path = tmp_path / "g.jsonl.gz"
    with RecordingWriter(path) as w:
        for i in range(3):
            w.write(snapshot(i))
    path.write_bytes(path.read_bytes() + b"\x1f\x8b\x08\x00garbage-member")
    assert main(["replay", str(path), "--once", "--json"]) == 0
    out, err = capsys.readouterr()
    assert Snapshot.loads(out) == snapshot(2)
    assert "3 snapshots; compressed data unreadable after that: gzip" in err


def test_cli_at_takes_iso_8601(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: report --since took ISO 8601 but replay --at only an index or unix seconds."""
    from datetime import datetime, timezone

    path = tmp_path / "r.jsonl"
    with RecordingWriter(path) as w:
        for i in range(N):
            w.write(snapshot(i))
    iso = datetime.fromtimestamp(T0 + 3.5, timezone.utc).isoformat()
    assert main(["replay", str(path), "--once", "--json", "--at", iso]) == 0
    assert Snapshot.loads(capsys.readouterr().out) == snapshot(2)  # taken at T0 + 3
    assert main(["replay", str(path), "--once", "--json", "--at", "yesterday"]) == 2
    assert "an index or a unix time (or an ISO 8601 time)" in capsys.readouterr().err
    for bad in ("inf", "nan", "1e300"):  # inf used to mean "the last one"; the rule of every time flag now
        assert main(["replay", str(path), "--once", "--json", "--at", bad]) == 2
        assert "--at: not a" in capsys.readouterr().err
