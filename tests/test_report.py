"""`keck-top report`: numbers against recordings whose energy is known by construction."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from keck_tui.cli import main
from keck_tui.cost import Tariff, parse_schedule
from keck_tui.recording import RecordingWriter, encode_line
from keck_tui.report import Report, report_file, report_snapshots
from record_helpers import T0, fleet_snapshot, snapshot

# Six 1-second snapshots at scales 1,2,3,1,2,3: Σ scale = 12.
N = 6
SUM_SCALE = 12.0
FLAT = Tariff(price_per_kwh=0.30, co2e_g_per_kwh=400.0, currency="$")


def write(path: Path, snaps) -> Path:
    with RecordingWriter(path) as w:
        for s in snaps:
            w.write(s)
    return path


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    return write(tmp_path / "six.jsonl.zst", [snapshot(i) for i in range(N)])


def groups(report: Report) -> dict[str, tuple[float, float, float]]:
    return {g.name: (round(g.joules, 9), round(g.joules_lo, 9), round(g.joules_hi, 9))
            for g in report.groups}


def test_by_node(rec: Path) -> None:
    r = report_file(rec, "node", FLAT)
    assert r.snapshots == N and r.duration_s == N and r.stats.skipped == 0
    assert (r.start, r.end) == (T0, T0 + N)
    (g,) = r.groups
    assert g.name == "n1"
    assert g.joules == pytest.approx(100 * SUM_SCALE)
    assert (g.joules_lo, g.joules_hi) == (pytest.approx(90 * SUM_SCALE), pytest.approx(110 * SUM_SCALE))
    assert g.mean_watts(r.duration_s) == pytest.approx((200.0, 180.0, 220.0))
    assert (g.peak_watts, g.peak_lo, g.peak_hi, g.peak_time) == (300.0, 270.0, pytest.approx(330.0), T0 + 3)
    # 1200 J = 1/3000 kWh
    assert g.cost == pytest.approx(1200 / 3.6e6 * 0.30)
    assert g.co2e_g == pytest.approx(1200 / 3.6e6 * 400)
    assert r.total.joules == pytest.approx(1200.0)


def test_by_namespace_pod_process(rec: Path) -> None:
    ns = report_file(rec, "namespace", FLAT)
    # What no namespace covers is the node minus the namespaces, bounds by interval
    # arithmetic: lo = node_lo - Σ hi (clamped at 0), hi = node_hi - Σ lo.
    assert groups(ns) == {"ns-a": (720.0, 648.0, 792.0), "(outside namespaces)": (180.0, 0.0, 402.0),
                          "ns-b": (300.0, 270.0, 330.0)}
    assert [g.name for g in ns.groups] == ["ns-a", "ns-b", "(outside namespaces)"]  # by energy
    assert sum(g.joules for g in ns.groups) == pytest.approx(ns.total.joules)

    pod = report_file(rec, "pod", FLAT)
    assert {g.name: round(g.joules, 9) for g in pod.groups} == {
        "ns-a/pod-a1": 480.0, "ns-b/pod-b1": 300.0, "ns-a/pod-a2": 240.0, "(outside pods)": 180.0}
    assert {g.name: g.where for g in pod.groups}["ns-a/pod-a1"] == "ns-a"

    proc = report_file(rec, "process", FLAT)
    # web (10) and web (11) are one command: 30 W + 10 W
    assert {g.name: round(g.joules, 9) for g in proc.groups} == {
        "web": 480.0, "batch": 300.0, "db": 240.0, "(not in a process)": 180.0}
    web = next(g for g in proc.groups if g.name == "web")
    assert web.where == "n1" and web.peak_watts == 120.0 and web.key == "n1/web"


def test_fast_path_equals_full_parse(rec: Path) -> None:
    for by in ("node", "namespace", "pod", "process"):
        fast = report_file(rec, by, FLAT)
        full = report_file(rec, by, FLAT, fast=False)
        mem = report_snapshots([snapshot(i) for i in range(N)], by, FLAT)
        assert fast.fast_lines == N - 1 and full.fast_lines == 0
        assert fast.rows() == full.rows() == mem.rows()


def test_parallel_workers_give_the_same_report(tmp_path: Path) -> None:
    """Lines split between processes: sums add, peaks and skipped lines merge."""
    lines = [encode_line(snapshot(i)) for i in range(N)]
    path = tmp_path / "p.jsonl.gz"
    with RecordingWriter(path) as w:
        for i, line in enumerate(lines):
            w.write_line(line)
            if i == 2:
                w.write_line(b"{broken\n")
    for by in ("node", "namespace", "pod", "process"):
        one = report_file(path, by, FLAT, jobs=1)
        for jobs in (2, 3):
            many = report_file(path, by, FLAT, jobs=jobs)
            assert [r["group"] for r in many.rows()] == [r["group"] for r in one.rows()]
            for a, b in zip(many.rows(), one.rows()):
                assert a == {k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in b.items()}
            assert (many.snapshots, many.stats.skipped, many.stats.valid) == (N, 1, N)
            assert many.stats.problems == one.stats.problems == ["line 4: not JSON: Expecting property "
                                                                 "name enclosed in double quotes: line 1 column 2 (char 1)"]
            assert (many.start, many.end, many.duration_s) == (one.start, one.end, one.duration_s)


def test_other_json_layouts_take_the_full_path(tmp_path: Path) -> None:
    """Lines the fast path cannot vouch for are parsed fully: same numbers."""
    spaced = tmp_path / "spaced.jsonl"  # keck-top --once --json >> file
    spaced.write_text("".join(snapshot(i).dumps() + "\n" for i in range(N)))
    reordered = tmp_path / "sorted.jsonl"  # another writer's key order
    reordered.write_text("".join(json.dumps(snapshot(i).to_json(), sort_keys=True) + "\n" for i in range(N)))
    escaped = tmp_path / "escaped.jsonl"  # names with quotes and non-ASCII escapes
    escaped.write_text("".join(json.dumps(snapshot(i).to_json()).replace('"batch (13)"', '"b\\"atch\\u00e9 (13)"')
                               + "\n" for i in range(N)))
    base = report_file(tmp_path / "spaced.jsonl", "process", FLAT, fast=False).rows()
    r1 = report_file(spaced, "process", FLAT)
    assert r1.fast_lines == N - 1 and r1.rows() == base
    r2 = report_file(reordered, "process", FLAT)
    assert r2.fast_lines == 0 and r2.rows() == base
    r3 = report_file(escaped, "process", FLAT)
    assert r3.fast_lines == 0
    assert {g.name for g in r3.groups} == {"web", "db", 'b"atché', "(not in a process)"}


def test_fleet_recording_sums_namespaces_over_nodes(tmp_path: Path) -> None:
    path = write(tmp_path / "fleet.jsonl", [fleet_snapshot(i) for i in range(3)])
    r = report_file(path, "namespace", FLAT)
    # ns-a: n1 60 W + n2 120 W for 3 s
    assert groups(r)["ns-a"][0] == pytest.approx(540.0)
    assert next(g for g in r.groups if g.name == "ns-a").where == "n1, n2"
    assert next(g for g in r.groups if g.name == "ns-a").peak_watts == 180.0
    assert r.total.joules == pytest.approx(900.0)
    by_node = report_file(path, "node", FLAT)
    assert groups(by_node) == {"n2": (600.0, 540.0, 660.0), "n1": (300.0, 270.0, 330.0)}
    proc = report_file(path, "process", FLAT)
    assert {g.key for g in proc.groups if g.name == "web"} == {"n1/web", "n2/web"}


def test_cost_across_a_schedule_boundary(tmp_path: Path) -> None:
    """60-s intervals; the price changes 40 s into the first one (22:14:00 UTC)."""
    path = write(tmp_path / "s.jsonl", [snapshot(i, interval=60.0) for i in range(3)])
    tariff = Tariff(segments=parse_schedule([{"from": "06:00", "price_per_kwh": 0.1},
                                             {"from": "22:14", "price_per_kwh": 0.5}]),
                    tz=timezone.utc)
    assert T0 + 40 == 1_700_000_040  # 22:14:00 UTC
    r = report_file(path, "node", tariff)
    expected = (100 * (40 * 0.1 + 20 * 0.5) + 200 * 60 * 0.5 + 300 * 60 * 0.5) / 3.6e6
    assert r.groups[0].cost == pytest.approx(expected)
    assert r.groups[0].co2e_g is None and not r.has_co2e
    assert r.to_json()["groups"][0]["co2e_g"] is None


def test_gaps_and_corrupt_lines(tmp_path: Path) -> None:
    """Missing time is not invented: energy is Σ watts × interval of the lines present."""
    lines = [encode_line(snapshot(i)) for i in range(N)]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(lines[0] + b"not json\n" + lines[1] + lines[2][:-30] + b"\n" + lines[3]
                     + lines[4] + lines[5][:100])
    r = report_file(path, "node", FLAT)
    assert r.snapshots == 4 and r.stats.skipped == 3
    assert r.groups[0].joules == pytest.approx(100 * (1 + 2 + 1 + 2))
    assert r.duration_s == 4.0 and (r.start, r.end) == (T0, T0 + 5)


def test_json_and_csv(rec: Path) -> None:
    r = report_file(rec, "namespace", FLAT)
    doc = r.to_json()
    assert doc["schema"] == "keck-top-report/1" and doc["snapshots"] == N
    assert doc["total"]["energy_wh"] == pytest.approx(1200 / 3600)
    assert doc["groups"][0]["group"] == "ns-a" and doc["groups"][0]["share"] == pytest.approx(0.6)
    json.dumps(doc, allow_nan=False)
    rows = list(csv.DictReader(io.StringIO(r.to_csv())))
    assert [row["group"] for row in rows] == ["ns-a", "ns-b", "(outside namespaces)", "(total)"]
    assert float(rows[0]["energy_wh"]) == pytest.approx(0.2)
    assert float(rows[0]["peak_watts"]) == 180.0 and float(rows[0]["cost"]) == pytest.approx(720 / 3.6e6 * 0.3)


def test_cli_formats(rec: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('price_per_kwh = 0.3\nco2e_g_per_kwh = 400\ncurrency = "$"\n')
    assert main(["report", str(rec), "--by", "node", "--format", "json", "--config", str(cfg)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["groups"][0]["cost"] == pytest.approx(1200 / 3.6e6 * 0.3) and doc["currency"] == "$"
    assert main(["report", str(rec), "--by", "pod", "--format", "csv", "--price", "1", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("group,key,where,energy_wh")
    assert main(["report", str(rec), "--by", "namespace", "--config", str(cfg)]) == 0
    table = capsys.readouterr().out
    assert "ns-a" in table and "(outside namespaces)" in table and "$" in table and "(total)" in table
    assert "1200 J" in table  # the total (common.formatting.fmt_energy, as the TUI shows energy)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("garbage\n")
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no snapshots" in err and "1 line skipped" in err
    assert main(["report", str(empty), "--tz", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cut.jsonl", "cut.jsonl.zst"])
def test_files_cut_into_pieces_give_the_same_report(tmp_path: Path, name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte-range pieces (plain: at newlines; zstd: at frame starts) tile the file exactly."""
    import keck_tui.recording as rec

    monkeypatch.setattr(rec, "FRAME_BYTES", 3000)  # a new zstd frame every line or so
    path = tmp_path / name
    with RecordingWriter(path) as w:
        for i in range(12):
            w.write(snapshot(i))
            if i in (3, 8):
                w.write_line(b'{"schema":"keck-top/1","time":"broken"}\n')
    if name.endswith(".jsonl"):  # and a truncated tail
        path.write_bytes(path.read_bytes() + encode_line(snapshot(12))[:120])
    cuts = rec.split_points(path, 4)
    assert cuts is not None and len(cuts) == 5 and cuts[0] == 0 and cuts[-1] == path.stat().st_size
    pieces = [list(rec.iter_lines(path, None, a, b)) for a, b in zip(cuts, cuts[1:])]
    assert [line for piece in pieces for _, line in piece] == [line for _, line in rec.iter_lines(path)]
    one = report_file(path, "process", FLAT, jobs=1)
    for jobs in (2, 4):
        many = report_file(path, "process", FLAT, jobs=jobs)
        assert [r["group"] for r in many.rows()] == [r["group"] for r in one.rows()]
        for a, b in zip(many.rows(), one.rows()):
            assert a == {k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in b.items()}
        assert (many.snapshots, many.stats.valid, many.stats.skipped) == (12, 12, one.stats.skipped)
        assert many.stats.problems == one.stats.problems
        assert [p.split(":")[0] for p in one.stats.problems][:2] == ["line 5", "line 11"]


