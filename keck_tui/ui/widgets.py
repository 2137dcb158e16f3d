"""Widgets of the keck-top screen.

``PowerTree`` is a line-API ``ScrollView``: it renders only the lines that are
on screen, straight from ``TreeView.lines`` (which makes only the lines asked for),
so a 5,000-row snapshot costs one count of the open rows plus ~one screenful of
lines, never a widget per row; it draws its own scrollbar (``scrollbar.py``).
"""
from __future__ import annotations

from typing import Callable

from rich.cells import cell_len
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual.widget import Widget

from keck_tui.ui.columns import CellContext, Layout, compute_layout, header_cells, line_cells
from keck_tui.ui.scrollbar import BAR_WIDTH, THUMB, UP, BarRows, drag_position
from keck_tui.ui.scrollbar import bar_rows as scrollbar_rows
from keck_tui.ui.view import TreeView

_NEW = tuple.__new__

TREE_STYLE_KEYS = ("name", "marker", "synthetic", "stale", "match", "num", "hot", "warm",
                   "bar_lo", "bar_val", "bar_hi", "dim", "cursor", "title", "title_sorted", "trend")


def _style_key(widget: Widget) -> tuple[str, object]:
    """Changes when the theme's CSS has been applied to ``widget`` (cache key for styles;
    the Color itself, not its text: its repr cost more than the rest of a header update)."""
    return (widget.app.theme, widget.styles.background)


