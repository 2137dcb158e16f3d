"""The keck-top Textual app and its entry point ``run_tui``.

The app never blocks on I/O: a timer polls ``feed.latest()`` (which never
blocks) a few times a second and applies a snapshot only when it is new.
Everything the screen shows is derived from (snapshot, TreeView state,
History, clock), so tests drive it with a StaticFeed and a FakeClock.

Extending (the replay timeline does this): subclass ``KeckApp``, add
``BINDINGS`` and override ``compose_extra()`` to add widgets above the
footer; call ``show_snapshot(snap)`` to display any snapshot, and pass
``auto_poll=False`` to stop the app from reading the feed by itself.
"""
from __future__ import annotations

import gc
from typing import Callable, Iterable, Type

from rich.style import Style
from textual.app import App, ComposeResult, SystemCommand
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.binding import Binding
from textual.driver import Driver
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input

from keck_tui.clock import Clock, SystemClock
from keck_tui.common.text import terminal_safe
from keck_tui.config import Settings, tariff_from_settings
from keck_tui.feed import SnapshotFeed
from keck_tui.model import Snapshot
from keck_tui.ui.columns import CellContext, needs_gpu_column
from keck_tui.ui.detail import detail_lines
from keck_tui.ui.header import HeaderState, header_lines
from keck_tui.ui.help import HelpScreen, SourcesScreen
from keck_tui.ui.history import History
from keck_tui.ui.view import SORT_KEYS, Path, TreeView
from keck_tui.ui.widgets import Breadcrumb, ColumnHeader, PowerTree, TextPanel

#: Refresh intervals that `+` and `-` step through (seconds).
INTERVAL_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: A feed that cannot tell the app of new snapshots is polled this often (how late one appears).
POLL_S = 0.25
#: One that can (``subscribe``): polled only to bring the header's age (whole seconds) up to date.
AGE_POLL_S = 1.0
DETAIL_AUTO_MIN_HEIGHT = 30  # below this the detail pane starts hidden

RecordToggle = Callable[[bool], "bool | None"]


class SnapshotReady(Message):
    """The feed has a new snapshot (posted from the feed's thread)."""


