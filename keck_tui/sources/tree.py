"""Tree helpers for remote data: parent rows that sum their children, unique ids, grafting."""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping

from keck_tui.common.ids import safe_id
from keck_tui.model import Row


def sum_row(level: str, row_id: str, name: str, children: Iterable[Row], **fields: object) -> Row:
    """A parent whose watts, bounds, joules and components are the sums of its children."""
    kids = tuple(children)
    comps: dict[str, float] = {}
    for c in kids:
        for k, v in (c.components or {}).items():
            comps[k] = comps.get(k, 0.0) + float(v)
    estimated = any(c.estimated for c in kids) if kids else False
    return Row(level=level, id=safe_id(row_id), name=name,
               watts=sum(c.watts for c in kids), watts_lo=sum(c.watts_lo for c in kids),
               watts_hi=sum(c.watts_hi for c in kids), joules=sum(c.joules for c in kids),
               estimated=estimated, components=comps or None, children=kids, **fields)  # type: ignore[arg-type]


def unique_ids(rows: Iterable[Row]) -> list[Row]:
    """Rows with ids made unique among siblings (a repeated id gets ``@2``, ``@3``…)."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        n = seen.get(row.id, 0) + 1
        seen[row.id] = n
        out.append(row if n == 1 else replace(row, id=f"{row.id}@{n}"))
    return out


def graft(root: Row, path: tuple[str, ...], subtree: Row) -> Row:
    """``root`` with the row at ``path`` (root's id first) replaced by ``subtree``."""
    if not path or path[0] != root.id:
        return root
    if len(path) == 1:
        return subtree
    kids = tuple(graft(c, path[1:], subtree) if c.id == path[1] else c for c in root.children)
    return replace(root, children=kids)


def integrate(rows: Iterable[Row], before: Mapping[tuple[str, ...], float],
              dt: float) -> tuple[list[Row], dict[tuple[str, ...], float]]:
    """Rows with ``joules`` = what the same id path had before + ``watts × dt``.

    For sources that report power only (Keck controller, Prometheus): without
    it their rows' energy stayed 0 J. Returns the rows and the new totals (rows
    gone from the tree drop out, so memory follows the tree).
    """
    after: dict[tuple[str, ...], float] = {}

    def walk(row: Row, path: tuple[str, ...]) -> Row:
        here = path + (row.id,)
        kids = tuple(walk(c, here) for c in row.children)
        joules = before.get(here, 0.0) + row.watts * dt
        after[here] = joules
        return replace(row, joules=joules, children=kids)

    return [walk(r, ()) for r in rows], after
