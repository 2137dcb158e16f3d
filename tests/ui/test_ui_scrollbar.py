"""The tree's drawn scrollbar: looks like Textual's own, and behaves like it under the mouse."""
from __future__ import annotations

import fake_fleet as ff
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from keck_tui.ui.scrollbar import DOWN, THUMB, UP, bar_rows, drag_position
from keck_tui.ui.view import TreeView
from keck_tui.ui.widgets import PowerTree
from ui_helpers import SETTINGS, RecordingFeed
from keck_tui.ui.app import KeckApp

HEIGHT = 24


def open_all(view: TreeView, root) -> None:
    for path, row in root.walk():
        if row.children:
            view.overrides[path] = True
    view.rebuild()


class TextualScrolled(ScrollView):
    """A stock ScrollView with Textual's own scrollbar, styled like the tree."""

    DEFAULT_CSS = """
    TextualScrolled { height: 1fr; width: 1fr; overflow-y: scroll; overflow-x: hidden;
                      scrollbar-size-vertical: 1; background: $surface; }
    """

    def render_line(self, y: int) -> Strip:
        return Strip.blank(self.scrollable_content_region.width)


class SideBySide(App[None]):
    def __init__(self, view: TreeView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        with Horizontal():
            self.power_tree = PowerTree(self.view, id="tree")
            self.power_tree.styles.width = "1fr"
            yield self.power_tree
            self.ref = TextualScrolled()
            yield self.ref


async def test_the_drawn_bar_matches_textuals_scrollbar_cell_for_cell():
    view = TreeView(default_depth=99)
    root = ff.big_snapshot(0, n_target=600).root
    view.set_root(root)
    open_all(view, root)
    assert len(view.lines) > 10 * HEIGHT
    app = SideBySide(view)
    async with app.run_test(size=(120, HEIGHT)) as pilot:
        tree, ref = app.power_tree, app.ref
        tree.sync()
        ref.virtual_size = Size(10, tree.virtual_size.height)
        await pilot.pause()
        assert tree.region.height == ref.region.height == HEIGHT
        seen_kinds: set[str] = set()
        # positions that put the thumb's ends on every eighth of a cell, and both ends of the range
        for y in (0, 1, 3, 7, 10, 37, 101, 250, tree.max_scroll_y // 2, tree.max_scroll_y):
            tree.scroll_to(y=y, animate=False, immediate=True)
            ref.scroll_to(y=y, animate=False, immediate=True)
            await pilot.pause()
            assert round(tree.scroll_y) == round(ref.scroll_y) == y
            bar_x = tree.region.right - 1
            ref_x = ref.region.right - 1
            seen_kinds.update(tree.bar_rows().kinds)
            for row in range(HEIGHT):
                ours = list(tree.render_line(row))[-1]
                theirs = ref.vertical_scrollbar.render_line(row).text
                assert ours.text == theirs, (y, row)
                a = app.screen.get_style_at(bar_x, row)
                b = app.screen.get_style_at(ref_x, row)
                assert (a.color, a.bgcolor, bool(a.reverse)) == (b.color, b.bgcolor, bool(b.reverse)), (y, row)
        assert seen_kinds == {UP, THUMB, DOWN}


def test_bar_rows_and_drag_arithmetic():
    from rich.color import Color
    back, bar = Color.parse("#111111"), Color.parse("#eeeeee")
    rows = bar_rows(10, 100, 10, 0, back, bar)
    assert rows.kinds == (THUMB,) + (DOWN,) * 9  # a thumb of one cell at the top
    rows = bar_rows(10, 100, 10, 90, back, bar)
    assert rows.kinds[-1] == THUMB and rows.kinds[0] == UP
    full = bar_rows(10, 10, 10, 0, back, bar)
    assert set(full.kinds) == {DOWN} and all(s.style.bgcolor == back for s in full.segments)  # all fits: no thumb
    assert bar_rows(0, 100, 10, 0, back, bar).segments == ()
    # the thumb moves virtual/window lines per row of the bar
    assert drag_position(20.0, 5, 8, 1000, 50) == 20.0 + 3 * 20
    assert drag_position(20.0, 5, 8, 1000, 0) == 20.0


async def test_mouse_on_the_bar_pages_drags_and_never_selects(clock):
    big = ff.big_snapshot(0, time=clock.wall(), n_target=600)
    app = KeckApp(RecordingFeed([big]), settings=SETTINGS, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.power_tree
        open_all(app.view, big.root)
        tree.sync()
        await pilot.pause()
        height = tree.area.height
        x = tree.content_width  # the bar's column
        selected = app.view.selected
        assert round(tree.scroll_y) == 0 and tree.max_scroll_y > 3 * height
        # below the thumb: a page down; above it: a page up; the selection stays
        await pilot.mouse_down(tree, offset=(x, height - 1))
        await pilot.mouse_up(tree, offset=(x, height - 1))
        await pilot.pause()
        assert round(tree.scroll_y) == height
        for _ in range(2):
            await pilot.click(tree, offset=(x, height - 1))
        await pilot.pause()
        assert round(tree.scroll_y) == 3 * height
        assert app.view.selected == selected
        assert tree.bar_rows().kinds[0] == UP
        await pilot.click(tree, offset=(x, 0))
        await pilot.pause()
        assert round(tree.scroll_y) == 2 * height and app.view.selected == selected
        tree.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        # drag the thumb down three rows: the view moves three rows' worth of lines
        thumb = tree.bar_rows().kinds.index(THUMB)
        virtual = tree.virtual_size.height
        await pilot.mouse_down(tree, offset=(x, thumb))
        assert tree._bar_grab is not None
        grab_back = tree.bar_rows().segments[thumb].style
        await pilot.hover(tree, offset=(x, thumb + 3))
        await pilot.pause()
        assert round(tree.scroll_y) == round(3 * virtual / height)
        await pilot.mouse_up(tree, offset=(x, thumb + 3))
        await pilot.pause()
        assert tree._bar_grab is None and app.view.selected == selected
        # the thumb takes Textual's grab colours while held, its hover colours under the pointer
        colours = tree._bar_colors
        assert len({colours[k][1] for k in ("", "hover", "grab")}) == 3
        assert grab_back.color == colours["grab"][1]

        def thumb_colour():
            rows = tree.bar_rows()
            return list(tree.render_line(rows.kinds.index(THUMB)))[-1].style.color

        await pilot.hover(tree, offset=(x, 1))
        assert tree._bar_hover and thumb_colour() == colours["hover"][1]
        await pilot.hover(tree, offset=(5, 1))
        assert not tree._bar_hover and thumb_colour() == colours[""][1]
