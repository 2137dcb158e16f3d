"""Files are created only through common/safefile (issue 12): never through a symlink, never onto
a FIFO or a device, and without --force never over something that exists.

The class check walks every module of keck_tui for calls that open a file for writing; a new
writer anywhere else fails here with its file and line (use keck_tui.common.safefile, or add it
to ALLOWED with the reason it is safe). Then the writers themselves are tried against symlinks.
"""
from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import pytest

from keck_tui.common import safefile
from keck_tui.recording import Recorder, RecordingError, default_recording_name, record_toggle

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keck_tui"

#: Modules that may open files for writing themselves, and why that is safe.
ALLOWED = {
    "keck_tui/common/safefile.py": "the one home of file creation",
    "keck_tui/runmeter/tracking.py": "writes a pid into cgroup.procs of a cgroup it created: cgroupfs has no symlinks",
    "keck_tui/vm/files.py": "per-VM export files: openat() inside the export directory's fd with "
                            "O_CREAT|O_EXCL|O_NOFOLLOW, renamed into place (tests/test_vms*)",
}
_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}
_WRITE_METHODS = {"write_text", "write_bytes", "touch", "mkstemp", "NamedTemporaryFile", "mkfifo", "symlink_to"}


def _mode(call: ast.Call, index: int) -> str | None:
    if len(call.args) > index and isinstance(call.args[index], ast.Constant):
        return str(call.args[index].value)
    for kw in call.keywords:
        if kw.arg == "mode" and isinstance(kw.value, ast.Constant):
            return str(kw.value.value)
    return None


def _writes(call: ast.Call) -> str | None:
    """Why ``call`` opens something for writing, or None."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name == "open" and isinstance(func, ast.Name):  # builtin open(path, mode)
        mode = _mode(call, 1)
        return f"open(…, {mode!r})" if mode and set(mode) & set("wax+") else None
    if name == "open" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            and func.value.id == "os":
        flags = {n.attr for n in ast.walk(call) if isinstance(n, ast.Attribute)} & _WRITE_FLAGS
        return f"os.open with {sorted(flags)}" if flags else None
    if name == "open" and isinstance(func, ast.Attribute):  # Path.open(mode)
        mode = _mode(call, 0)
        return f".open({mode!r})" if mode and set(mode) & set("wax+") else None
    if name == "fdopen":
        mode = _mode(call, 1)
        return f"os.fdopen(…, {mode!r})" if mode and set(mode) & set("wax+") else None
    if name in _WRITE_METHODS:
        return f".{name}()"
    return None


def test_no_module_creates_files_outside_safefile() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Call) and (why := _writes(node)):
                found.append(f"{rel}:{node.lineno}: {why}")
    assert not found, "files opened for writing outside keck_tui/common/safefile.py:\n" + "\n".join(found)


def test_the_check_finds_what_it_looks_for() -> None:
    samples = ['open(p, "w")', 'open(p, mode="ab")', 'Path(p).write_text("x")', 'p.open("r+")',
               'os.open(p, os.O_WRONLY | os.O_CREAT)', 'os.fdopen(fd, "wb")', 'tempfile.mkstemp()']
    for text in samples:
        call = ast.parse(text).body[0].value
        assert _writes(call), text
    for text in ['open(p)', 'open(p, "rb")', 'os.open(p, os.O_RDONLY)', 'p.read_text()']:
        assert _writes(ast.parse(text).body[0].value) is None, text


# ---------------------------------------------------------------- the writers against symlinks

def test_the_tuis_record_key_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    """`r` in the TUI records to keck-top-<time>.jsonl.zst in the working directory: another user
    who guesses the name and plants a (dangling) symlink there must not get a file created."""
    now = time.time()
    name = default_recording_name(now, tmp_path)
    victim = tmp_path / "victim"
    name.symlink_to(victim)
    recorder = Recorder()
    toggle = record_toggle(recorder, tmp_path, now=lambda: now)
    with pytest.raises(RecordingError, match="exists"):
        toggle(True)
    assert not victim.exists() and name.is_symlink() and not recorder.active
    victim.write_text("precious\n")
    with pytest.raises(RecordingError):
        toggle(True)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("mode", safefile.MODES)
def test_every_mode_refuses_a_symlink_and_a_fifo(tmp_path: Path, mode: str) -> None:
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(safefile.UnsafeFileError):
        safefile.open_for_writing(link, mode)
    assert target.read_text() == "keep\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(safefile.UnsafeFileError):
        safefile.open_for_writing(fifo, mode)
    assert time.monotonic() - started < 2  # refused, not blocked on the FIFO
