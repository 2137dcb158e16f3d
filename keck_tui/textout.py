"""Plain-text rendering of a snapshot (``--batch`` and ``--once`` without JSON, local and attach).

No colours, no terminal control: for pipes, logs and dumb terminals.
"""
from __future__ import annotations

from typing import Iterator

from keck_tui.common.formatting import fmt_bound, fmt_clock, fmt_mhz, fmt_pct, fmt_util, fmt_watts
from keck_tui.common import table
from keck_tui.common.table import Column
from keck_tui.model import Row, Snapshot

FLEET_COLUMNS = (Column("NAME", width=40), Column("LEVEL", width=8), Column("WATTS", ">", 10),
                 Column("LO", ">", 10), Column("HI", ">", 10), Column("STATE", gap=2))
COLUMNS = (Column("WATTS", ">", 9), Column("±", ">", 6), Column("SHARE", ">", 6), Column("CPU%", ">", 6),
           Column("MHZ", ">", 6), Column("GROUP", "<", 28, keep_end=True, gap=2), Column("NAME"))


def _flatten(row: Row, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Row]]:
    for child in row.children:
        if child.level in ("process",) or (child.synthetic and child.level == "synthetic"):
            yield path, child
        elif child.level not in ("core", "gpu"):
            yield from _flatten(child, path + (child.name,))


def render_table(snap: Snapshot, limit: int = 30) -> str:
    root = snap.root
    est = snap.estimated or root.estimated
    comps = " · ".join(f"{k} {fmt_watts(v)}" for k, v in (root.components or {}).items())
    states = " ".join(f"{s.name}:{s.status if s.kind != 'estimated' else 'estimated'}" for s in snap.sources)
    if snap.estimated:
        note = "  (ESTIMATED: no power sensor; run `keck-top doctor`)"
    elif root.estimated:
        note = "  (partly ESTIMATED: no CPU power sensor; run `keck-top doctor`)"
    elif any(s.kind == "estimated" for s in snap.sources):
        note = "  (measured total; CPU share ESTIMATED: no CPU power sensor; run `keck-top doctor`)"
    else:
        note = ""
    lines = [
        f"keck-top {fmt_clock(snap.time)}  {snap.host}  {fmt_watts(root.watts, est)} W "
        f"±{fmt_bound(root.watts, root.watts_lo, root.watts_hi)}" + note,
        f"  {comps}   model {snap.model} · idle {snap.idle_policy or '-'} · interval {snap.interval_s:.2f} s",
        f"  sources: {states}",
    ]
    lines.extend(f"  warning: {w}" for w in snap.warnings)
    rows = sorted(_flatten(root), key=lambda pr: -pr[1].watts)
    cells: list[list[str]] = []
    for path, row in rows[:limit]:
        share = 100.0 * row.watts / root.watts if root.watts > 0 else 0.0
        cells.append([fmt_watts(row.watts, row.estimated), fmt_bound(row.watts, row.watts_lo, row.watts_hi),
                      fmt_pct(share), fmt_util(row.cpu_util) or "-",
                      fmt_mhz(row.freq_mhz, row.freq_nominal) if row.freq_mhz else "-",
                      "/".join(path) or "-", row.name])
    if len(rows) > limit:
        rest = sum(r.watts for _, r in rows[limit:])
        cells.append([fmt_watts(rest, est), "", "", "", "", "", f"…{len(rows) - limit} more rows"])
    lines += table.render_table(COLUMNS, cells, indent="  ")
    if any(r.freq_nominal for _, r in rows[:limit]):
        lines.append("  * nominal frequency (no live cpufreq data)")
    return "\n".join(lines)


def render_fleet_table(snap: Snapshot) -> str:
    """The fleet down to node rows (cluster and fleet sums on top), for ``attach --once/--batch``."""
    root = snap.root
    lines = [f"{fmt_clock(snap.time)}  {snap.host}  {fmt_watts(root.watts)} W  "
             f"({fmt_watts(root.watts_lo)}…{fmt_watts(root.watts_hi)})"]
    cells = []
    for path, row in root.walk():
        if len(path) > 3:
            continue
        state = ("stale " + (f"{row.age_s:.0f}s " if row.age_s is not None else "") + (row.error or "")
                 if row.stale else "")
        cells.append(["  " * (len(path) - 1) + row.name, row.level, fmt_watts(row.watts), fmt_watts(row.watts_lo),
                      fmt_watts(row.watts_hi), state])
    return "\n".join(lines + table.render_table(FLEET_COLUMNS, cells))
