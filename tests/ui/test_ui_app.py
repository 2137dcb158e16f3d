"""Pilot tests: every key changes the state it should (not only pixels)."""
from __future__ import annotations

from dataclasses import replace

import fake_fleet as ff
from ui_helpers import SETTINGS, RecordingFeed, make_app
from screen_text import screen_text
from keck_tui.model import Row, Snapshot
from keck_tui.ui.app import KeckApp
from keck_tui.ui.help import HelpScreen

SIZE = (120, 40)


async def test_starts_with_header_tree_and_selection(clock):
    app, feed = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "node-7" in text and "365.0 W ±28.8" in text
        assert "CPU 241 · DRAM 31 · GPU 71 · platform 22" in text
        assert "rapl ✓ nvml ✓ redfish ✓ ebpf ✓" in text
        assert "ebpf ✓  · age <1 s · every 1 s · model frequency-weighted · idle separate" in text
        assert "€0.11/h · 91 gCO2e/h" in text
        assert app.view.selected == ("node-7",)
        assert app.applied == 1


async def test_arrow_keys_enter_and_left(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down")
        assert app.view.selected == ("node-7", "ml-serving", "pod/llm-0")
        await pilot.press("enter")
        assert app.view.lines[app.view.cursor].expanded
        await pilot.press("right")  # open row: step to the first child
        assert app.view.selected == ("node-7", "ml-serving", "pod/llm-0", "vllm")
        await pilot.press("right", "right")
        assert app.view.selected == ("node-7", "ml-serving", "pod/llm-0", "vllm", "4121")
        await pilot.press("right", "right")
        core = app.view.selected
        assert core[:-1] == ("node-7", "ml-serving", "pod/llm-0", "vllm", "4121") and core[-1].startswith("core")
        assert app.view.lines[app.view.cursor].row.level == "core"
        assert "core 3" in screen_text(app)
        await pilot.press("left")  # leaf: to the parent
        assert app.view.selected == ("node-7", "ml-serving", "pod/llm-0", "vllm", "4121")
        await pilot.press("left")  # open: collapse
        assert not app.view.lines[app.view.cursor].expanded
        await pilot.press("end")
        assert app.view.selected == ("node-7", "(platform)")
        await pilot.press("home")
        assert app.view.selected == ("node-7",)
        await pilot.press("pagedown")
        assert app.view.cursor > 5


async def test_zoom_and_breadcrumb_keys(clock):
    app, _ = make_app(clock, fleet=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "z")
        assert app.view.zoom == ("fleet", "cluster-a", "node-7")
        assert "fleet › cluster-a › node-7" in screen_text(app)
        await pilot.press("down", "down", "z")
        assert app.view.zoom == ("fleet", "cluster-a", "node-7", "ml-serving", "pod/llm-0")
        assert "fleet › cluster-a › node-7 › ml-serving › pod/llm-0" in screen_text(app)
        await pilot.press("u")
        assert app.view.zoom == ("fleet", "cluster-a", "node-7", "ml-serving")
        await pilot.press("backspace")
        assert app.view.zoom == ("fleet", "cluster-a", "node-7")
        assert app.view.selected == ("fleet", "cluster-a", "node-7", "ml-serving")


async def test_sort_cycles(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        seen = []
        for _ in range(4):
            await pilot.press("s")
            seen.append(app.view.sort_key)
        assert seen == ["cpu", "name", "energy", "watts"]
        await pilot.press("s", "s")
        assert [ln.row.id for ln in app.view.lines if ln.depth == 1] == [
            "batch", "kube-system", "ml-serving", "system.slice", "(kernel)", "(idle)", "(platform)"]
        assert "sort name" in screen_text(app)


async def test_filter_is_incremental_and_escape_clears(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", "e", "n", "v")
        assert app.view.filter_text == "env"
        assert [ln.row.name for ln in app.view.lines][-1] == "envoy"
        await pilot.press("o")
        assert app.view.filter_text == "envo"
        await pilot.press("enter")  # keep the filter, back to the tree
        assert app.focused is app.power_tree and app.view.filter_text == "envo"
        await pilot.press("s")  # keys act on the tree again
        assert app.view.sort_key == "cpu"
        await pilot.press("escape")
        assert app.view.filter_text == "" and len(app.view.lines) == 14


async def test_threshold_pause_cost_detail_keys(clock):
    app, feed = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        assert app.view.threshold_on and any(ln.row is None for ln in app.view.lines)
        assert "hiding < 3.6 W" in screen_text(app)
        await pilot.press("t")
        assert not app.view.threshold_on
        await pilot.press("p")
        assert app.paused and "PAUSED" in screen_text(app)
        feed.snaps.append(ff.snapshot(7, clock=clock))
        feed.index += 1
        app.poll_feed()
        assert app.snapshot is feed.snaps[0]  # paused: not applied
        await pilot.press("p")
        assert not app.paused and app.snapshot is feed.snaps[1]
        await pilot.press("c")
        assert app.show_cost and app.power_tree.current_layout().keys()[-2:] == ("cost", "co2")
        assert "€/h" in screen_text(app)
        shown = app.query_one("#detail").display
        await pilot.press("i")
        assert app.query_one("#detail").display is (not shown)


async def test_interval_keys_call_the_feed(clock):
    app, feed = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus")
        await pilot.press("plus")
        await pilot.press("minus")
        assert feed.intervals == [0.5, 0.25, 0.5]
        assert "every 0.5 s" in screen_text(app)


async def test_record_toggle_calls_back_and_shows_state(clock):
    calls = []

    def toggle(want: bool) -> bool:
        calls.append(want)
        return want

    app, _ = make_app(clock, on_record_toggle=toggle)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert app.recording and "● REC" in screen_text(app)
        await pilot.press("r")
        assert not app.recording and calls == [True, False]


async def test_record_refusal_keeps_state(clock):
    def toggle(want: bool) -> bool:
        raise OSError("disk full")

    app, _ = make_app(clock, on_record_toggle=toggle)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert not app.recording


async def test_help_screen_opens_and_closes(clock):
    app, feed = make_app(clock)
    app._feed_for_test = feed
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        clock.advance(1.0)  # a new snapshot while help is open updates the screen below
        app._feed_for_test.snaps.append(ff.snapshot(1, clock=clock))
        app._feed_for_test.index += 1
        app.poll_feed()
        assert app.applied == 2
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_q_and_ctrl_c_exit_zero(clock):
    for key in ("q", "ctrl+c"):
        app, _ = make_app(clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press(key)
            await pilot.pause()
        assert app.return_code == 0, key


async def test_theme_toggle(clock):
    app, _ = make_app(clock, settings=replace(SETTINGS, theme="light"))
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "textual-light"
        await pilot.press("T")
        assert app.theme == "textual-dark"


async def test_stale_and_estimated_header(clock):
    app, feed = make_app(clock, estimated=True)
    async with app.run_test(size=SIZE) as pilot:
        text = screen_text(app)
        assert "~365.0 W (estimated, ±40 %) — no power sensor; run keck-top doctor" in text
        assert "estimate ~" in text and "rapl ✗" in text
        assert "STALE" not in text
        clock.advance(5.0)  # 5.3 s old at a 1 s interval: more than 3 intervals
        app.poll_feed()
        await pilot.pause()
        assert "STALE: age 5 s" in screen_text(app)
        assert app.query_one("#header").has_class("-stale")


async def test_selection_survives_new_snapshots(clock):
    app, feed = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "enter", "down")
        sel = app.view.selected
        for step in range(1, 4):
            clock.advance(1.0)
            feed.snaps.append(ff.snapshot(step, clock=clock))
            feed.index += 1
            app.poll_feed()
        assert app.applied == 4 and app.view.selected == sel
        # one history step is 10 min / 240 = 2.5 s: samples at 999.7 s and 1002.7 s only
        assert [round(t - clock.wall_offset, 1) for t, *_ in app.history.series(sel)] == [999.7, 1002.7]
        await pilot.pause()


async def test_history_fills_and_shows_in_detail(clock):
    app, feed = make_app(clock, history_points=4)  # 10 min / 4 points: one sample per 150 s
    async with app.run_test(size=SIZE):
        for step in range(1, 4):
            clock.advance(150.0)
            app.show_snapshot(ff.snapshot(step, clock=clock))
        assert len(app.history.series(("node-7",))) == 4
        text = screen_text(app)
        assert "watts  " in text and "min " in text and "max " in text


async def test_mouse_click_selects_and_toggles(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=SIZE) as pilot:
        tree = app.power_tree
        await pilot.click(tree, offset=(10, 2))
        assert app.view.selected == ("node-7", "ml-serving", "pod/llm-0")
        await pilot.click(tree, offset=(4, 2))  # on the ▸ marker
        assert app.view.lines[app.view.cursor].expanded


async def test_lazy_rows_request_their_subtree(clock):
    lazy = Row(level="node", id="n1", name="n1", watts=5, watts_lo=4, watts_hi=6, has_children=True)
    root = Row(level="cluster", id="c", name="c", watts=5, watts_lo=4, watts_hi=6, children=(lazy,))
    snap = Snapshot(time=clock.wall(), interval_s=1.0, host="c", model="", sources=(), root=root)
    feed = RecordingFeed([snap], lazy=True)
    app = KeckApp(feed, settings=SETTINGS, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert feed.subtrees == [("c", "n1")]


async def test_command_palette_lists_keck_commands(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=SIZE):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Sort by watts", "Sort by energy", "Zoom out", "Toggle cost columns",
                "Record on/off", "Pause / resume"} <= set(titles)


async def test_columns_collapse_at_80x24(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        keys = app.power_tree.current_layout().keys()
        assert keys == ("watts", "bound", "range", "share", "cpu", "mhz")
        assert not app.query_one("#detail").display  # auto-hidden on small terminals
    app, _ = make_app(clock)
    async with app.run_test(size=(160, 50)) as pilot:
        assert app.power_tree.current_layout().keys() == (
            "watts", "bound", "range", "trend", "share", "cpu", "mhz", "gpu", "energy")


def test_run_tui_starts_and_stops_the_feed(clock, monkeypatch):
    from keck_tui.ui import app as app_mod

    def fake_run(self):
        self.exit(0)
        return 0

    import gc
    monkeypatch.setattr(app_mod.KeckApp, "run", fake_run)
    feed = RecordingFeed(ff.series(1, clock))
    before = gc.get_threshold()
    try:
        assert app_mod.run_tui(feed, settings=SETTINGS) == 0
        assert gc.get_threshold() == app_mod.GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
    assert feed.started == 1 and feed.stopped == 1


async def test_no_color_keeps_every_state_in_words_and_glyphs(clock, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app(clock, estimated=True)
    async with app.run_test(size=SIZE) as pilot:
        clock.advance(7.0)
        app.poll_feed()
        await pilot.press("p")
        text = screen_text(app)
        assert app.no_color
        for words in ("(estimated, ±40 %)", "STALE: age 7 s", "PAUSED", "rapl ✗", "estimate ~", "~365.0",
                      "(idle)", "▾ node-7"):
            assert words in text, words


async def test_clicking_a_crumb_zooms_and_a_title_sorts(clock):
    app, _ = make_app(clock, fleet=True)
    async with app.run_test(size=SIZE) as pilot:
        app.zoom_to(("fleet", "cluster-a", "node-7"))
        await pilot.pause()
        crumb = app.query_one("#breadcrumb")
        assert [p for _, _, p in crumb.spans] == [("fleet",), ("fleet", "cluster-a"),
                                                 ("fleet", "cluster-a", "node-7")]
        start, _, _ = crumb.spans[1]
        await pilot.click(crumb, offset=(start + 1, 0))
        assert app.view.zoom == ("fleet", "cluster-a")
        header = app.column_header
        lay = app.power_tree.current_layout()
        cpu_x = lay.name_width + sum(c.width + 1 for c in lay.columns[:4]) + 2  # inside CPU%
        assert header.column_at(cpu_x) == "cpu"
        await pilot.click(header, offset=(cpu_x, 0))
        assert app.view.sort_key == "cpu"
        await pilot.click(header, offset=(3, 0))
        assert app.view.sort_key == "name"


async def test_new_data_keeps_the_selection_on_its_screen_row_and_respects_scrolling(clock):
    big = [ff.big_snapshot(step, time=clock.wall(), n_target=600) for step in range(3)]
    feed = RecordingFeed(big[:1])
    app = KeckApp(feed, settings=SETTINGS, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.power_tree
        await pilot.press(*["down"] * 8, "enter", *["down"] * 30)
        row_before = tree.cursor_screen_row()
        sel = app.view.selected
        index_before = app.view.cursor
        assert row_before is not None and len(app.view.lines) > 60
        # the same rows in another order: the selected one moves in the list, not on screen
        feed.snaps.append(big[1])
        feed.index = 1
        app.poll_feed()
        await pilot.pause()
        assert app.view.selected == sel
        assert app.view.cursor != index_before  # it did move in the list
        assert tree.cursor_screen_row() == row_before
        # scrolled away with the wheel: the next snapshot leaves the view where it is
        tree.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        feed.snaps.append(big[2])
        feed.index = 2
        app.poll_feed()
        await pilot.pause()
        assert round(tree.scroll_y) == 0 and tree.cursor_screen_row() is None


async def test_a_stale_remote_node_says_so_and_why(clock):
    feed = RecordingFeed([ff.snapshot(0, clock=clock, fleet=True, stale_node=True)])
    app = KeckApp(feed, settings=SETTINGS, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "node-1 [stale 42 s]" in screen_text(app)
        app.view.select(("fleet", "cluster-b", "node-1"))
        app.refresh_all()
        await pilot.pause()
        assert "! stale: no fresh data for 42 s" in screen_text(app)


async def test_vim_keys_and_paging(clock):
    app, _ = make_app(clock)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("j", "j")
        assert app.view.selected == ("node-7", "ml-serving", "pod/llm-0")
        await pilot.press("l")
        assert app.view.lines[app.view.cursor].expanded
        await pilot.press("h")
        assert not app.view.lines[app.view.cursor].expanded
        await pilot.press("k")
        assert app.view.selected == ("node-7", "ml-serving")
        step = app.power_tree.scrollable_content_region.height - 1
        n = len(app.view.lines)
        await pilot.press("pagedown")
        assert app.view.cursor == min(n - 1, 1 + step) and app.view.cursor > 1
        await pilot.press("pageup")
        assert app.view.cursor == max(0, min(n - 1, 1 + step) - step)


async def test_a_feed_that_raises_shows_the_error_and_keeps_the_last_sample(clock):
    app, feed = make_app(clock)

    def broken():
        raise ConnectionError("agent went away")

    async with app.run_test(size=SIZE) as pilot:
        shown = app.snapshot
        feed.latest = broken
        app.poll_feed()
        await pilot.pause()
        assert app.snapshot is shown
        assert "feed error: ConnectionError: agent went away" in screen_text(app)


async def test_d_lists_sources_with_their_fix(clock):
    from dataclasses import replace as _replace

    from keck_tui.model import SourceStatus
    from keck_tui.ui.help import SourcesScreen
    snap = ff.snapshot(0, clock=clock, estimated=True)
    rapl = SourceStatus("rapl", "unavailable", "no /sys/class/powercap",
                        extra={"fix": "modprobe intel_rapl_common"})
    snap = _replace(snap, sources=(rapl,) + snap.sources[1:])
    app = KeckApp(RecordingFeed([snap]), settings=SETTINGS, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d")
        assert isinstance(app.screen, SourcesScreen)
        text = screen_text(app)
        assert "No measured power source" in text
        assert "✗ rapl" in text and "no /sys/class/powercap" in text
        assert "fix: modprobe intel_rapl_common" in text
        await pilot.press("d")
        assert not isinstance(app.screen, SourcesScreen)


async def test_cost_follows_the_price_schedule(clock):
    """A time-of-day schedule (config price_schedule) sets the rates shown, not the flat price."""
    sched = replace(SETTINGS, price_schedule=({"from": "00:00", "price_per_kwh": 0.90, "co2e_g_per_kwh": 400.0},))
    app, _ = make_app(clock, settings=sched)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.rates_now() == (0.90, 400.0)
        assert "€0.33/h · 146 gCO2e/h" in screen_text(app)


async def test_panel_lines_are_the_cells_and_styles_textual_would_render(clock):
    """The header/detail/breadcrumb lines skip Textual's Content conversion (line_strip); each
    line must be what Textual's own rendering of the panel makes of it: text, styles, the
    ellipsis when cut, and each segment's text offset (where a mouse selection starts)."""
    from textual.widget import Widget

    from keck_tui.ui.widgets import TextPanel

    snaps = [ff.snapshot(step, clock=clock, fleet=fleet) for step in range(2) for fleet in (False, True)]
    compared = 0
    for size in ((120, 45), (70, 45), (25, 45)):
        app, _ = make_app(clock, auto_poll=False)
        async with app.run_test(size=size) as pilot:
            for theme in ("textual-dark", "textual-light"):
                app.theme = theme
                for snap in snaps:
                    app.show_snapshot(snap)
                    await pilot.pause()
                    for name in ("header", "detail", "breadcrumb"):
                        panel = app._panels[name]
                        if not panel.display:
                            continue
                        panel._strips.clear()
                        width, base = panel.size.width, panel.visual_style.rich_style
                        for y in range(len(panel._lines)):
                            textual = Widget.render_line(panel, y).extend_cell_length(width, base)
                            ours = TextPanel.render_line(panel, y)
                            assert ours.cell_length == textual.cell_length == width
                            assert [(s.text, s.style) for s in ours.simplify() if s.text] == \
                                   [(s.text, s.style) for s in textual.simplify() if s.text], (size, name, y)
                            compared += 1
    assert compared > 100


async def test_a_feed_that_tells_of_snapshots_shows_them_at_once_and_is_polled_once_a_second(clock):
    import asyncio
    import threading

    from keck_tui.feed import ThreadedFeed
    from keck_tui.ui import app as app_module

    snaps = iter(ff.series(3, clock))
    feed = ThreadedFeed(lambda: next(snaps), interval=3600.0)  # never started: steps are ours
    feed._step()
    app = KeckApp(feed, settings=SETTINGS, clock=clock)
    polls: list[float] = []
    real_poll = app.poll_feed

    def counting_poll() -> None:
        polls.append(asyncio.get_running_loop().time())
        real_poll()

    app.poll_feed = counting_poll  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        first = app.snapshot
        assert first is not None
        worker = threading.Thread(target=feed._step)  # the feed's own thread produces the next one
        worker.start()
        worker.join()
        await pilot.pause()
        assert app.snapshot is feed.latest() and app.snapshot is not first  # no poll tick needed
        polls.clear()
        await asyncio.sleep(1.2)
        assert 1 <= len(polls) <= 2  # the age in the header, once a second (a polling app: 4-5)
    assert app_module.AGE_POLL_S == 1.0
