"""keck_tui.common.table: the one plain-text table renderer."""
from __future__ import annotations

from keck_tui.common.table import Column, clip, render_table


def test_fixed_auto_widths_alignment_and_gaps():
    cols = [Column("NAME", width=6), Column("W", ">", gap=2), Column("NOTE")]
    lines = render_table(cols, [["node-1", "12.5", "ok"], ["a-much-longer-name", "3", ""]], indent="  ")
    assert lines == ["  NAME       W NOTE",
                     "  node-1  12.5 ok",
                     "  a-muc…     3"]  # clipped with an ellipsis; no trailing spaces


def test_keep_end_max_width_rule_and_no_header():
    cols = [Column("path", max_width=8, keep_end=True), Column("x", ">")]
    rows = [["a/b/c/d/e/f", "1"], None, ["total", "10"]]
    assert render_table(cols, rows, header=False) == ["…c/d/e/f  1", "-" * 11, "total    10"]


def test_last_column_runs_on_and_short_rows_fill_with_blanks():
    cols = [Column("A", width=3), Column("B")]
    assert render_table(cols, [["x", "a long last cell that is not clipped"], ["y"]]) == [
        "A   B", "x   a long last cell that is not clipped", "y"]


def test_clip():
    assert clip("abcdef", 4) == "abc…" and clip("abcdef", 4, keep_end=True) == "…def"
    assert clip("ab", 4) == "ab" and clip("abc", 1) == "…" and clip("abc", 0) == ""
