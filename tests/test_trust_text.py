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
