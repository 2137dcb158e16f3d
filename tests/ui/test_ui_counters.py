"""The hardware-counter columns (e) and the detail pane's counters: exact text, and the key in the app."""
from __future__ import annotations

from dataclasses import replace

from screen_text import screen_text
from ui_helpers import SETTINGS, RecordingFeed
from keck_tui.clock import FakeClock
from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.ui.app import KeckApp
from keck_tui.ui.columns import CellContext, compute_layout, counter_cell, counter_summary, line_cells
from keck_tui.ui.view import TreeView

CORE = Row("core", "core-12", "core 12", 22.0, 20.0, 24.0, cpu=12, cpu_s=0.9, freq_mhz=3400.0,
           freq_source="cycles", instructions=1.2e9, llc_misses=4.0e4, ipc=1.5)


def _snap(counters: bool = True) -> Snapshot:
    core = CORE if counters else replace(CORE, instructions=None, llc_misses=None, ipc=None, freq_source="cpufreq")
    proc = Row("process", "pid-100", "solver (100)", 22.0, 20.0, 24.0, pid=100, cmd="solver", cpu_s=0.9,
               freq_mhz=3400.0, freq_source=core.freq_source, instructions=core.instructions, llc_misses=core.llc_misses, ipc=core.ipc,
               children=(core,))
    root = Row("node", "n", "n", 22.0, 20.0, 24.0, children=(proc,))
    status = (SourceStatus("counters", "ok", "perf_event_open per CPU: cycles, instructions") if counters else
              SourceStatus("counters", "unavailable", "no PMU: this CPU (or VM) exposes no hardware counter cycles"))
    return Snapshot(time=1_700_000_000.0, interval_s=1.0, host="n", model="full" if counters else "cpu-time",
                    sources=(SourceStatus("rapl", "ok"), status), root=root)


def test_counter_cells_layout_and_summary():
    lay = compute_layout(160, show_counters=True, show_trend=False)
    assert ("mhz", "insn", "ipc", "llc") == lay.keys()[lay.keys().index("mhz"):][:4]
    assert not {"insn", "ipc", "llc"} & set(compute_layout(160).keys())  # off by default
    assert counter_cell("insn", CORE) == "1.2G" and counter_cell("ipc", CORE) == "1.50"
    assert counter_cell("llc", CORE) == "40k"
    bare = Row("core", "c", "c", 1.0, 1.0, 1.0)
    assert counter_cell("insn", bare) == counter_cell("ipc", bare) == counter_cell("llc", bare) == ""
    assert counter_summary(CORE) == "3.4 GHz (cycles ÷ on-CPU time), 1.2G insn, IPC 1.50, 40k LLC miss"
    assert counter_summary(replace(CORE, freq_source="cpufreq", instructions=None, ipc=None, llc_misses=None)) \
        == "3.4 GHz (cpufreq)"
    view = TreeView()
    view.set_root(_snap().root)
    line = next(ln for ln in view.lines if ln.row is not None and ln.row.pid == 100)
    text = "".join(t for t, _ in line_cells(line, lay, CellContext(scale=25.0, total=22.0)))
    assert "1.2G" in text and "1.50" in text and "40k" in text and len(text) == lay.width
    # narrow terminals drop the counter columns before CPU% and WATTS
    assert "llc" not in compute_layout(70, show_counters=True).keys()


async def test_e_toggles_the_counter_columns_and_the_detail_pane_zooms_into_a_core():
    app = KeckApp(RecordingFeed([_snap()]), settings=replace(SETTINGS), clock=FakeClock(now=1000.0))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert "LLC MISS" not in screen_text(app)
        await pilot.press("e")
        await pilot.pause()
        screen = screen_text(app)
        assert app.show_counters and "INSN" in screen and "IPC" in screen and "LLC MISS" in screen
        assert "1.2G" in screen and "40k" in screen
        assert app.view.select(("n", "pid-100"))
        app.refresh_all()
        await pilot.pause()
        screen = screen_text(app)
        assert "sources rapl, counters · 3.4 GHz (cycles ÷ on-CPU time), 1.2G insn, IPC 1.50" in screen
        assert "core 12: 22.0 W (3.4 GHz (cycles ÷ on-CPU time), 1.2G insn, IPC 1.50, 40k LLC miss)" in screen
        await pilot.press("e")
        await pilot.pause()
        assert "LLC MISS" not in screen_text(app)


async def test_e_without_counters_says_why():
    app = KeckApp(RecordingFeed([_snap(counters=False)]), settings=replace(SETTINGS), clock=FakeClock(now=1000.0))
    messages = []
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        app.notify = lambda message, **kw: messages.append(message)  # type: ignore[method-assign]
        await pilot.press("e")
        await pilot.pause()
    assert messages == ["no hardware counters: no PMU: this CPU (or VM) exposes no hardware counter cycles"]