class PowerTree(ScrollView, can_focus=True):
    """The power tree: one line per visible row, keyed by id path."""

    COMPONENT_CLASSES = {f"powertree--{k.replace('_', '-')}" for k in TREE_STYLE_KEYS}

    DEFAULT_CSS = """
    PowerTree {
        height: 1fr;
        overflow-y: scroll;
        overflow-x: hidden;
        scrollbar-size-vertical: 0;  /* the tree draws its own (keck_tui/ui/scrollbar.py) */
        background: $surface;
        & > .powertree--name { }
        & > .powertree--marker { color: $text-muted; }
        & > .powertree--synthetic { color: $text-muted; text-style: italic; }
        & > .powertree--stale { color: $text-muted; text-style: strike; }
        & > .powertree--match { color: $text-accent; text-style: bold underline; }
        & > .powertree--num { }
        & > .powertree--hot { color: $text-error; text-style: bold; }
        & > .powertree--warm { color: $text-warning; }
        & > .powertree--bar-lo { color: $primary; }
        & > .powertree--bar-val { color: $primary-lighten-2; }
        & > .powertree--bar-hi { color: $primary-darken-1; }
        & > .powertree--dim { color: $text-muted; }
        & > .powertree--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
        & > .powertree--title { color: $text-muted; text-style: bold; }
        & > .powertree--title-sorted { color: $text-accent; text-style: bold; }
        & > .powertree--trend { color: $text-accent; }
    }
    """

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "up", show=False),
        Binding("down,j", "cursor(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
        Binding("enter", "toggle", "expand", show=False),
        Binding("right,l", "expand", "expand", show=False),
        Binding("left,h", "collapse", "collapse", show=False),
    ]

    class Changed(Message):
        """The selection or the visible lines changed (the app updates the detail pane)."""

        def __init__(self, tree: "PowerTree") -> None:
            super().__init__()
            self.tree = tree

    def __init__(self, view: TreeView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.ctx = CellContext(scale=1.0, total=1.0)
        self.show_gpu = False
        self.show_cost = False
        self.show_work = False  # work counters' columns (w)
        self.work_cost = False  # with them, cost per million units (a price is configured)
        self.show_counters = False  # hardware-counter columns (e)
        self.currency = "€"
        self._cache: LRUCache[tuple[int, int, int, Segment], Strip] = LRUCache(1024)
        self._styles: dict[str, Style] | None = None
        self._styles_key: tuple[str, object] | None = None
        self._layout: Layout | None = None
        self._area: Size | None = None  # the scrollable region's size, cached: computing it is not free
        # What the last sync put on screen: (scroll y, width) and each screen
        # line's strip. The next sync repaints only the lines whose strip changed.
        self._painted_key: tuple[int, int] | None = None
        self._painted: list[Strip] = []
        self._bar_now: BarRows | None = None  # see bar_rows
        self._bar_colors: dict[str, tuple[Color, Color]] = {}  # per state, with the styles
        self._bar_hover = False
        self._bar_grab: tuple[int, float] | None = None  # (screen y, scroll y) where the thumb was taken

    # ---- layout and styles ---------------------------------------------
    @property
    def content_width(self) -> int:
        """Cells for the tree's columns: the region less the scrollbar the tree draws."""
        return max(0, self.area.width - BAR_WIDTH)

    @property
    def area(self) -> Size:
        """The size of the scrollable region (the lines on screen, with the drawn scrollbar)."""
        if self._area is None:
            self._area = self.scrollable_content_region.size
        return self._area

    def current_layout(self) -> Layout:
        width = self.content_width
        lay = self._layout
        if lay is None or lay.width != width:
            lay = self._layout = compute_layout(width, show_gpu=self.show_gpu,
                                                show_cost=self.show_cost, currency=self.currency,
                                                show_work=self.show_work, work_cost=self.work_cost,
                                                show_counters=self.show_counters)
        return lay

    def styles_map(self) -> dict[str, Style]:
        key = _style_key(self)
        if self._styles is None or self._styles_key != key:
            base = self.rich_style
            try:
                # Full styles (see TextPanel.styles_map); they carry the background too.
                styles = {k: self.get_component_rich_style(f"powertree--{k.replace('_', '-')}")
                          for k in TREE_STYLE_KEYS}
            except KeyError:  # styles not computed yet: plain this frame, not cached
                self.call_after_refresh(self.sync)
                return {k: base for k in TREE_STYLE_KEYS + ("base",)}
            styles["base"] = base
            self._styles = styles
            self._styles_key = key
            self._bar_colors = self._scrollbar_colors()
            self._bar_now = None
            self._cache.clear()
        return self._styles

    def _scrollbar_colors(self) -> dict[str, tuple[Color, Color]]:
        """(back, thumb) colours of the drawn scrollbar per state, from the same CSS
        (``scrollbar-*``) and composited the same way as Textual's ``ScrollBar``."""
        st = self.styles
        base, _ = self.background_colors
        out: dict[str, tuple[Color, Color]] = {}
        for state, back, thumb in (("", st.scrollbar_background, st.scrollbar_color),
                                   ("hover", st.scrollbar_background_hover, st.scrollbar_color_hover),
                                   ("grab", st.scrollbar_background_active, st.scrollbar_color_active)):
            if back.a < 1:
                back = base + back
            out[state] = (back.rich_color, (back + thumb).rich_color)
        return out

    def bar_rows(self) -> BarRows:
        """The drawn scrollbar for the current scroll state (one segment per screen row).

        Kept until something it depends on changes (scroll, virtual size, size, styles,
        hover or grab: each of those forgets it), since every line asks for its row.
        """
        if self._bar_now is not None:
            return self._bar_now
        height = self.area.height
        state = "grab" if self._bar_grab is not None else ("hover" if self._bar_hover else "")
        back, thumb = self._bar_colors.get(state) or self._bar_colors.get("") or (None, None)
        if back is None or thumb is None:
            return BarRows((), ())
        base = self._styles["base"] if self._styles else None
        self._bar_now = scrollbar_rows(height, self.virtual_size.height, height, self.scroll_y,
                                       back, thumb, base)
        return self._bar_now

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        self._bar_now = None
        super().watch_scroll_y(old_value, new_value)

    def watch_virtual_size(self) -> None:
        self._bar_now = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._bar_now = None
        self._styles = None
        self._cache.clear()
        self._painted_key = None

    def _on_resize(self, event: events.Resize) -> None:
        self._bar_now = None
        self._cache.clear()
        self._layout = None
        self._area = None
        self._painted_key = None

    # ---- data -----------------------------------------------------------
    def sync(self, *, columns_changed: bool = False, anchor: int | None = None,
             follow: bool = True) -> None:
        """Re-read ``view.lines`` and repaint.

        ``anchor``: keep the cursor on this screen row (new data, same place);
        else with ``follow`` scroll just enough to show the cursor (after a key).
        """
        if columns_changed:
            self._layout = None
            self._painted_key = None
        self._area = None
        self.styles_map()  # re-check the theme once per sync
        self._cache.clear()
        # Never below the visible height: a tree that fits on screen keeps the same virtual
        # size when rows come and go, so Textual does not lay out the screen again.
        lines = max(len(self.view.lines), self.area.height)
        self.virtual_size = Size(self.content_width, lines)
        if anchor is not None:
            target = max(0, min(self.view.cursor - anchor, self.max_scroll_y))
            if target != round(self.scroll_y):
                self.scroll_to(y=target, animate=False, immediate=True)
        elif follow:
            self._scroll_to_cursor()
        self._repaint_changed()

    def _repaint_changed(self) -> None:
        """Refresh only the screen lines whose content changed since the last sync.

        Most of an idle screen's numbers do not move from one second to the next, and a
        full refresh makes Textual re-style and re-composite every line of the tree.
        Anything that moves all lines (scroll, width, theme, columns) repaints them all.
        """
        height = self.area.height
        key = (round(self.scroll_y), self.content_width)
        old = self._painted if self._painted_key == key else None
        new = [self.render_line(y) for y in range(height)]
        self._painted, self._painted_key = new, key
        if old is None or len(old) != height or self.size.width <= 0:
            self.refresh()
            return
        start = None
        for y in range(height + 1):
            same = y == height or new[y] == old[y]
            if not same and start is None:
                start = y
            elif same and start is not None:
                self.refresh_lines(key[0] + start, y - start)
                start = None

    def cursor_screen_row(self) -> int | None:
        """The cursor's row within the visible lines, or None when scrolled off screen."""
        row = self.view.cursor - round(self.scroll_y)
        height = self.area.height
        return row if 0 <= row < height else None

    def _scroll_to_cursor(self) -> None:
        height = max(1, self.area.height)
        c = self.view.cursor
        y = round(self.scroll_y)
        if c < y:
            self.scroll_to(y=c, animate=False, immediate=True)
        elif c >= y + height:
            self.scroll_to(y=c - height + 1, animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        idx = round(self.scroll_y) + y  # as scroll_offset, without building an Offset per line
        width = self.content_width
        # Validated once per sync (and after CSS/theme changes), not once per line.
        styles = self._styles if self._styles is not None else self.styles_map()
        lines = self.view.lines
        if width <= 0:
            return Strip.blank(width + BAR_WIDTH, styles["base"])
        bar = self.bar_rows().segments
        bar_cell = bar[y] if y < len(bar) else Segment(" " * BAR_WIDTH, styles["base"])
        if idx >= len(lines):
            return Strip([Segment(" " * width, styles["base"]), bar_cell], width + BAR_WIDTH)
        cursor = idx == self.view.cursor
        key = (idx, width, int(cursor), bar_cell)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        cells = line_cells(lines[idx], self.current_layout(), self.ctx)
        # Neighbouring cells with the same style become one segment: fewer
        # segments make Textual's per-line filtering and cropping cheaper.
        segs: list[Segment] = []
        add = segs.append
        run_text: list[str] = []
        run_key = None
        total = 0
        for text, k in cells:
            if not text:
                continue
            total += len(text)
            if k == run_key:
                run_text.append(text)
                continue
            if run_text:  # Segment(text, style), without NamedTuple's keyword-handling __new__
                add(_NEW(Segment, ("".join(run_text), styles[run_key], None)))  # type: ignore[index]
            run_text = [text]
            run_key = k
        if run_text:
            add(_NEW(Segment, ("".join(run_text), styles[run_key], None)))  # type: ignore[index]
        if cursor:
            cur = styles["cursor"]
            segs = [Segment(seg.text, seg.style + cur) for seg in segs]  # type: ignore[operator]
        # line_cells fills exactly layout.width == width cells: no crop needed,
        # except on absurdly narrow terminals.
        if total != width:
            segs = list(Strip(segs).crop_extend(0, width, styles["base"]))
        segs.append(bar_cell)
        strip = Strip(segs, width + BAR_WIDTH)
        self._cache[key] = strip
        return strip

    # ---- actions --------------------------------------------------------
    def _changed(self, moved: bool) -> None:
        if moved:
            self.sync()
            self.post_message(self.Changed(self))

    def action_cursor(self, delta: int) -> None:
        self._changed(self.view.move(delta))

    def action_page(self, direction: int) -> None:
        step = max(1, self.area.height - 1)
        self._changed(self.view.move(direction * step))

    def action_jump(self, index: int) -> None:
        self._changed(self.view.move_to(index if index >= 0 else len(self.view.lines) - 1))

    def action_toggle(self) -> None:
        self._changed(self.view.toggle())

    def action_expand(self) -> None:
        self._changed(self.view.expand())

    def action_collapse(self) -> None:
        self._changed(self.view.collapse())

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.x >= self.content_width:  # the scrollbar: see on_mouse_down
            return
        idx = round(self.scroll_y) + offset.y
        if not 0 <= idx < len(self.view.lines):
            return
        line = self.view.lines[idx]
        self.view.move_to(idx)
        marker_x = 2 * line.depth
        if line.expandable and (event.chain >= 2 or marker_x <= offset.x < marker_x + 2):
            self.view.toggle()
        self._changed(True)

    # ---- the drawn scrollbar: Textual's behaviour, by the tree --------------
    def _bar_row(self, event: events.MouseEvent) -> int | None:
        """The scrollbar row under the pointer, or None when the pointer is elsewhere."""
        offset = event.get_content_offset(self)
        if offset is None or offset.x < self.content_width:
            return None
        return offset.y

    def _repaint_bar(self) -> None:
        self._bar_now = None
        self._cache.clear()
        self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        """Above or below the thumb: a page up or down; on the thumb: start dragging it."""
        row = self._bar_row(event)
        if row is None:
            return
        event.stop()
        kinds = self.bar_rows().kinds
        kind = kinds[row] if 0 <= row < len(kinds) else None
        if kind == THUMB:
            self._bar_grab = (event.screen_y, self.scroll_y)
            self.capture_mouse()
            self._repaint_bar()
        elif kind == UP:
            self.scroll_page_up(animate=False)
        elif kind is not None:
            self.scroll_page_down(animate=False)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._bar_grab is not None:
            start_y, start_position = self._bar_grab
            window = self.area.height
            self.scroll_to(y=drag_position(start_position, start_y, event.screen_y,
                                           self.virtual_size.height, window), animate=False)
            event.stop()
            return
        hover = self._bar_row(event) is not None
        if hover != self._bar_hover:
            self._bar_hover = hover
            self._repaint_bar()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._bar_grab is not None:
            self.release_mouse()  # on_mouse_release ends the drag
            event.stop()

    def on_mouse_release(self, event: events.MouseRelease) -> None:
        if self._bar_grab is not None:
            self._bar_grab = None
            self._repaint_bar()

    def on_leave(self, event: events.Leave) -> None:
        if self._bar_hover and self._bar_grab is None:
            self._bar_hover = False
            self._repaint_bar()


class ColumnHeader(Widget):
    """Column titles, laid out exactly like the tree's lines."""

    DEFAULT_CSS = """
    ColumnHeader { height: 1; background: $panel; }
    """

    def __init__(self, tree: PowerTree, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.power_tree = tree
        self._shown: tuple[object, ...] | None = None  # what the titles were drawn from

    def sync(self) -> None:
        """Repaint when the titles would change (layout, sort order, theme); not every second."""
        tree = self.power_tree
        key = (tree.current_layout(), tree.view.sort_key, tree.styles_map())
        if key != self._shown:
            self._shown = key
            self.refresh()

    class SortClicked(Message):
        """A sortable column title was clicked."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def render(self) -> Text:
        styles = self.power_tree.styles_map()
        text = Text(no_wrap=True, overflow="crop")
        for chunk, key in header_cells(self.power_tree.current_layout(), self.power_tree.view.sort_key):
            text.append(chunk, styles.get(key, ""))
        return text

    def column_at(self, x: int) -> str | None:
        """The column key under cell ``x`` ("name" for the name column)."""
        lay = self.power_tree.current_layout()
        if x < lay.name_width:
            return "name"
        pos = lay.name_width
        for col in lay.columns:
            if pos <= x < pos + col.width + 1:
                return col.key
            pos += col.width + 1
        return None

    def on_click(self, event: events.Click) -> None:
        key = {"name": "name", "watts": "watts", "cpu": "cpu", "energy": "energy"}.get(
            self.column_at(event.x) or "")
        if key is not None:
            self.post_message(self.SortClicked(key))


HEADER_CLASSES = ("brand", "host", "total", "bound", "estimated", "warn", "good", "bad", "dim",
                  "stale", "rec", "paused", "filter", "title", "spark", "spark-bound", "note")


class TextPanel(Widget):
    """Fixed-height lines of rich Text (header, breadcrumb, detail).

    Not a ``Static``: ``Static.update`` asks for a layout pass of the whole
    screen, and these panels change several times a second without ever
    changing size (their heights are fixed in app.tcss).
    """

    COMPONENT_CLASSES = {f"header--{k}" for k in HEADER_CLASSES}
    DEFAULT_CSS = "TextPanel { height: 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.auto_links = False  # the lines hold no links (see line_strip)
        self._text: Text | None = Text()  # the lines joined, made on demand (render)
        self._lines: list[Text] = []
        self._styles: dict[str, Style] | None = None
        self._styles_key: tuple[str, object] | None = None
        # y -> (the Text it came from, width, base style, strip): see render_line.
        self._strips: dict[int, tuple[Text | None, int, object, Strip]] = {}
        self._offsets: dict[tuple[int, int], Style] = {}  # (x, y) -> selection offset style

    def styles_map(self) -> dict[str, Style]:
        """Rich styles of the header--* classes, by short name; cached until the theme
        or CSS changes (looking them up costs more than building the text)."""
        key = _style_key(self)
        if self._styles is None or self._styles_key != key:
            try:
                # Full (not partial) styles: partial ones drop colours with alpha, such
                # as $text-muted, which would make "dim" text as bright as the rest.
                self._styles = {k.replace("-", "_"): self.get_component_rich_style(f"header--{k}")
                                for k in HEADER_CLASSES}
            except KeyError:  # styles not computed yet (first frame): plain text this once
                return {}
            self._styles_key = key
        return self._styles

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None

    def show_lines(self, lines: list[Text]) -> None:
        old_lines = self._lines
        if len(lines) == len(old_lines) and all(
                a.plain == b.plain and a.spans == b.spans and a.style == b.style
                for a, b in zip(lines, old_lines)):
            return  # unchanged: a repaint would cost CPU several times a second for nothing
        self._text = None  # joined when Textual asks for the whole text (render, selection)
        self._lines = list(lines)
        width = self.size.width
        if len(lines) != len(old_lines) or not self.is_mounted or width <= 0:
            self.refresh()  # whole: before the first layout a line's region would be empty
            return
        # Only the lines that changed: Textual then re-styles and re-composites just those.
        for y, (a, b) in enumerate(zip(lines, old_lines)):
            if not (a.plain == b.plain and a.spans == b.spans and a.style == b.style):
                self.refresh(Region(0, y, width, 1))

    def render(self) -> Text:
        if self._text is None:
            text = Text("\n").join(self._lines)
            text.no_wrap = True
            text.overflow = "ellipsis"
            self._text = text
        return self._text

    def _offset_style(self, x: int, y: int) -> Style:
        """Made once per position (``Style.from_meta`` serialises its meta each time)."""
        style = self._offsets.get((x, y))
        if style is None:
            if len(self._offsets) > 4096:  # positions of lines long gone
                self._offsets.clear()
            style = self._offsets[(x, y)] = _offset_style(x, y)
        return style

    def render_line(self, y: int) -> Strip:
        """Line ``y`` rendered on its own and kept until that line changes.

        Textual renders a widget's whole text again for any dirty line; the header and
        detail change a few lines a second, so each line is rendered by itself (the same
        strips: the panel never wraps). A text selection goes the usual way.
        """
        lines = self._lines
        if self.text_selection is not None or any("\n" in line.plain for line in lines):
            return super().render_line(y)
        width = self.size.width
        style = self.visual_style
        line = lines[y] if y < len(lines) else None
        cached = self._strips.get(y)
        if cached is not None and cached[0] is line and cached[1] == width and cached[2] == style:
            return cached[3]
        if line is None:
            strip = Strip.blank(width, style.rich_style)
        elif self.styles.content_align != ("left", "top"):
            strip = Visual.to_strips(self, visualize(self, _one_line(line)), width, 1, style)[0]
        else:
            strip = line_strip(line, width, style.rich_style, self.app.console, y, self._offset_style)
        self._strips[y] = (line, width, style, strip)
        return strip


def _one_line(line: Text) -> Text:
    text = line.copy()
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def line_strip(line: Text, width: int, base: Style, console: Console, y: int = 0,
               offset_style: Callable[[int, int], Style] | None = None) -> Strip:
    """Line ``y`` of a panel, rich Text, as a Strip of ``width`` cells on ``base``: the cells
    and styles Textual's ``Visual.to_strips`` makes of it, without converting it to Textual
    ``Content`` first (a sixth of the idle TUI's CPU went into that conversion for the header
    and detail lines that change each second). Cut with an ellipsis, never wrapped; each
    segment carries its text offset, so a mouse selection starts where it was pressed."""
    cells = cell_len(line.plain)
    text = line
    if cells > width:  # cut (a copy: the caller's line stays whole)
        text = _one_line(line)
        text.truncate(width, overflow="ellipsis")
        cells = cell_len(text.plain)
    offset = offset_style or _offset_style
    segments: list[Segment] = []
    x = 0
    for seg in text.render(console):
        if seg.text:
            segments.append(Segment(seg.text, (base + seg.style if seg.style else base) + offset(x, y)))
            x += len(seg.text)
    return Strip(segments, cells).extend_cell_length(width, base)


def _offset_style(x: int, y: int) -> Style:
    """The meta Textual's ``Strip.apply_offsets`` gives a segment starting at (x, y)."""
    return Style.from_meta({"offset": (x, y)})


class Breadcrumb(TextPanel):
    """`fleet › cluster-a › node-3`: click a crumb to zoom to it."""

    class Clicked(Message):
        def __init__(self, path: tuple[str, ...]) -> None:
            super().__init__()
            self.path = path

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spans: list[tuple[int, int, tuple[str, ...]]] = []  # (start x, end x, path)

    def on_click(self, event: events.Click) -> None:
        for start, end, path in self.spans:
            if start <= event.x < end:
                self.post_message(self.Clicked(path))
                return
