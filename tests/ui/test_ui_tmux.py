"""Smoke test: the real `keck-top` in a 120×40 tmux pane shows the header and
process rows within seconds, and `q` exits with status 0; stopped and continued, it
paints the whole screen again and still takes keys."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KECK_TOP = Path(sys.executable).with_name("keck-top")

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"),
    pytest.mark.skipif(importlib.util.find_spec("keck_tui.commands.local") is None,
                       reason="keck_tui.commands.local (the lead's local command) is not there yet"),
    pytest.mark.skipif(not KECK_TOP.exists(), reason=f"{KECK_TOP} is not installed (pip install -e .)"),
]


def _tmux(sock: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True, timeout=10)


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_keck_top_in_tmux_shows_processes_and_quits_cleanly(tmp_path, quit_key):
    sock = f"keck-ui-test-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    cmd = f"cd {REPO} && {KECK_TOP}; echo $? > {status}"
    env_prefix = "env -u NO_COLOR TERM=xterm-256color "
    started = _tmux(sock, "new-session", "-d", "-x", "120", "-y", "40", env_prefix + f"sh -c '{cmd}'")
    assert started.returncode == 0, started.stderr
    try:
        screen = {"text": ""}

        def ready() -> bool:
            screen["text"] = _tmux(sock, "capture-pane", "-p").stdout
            return "W" in screen["text"] and re.search(r"\(\d+\)", screen["text"]) is not None \
                and "NAME" in screen["text"]

        assert _wait(ready, 15.0), f"no header/process rows within 15 s:\n{screen['text']}"
        first = screen["text"].splitlines()[0]
        assert "keck-top" in first and " W" in first
        _tmux(sock, "send-keys", quit_key)
        assert _wait(status.exists, 10.0), f"keck-top did not exit after {quit_key}"
        assert status.read_text().strip() == "0"
    finally:
        _tmux(sock, "kill-server")


def test_keck_top_stopped_and_continued_takes_keys_and_quits_at_once(tmp_path):
    # SIGTSTP makes Textual end its input thread and SIGCONT start a new one: the new one
    # must read keys (here: the filter) and still wake at once for q; and the screen,
    # which the shell had in between, must be painted whole again.
    sock = f"keck-ui-test-{uuid.uuid4().hex[:8]}"
    status, pid_file = tmp_path / "status", tmp_path / "pid"
    cmd = f"cd {REPO} && echo $$ > {pid_file} && exec {KECK_TOP} --probes procfs"
    env_prefix = "env -u NO_COLOR TERM=xterm-256color "
    started = _tmux(sock, "new-session", "-d", "-x", "120", "-y", "40",
                    env_prefix + f"sh -c '{cmd}'; echo $? > {status}")
    assert started.returncode == 0, started.stderr
    try:
        def screen() -> str:
            return _tmux(sock, "capture-pane", "-p").stdout

        assert _wait(lambda: "NAME" in screen(), 15.0), screen()
        import os
        import signal

        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTSTP)
        time.sleep(1.0)
        os.kill(pid, signal.SIGCONT)
        # the whole screen is painted again: lines that did not change too (header, titles)
        assert _wait(lambda: "NAME" in screen() and "procfs ✓" in screen() and "keck-top" in screen(),
                     10.0), screen()
        _tmux(sock, "send-keys", "/")
        time.sleep(0.5)
        _tmux(sock, "send-keys", "zz")
        assert _wait(lambda: "filter “zz”" in screen(), 5.0), screen()
        _tmux(sock, "send-keys", "Escape")
        assert _wait(lambda: "filter “" not in screen(), 5.0), screen()
        time.sleep(0.3)
        t0 = time.monotonic()
        _tmux(sock, "send-keys", "q")
        assert _wait(status.exists, 10.0), f"keck-top did not exit after q:\n{screen()}"
        assert time.monotonic() - t0 < 3.0
    finally:
        _tmux(sock, "kill-server")