def test_gzip_cannot_be_cut(tmp_path: Path) -> None:
    import keck_tui.recording as rec

    path = write(tmp_path / "g.jsonl.gz", [snapshot(i) for i in range(3)])
    assert rec.split_points(path, 2) is None
    single = tmp_path / "single-frame.jsonl.zst"  # another tool's one-frame zstd: one piece
    import zstandard

    single.write_bytes(zstandard.ZstdCompressor().compress(b"".join(encode_line(snapshot(i)) for i in range(40))))
    assert rec.split_points(single, 3) == [0, single.stat().st_size]
    assert report_file(single, "node", FLAT, jobs=3).snapshots == 40


def test_time_window_clips_intervals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since/--until: snapshots straddling an edge count for the part inside."""
    path = write(tmp_path / "w.jsonl", [snapshot(i, interval=10.0) for i in range(6)])  # scales 1,2,3,1,2,3
    # intervals: [T0, T0+10] … [T0+50, T0+60]; window [T0+15, T0+35]: half of #1, all of #2, half of #3
    r = report_file(path, "node", FLAT, since=T0 + 15, until=T0 + 35)
    assert r.groups[0].joules == pytest.approx(100 * (2 * 5 + 3 * 10 + 1 * 5))
    assert (r.start, r.end, r.duration_s, r.snapshots) == (T0 + 15, T0 + 35, 20.0, 3)
    assert report_file(path, "node", FLAT, since=T0 + 50).groups[0].joules == pytest.approx(100 * 3 * 10)
    assert report_file(path, "node", FLAT, jobs=2, until=T0 + 10).groups[0].joules == pytest.approx(1000)
    iso = datetime.fromtimestamp(T0 + 15, timezone.utc).isoformat()
    assert main(["report", str(path), "--by", "node", "--format", "json", "--since", iso,
                 "--until", str(T0 + 35), "--config", "/dev/null"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["energy_wh"] == pytest.approx(4500 / 3600)
    assert main(["report", str(path), "--since", str(T0 + 100), "--config", "/dev/null"]) == 2
    assert "no snapshots between" in capsys.readouterr().err
    assert main(["report", str(path), "--since", "yesterday", "--config", "/dev/null"]) == 2
    assert main(["report", str(path), "--since", "5", "--until", "4", "--config", "/dev/null"]) == 2


def test_cli_rejects_infinite_or_nan_prices(rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: --price inf (or nan/inf in the config) ended in a ValueError traceback from json.dumps."""
    assert main(["report", str(rec), "--price", "inf", "--format", "json"]) == 2
    assert "argument --price: must be a finite number (0 – 1000 per kWh)" in capsys.readouterr().err
    assert main(["report", str(rec), "--co2e", "inf", "--format", "json"]) == 2
    capsys.readouterr()
    for text in ("co2e_g_per_kwh = nan\n", "price_per_kwh = inf\n"):
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        assert main(["report", str(rec), "--format", "json", "--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert "must be a finite number" in err and "Traceback" not in err


@pytest.mark.parametrize("fast", [True, False])
def test_pods_with_the_same_name_in_two_namespaces_stay_apart(tmp_path: Path, fast: bool) -> None:
    """QA: pod rows whose id is the pod name (Keck controller, Prometheus sources) were keyed by id
    alone, so sessions/redis-0's energy was reported under cache/redis-0."""
    from keck_tui.model import Row, Snapshot

    def row(level: str, rid: str, w: float, *kids: Row, **kw) -> Row:
        return Row(level=level, id=rid, name=rid, watts=w, watts_lo=w, watts_hi=w, children=kids, **kw)

    snaps = [Snapshot(time=T0 + i + 1, interval_s=1.0, host="n1", model="remote", sources=(),
                      root=row("node", "n1", 40.0,
                               row("namespace", "cache", 10.0, row("pod", "redis-0", 10.0, namespace="cache")),
                               row("namespace", "sessions", 30.0,
                                   row("pod", "redis-0", 30.0, namespace="sessions"))))
             for i in range(4)]
    r = report_file(write(tmp_path / "p.jsonl", snaps), "pod", FLAT, fast=fast)
    assert {g.name: (round(g.joules, 9), g.peak_watts, g.where) for g in r.groups} == {
        "sessions/redis-0": (120.0, 30.0, "sessions"), "cache/redis-0": (40.0, 10.0, "cache")}


@pytest.mark.parametrize("fast", [True, False])
def test_nodes_with_the_same_name_in_two_clusters_stay_apart(tmp_path: Path, fast: bool) -> None:
    """QA: --by node keyed nodes by id alone, so two clusters' 'kind-control-plane' were one row."""
    from keck_tui.model import Row, Snapshot

    def row(level: str, rid: str, w: float, *kids: Row) -> Row:
        return Row(level=level, id=rid, name=rid, watts=w, watts_lo=w, watts_hi=w, children=kids)

    snaps = [Snapshot(time=T0 + i + 1, interval_s=1.0, host="fleet", model="remote", sources=(),
                      root=row("fleet", "fleet", 40.0, row("cluster", "prod", 10.0, row("node", "cp", 10.0)),
                               row("cluster", "lab", 30.0, row("node", "cp", 30.0))))
             for i in range(4)]
    r = report_file(write(tmp_path / "n.jsonl", snaps), "node", FLAT, fast=fast)
    assert {g.key: (g.name, g.where, round(g.joules, 9), g.peak_watts) for g in r.groups} == {
        "lab/cp": ("cp", "lab", 120.0, 30.0), "prod/cp": ("cp", "prod", 40.0, 10.0)}
    assert r.total.joules == pytest.approx(160.0)


def test_cli_since_nan_is_an_error(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: --since nan was accepted and silently meant no limit."""
    assert main(["report", str(rec), "--since", "nan"]) == 2
    assert "--since: not a unix time or ISO 8601 date: 'nan'" in capsys.readouterr().err
