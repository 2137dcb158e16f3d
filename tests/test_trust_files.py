"""Every file keck-top reads from outside, given a hostile file (issue 12).

/dev/zero, a FIFO nobody writes, a 300 MB file, a symlink to /dev/zero, TOML nested
100,000 deep and a directory, at each option that names a file: one line on stderr and
exit 2 (or the source's status), within seconds, memory bounded, never a traceback,
a hang or a MemoryError.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile.files import HOSTILE_FILES

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = '{"schema": "keck-top/1", "time": 1, "interval_s": 1, "host": "h", "root": ' \
           '{"level": "node", "id": "h", "name": "h", "watts": 1}}'

#: (what, argv with FILE where the hostile file goes)
READERS: list[tuple[str, list[str]]] = [
    ("--config", ["--once", "--json", "--config", "FILE"]),
    ("attach --fleet", ["attach", "--fleet", "FILE", "--once", "--config", "/dev/null"]),
    ("attach --token-file", ["attach", "http://127.0.0.1:9", "--token-file", "FILE", "--once", "--config", "/dev/null"]),
    ("attach --ca-file", ["attach", "https://127.0.0.1:9", "--ca-file", "FILE", "--once", "--config", "/dev/null"]),
    ("serve --token-file", ["serve", "--token-file", "FILE", "--listen", "127.0.0.1:0", "--from-file", "SNAP",
                            "--config", "/dev/null"]),
    ("serve --tls-key", ["serve", "--tls-cert", "CERT", "--tls-key", "FILE", "--listen", "127.0.0.1:0",
                         "--from-file", "SNAP", "--config", "/dev/null"]),
    ("serve --from-file", ["serve", "--from-file", "FILE", "--listen", "127.0.0.1:0", "--config", "/dev/null"]),
    ("--redfish-credentials", ["--once", "--json", "--interval", "0.2", "--probes", "procfs", "--no-gpu",
                               "--redfish", "http://127.0.0.1:9", "--redfish-credentials", "FILE",
                               "--config", "/dev/null"]),
    ("replay", ["replay", "FILE", "--once", "--json", "--config", "/dev/null"]),
    ("report", ["report", "FILE", "--config", "/dev/null"]),
    ("debug parse-powermetrics", ["debug", "parse-powermetrics", "FILE"]),
]


#: Hostile files that are regular files of garbage, and the readers for which garbage content is
#: an ordinary bad recording (skipped lines, "no snapshots", no samples) rather than a usage error.
CONTENT = ("300 MB file", "TOML 100000 deep")
DATA_READERS = ("replay", "report", "debug parse-powermetrics")


def _run(argv: list[str], timeout: float = 60) -> tuple[subprocess.CompletedProcess, float, int]:
    """keck-top's result, its wall time and its peak RSS (KiB), measured in a child of a fresh process."""
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.monotonic()\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=%r)\n"
             "sys.stderr.write(r.stderr)\n"
             "print(r.returncode, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             % timeout)
    r = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "keck_tui", *argv],
                       capture_output=True, text=True, timeout=timeout + 30, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    code, elapsed, rss = r.stdout.split()
    return subprocess.CompletedProcess(argv, int(code), "", r.stderr), float(elapsed), int(rss)


@pytest.fixture(scope="module")
def cert_pem(tmp_path_factory) -> str:
    trustme = pytest.importorskip("trustme")
    path = tmp_path_factory.mktemp("cert") / "cert.pem"
    trustme.CA().issue_cert("localhost").cert_chain_pems[0].write_to_path(str(path))
    return str(path)


@pytest.mark.parametrize("what, argv", READERS, ids=[w for w, _ in READERS])
@pytest.mark.parametrize("kind", list(HOSTILE_FILES))
def test_hostile_file_is_one_line_and_exit_2(tmp_path: Path, cert_pem: str, what: str, argv: list[str],
                                             kind: str) -> None:
    hostile = HOSTILE_FILES[kind](tmp_path / "hostile")
    snap = tmp_path / "snap.json"
    snap.write_text(SNAPSHOT)
    args = [str(hostile) if a == "FILE" else str(snap) if a == "SNAP" else cert_pem if a == "CERT" else a
            for a in argv]
    r, elapsed, rss_kib = _run(args)
    content_only = kind in CONTENT and what in DATA_READERS  # a regular file of garbage: its own message
    if what == "--redfish-credentials":  # the BMC source says it; the rest of keck-top runs
        assert r.returncode in (0, 2), r.stderr
    elif content_only:
        assert r.returncode in (0, 2) and r.stderr.count("\n") <= 2, r.stderr
    else:
        assert r.returncode == 2, (what, kind, r.stderr)
        assert r.stderr.count("\n") == 1 and "error:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr
    assert elapsed < 30, elapsed
    assert rss_kib < 400 * 1024, rss_kib  # never read whole (the 300 MB file, /dev/zero)


def test_a_fifo_as_the_config_does_not_hang(tmp_path: Path) -> None:
    """QA: a FIFO as --config hung silently."""
    fifo = HOSTILE_FILES["FIFO"](tmp_path / "cfg")
    started = time.monotonic()
    r, _, _ = _run(["--once", "--json", "--config", str(fifo)])
    assert r.returncode == 2 and "is not a regular file" in r.stderr
    assert time.monotonic() - started < 30


def test_peak_rss_self_check() -> None:
    """The RSS probe measures the child, not itself: a child that allocates 200 MB shows it."""
    probe = ("import resource, subprocess, sys\n"
             "subprocess.run([sys.executable, '-c', 'x = bytearray(200 * 1024 * 1024); x[::4096] = b\"a\" * len(x[::4096])'])\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert int(out.stdout) > 200 * 1024
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_replay_skips_an_over_long_line_without_holding_it(tmp_path: Path, monkeypatch) -> None:
    import keck_tui.replay as replay
    from keck_tui.replay import RecordingIndex

    monkeypatch.setattr(replay, "MAX_LINE_BYTES", 5000)
    monkeypatch.setattr(replay, "CHUNK_BYTES", 1024)
    path = tmp_path / "r.jsonl"
    path.write_text(SNAPSHOT + "\n" + "x" * 20_000 + "\n" + SNAPSHOT.replace('"time": 1', '"time": 2') + "\n")
    index = RecordingIndex(path)
    assert len(index) == 2 and index.stats.skipped == 1 and "longer than 5000" in index.stats.problems[0]
    assert [index.snapshot(i).time for i in range(2)] == [1.0, 2.0]
