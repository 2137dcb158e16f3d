"""Header, detail pane and history: exact wording and bounded memory."""
from __future__ import annotations

from dataclasses import replace

import pytest

import fake_fleet as ff
from keck_tui.model import Row, SourceStatus
from keck_tui.ui.detail import SYNTHETIC_WHY, detail_lines
from keck_tui.ui.header import HeaderState, header_lines, source_glyph
from keck_tui.ui.history import History
from keck_tui.ui.view import TreeView

NOW = ff.START_WALL + 100.0


def plain(lines) -> list[str]:
    return [t.plain for t in lines]


def test_measured_header_lines():
    snap = replace(ff.snapshot(0), time=NOW - 0.4)
    h = HeaderState(snapshot=snap, title=None, now=NOW, interval=1.0, price_per_kwh=0.30,
                    co2e_g_per_kwh=250.0, recording=True)
    l1, l2, l3 = plain(header_lines(h))
    assert l1 == " keck-top  node-7  ● REC   365.0 W ±28.8   CPU 241 · DRAM 31 · GPU 71 · platform 22"
    assert l2 == (" rapl ✓ nvml ✓ redfish ✓ ebpf ✓  · age <1 s · every 1 s · model frequency-weighted"
                  " · idle separate")
    assert l3 == " energy 122 Wh since start · €0.11/h · 91 gCO2e/h · sort watts"


def test_estimated_header_says_so_in_plain_words_and_goes_stale():
    snap = replace(ff.snapshot(0, estimated=True), time=NOW - 3.5)
    h = HeaderState(snapshot=snap, title="lab", now=NOW, interval=1.0, paused=True)
    l1, l2, _ = plain(header_lines(h, width=80))
    assert l1.startswith(" lab  ‖ PAUSED   ~365.0 W (estimated, ±40 %) — no power sensor; run keck-top doctor")
    assert "CPU ~241" in l1
    assert "rapl ✗ nvml ✗ estimate ~ procfs ✓" in l2 and "STALE: age 4 s" in l2
    assert h.stale
    assert not replace(h, now=NOW - 0.6).stale  # 2.9 s old: within 3 intervals
    assert not replace(h, interval=2.0).stale  # 3.5 s < 3 × 2 s


def test_header_before_the_first_sample_and_with_a_feed_error():
    h = HeaderState(snapshot=None, title=None, now=NOW, interval=1.0, feed_error="OSError: boom",
                    filter_text="vllm", threshold_w=3.6)
    l1, l2, l3 = plain(header_lines(h))
    assert "waiting for the first sample…" in l1 and l2.strip() == ""
    assert l3 == " sort watts · filter “vllm” · hiding < 3.6 W · feed error: OSError: boom"


@pytest.mark.parametrize("status,kind,glyph", [("ok", "measured", "✓"), ("ok", "estimated", "~"),
                                               ("unavailable", "measured", "✗"), ("error", "measured", "!")])
def test_source_glyphs(status, kind, glyph):
    assert source_glyph(SourceStatus("x", status, kind=kind)) == glyph


def _view_at(root: Row, path: tuple[str, ...]) -> TreeView:
    v = TreeView()
    v.set_root(root)
    for i in range(2, len(path)):
        v.overrides[path[:i]] = True
    v.rebuild()
    assert v.select(path)
    return v


def test_detail_of_a_process_with_history_and_cores():
    hist = History(span_s=600, points=60)
    path = ("node-7", "ml-serving", "pod/llm-0", "vllm", "4121")
    for step in range(5):
        hist.record(ff.START_WALL + 10 * step, ff.node_row(step))
    snap = ff.snapshot(4)
    v = _view_at(snap.root, path)
    lines = plain(detail_lines(v.current, snap, hist, 120, span_label="last 10 min"))
    assert lines[0].startswith(" vllm · process · pid 4121 · cmd: python -m vllm.entrypoints")
    watts = [w for _, w, _, _ in hist.series(path)]
    assert len(watts) == 5
    assert f"min {min(watts):.1f}  max {max(watts):.1f}  last 10 min" in lines[1]
    assert "now ±" in lines[2] and "(6.0 %)" in lines[2]
    assert lines[3] == " from model frequency-weighted · sources rapl, ebpf · GPU 71.0 W · 3520 MHz"
    assert lines[5].startswith(" 6 cores: core ")


def test_detail_explains_synthetic_rows():
    snap = ff.snapshot(0)
    v = _view_at(snap.root, ("node-7", "(platform)"))
    lines = plain(detail_lines(v.current, snap, History(), 120, span_label=""))
    assert lines[4] == " why  fans, PSU loss, disks — BMC minus components · " + SYNTHETIC_WHY["(platform)"]
    v = _view_at(snap.root, ("node-7", "(kernel)"))
    assert SYNTHETIC_WHY["(kernel)"] in plain(detail_lines(v.current, snap, History(), 120, span_label=""))[4]


