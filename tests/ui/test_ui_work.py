"""The work columns (w) and the detail pane's work line: exact text, and the key in the app."""
from __future__ import annotations

from dataclasses import replace

from screen_text import screen_text
from ui_helpers import RecordingFeed
from keck_tui.clock import FakeClock
from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.ui.app import KeckApp
from keck_tui.ui.columns import CellContext, compute_layout, line_cells, work_cell, work_summary
from keck_tui.ui.view import TreeView
from ui_helpers import SETTINGS

WORK = {"name": "vllm", "source": "preset:vllm", "url": "http://127.0.0.1:8000/metrics", "unit": "token",
        "counter": "vllm:generation_tokens_total", "status": "ok", "why": None, "rate": 412.0, "units": 412.0,
        "total": 1.2e6, "window_s": 1.0, "age_s": 0.02, "watts": 210.0, "watts_lo": 190.0, "watts_hi": 230.0,
        "rows": 3, "j_per_unit": 0.509709, "j_per_unit_lo": 0.46, "j_per_unit_hi": 0.56, "units_per_j": 1.96,
        "cost_per_m": 0.0396, "co2e_g_per_m": 45.3, "currency": "€",
        "also": [{"unit": "prompt token", "rate": 2100.0, "j_per_unit": 0.1, "status": "ok"}]}


def _snap(work=WORK, t=1_700_000_000.0) -> Snapshot:
    server = Row("process", "pid-100", "python3 (100)", 210.0, 190.0, 230.0, pid=100, cmd="vllm serve m",
                 cpu_s=0.5, extra={"work": work})
    other = Row("process", "pid-200", "sshd (200)", 5.0, 4.5, 5.5, pid=200, cmd="sshd", cpu_s=0.1)
    root = Row("node", "n", "n", 215.0, 194.5, 235.5, children=(server, other))
    return Snapshot(time=t, interval_s=1.0, host="n", model="cpu-time",
                    sources=(SourceStatus("rapl", "ok"), SourceStatus("work", "ok", "vllm: 412 token/s")), root=root)


def test_work_cells_and_layout():
    lay = compute_layout(140, show_work=True, work_cost=True, show_trend=False)
    assert lay.keys()[-3:] == ("wrate", "jpu", "wcost")
    assert "wrate" not in compute_layout(140).keys()
    assert "wcost" not in compute_layout(140, show_work=True).keys()
    assert work_cell("wrate", WORK) == "412 tok" and work_cell("jpu", WORK) == "0.51 J"
    assert work_cell("wcost", WORK) == "0.040"
    assert work_cell("wrate", dict(WORK, status="error")) == "error"
    assert work_cell("wrate", dict(WORK, status="unavailable")) == "no ctr"
    assert work_cell("jpu", None) == ""
    view = TreeView()
    view.set_root(_snap().root)
    line = next(ln for ln in view.lines if ln.row is not None and ln.row.pid == 100)
    text = "".join(t for t, _ in line_cells(line, lay, CellContext(scale=250.0, total=215.0)))
    assert "412 tok" in text and "0.51 J" in text
    assert len(text) == lay.width


def test_detail_summary():
    text = work_summary(WORK)
    assert text.startswith("vllm (preset:vllm) 412 token/s · 0.51 J/token (0.46 J–0.56 J)")
    assert "1.96 token/s per W" in text and "45.3 gCO2e/M" in text and "over 3 rows 210.0 W" in text
    assert "prompt token 2.1k/s 0.1 J" in text
    err = work_summary(dict(WORK, status="error", rate=None, why="cannot connect: Connection refused"))
    assert err == ("vllm (preset:vllm) error: cannot connect: Connection refused · "
                   "http://127.0.0.1:8000/metrics")


async def test_w_toggles_the_work_columns_and_the_detail_pane_shows_the_work():
    clock = FakeClock(now=1000.0)
    feed = RecordingFeed([_snap()])
    app = KeckApp(feed, settings=replace(SETTINGS), clock=clock)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert "WORK/s" not in screen_text(app)
        await pilot.press("w")
        await pilot.pause()
        screen = screen_text(app)
        assert app.show_work and "WORK/s" in screen and "J/UNIT" in screen and "€/M" in screen
        assert "412 tok" in screen and "0.51 J" in screen
        # select the server's row: the detail pane shows the work line
        assert app.view.select(("n", "pid-100"))
        app.refresh_all()
        await pilot.pause()
        assert "work vllm (preset:vllm) 412 token/s" in screen_text(app)
        await pilot.press("w")
        await pilot.pause()
        assert "WORK/s" not in screen_text(app)
