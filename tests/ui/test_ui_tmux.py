"""Smoke test: the real `keck-top` in a 120×40 tmux pane shows the header and
process rows within seconds, and `q` exits with status 0."""
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