def test_detail_of_a_hidden_rows_line():
    snap = ff.snapshot(0)
    v = TreeView()
    v.set_root(snap.root)
    v.toggle_threshold()
    i = next(i for i, ln in enumerate(v.lines) if ln.row is None)
    v.move_to(i)
    lines = plain(detail_lines(v.current, snap, History(), 120, span_label="", threshold_w=v.threshold_w))
    assert lines[0] == " 1 row below 3.6 W is hidden"
    assert lines[1] == " together 1.6 W — Enter or t shows them"


def test_history_is_bounded_and_forgets_vanished_rows():
    hist = History(span_s=100, points=10)  # one sample per 10 s, 10 at most
    root = ff.node_row()
    for i in range(30):
        hist.record(1000.0 + 5 * i, root)  # every 5 s: only every other one is kept
    series = hist.series(("node-7",))
    assert [t for t, *_ in series] == [1050.0 + 10 * k for k in range(10)]
    assert series[-1][1] == pytest.approx(root.watts, rel=1e-6)
    n_rows = ff.count_rows(root)
    assert len(hist) == n_rows
    small = replace(root, children=())
    hist.record(1200.0, small)
    hist.record(1301.0, small)  # the other rows were last seen more than a span ago
    assert len(hist) == 1


def test_history_backwards_time_records_again():
    hist = History(span_s=100, points=10)
    root = ff.node_row()
    assert hist.record(1000.0, root)
    assert not hist.record(1005.0, root)
    assert hist.record(900.0, root)  # a replay jumped back: not swallowed


def test_detail_sparkline_includes_the_current_sample():
    hist = History(span_s=600, points=60)  # one sample per 10 s
    hist.record(ff.START_WALL, replace(ff.node_row(0), watts=100.0, watts_lo=90.0, watts_hi=110.0))
    snap = replace(ff.snapshot(1), time=ff.START_WALL + 5)  # too soon for history, still shown
    v = _view_at(snap.root, ("node-7",))
    line = plain(detail_lines(v.current, snap, hist, 120, span_label=""))[1]
    assert f"now {snap.root.watts:.1f} W  min 100.0  max {snap.root.watts:.1f}" in line


def test_history_spread_picks_evenly_over_the_ring():
    hist = History(span_s=100, points=10)
    for i in range(10):
        hist.record(1000.0 + 10 * i, replace(ff.node_row(), watts=float(i), children=()))
    assert hist.spread(("node-7",), 4) == [0.0, 3.0, 6.0, 9.0]
    assert hist.spread(("node-7",), 20) == [float(i) for i in range(10)]
    assert hist.spread(("nope",), 4) == []


def test_trend_cell_is_a_sparkline_of_the_row_history():
    from keck_tui.ui.columns import CellContext, compute_layout, line_cells
    v = TreeView()
    v.set_root(ff.node_row())
    lay = compute_layout(159)
    assert "trend" in lay.keys()
    root = v.lines[0].row  # 365.0 W, bound 336.2…393.8 W
    ctx = CellContext(scale=400, total=400, trend=lambda path, n: [336.2, 365.0, 393.8, 365.0])
    assert (" ▁▅█▅      ", "trend") in line_cells(v.lines[0], lay, ctx)
    # a swing well inside the bound stays near the middle instead of filling the cell
    ctx = CellContext(scale=400, total=400, trend=lambda path, n: [364.0, 365.0, 366.0])
    assert (" ▄▅▅       ", "trend") in line_cells(v.lines[0], lay, ctx)
    assert root.watts_lo < 364.0 and root.watts_hi > 366.0


def test_header_and_detail_show_the_calibration_and_how_a_bound_is_made():
    snap = replace(ff.snapshot(4), time=NOW - 0.4,
                   extra={"calibration": {"model": "frequency-weighted", "status": "calibrating",
                                          "samples": 12, "needed": 60}})
    _, l2, _ = plain(header_lines(HeaderState(snapshot=snap, title=None, now=NOW, interval=1.0)))
    assert "model frequency-weighted (calibrating 12/60) · idle separate" in l2
    calibrated = {"model": "frequency-weighted", "status": "calibrated", "samples": 600, "needed": 60,
                  "rmse_w": 0.31, "r2": 0.9967}
    path = ("node-7", "ml-serving", "pod/llm-0", "vllm", "4121")
    root = snap.root

    def with_bound(row: Row) -> Row:
        if row.id == "4121":
            return replace(row, extra={"bound": {"sensor_w": 1.2, "idle_w": 0.1, "model_w": 0.8, "tick_w": 0.0,
                                                 "model": "measured"}})
        return replace(row, children=tuple(with_bound(c) for c in row.children))

    snap = replace(snap, root=with_bound(root), extra={"calibration": calibrated})
    _, l2, _ = plain(header_lines(HeaderState(snapshot=snap, title=None, now=NOW, interval=1.0)))
    assert "model frequency-weighted (calibrated: tracking ±0.3 W, R² 0.997)" in l2
    v = _view_at(snap.root, path)
    lines = plain(detail_lines(v.current, snap, History(), 160, span_label=""))
    assert "in quadrature: sensor ±1.2 · idle ±0.1 · model ±0.8 (measured)" in lines[2]
    assert lines[3].startswith(" from model frequency-weighted (calibrated: tracking ±0.3 W, R² 0.997) · ")
