"""The tree's scrollbar, drawn by the tree itself as the last cell of each line.

A Textual ``ScrollBar`` is a second widget beside the tree: every screen line is then
cut in two and joined again by the compositor, the tree's lines are padded to the
bar's edge and divided there, and any change of the scroll position repaints the
bar's whole height. On a 200-line tree that scrolls a little with each snapshot (the
cursor keeps its screen row while the sort order moves it), that was a quarter of a
full repaint (measured with benchmarks/bench_ui.py). Here the bar is one more segment
of each tree line: same glyphs and colours as Textual's (its renderer makes them), and
the same mouse behaviour — a click above or below the thumb pages, the thumb drags.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.scrollbar import ScrollBarRender

BAR_WIDTH = 1  # cells, as ``scrollbar-size-vertical: 1``
#: What a press on a row of the bar does (Textual's own actions for these rows).
UP, THUMB, DOWN = "page_up", "grab", "page_down"
_KINDS = {"scroll_up": UP, "grab": THUMB, "scroll_down": DOWN}


@dataclass(frozen=True)
class BarRows:
    """The bar for one scroll state: each screen row's segment and what pressing it does."""

    segments: tuple[Segment, ...]
    kinds: tuple[str, ...]


def bar_rows(height: int, virtual: int, window: int, position: float,
             back: Color, color: Color, base: Style | None = None) -> BarRows:
    """The bar's rows as Textual's renderer draws them, without its click actions
    (the tree handles the mouse itself). ``virtual``: lines in all; ``window``: lines
    shown; ``position``: the first line shown; ``base``: the widget's own style, which
    Textual puts under the renderer's (its text colour, and the background of the
    thumb's reversed body)."""
    if height <= 0:
        return BarRows((), ())
    shown = window if window < virtual else 0  # as ScrollBar._render_bar: no thumb when all fits
    drawn = ScrollBarRender.render_bar(size=height, virtual_size=ceil(virtual), window_size=ceil(shown),
                                       position=int(position * 8) / 8, thickness=BAR_WIDTH,
                                       vertical=True, back_color=back, bar_color=color)
    plain: dict[Segment, tuple[Segment, str]] = {}  # a handful of distinct segments
    segments: list[Segment] = []
    kinds: list[str] = []
    for seg in drawn.segments:
        if seg.text == "\n":
            continue
        done = plain.get(seg)
        if done is None:
            style = seg.style or Style()
            own = Style(color=style.color, bgcolor=style.bgcolor, reverse=style.reverse)
            done = plain[seg] = (Segment(seg.text, base + own if base is not None else own),
                                 _KINDS.get(str(style.meta.get("@mouse.down", "")), DOWN))
        segments.append(done[0])
        kinds.append(done[1])
    return BarRows(tuple(segments[:height]), tuple(kinds[:height]))


def drag_position(start_position: float, start_y: int, y: int, virtual: int, window: int) -> float:
    """Where a thumb grabbed at screen row ``start_y`` (view at ``start_position``) puts the
    view when the pointer is at row ``y``: the bar's rows stand for virtual/window lines."""
    if window <= 0:
        return start_position
    return start_position + (y - start_y) * (virtual / window)
