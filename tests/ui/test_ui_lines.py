"""The lazily made lines equal an eager flatten of the same view, for any tree and view state.

The reference below is the plain algorithm (sort every open row's children, emit every
line in order) that ``keck_tui.ui.lines`` replaces for speed; hypothesis builds trees with
synthetic rows, duplicate watts, lazy rows and hidden rows, and views with any expansion,
sort, filter, threshold, zoom and selection, and compares every line and the cursor.
"""
from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings, strategies as st

from keck_tui.model import Row
from keck_tui.ui.lines import HIDDEN_ID, Line, sort_children
from keck_tui.ui.view import SORT_KEYS, TreeView


def reference_lines(v: TreeView) -> list[Line]:
    zrow = v.zoom_row
    if zrow is None:
        return []
    needle = v.filter_text.casefold()
    keep: set | None = None
    matched: set = set()
    if needle:
        keep = set()
        v._mark_matches(zrow, v.zoom, needle, keep, matched)
    thr = v.threshold_w if v.threshold_on else None
    out: list[Line] = []

    def emit(row, path, depth, parent, under_match):
        expandable = bool(row.children) or bool(row.has_children)
        is_match = bool(matched) and path in matched
        expanded = False
        if expandable:
            expanded = (keep is not None and not under_match and not is_match and path in keep
                        and v.overrides.get(path) is not False) or v.is_expanded(path, row)
        out.append(Line(path, row, depth, parent, expandable, expanded, is_match))
        if not expanded:
            return
        under = under_match or is_match
        hidden_n, hidden_w = 0, 0.0
        for child in sort_children(row.children, v.sort_key):
            cpath = path + (child.id,)
            if keep is not None and not under and cpath not in keep:
                continue
            if thr is not None and child.watts < thr:
                hidden_n += 1
                hidden_w += child.watts
                continue
            emit(child, cpath, depth + 1, row, under)
        if hidden_n:
            out.append(Line(path + (HIDDEN_ID,), None, depth + 1, row,
                            hidden_count=hidden_n, hidden_watts=hidden_w))

    emit(zrow, v.zoom, 0, None, False)
    return out


IDS = ["a", "b", "c", "(idle)", "(kernel)", "(x", "Zed", "10", "9"]
WATTS = st.sampled_from([0.0, 0.1, 0.2, 0.7, 1.0, 1.0, 2.5, 40.0, 100.0])  # 0.1+0.2+0.7 depends on the order


@st.composite
def trees(draw, depth: int = 0) -> Row:
    n = 0 if depth >= 4 else draw(st.integers(min_value=0, max_value=4))
    ids = draw(st.lists(st.sampled_from(IDS), min_size=n, max_size=n, unique=True))
    kids = tuple(_named(draw(trees(depth + 1)), i) for i in ids)
    w = draw(WATTS)
    lazy = not kids and draw(st.booleans()) and depth > 0 and draw(st.integers(0, 4)) == 0
    return Row(level=["node", "namespace", "pod", "process", "core"][depth], id="root" if depth == 0 else "x",
               name="root", watts=w, watts_lo=w * 0.9, watts_hi=w * 1.1, joules=draw(WATTS),
               cpu_util=draw(st.sampled_from([None, 1.0, 50.0])), children=kids,
               has_children=True if lazy else None)


def _named(row: Row, i: str) -> Row:
    return replace(row, id=i, name=f"name {i}")


def all_paths(root: Row) -> list[tuple[str, ...]]:
    return [p for p, _ in root.walk()]


@settings(max_examples=100, deadline=None)
@given(trees(), st.data())
def test_lazy_lines_equal_an_eager_flatten(root, data):
    paths = all_paths(root)
    v = TreeView(default_depth=data.draw(st.integers(0, 4)),
                 threshold_fraction=data.draw(st.sampled_from([0.01, 0.2, 0.6])))
    v.overrides = {p: data.draw(st.booleans()) for p in data.draw(st.lists(st.sampled_from(paths), max_size=6))}
    v.sort_key = data.draw(st.sampled_from(SORT_KEYS))
    v.filter_text = data.draw(st.sampled_from(["", "", "a", "IDLE", "zed", "name 1"]))
    v.threshold_on = data.draw(st.booleans())
    v.set_root(root)
    v.zoom_to(data.draw(st.sampled_from(paths)))
    v.move_to(data.draw(st.integers(0, 50)))
    old_cursor = v.cursor
    sel = data.draw(st.sampled_from(paths + [p + (HIDDEN_ID,) for p in paths] + [("nope",), ("root", "nope")]))
    v.selected = sel
    v.rebuild()
    ref = reference_lines(v)
    # random access first (the screen's way), then in order, then by path
    order = list(range(len(ref)))
    random.Random(data.draw(st.integers(0, 99))).shuffle(order)
    for i in order:
        assert v.lines[i] == ref[i], i
    assert list(v.lines) == ref and len(v.lines) == len(ref)
    # the cursor: on the selection, else its deepest shown ancestor, else kept in range
    where = {ln.path: i for i, ln in enumerate(ref)}
    assert all(v.find(ln.path) == where[ln.path] for ln in ref)
    assert v.index == where
    shown = [where[sel[:n]] for n in range(len(sel), 0, -1) if sel[:n] in where]
    expected = shown[0] if shown else max(0, min(old_cursor, len(ref) - 1))
    assert v.cursor == (expected if ref else 0)
    if ref:
        assert v.selected == ref[v.cursor].path
        assert v.lines[-1] == ref[-1] and v.lines[1:3] == ref[1:3]


def test_hidden_rows_are_summed_in_display_order():
    def leaf(i, w):
        return Row(level="pod", id=i, name=i, watts=w, watts_lo=w, watts_hi=w)
    kids = (leaf("p1", 0.1), leaf("p2", 0.2), leaf("p3", 0.7), leaf("big", 100.0))
    root = Row(level="node", id="n", name="n", watts=101.0, watts_lo=101.0, watts_hi=101.0, children=kids)
    v = TreeView(threshold_fraction=0.05)
    v.threshold_on = True
    v.set_root(root)
    hidden = v.lines[-1]
    assert hidden.row is None and hidden.hidden_count == 3
    assert hidden.hidden_watts == (0.7 + 0.2) + 0.1 == reference_lines(v)[-1].hidden_watts
    assert list(v.lines) == reference_lines(v)
