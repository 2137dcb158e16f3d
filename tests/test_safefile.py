"""Files keck-top writes: never through a symlink, never onto a FIFO or device (issue 12)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keck_tui.common.safefile import APPEND, NEW, OVERWRITE, UnsafeFileError, open_for_writing, replace_atomically
from keck_tui.recording import RecordingError, RecordingWriter

REPO = Path(__file__).resolve().parents[1]


def test_new_creates_and_refuses_what_exists(tmp_path):
    target = tmp_path / "rec.jsonl"
    with open_for_writing(target) as fh:
        fh.write(b"x\n")
    assert target.read_bytes() == b"x\n"
    with pytest.raises(UnsafeFileError, match="exists"):
        open_for_writing(target, NEW)


@pytest.mark.parametrize("mode", [NEW, OVERWRITE, APPEND])
def test_a_dangling_symlink_is_never_created_through(tmp_path, mode):
    victim = tmp_path / "victim"
    link = tmp_path / "rec.jsonl"
    link.symlink_to(victim)
    with pytest.raises(UnsafeFileError):
        open_for_writing(link, mode)
    assert not victim.exists()


@pytest.mark.parametrize("mode", [OVERWRITE, APPEND])
def test_overwrite_and_append_refuse_a_symlink_to_a_file(tmp_path, mode):
    victim = tmp_path / "passwd"
    victim.write_bytes(b"root:x:0:0\n")
    link = tmp_path / "rec.jsonl"
    link.symlink_to(victim)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        open_for_writing(link, mode)
    assert victim.read_bytes() == b"root:x:0:0\n"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for mode in (OVERWRITE, APPEND):
        with pytest.raises(UnsafeFileError, match="not a regular file"):
            open_for_writing(fifo, mode)


def test_a_device_is_refused_and_not_truncated():
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        open_for_writing("/dev/null", OVERWRITE)


def test_overwrite_truncates_append_appends(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old content\n")
    with open_for_writing(target, APPEND) as fh:
        fh.write(b"more\n")
    assert target.read_bytes() == b"old content\nmore\n"
    with open_for_writing(target, OVERWRITE) as fh:
        fh.write(b"new\n")
    assert target.read_bytes() == b"new\n"


def test_replace_atomically_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "power.json"
    link.symlink_to(victim)
    replace_atomically(link, b"{}")
    assert victim.read_bytes() == b"keep" and not link.is_symlink() and link.read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_recording_writer_refuses_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    link = tmp_path / "rec.jsonl"
    link.symlink_to(victim)
    for kwargs in ({}, {"overwrite": True}, {"append": True}):
        with pytest.raises(RecordingError, match="symbolic link|exists"):
            RecordingWriter(link, **kwargs)
    assert victim.read_bytes() == b"precious\n"


def _record(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keck_tui", "record", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("flags", [[], ["--force"], ["--append"]])
def test_record_command_never_writes_through_a_symlink(tmp_path, flags):
    victim = tmp_path / "victim"
    if flags:
        victim.write_bytes(b"precious\n")
    link = tmp_path / "rec.jsonl"
    link.symlink_to(victim)
    out = _record(str(link), "--count", "1", "--interval", "0.1", "--probes", "procfs", *flags)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("keck-top: error:") and len(out.stderr.strip().splitlines()) == 1
    assert (victim.read_bytes() == b"precious\n") if flags else not victim.exists()
