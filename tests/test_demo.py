"""The demo fleet: deterministic, shaped like a real fleet, built by the production code paths."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from keck_tui.cli import main
from keck_tui.demo import DemoFleet, demo_snapshots
from keck_tui.model import Row, Snapshot

START = datetime(2026, 6, 15, 14, 0, tzinfo=timezone.utc).timestamp()


def test_same_seed_same_snapshots() -> None:
    a = demo_snapshots(seed=7, count=3, start_time=START)
    b = demo_snapshots(seed=7, count=3, start_time=START)
    assert a == b
    assert [s.dumps() for s in a] == [s.dumps() for s in b]
    c = demo_snapshots(seed=8, count=3, start_time=START)
    assert c[-1].root.watts != a[-1].root.watts


def test_deterministic_across_processes() -> None:
    """Independent of hash randomisation (set/dict order of strings) and of the machine's TZ."""
    code = ("import sys; from keck_tui.demo import demo_snapshots; "
            f"sys.stdout.write(demo_snapshots(3, 2, {START!r})[-1].dumps())")
    outs = []
    for hashseed, tz in (("1", "UTC"), ("4242", "America/New_York")):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "TZ": tz}
        outs.append(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                   check=True, cwd=Path(__file__).parents[1]).stdout)
    assert outs[0] == outs[1] == demo_snapshots(3, 2, START)[-1].dumps()


def test_times_and_intervals() -> None:
    snaps = demo_snapshots(seed=1, count=3, start_time=START, interval=2.0)
    assert [s.time for s in snaps] == [START + 2, START + 4, START + 6]
    assert all(s.interval_s == 2.0 for s in snaps)


def levels(row: Row) -> list[str]:
    return [c.level for c in row.children]


def test_fleet_shape() -> None:
    snap = demo_snapshots(seed=1, count=2, start_time=START)[-1]
    root = snap.root
    assert root.level == "fleet" and [c.id for c in root.children] == ["prod-eu", "lab"]
    nodes = {n.id: n for c in root.children for n in c.children}
    assert list(nodes) == ["eu-cpu-1", "eu-gpu-1", "eu-amd-1", "lab-ci-1", "mbp-m3"]
    assert all(n.level == "node" for n in nodes.values())
    # Kubernetes nodes have namespaces → pods → processes → cores
    gpu = nodes["eu-gpu-1"]
    ns = {c.id: c for c in gpu.children}
    assert {"ml-serving", "ml-training", "monitoring", "kube-system"} <= set(ns)
    llm0 = next(p for p in ns["ml-serving"].children if p.name == "llm-0")
    assert llm0.level == "pod" and llm0.namespace == "ml-serving"
    proc = llm0.children[0]
    assert proc.level == "process" and proc.pid == 2101 and (proc.gpu_watts or 0) > 100
    assert {"core", "gpu"} <= {c.level for c in proc.children}
    assert (gpu.components or {}).get("gpu", 0) > 100 and any(c.id == "(platform)" for c in gpu.children)
    # the laptop: no Kubernetes, processes straight under the node, SoC power from powermetrics
    mbp = nodes["mbp-m3"]
    assert "process" in levels(mbp) and "namespace" not in levels(mbp)
    sources = {s.name: s for s in snap.sources}
    assert "powermetrics" in sources["mbp-m3"].detail and "nvml" in sources["eu-gpu-1"].detail
    assert "redfish" in sources["eu-gpu-1"].detail
    assert sum(1 for _ in root.walk()) > 150


def test_conservation_at_every_level() -> None:
    snap = demo_snapshots(seed=2, count=3, start_time=START)[-1]
    for _, row in snap.root.walk():
        if row.children and row.level not in ("process",):
            total = sum(c.watts for c in row.children)
            assert total == pytest.approx(row.watts, rel=1e-6, abs=1e-6), row.id
        assert row.watts_lo <= row.watts + 1e-9 <= row.watts_hi + 2e-9, row.id


def namespace_watts(snap: Snapshot, name: str) -> float:
    return sum(r.watts for _, r in snap.root.walk() if r.level == "namespace" and r.id == name)


def test_daily_load_curve() -> None:
    """Web traffic peaks in the afternoon; the nightly batch runs at 03:00."""
    day = demo_snapshots(seed=1, count=3, start_time=START)[-1]  # 14:00 UTC
    night = demo_snapshots(seed=1, count=3, start_time=START - 11 * 3600)[-1]  # 03:00 UTC
    assert namespace_watts(day, "web") > 3 * namespace_watts(night, "web")
    assert namespace_watts(night, "batch") > 10 * namespace_watts(day, "batch")
    assert night.root.watts != day.root.watts


def test_node_snapshot_and_energy_accumulates() -> None:
    fleet = DemoFleet(seed=1, start_time=START)
    first = fleet.step()
    second = fleet.step()
    node = fleet.node_snapshot("eu-cpu-1")
    assert node is not None and node.host == "eu-cpu-1" and node.root.level == "node"
    assert second.root.joules > first.root.joules > 0
    assert fleet.node_snapshot("nope") is None


def test_cli_once_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--once", "--json", "--seed", "4", "--steps", "2", "--start", "2026-06-15T14:00Z"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(demo_snapshots(4, 2, START)[-1].dumps())
    assert main(["demo", "--once", "--json", "--steps", "1", "--node", "mbp-m3", "--start", str(START)]) == 0
    assert json.loads(capsys.readouterr().out)["host"] == "mbp-m3"
    assert main(["demo", "--once", "--steps", "1"]) == 0
    assert "demo-fleet" in capsys.readouterr().out
    assert main(["demo", "--once", "--node", "nope", "--steps", "1"]) == 2
    assert "nodes: eu-cpu-1" in capsys.readouterr().err
    assert main(["demo", "--once", "--start", "noon"]) == 2
    assert main(["demo", "--json"]) == 2


async def test_demo_fleet_in_the_tui() -> None:
    """The TUI app shows the demo fleet (what `keck-top demo` runs), and `r` records it."""
    pytest.importorskip("textual")
    from keck_tui.feed import StaticFeed
    from keck_tui.ui.app import KeckApp

    snaps = demo_snapshots(seed=1, count=2, start_time=START)
    app = KeckApp(StaticFeed(snaps), title="demo fleet (seed 1)")
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        assert app.snapshot is not None and app.snapshot.root.id == "fleet"
        assert app.view.root is not None and [c.id for c in app.view.root.children] == ["prod-eu", "lab"]


def test_record_toggle_for_the_r_key(tmp_path: Path) -> None:
    from keck_tui.recording import Recorder, read_recording, record_toggle

    rec = Recorder()
    toggle = record_toggle(rec, tmp_path, now=lambda: START)
    assert toggle(True) is True and rec.active
    for s in demo_snapshots(1, 3, START):
        rec(s)
    assert toggle(False) is False
    (path,) = tmp_path.glob("keck-top-*.jsonl.zst")
    snaps, stats = read_recording(path)
    assert snaps == demo_snapshots(1, 3, START) and stats.skipped == 0


def test_cli_start_out_of_range_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    """QA: --start nan / inf / 1e20 ended in a ValueError/OverflowError traceback."""
    from keck_tui.cli import main

    # One parser for every time flag (common.timeparse): nan and inf are no unix time (as report
    # --since says), 1e20 is one that no calendar holds.
    for value, message in (("nan", "--start: not a unix time or ISO 8601 date: 'nan'"),
                           ("inf", "--start: not a unix time or ISO 8601 date: 'inf'"),
                           ("1e20", "--start: not a usable unix time: '1e20'")):
        assert main(["demo", "--once", "--json", "--start", value]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
