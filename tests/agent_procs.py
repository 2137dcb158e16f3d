"""Helpers for tests that run real `keck-top serve` processes on loopback."""
from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from keck_tui.model import Snapshot

REPO = Path(__file__).resolve().parents[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the ephemeral range, so no client socket can take it
    while a test restarts an agent on the same port."""
    low = max(2048, min(_ephemeral_low(), 65535))
    for _ in range(200):
        port = random.randrange(max(1024, low - 20000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    """`keck-top serve` through the real CLI."""
    return [sys.executable, "-m", "keck_tui", "serve"]


class AgentProc:
    """A real agent process serving a snapshot file (or sampling, with ``extra`` flags)."""

    def __init__(self, tmp: Path, snap: Snapshot | None, port: int | None = None,
                 extra: list[str] | None = None, interval: float = 0.5) -> None:
        self.port = port or free_port()
        self.args = serve_command() + ["--listen", f"127.0.0.1:{self.port}", "--interval", str(interval),
                                       "--config", str(tmp / "none.toml")] + (extra or [])
        (tmp / "none.toml").write_text("")
        if snap is not None:
            path = tmp / f"snap-{self.port}.json"
            path.write_text(snap.dumps())
            self.args += ["--from-file", str(path)]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: float = 60.0) -> "AgentProc":
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited: {self.proc.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/snapshot", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("agent did not answer in time")

    def snapshot(self) -> Snapshot:
        with urllib.request.urlopen(f"{self.url}/api/v1/snapshot", timeout=2) as r:
            return Snapshot.loads(r.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
