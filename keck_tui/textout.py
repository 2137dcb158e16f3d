"""Plain-text rendering of a snapshot (``--batch`` and ``--once`` without JSON).

No colours, no terminal control: for pipes, logs and dumb terminals.
"""
from __future__ import annotations

import time
from typing import Iterator

from keck_tui.model import Row, Snapshot


def fmt_watts(w: float, estimated: bool = False) -> str:
    return ("~" if estimated else "") + (f"{w:.1f}" if w < 1000 else f"{w:.0f}")


def _flatten(row: Row, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Row]]:
    for child in row.children:
        if child.level in ("process",) or (child.synthetic and child.level == "synthetic"):
            yield path, child
        elif child.level not in ("core", "gpu"):
            yield from _flatten(child, path + (child.name,))


def render_table(snap: Snapshot, limit: int = 30) -> str:
    root = snap.root
    est = snap.estimated or root.estimated
    err = max(root.watts - root.watts_lo, root.watts_hi - root.watts)
    when = time.strftime("%H:%M:%S", time.localtime(snap.time))
    comps = " · ".join(f"{k} {v:.1f}" for k, v in (root.components or {}).items())
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
        f"keck-top {when}  {snap.host}  {fmt_watts(root.watts, est)} W ±{err:.1f}" + note,
        f"  {comps}   model {snap.model} · idle {snap.idle_policy or '-'} · interval {snap.interval_s:.2f} s",
        f"  sources: {states}",
    ]
    lines.extend(f"  warning: {w}" for w in snap.warnings)
    lines.append(f"  {'WATTS':>9} {'±':>6} {'SHARE':>6} {'CPU%':>6} {'MHZ':>6}  {'GROUP':<28} NAME")
    rows = sorted(_flatten(root), key=lambda pr: -pr[1].watts)
    for path, row in rows[:limit]:
        share = 100.0 * row.watts / root.watts if root.watts > 0 else 0.0
        e = max(row.watts - row.watts_lo, row.watts_hi - row.watts)
        cpu = f"{row.cpu_util:.1f}" if row.cpu_util is not None else "-"
        mhz = (f"{row.freq_mhz:.0f}" + ("*" if row.freq_nominal else "")) if row.freq_mhz else "-"
        group = "/".join(path)[-28:] or "-"
        lines.append(f"  {fmt_watts(row.watts, row.estimated):>9} {e:>6.1f} {share:>5.1f}% {cpu:>6} {mhz:>6}"
                     f"  {group:<28} {row.name}")
    if len(rows) > limit:
        rest = sum(r.watts for _, r in rows[limit:])
        lines.append(f"  {fmt_watts(rest, est):>9} {'':>6} {'':>6} {'':>6} {'':>6}  {'':<28} "
                     f"…{len(rows) - limit} more rows")
    if any(r.freq_nominal for _, r in rows[:limit]):
        lines.append("  * nominal frequency (no live cpufreq data)")
    return "\n".join(lines)
