"""`keck-top record`: the command end to end on this machine's real procfs (estimated power)."""
from __future__ import annotations

from pathlib import Path

import pytest

from keck_tui.cli import main
from keck_tui.recording import read_recording


def test_record_count_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    path = tmp_path / "live.jsonl.zst"
    t0 = time.monotonic()
    assert main(["record", str(path), "--count", "2", "--interval", "0.1", "--no-gpu", "--probes", "procfs"]) == 0
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert "2 snapshots written" in err
    snaps, stats = read_recording(path)
    assert len(snaps) == 2 and stats.skipped == 0
    assert snaps[0].root.level == "node" and snaps[1].time > snaps[0].time
    # measured intervals: about the one asked for at least, and within the command's own run
    # (a loaded machine stretches them: the sampling itself takes longer)
    assert all(0.05 <= s.interval_s < elapsed for s in snaps), ([s.interval_s for s in snaps], elapsed)
    assert snaps[0].interval_s + snaps[1].interval_s < elapsed
    assert main(["report", str(path), "--by", "node", "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 3  # header, the node, the total


def test_record_duration(tmp_path: Path) -> None:
    import time

    path = tmp_path / "d.jsonl"
    t0 = time.monotonic()
    assert main(["record", str(path), "--duration", "1", "--interval", "0.1", "--quiet", "--no-gpu",
                 "--probes", "procfs"]) == 0
    elapsed = time.monotonic() - t0
    snaps, _ = read_recording(path)
    # --duration ends it: not before the duration, with no more snapshots than intervals in it
    # (fewer on a loaded machine: the first one waits for the priming sample and one interval)
    assert elapsed >= 1.0
    assert 1 <= len(snaps) <= 11
    assert snaps[-1].time - snaps[0].time <= 1.0


def test_record_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("keep me\n")
    assert main(["record", str(path), "--count", "1"]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert path.read_text() == "keep me\n"
    assert main(["record", str(path), "--count", "0", "--force"]) == 2
    assert main(["record", str(path), "--force", "--append"]) == 2
    assert main(["record", str(tmp_path / "no" / "dir" / "x.jsonl"), "--count", "1"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_record_attached_agents_keeps_the_fleet_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two real agents (serving demo nodes) recorded through --attach: fleet → cluster → node."""
    from agent_procs import AgentProc
    from keck_tui.demo import DemoFleet

    fleet = DemoFleet(seed=1)
    fleet.step()
    agents = [AgentProc(tmp_path, fleet.node_snapshot(name)) for name in ("eu-cpu-1", "mbp-m3")]
    try:
        for a in agents:
            a.start()
        path = tmp_path / "fleet.jsonl.zst"
        argv = ["record", str(path), "--count", "2", "--interval", "0.2", "--config", str(tmp_path / "none.toml")]
        for a in agents:
            argv += ["--attach", a.url]
        assert main(argv) == 0
    finally:
        for a in agents:
            a.stop()
    snaps, stats = read_recording(path)
    assert len(snaps) == 2 and stats.skipped == 0
    root = snaps[-1].root
    assert root.level == "fleet" and [c.level for c in root.children] == ["cluster"]
    nodes = [n for n in root.children[0].children]
    assert sorted(n.name for n in nodes) == ["eu-cpu-1", "mbp-m3"] and all(n.level == "node" for n in nodes)
    assert any(r.level == "process" for _, r in root.walk())  # the whole tree, not just node rows
    assert "2 snapshots written" in capsys.readouterr().err


def test_record_bad_remote_or_sampling_flags_leave_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: the file used to be created before the flags were checked, so the rerun refused to overwrite it."""
    path = tmp_path / "r.jsonl.zst"
    assert main(["record", str(path), "--attach", "ftp://x", "--count", "1"]) == 2
    assert "must start with http" in capsys.readouterr().err
    assert not path.exists()
    assert main(["record", str(path), "--redfish", "ftp://bmc", "--count", "1", "--no-gpu", "--probes", "procfs"]) == 2
    assert "--redfish" in capsys.readouterr().err
    assert not path.exists()


def test_record_sigterm_finishes_the_stream(tmp_path: Path) -> None:
    """QA: SIGTERM (systemctl stop, timeout) killed `record` with status 143 and an unfinished zstd frame."""
    import signal
    import subprocess
    import sys
    import time

    import zstandard

    path = tmp_path / "t.jsonl.zst"
    (tmp_path / "none.toml").write_text("")
    proc = subprocess.Popen([sys.executable, "-m", "keck_tui", "record", str(path), "--interval", "0.1",
                             "--no-gpu", "--probes", "procfs", "--config", str(tmp_path / "none.toml")],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (path.exists() and path.stat().st_size > 0):
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "snapshots written" in err
    d = zstandard.ZstdDecompressor().decompressobj()
    d.decompress(path.read_bytes())
    assert d.eof  # the frame was finished
    snaps, stats = read_recording(path)
    assert snaps and stats.skipped == 0


def test_record_a_keck_controller(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `record` could keep agents (--attach/--fleet) but not a Keck controller or Prometheus,
    which `attach` reads; now --keck and --prometheus record their fleet tree too."""
    from fakes.http_server import serve_in_thread
    from test_keck_controller import _replay_app

    from tests.conftest import shared_fixture

    app = _replay_app(shared_fixture("keck-controller"), [])
    (tmp_path / "none.toml").write_text("")
    path = tmp_path / "k.jsonl"
    with serve_in_thread(app) as url:
        assert main(["record", str(path), "--keck", url, "--count", "2", "--interval", "0.1",
                     "--config", str(tmp_path / "none.toml")]) == 0
    snaps, stats = read_recording(path)
    assert len(snaps) == 2 and stats.skipped == 0
    (cluster,) = snaps[-1].root.children
    assert [n.id for n in cluster.children] == ["worker-a", "worker-b"]
    assert cluster.watts == pytest.approx(272.0 + 164.934669, abs=1e-6)
    assert main(["record", str(tmp_path / "p.jsonl"), "--prometheus", "localhost:9090"]) == 2
    assert "must start with http" in capsys.readouterr().err and not (tmp_path / "p.jsonl").exists()
