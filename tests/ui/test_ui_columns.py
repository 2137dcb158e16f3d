"""Column layout (what collapses when) and the exact text of tree lines."""
from __future__ import annotations

import fake_fleet as ff
from keck_tui.ui.columns import CellContext, compute_layout, header_cells, line_cells, needs_gpu_column
from keck_tui.ui.view import TreeView


def text(cells) -> str:
    return "".join(t for t, _ in cells)


def test_columns_collapse_in_order_never_watts_or_bound():
    seen = []
    for width in range(200, 10, -1):
        keys = compute_layout(width, show_gpu=True, show_trend=False).keys()
        if keys not in seen:
            seen.append(keys)
        assert keys[:2] == ("watts", "bound")
    assert seen == [
        ("watts", "bound", "range", "share", "cpu", "mhz", "gpu", "energy"),
        ("watts", "bound", "range", "share", "cpu", "mhz", "gpu"),
        ("watts", "bound", "range", "share", "cpu", "mhz"),
        ("watts", "bound", "range", "share", "cpu"),
        ("watts", "bound", "share", "cpu"),
        ("watts", "bound", "share"),
        ("watts", "bound"),
    ]
    assert compute_layout(79, show_gpu=True).keys() == ("watts", "bound", "range", "share", "cpu", "mhz")


def test_wide_terminals_give_the_range_bar_more_room():
    assert dict((c.key, c.width) for c in compute_layout(119).columns)["range"] == 24
    assert compute_layout(79).columns[2].width == 12
    assert "trend" not in compute_layout(119, show_gpu=True).keys()
    assert compute_layout(159, show_gpu=True).keys()[:4] == ("watts", "bound", "range", "trend")
    wide = compute_layout(199, show_gpu=True)  # names stop growing; the rest pads the end
    # 199 - 67 fixed - 12 more RANGE - 11 TREND = 109 → name 60 + pad 49
    assert (wide.name_width, wide.columns[2].width, wide.pad) == (60, 24, 49)
    v = TreeView()
    v.set_root(ff.node_row())
    assert all(sum(len(t) for t, _ in line_cells(ln, wide, CellContext(400, 400))) == 199 for ln in v.lines)
    assert sum(len(t) for t, _ in header_cells(wide, "watts")) == 199


def test_line_text_is_exact_and_fills_the_width():
    v = TreeView()
    root = ff.node_row()
    v.set_root(root)
    lay = compute_layout(119, show_gpu=True)
    ctx = CellContext(scale=root.watts_hi, total=root.watts)
    for line in v.lines:
        assert sum(len(t) for t, _ in line_cells(line, lay, ctx)) == 119
    assert text(line_cells(v.lines[0], lay, ctx)) == (
        # name 44 wide; RANGE 12 + 8 spare cells: lo 336.2 → 17 █, 365.0 → 19, hi 393.8 → 20
        "▾ node-7" + " " * 36 + "   365.0   28.8 " + "█" * 17 + "▒" * 2 + "░" * 1 +
        "   100%   36.1   3410    71.0    122 Wh")
    idle = next(ln for ln in v.lines if ln.row is not None and ln.row.id == "(idle)")
    cells = line_cells(idle, lay, ctx)
    assert {k for t, k in cells if t.strip() and k not in ("bar_lo", "bar_val", "bar_hi")} == {"synthetic"}
    assert "(idle)" in text(cells) and "78.0" in text(cells) and "21%" in text(cells)


def test_estimated_marks_and_nominal_frequency():
    v = TreeView()
    root = ff.node_row(estimated=True)
    v.set_root(root)
    v.select(("node-7", "system.slice"))
    lay = compute_layout(119)
    ctx = CellContext(scale=root.watts_hi, total=root.watts, estimated=True)
    kubelet = next(ln for ln in v.lines if ln.row is not None and ln.row.id == "610")
    t = text(line_cells(kubelet, lay, ctx))
    assert "kubelet (610)" in t and "~5.0" in t and "2200*" in t


def test_deep_rows_on_narrow_screens_still_fit():
    v = TreeView(default_depth=99)
    v.set_root(ff.fleet_row())
    for path, row in ff.fleet_row().walk():
        if row.children:
            v.overrides[path] = True
    v.rebuild()
    lay = compute_layout(30)
    for line in v.lines:
        assert sum(len(t) for t, _ in line_cells(line, lay, CellContext(1000, 1000))) == 30


def test_header_marks_the_sort_column():
    lay = compute_layout(119, show_gpu=True)
    assert "WATTS▼" in text(header_cells(lay, "watts"))
    assert "CPU%▼" in text(header_cells(lay, "cpu")) and "WATTS▼" not in text(header_cells(lay, "cpu"))
    assert text(header_cells(lay, "name")).startswith("  NAME ▲")
    assert sum(len(t) for t, _ in header_cells(lay, "energy")) == 119


def test_gpu_column_only_when_some_row_has_gpu_watts():
    assert needs_gpu_column(ff.node_row())
    assert not needs_gpu_column(ff.big_row(50))
