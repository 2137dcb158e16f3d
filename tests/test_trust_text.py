"""Text from outside is terminal-safe before any output (issue 12).

Rows, source statuses and snapshots clean their own text where they are built,
so every source is covered: local processes (another user's argv and comm),
kubelet, Keck, Prometheus and Redfish names, a peer's error messages.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keck_tui.common.text import REPLACEMENT
from keck_tui.model import Row, Snapshot, SourceStatus

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "\x1b]0;pwned\x07\x1b[31mred\x9b2J\u202eevil\u200b\x00end"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\u200b", "\x00")


def _clean(text: str) -> bool:
    return not any(ch in text for ch in UNSAFE)


def test_rows_statuses_and_snapshots_clean_their_own_text() -> None:
    row = Row(level="pod", id=f"pod-{HOSTILE}", name=HOSTILE, watts=1.0, watts_lo=1.0, watts_hi=1.0,
              cmd=f"sh -c {HOSTILE}\nnext", namespace=HOSTILE, pod_uid=HOSTILE, container_id=HOSTILE,
              note=HOSTILE, error=HOSTILE, sources=(HOSTILE,), labels={HOSTILE: HOSTILE})
    texts = [row.id, row.name, row.cmd, row.namespace, row.pod_uid, row.container_id, row.note, row.error,
             *row.sources, *row.labels, *row.labels.values()]
    assert all(_clean(t) and REPLACEMENT in t for t in texts), texts
    assert row.name.endswith("end") and "red" in row.name and row.cmd.endswith(" next")
    src = SourceStatus(HOSTILE, "error", f"HTTP 500: {HOSTILE}")
    snap = Snapshot(time=1.0, interval_s=1.0, host=HOSTILE, model=HOSTILE, sources=(src,), root=row,
                    warnings=(HOSTILE,))
    assert all(_clean(t) for t in (src.name, src.detail, snap.host, snap.model, *snap.warnings))
    assert _clean(snap.dumps()) and "\\u001b" not in snap.dumps()  # not even JSON-escaped


def test_printable_text_is_left_alone() -> None:
    row = Row(level="process", id="42", name="python3 — café 日本", cmd="python3 -m x", watts=1.0,
              watts_lo=1.0, watts_hi=1.0, labels={"app": "web"})
    assert row.name == "python3 — café 日本" and row.labels == {"app": "web"}


def _spawn_hostile_process() -> subprocess.Popen:
    """A process whose comm and argv carry escapes, as another user's process could."""
    code = ("import ctypes, sys, time\n"
            "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"  # PR_SET_NAME: the comm
            "t = time.time() + 20\n"
            "while time.time() < t: pass\n")
    return subprocess.Popen([sys.executable, "-c", code, "\x1b]2;t\x07\x1b[2J", HOSTILE.replace("\x00", "")])


@pytest.mark.skipif(not Path("/proc/self/comm").exists(), reason="needs Linux procfs")
@pytest.mark.parametrize("output", [["--json"], []], ids=["json", "table"])
def test_another_users_process_name_never_reaches_the_terminal_raw(output) -> None:
    proc = _spawn_hostile_process()
    try:
        deadline = time.time() + 5
        while b"\x1b" not in Path(f"/proc/{proc.pid}/comm").read_bytes() and time.time() < deadline:
            time.sleep(0.05)
        assert b"\x1b" in Path(f"/proc/{proc.pid}/comm").read_bytes()  # the hostile comm is set
        r = subprocess.run([sys.executable, "-m", "keck_tui", "--once", *output, "--interval", "0.3",
                            "--probes", "procfs", "--config", "/dev/null"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 0, r.stderr
    assert _clean(r.stdout), [line for line in r.stdout.splitlines() if not _clean(line)][:3]
    if output:
        rows = [row for _, row in Snapshot.loads(r.stdout).root.walk() if row.pid == proc.pid]
        assert rows and REPLACEMENT in rows[0].name and REPLACEMENT in rows[0].cmd
        assert "\\u001b" not in r.stdout


def test_over_long_text_is_cut_to_what_a_reader_accepts() -> None:
    """CI found it: a process with a 100 kB command line made keck-top's own snapshot
    unreadable by its own decoder (agent client, recorder, replay)."""
    from keck_tui.model import MAX_DETAIL, MAX_TEXT

    row = Row(level="process", id="7", name="n" * (MAX_TEXT + 10), watts=1.0, watts_lo=1.0, watts_hi=1.0,
              cmd="c" * 100_000, note="x" * (MAX_DETAIL + 1), labels={"k" * 5000: "v" * 5000},
              sources=("s" * 5000,))
    assert len(row.cmd) == MAX_DETAIL and row.cmd.endswith("…") and row.cmd.startswith("ccc")
    assert len(row.name) == MAX_TEXT and len(row.note) == MAX_DETAIL
    assert all(len(t) <= MAX_TEXT for t in (*row.labels, *row.labels.values(), *row.sources))
    exact = Row(level="process", id="8", name="n", watts=1.0, watts_lo=1.0, watts_hi=1.0, cmd="c" * MAX_DETAIL)
    assert exact.cmd == "c" * MAX_DETAIL  # at the limit: untouched
    src = SourceStatus("s", "error", "d" * 20_000)
    snap = Snapshot(time=1.0, interval_s=1.0, host="h" * 5000, model="m", sources=(src,),
                    root=Row(level="node", id="node", name="node", watts=2.0, watts_lo=2.0, watts_hi=2.0,
                             children=(row, exact)),
                    warnings=("w" * 20_000,))
    back = Snapshot.loads(snap.dumps())
    assert back.root.children[0].cmd == row.cmd and len(back.sources[0].detail) == MAX_DETAIL
    assert len(back.host) == MAX_TEXT and len(back.warnings[0]) == MAX_DETAIL


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux procfs")
def test_a_process_with_a_huge_command_line_is_shown_and_read_back(tmp_path: Path) -> None:
    from keck_tui.model import MAX_DETAIL
    from keck_tui.recording import read_recording

    # busy, so that it has a row of its own (an idle small process is summed into its group's (dram) row)
    code = "import time\nt = time.time() + 30\nwhile time.time() < t: pass\n"
    proc = subprocess.Popen([sys.executable, "-c", code, "A" * 120_000])
    try:
        r = subprocess.run([sys.executable, "-m", "keck_tui", "--once", "--json", "--interval", "0.3",
                            "--probes", "procfs", "--config", "/dev/null", "--no-gpu"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
        path = tmp_path / "r.jsonl"
        rec = subprocess.run([sys.executable, "-m", "keck_tui", "record", str(path), "--count", "1",
                              "--interval", "0.3", "--probes", "procfs", "--config", "/dev/null", "--no-gpu",
                              "--quiet"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 0, r.stderr
    rows = [row for _, row in Snapshot.loads(r.stdout).root.walk() if row.pid == proc.pid]
    assert rows and len(rows[0].cmd) == MAX_DETAIL and rows[0].cmd.endswith("AAAA…")
    assert rec.returncode == 0, rec.stderr
    snaps, stats = read_recording(path)
    assert len(snaps) == 1 and stats.skipped == 0