class KeckApp(App[int]):
    """Live power tree over a SnapshotFeed."""

    CSS_PATH = "app.tcss"
    TITLE = "keck-top"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("q", "quit_clean", "quit"),
        Binding("ctrl+c", "quit_clean", "quit", show=False, priority=True),
        Binding("question_mark", "help", "help"),
        Binding("d", "sources", "sources", show=False),
        Binding("z", "zoom_in", "zoom"),
        Binding("u,backspace", "zoom_out", "up", key_display="u"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("s", "cycle_sort", "sort"),
        Binding("t", "threshold", "small rows"),
        Binding("c", "cost", "cost"),
        Binding("w", "work", "work", show=False),
        Binding("e", "counters", "counters", show=False),
        Binding("p", "pause", "pause"),
        Binding("r", "record", "record"),
        Binding("i", "detail", "detail"),
        Binding("plus,equals_sign", "faster", "rate", key_display="+-"),
        Binding("minus", "slower", "slower", show=False),
        Binding("T", "toggle_theme", "theme", show=False),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def get_driver_class(self) -> Type[Driver]:
        """Textual's driver, but on Linux/macOS one whose input thread sleeps while nobody
        types (keck_tui/ui/driver.py)."""
        chosen = super().get_driver_class()
        try:
            from textual.drivers.linux_driver import LinuxDriver

            from keck_tui.ui.driver import QuietLinuxDriver
        except ImportError:  # no termios (Windows)
            return chosen
        return QuietLinuxDriver if chosen is LinuxDriver else chosen

    def __init__(self, feed: SnapshotFeed, *, settings: Settings | None = None,
                 title: str | None = None, clock: Clock | None = None,
                 on_record_toggle: RecordToggle | None = None,
                 auto_poll: bool = True, history_points: int = 240) -> None:
        super().__init__()
        self.feed = feed
        self.settings = settings or Settings()
        # Prices and carbon intensity may follow a time-of-day schedule (config price_schedule).
        self.tariff = tariff_from_settings(self.settings)
        self.header_title = None if title is None else terminal_safe(title)
        self.clock = clock or SystemClock()
        self.on_record_toggle = on_record_toggle
        self.auto_poll = auto_poll
        self.view = TreeView()
        self.history = History(span_s=self.settings.history_minutes * 60.0, points=history_points)
        self.snapshot: Snapshot | None = None
        self._last_from_feed: Snapshot | None = None
        self._poll_error: str | None = None
        self._header_drawn: tuple[object, ...] | None = None  # what the header shows (refresh_header)
        self.session_start: float | None = None
        self.paused = False
        self.recording = False
        self.show_cost = False
        self.show_work = False
        self.show_counters = False
        self.detail_mode: bool | None = None  # None: automatic by terminal height
        self.applied = 0  # snapshots applied (tests, benchmarks)
        self.theme = "textual-light" if self.settings.theme == "light" else "textual-dark"

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's notify, but plain text by default: messages quote row ids, paths and a
        peer's errors, and "[bold]" or "[link=…]" in a remote pod's name must show as written."""
        super().notify(terminal_safe(message), title=terminal_safe(title), severity=severity,
                       timeout=timeout, markup=markup)

    # ---- composition ----------------------------------------------------
    def compose(self) -> ComposeResult:
        # Widgets are kept by reference: `query_one` searches the *active* screen,
        # which is the help screen while it is open.
        self._panels = {name: TextPanel(id=name) for name in ("header", "detail")}
        self._panels["breadcrumb"] = Breadcrumb(id="breadcrumb")
        self.power_tree = PowerTree(self.view, id="tree")
        self.column_header = ColumnHeader(self.power_tree, id="columns")
        self.filter_box = Input(placeholder="filter rows by name (Enter keeps it, Esc clears)",
                                id="filter", compact=True)
        yield self._panels["header"]
        yield self._panels["breadcrumb"]
        yield self.column_header
        yield self.power_tree
        yield self._panels["detail"]
        yield self.filter_box
        yield from self.compose_extra()
        yield Footer(compact=True)

    def compose_extra(self) -> Iterable[Widget]:
        """Hook for subclasses: widgets placed above the footer."""
        return ()

    def on_mount(self) -> None:
        self.power_tree.currency = self.settings.currency
        self.filter_box.display = False
        self.power_tree.focus()
        self._apply_detail_visibility()
        # Back from SIGTSTP/SIGCONT the terminal holds someone else's screen: paint it all
        # (the panels and the tree otherwise send only the lines that changed).
        self.app_resume_signal.subscribe(self, self._repaint_after_resume)
        if self.auto_poll:
            self.poll_feed()
            subscribe = getattr(self.feed, "subscribe", None)
            if callable(subscribe):  # told of each snapshot: poll only for the header's age
                subscribe(self._snapshot_ready)
                self.set_interval(AGE_POLL_S, self.poll_feed)
            else:
                self.set_interval(POLL_S, self.poll_feed)
        self.refresh_all()

    def on_resize(self) -> None:
        self._apply_detail_visibility()
        self.call_after_refresh(self.refresh_all)

    # ---- data flow ------------------------------------------------------
    @property
    def interval(self) -> float:
        return float(getattr(self.feed, "interval", self.settings.interval))

    def _repaint_after_resume(self, _app: object) -> None:
        self.screen.refresh(layout=True)

    def _snapshot_ready(self) -> None:
        """On the feed's thread: have the app's loop take the new snapshot (post_message is
        thread-safe and never blocks; it is dropped once the app is closing)."""
        self.post_message(SnapshotReady())

    def on_snapshot_ready(self, _message: "SnapshotReady") -> None:
        self.poll_feed()

    def poll_feed(self) -> None:
        """Timer callback: apply the newest snapshot if there is one, else update the age."""
        try:
            snap = None if self.paused else self.feed.latest()
        except Exception as exc:  # noqa: BLE001 - a broken feed must not take the screen down
            self._poll_error = terminal_safe(f"{type(exc).__name__}: {exc}")
            snap = None
        else:
            self._poll_error = None
        if snap is not None and snap is not self._last_from_feed:
            self._last_from_feed = snap
            self.show_snapshot(snap)
        else:
            self.refresh_header()

    def show_snapshot(self, snap: Snapshot) -> None:
        """Display ``snap`` (replay calls this directly); selection etc. are kept by id path."""
        first = self.snapshot is None
        self.snapshot = snap
        if self.session_start is None or snap.time < self.session_start:
            self.session_start = snap.time
        self.history.record(snap.time, snap.root)
        gpu = needs_gpu_column(snap.root)
        columns_changed = gpu != self.power_tree.show_gpu or first
        self.power_tree.show_gpu = gpu
        # New data must not move the selection on screen (a jumping tree is unusable),
        # nor drag the view back to it when the user scrolled away.
        screen_row = self.power_tree.cursor_screen_row() if self.is_mounted else None
        self.view.set_root(snap.root)
        self.applied += 1
        self.refresh_all(columns_changed=columns_changed, anchor=screen_row if not first else None,
                         follow=first)

    def refresh_all(self, columns_changed: bool = False, *, anchor: int | None = None,
                    follow: bool = True) -> None:
        """Repaint everything; ``anchor`` keeps the selection on that screen row, and
        ``follow=False`` leaves the scroll position alone otherwise."""
        if not self.is_mounted or self._panel("header") is None:
            return
        self._update_ctx()
        self.power_tree.sync(columns_changed=columns_changed, anchor=anchor, follow=follow)
        self.column_header.sync()
        self.refresh_header()
        self.refresh_breadcrumb()
        self.refresh_detail()
        self._request_subtrees()

    def _update_ctx(self) -> None:
        z = self.view.zoom_row
        s = self.settings
        price, co2e = self.rates_now()
        self.power_tree.ctx = CellContext(
            scale=max(z.watts_hi, z.watts) if z is not None else 1.0,
            total=z.watts if z is not None else 1.0,
            estimated=bool(self.snapshot and self.snapshot.estimated),
            price_per_kwh=price, co2e_g_per_kwh=co2e, currency=s.currency,
            trend=self.history.spread)

    def _styles(self, widget: Widget) -> dict[str, Style | str]:
        styles = widget.styles_map() if isinstance(widget, TextPanel) else {}
        if not styles:  # not computed yet: repaint once they are
            self.call_after_refresh(self.refresh_header)
        return styles  # type: ignore[return-value]

    def rates_now(self) -> tuple[float | None, float | None]:
        """(price per kWh, g CO2e per kWh) in force at the shown snapshot's time."""
        t = self.snapshot.time if self.snapshot is not None else self.clock.wall()
        return self.tariff.rates_at(t)

    def header_state(self) -> HeaderState:
        s = self.settings
        price, co2e = self.rates_now()
        return HeaderState(
            snapshot=self.snapshot, title=self.header_title, now=self.clock.wall(),
            interval=self.interval, paused=self.paused, recording=self.recording,
            session_start=self.session_start, price_per_kwh=price, currency=s.currency,
            co2e_g_per_kwh=co2e, sort_key=self.view.sort_key,
            filter_text=self.view.filter_text,
            threshold_w=self.view.threshold_w if self.view.threshold_on else None,
            feed_error=self._poll_error or _feed_error(self.feed))

    def _panel(self, name: str) -> TextPanel | None:
        """A panel of the main screen, or None while it is not there (start, exit)."""
        panels = getattr(self, "_panels", None)
        panel = None if panels is None else panels.get(name)
        return panel if panel is not None and panel.is_mounted else None

    def refresh_header(self) -> None:
        panel = self._panel("header") if self.is_mounted else None
        if panel is None:
            return
        state = self.header_state()
        styles = self._styles(panel)
        # The timer asks four times a second; the lines change at most once a second
        # between samples (the age), so most calls build nothing.
        drawn = (state.snapshot, styles, self.size.width, state.shown())
        last = self._header_drawn
        if last is not None and last[0] is drawn[0] and last[1] is drawn[1] and last[2:] == drawn[2:]:
            return
        self._header_drawn = drawn
        panel.set_class(state.stale, "-stale")
        panel.show_lines(header_lines(state, styles, width=self.size.width))

    def refresh_breadcrumb(self) -> None:
        from rich.text import Text
        panel = self._panel("breadcrumb")
        if panel is None:
            return
        styles = self._styles(panel)
        text = Text(" ", no_wrap=True, overflow="ellipsis")
        crumbs = self.view.breadcrumb()
        spans = []
        for i, (path, name) in enumerate(crumbs):
            if i:
                text.append(" › ", styles.get("dim", ""))
            spans.append((len(text), len(text) + len(name), path))
            text.append(name, styles.get("title", "") if i == len(crumbs) - 1 else "")
        if isinstance(panel, Breadcrumb):
            panel.spans = spans
        if len(crumbs) > 1:
            text.append("   (u: zoom out)", styles.get("dim", ""))
        panel.show_lines([text])

    def refresh_detail(self) -> None:
        panel = self._panel("detail")
        if panel is None or not panel.display:
            return
        minutes = self.settings.history_minutes
        panel.show_lines(detail_lines(
            self.view.current, self.snapshot, self.history, panel.size.width or self.size.width,
            span_label=f"last {minutes:g} min", threshold_w=self.view.threshold_w,
            styles=self._styles(panel)))

    def _request_subtrees(self) -> None:
        paths = self.view.take_pending_subtrees()
        request = getattr(self.feed, "request_subtree", None)
        if request is None:
            return
        for path in paths:
            try:
                request(tuple(path))
            except Exception as exc:  # noqa: BLE001 - a remote hiccup must not kill the UI
                self.notify(f"could not load {'/'.join(path)}: {exc}", severity="error")

    def _apply_detail_visibility(self) -> None:
        panel = self._panel("detail")
        if panel is None:
            return
        show = self.detail_mode if self.detail_mode is not None else self.size.height >= DETAIL_AUTO_MIN_HEIGHT
        panel.display = show

    def on_breadcrumb_clicked(self, message: Breadcrumb.Clicked) -> None:
        self.zoom_to(message.path)

    def on_column_header_sort_clicked(self, message: ColumnHeader.SortClicked) -> None:
        self.set_sort(message.key)

    def on_power_tree_changed(self, message: PowerTree.Changed) -> None:
        self.refresh_detail()
        self._request_subtrees()

    # ---- actions ----------------------------------------------------------
    def action_quit_clean(self) -> None:
        self.exit(0)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_sources(self) -> None:
        if not isinstance(self.screen, (HelpScreen, SourcesScreen)):
            self.push_screen(SourcesScreen(self.snapshot))

    def action_zoom_in(self) -> None:
        if self.view.zoom_in():
            self.refresh_all()
        else:
            self.notify("nothing to zoom into here", timeout=2)

    def action_zoom_out(self) -> None:
        if self.view.zoom_out():
            self.refresh_all()

    def zoom_to(self, path: Path) -> bool:
        ok = self.view.zoom_to(path)
        if ok:
            self.refresh_all()
        return ok

    def action_cycle_sort(self) -> None:
        self.view.cycle_sort()
        self.refresh_all()

    def set_sort(self, key: str) -> None:
        self.view.set_sort(key)
        self.refresh_all()

    def action_threshold(self) -> None:
        self.view.toggle_threshold()
        self.refresh_all()

    def action_cost(self) -> None:
        self.show_cost = not self.show_cost
        self.power_tree.show_cost = self.show_cost
        if self.show_cost and not (self.tariff.has_price or self.tariff.has_co2e):
            self.notify("no price_per_kwh or co2e_g_per_kwh in the config: cost columns stay empty",
                        severity="warning", timeout=4)
        self.refresh_all(columns_changed=True)

    def action_work(self) -> None:
        """Work counters' columns: units per second and joules per unit (and the cost per
        million units when a price is configured)."""
        self.show_work = not self.show_work
        self.power_tree.show_work = self.show_work
        self.power_tree.work_cost = self.tariff.has_price
        if self.show_work and not _has_work(self.snapshot):
            self.notify("no work counters yet: no inference server found and no [[work]] in the config "
                        "(docs/work.md)", severity="warning", timeout=4)
        self.refresh_all(columns_changed=True)

    def action_counters(self) -> None:
        """Hardware-counter columns: instructions, IPC and LLC misses of each core and process row."""
        self.show_counters = not self.show_counters
        self.power_tree.show_counters = self.show_counters
        if self.show_counters and not _has_counters(self.snapshot):
            status = self.snapshot.source("counters") if self.snapshot is not None else None
            why = status.detail if status is not None and status.detail else "no counter source"
            self.notify(f"no hardware counters: {why}", severity="warning", timeout=5)
        self.refresh_all(columns_changed=True)

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.poll_feed()
        self.refresh_header()

    def action_record(self) -> None:
        if self.on_record_toggle is None:
            self.notify("recording is not available here (try: keck-top record FILE)", timeout=3)
            return
        want = not self.recording
        try:
            got = self.on_record_toggle(want)
        except Exception as exc:  # noqa: BLE001 - show it, keep running
            self.notify(f"recording failed: {exc}", severity="error")
            return
        self.recording = want if got is None else bool(got)
        self.refresh_header()

    def action_detail(self) -> None:
        panel = self._panels["detail"]
        self.detail_mode = not panel.display
        self._apply_detail_visibility()
        self.refresh_detail()

    def set_interval_s(self, seconds: float) -> None:
        self.feed.set_interval(seconds)
        self.refresh_header()

    def action_faster(self) -> None:
        cur = self.interval
        smaller = [s for s in INTERVAL_STEPS if s < cur - 1e-9]
        if smaller:
            self.set_interval_s(smaller[-1])

    def action_slower(self) -> None:
        cur = self.interval
        larger = [s for s in INTERVAL_STEPS if s > cur + 1e-9]
        if larger:
            self.set_interval_s(larger[0])

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def watch_theme(self) -> None:
        if self.is_mounted:
            self.call_after_refresh(self.refresh_all)

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.value = self.view.filter_text
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.filter_box
        if not box.display and not self.view.filter_text:
            return
        box.value = ""
        box.display = False
        self.view.set_filter("")
        self.power_tree.focus()
        self.refresh_all()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.view.set_filter(event.value)
            self.refresh_all()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.display = False
            self.power_tree.focus()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in SORT_KEYS:
            yield SystemCommand(f"Sort by {key}", f"order sibling rows by {key}",
                                lambda k=key: self.set_sort(k))
        yield SystemCommand("Zoom into the selected row", "make it the root (z)", self.action_zoom_in)
        yield SystemCommand("Zoom out", "one level up (u)", self.action_zoom_out)
        yield SystemCommand("Filter rows", "incremental filter by name (/)", self.action_filter)
        yield SystemCommand("Toggle small rows", "hide rows below 1 % of the root (t)", self.action_threshold)
        yield SystemCommand("Toggle cost columns", "money and gCO2e per hour (c)", self.action_cost)
        yield SystemCommand("Toggle work columns", "units per second and joules per unit (w)", self.action_work)
        yield SystemCommand("Pause / resume", "freeze the screen on the last sample (p)", self.action_pause)
        yield SystemCommand("Record on/off", "record snapshots to a file (r)", self.action_record)
        yield SystemCommand("Toggle detail pane", "history, bounds and provenance (i)", self.action_detail)
        yield SystemCommand("Refresh faster", "shorter interval (+)", self.action_faster)
        yield SystemCommand("Refresh slower", "longer interval (-)", self.action_slower)
        yield SystemCommand("Light/dark theme", "switch theme (T)", self.action_toggle_theme)
        yield SystemCommand("Keys and symbols", "the help screen (?)", self.action_help)
        yield SystemCommand("Power sources", "what works, what failed and how to fix it (d)",
                            self.action_sources)


#: Generation thresholds for the TUI process. Every refresh allocates a whole
#: snapshot tree (thousands of acyclic objects freed by reference counting); with
#: Python's defaults (700, 10, 10) that triggers frequent full collections that
#: scan everything, which showed as 30–50 ms spikes in benchmarks/bench_ui.py.
GC_THRESHOLDS = (50_000, 20, 100)


def _has_work(snapshot: Snapshot | None) -> bool:
    if snapshot is None:
        return False
    return any(row.extra and "work" in row.extra for _, row in snapshot.root.walk())


def _has_counters(snapshot: Snapshot | None) -> bool:
    if snapshot is None:
        return False
    return any(row.instructions is not None or row.llc_misses is not None for _, row in snapshot.root.walk())


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process that churns big acyclic trees."""
    gc.set_threshold(*GC_THRESHOLDS)


def _feed_error(feed: SnapshotFeed) -> str | None:
    try:
        error = feed.last_error()
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    return None if error is None else terminal_safe(error)


def run_tui(feed: SnapshotFeed, *, settings: Settings, title: str | None = None,
            on_record_toggle: RecordToggle | None = None, clock: Clock | None = None) -> int:
    """Run the TUI over ``feed`` until the user quits; returns the exit status.

    Starts and stops the feed. ``on_record_toggle(want: bool)`` is called by
    `r` and may return the actual recording state (or raise to refuse).
    """
    app = KeckApp(feed, settings=settings, title=title, clock=clock, on_record_toggle=on_record_toggle)
    tune_gc()
    return run_app(app, feed)


def run_app(app: App[int], feed: SnapshotFeed) -> int:
    """Run ``app`` with ``feed`` started (stopped again however the app ends); the exit status."""
    feed.start()
    try:
        result = app.run()
    except KeyboardInterrupt:
        result = 0
    finally:
        feed.stop()
    if app.return_code not in (None, 0):
        return int(app.return_code)
    return int(result or 0)
