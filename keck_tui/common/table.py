"""One plain-text table renderer: aligned columns for pipes, logs and dumb terminals.

Used by ``--once``/``--batch`` (local and ``attach``), ``report`` and ``doctor``. No colours
and no terminal control; the TUI draws its own tables in :mod:`keck_tui.ui`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """How one column is laid out.

    ``width``: fixed; None: the widest cell (the header included), at most ``max_width``.
    ``align``: ``<`` left or ``>`` right. ``keep_end``: a clipped cell keeps its end
    (paths), else its start (names). ``gap``: spaces before the column.
    """

    header: str = ""
    align: str = "<"
    width: int | None = None
    max_width: int | None = None
    keep_end: bool = False
    gap: int = 1


#: A row that is None draws a rule (``-``) across the table, e.g. above a total.
RULE = None


def clip(text: str, width: int, keep_end: bool = False) -> str:
    """``text`` cut to ``width`` characters with ``…`` where it was cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    return ELLIPSIS + text[-(width - 1):] if keep_end else text[:width - 1] + ELLIPSIS


def column_widths(columns: Sequence[Column], rows: Sequence[Sequence[str] | None],
                  header: bool = True) -> list[int]:
    """The width each column gets for these rows."""
    widths = []
    for i, col in enumerate(columns):
        if col.width is not None:
            widths.append(col.width)
            continue
        cells = [r[i] for r in rows if r is not None and i < len(r)] + ([col.header] if header else [])
        w = max((len(c) for c in cells), default=0)
        widths.append(min(w, col.max_width) if col.max_width is not None else w)
    return widths


def render_table(columns: Sequence[Column], rows: Iterable[Sequence[str] | None], *, indent: str = "",
                 header: bool = True) -> list[str]:
    """The table's lines (header first unless ``header`` is False), trailing spaces removed.

    The last column is not padded, so a long last cell (a name, an error) runs on.
    """
    rows = [tuple(r) if r is not None else None for r in rows]
    widths = column_widths(columns, rows, header)
    out = []
    if header:
        out.append(_line(columns, widths, [c.header for c in columns], indent))
    total = sum(widths) + sum(c.gap for c in columns[1:])
    for row in rows:
        out.append(indent + "-" * total if row is None else _line(columns, widths, row, indent))
    return out


def _line(columns: Sequence[Column], widths: Sequence[int], cells: Sequence[str], indent: str) -> str:
    parts = []
    last = len(columns) - 1
    for i, (col, w) in enumerate(zip(columns, widths)):
        cell = cells[i] if i < len(cells) else ""
        if i < last or col.width is not None or col.max_width is not None:
            cell = clip(cell, w, col.keep_end)
        if i < last:
            cell = f"{cell:{col.align}{w}}"
        elif col.align == ">":
            cell = f"{cell:>{w}}"
        parts.append((" " * col.gap if i else "") + cell)
    return (indent + "".join(parts)).rstrip()
