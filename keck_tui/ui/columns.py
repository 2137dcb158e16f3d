"""Tree columns: which fit in a given width, and each line's cells.

Pure (no textual): a line becomes a list of ``(text, style_key)`` pairs that the
widget maps to styles, so the exact text of every column is unit-testable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from keck_tui.common import formatting as fmt
from keck_tui.model import Row
from keck_tui.ui import format as bars
from keck_tui.ui.view import Line

NAME_MIN = 24
NAME_COMFORT = 44  # beyond this the RANGE bar gets the extra width
RANGE_MAX_EXTRA = 12
NAME_MAX = 60  # wider names only push the numbers away from them: pad at the end instead


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int


BASE = {
    "watts": Column("watts", "WATTS", 7),
    "bound": Column("bound", "±", 6),
    "range": Column("range", "RANGE", 12),
    "share": Column("share", "SHARE", 6),
    "cpu": Column("cpu", "CPU%", 6),
    "mhz": Column("mhz", "MHz", 6),
    "gpu": Column("gpu", "GPU W", 7),
    "energy": Column("energy", "ENERGY", 9),
    "cost": Column("cost", "/h", 8),
    "co2": Column("co2", "gCO2e/h", 8),
    "trend": Column("trend", "TREND", 10),
    # work counters (w): units per second and joules per unit of the rows that have them
    "wrate": Column("wrate", "WORK/s", 10),
    "jpu": Column("jpu", "J/UNIT", 9),
    "wcost": Column("wcost", "/M", 8),
    # hardware counters (e): instructions, instructions per cycle, LLC misses over the interval
    "insn": Column("insn", "INSN", 6),
    "ipc": Column("ipc", "IPC", 5),
    "llc": Column("llc", "LLC MISS", 8),
}
ORDER = ("watts", "bound", "range", "trend", "share", "cpu", "mhz", "insn", "ipc", "llc", "gpu", "energy",
         "cost", "co2", "wrate", "jpu", "wcost")
WORK_KEYS = ("wrate", "jpu", "wcost")
COUNTER_KEYS = ("insn", "ipc", "llc")
#: Dropped first to last when the terminal is narrow; WATTS and ± never are.
DROP_ORDER = ("energy", "gpu", "llc", "insn", "mhz", "range", "co2", "cost", "wcost", "cpu", "share", "ipc",
              "wrate", "jpu")
#: Short unit names for the WORK/s column.
UNIT_ABBREV = {"token": "tok", "prompt token": "ptok", "request": "req", "frame": "frm", "byte": "B"}


@dataclass(frozen=True)
class Layout:
    width: int
    name_width: int
    columns: tuple[Column, ...]
    pad: int = 0  # blank cells after the last column on very wide terminals

    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.columns)


def compute_layout(width: int, *, show_gpu: bool = False, show_cost: bool = False,
                   currency: str = "€", show_trend: bool = True, show_work: bool = False,
                   work_cost: bool = False, show_counters: bool = False) -> Layout:
    """Fit columns into ``width`` cells, dropping them in DROP_ORDER; TREND (a
    sparkline of the row's history) only appears when the name keeps ample room.
    ``show_work``: the work columns (units/s, J per unit, and with ``work_cost`` the
    cost per million units); ``show_counters``: the hardware-counter columns."""
    keys = [k for k in ORDER if k != "trend" and (k != "gpu" or show_gpu)
            and (k not in ("cost", "co2") or show_cost)
            and (k not in WORK_KEYS or (show_work and (k != "wcost" or work_cost)))
            and (k not in COUNTER_KEYS or show_counters)]
    cols = {k: BASE[k] for k in keys}
    if "cost" in cols:
        cols["cost"] = Column("cost", f"{currency}/h", 8)
    if "wcost" in cols:
        cols["wcost"] = Column("wcost", f"{currency}/M", 8)

    def used() -> int:
        return sum(c.width + 1 for c in cols.values())

    for k in DROP_ORDER:
        if width - used() >= NAME_MIN:
            break
        cols.pop(k, None)
    name_w = max(1, width - used())
    if "range" in cols and name_w > NAME_COMFORT:
        extra = min(name_w - NAME_COMFORT, RANGE_MAX_EXTRA)
        cols["range"] = Column("range", "RANGE", cols["range"].width + extra)
        name_w -= extra
    trend = BASE["trend"]
    if show_trend and name_w - (trend.width + 1) >= NAME_COMFORT:  # only where there is room to spare
        cols["trend"] = trend
        name_w -= trend.width + 1
    pad = 0
    if name_w > NAME_MAX:
        pad, name_w = name_w - NAME_MAX, NAME_MAX
    return Layout(width, name_w, tuple(cols[k] for k in ORDER if k in cols), pad)


@dataclass(frozen=True)
class CellContext:
    """What a line's cells depend on beyond the row itself."""

    scale: float  # watts at a full RANGE bar (the zoom root's upper bound)
    total: float  # the zoom root's watts, for heat colours
    estimated: bool = False  # the whole snapshot is an estimate
    price_per_kwh: float | None = None
    co2e_g_per_kwh: float | None = None
    currency: str = "€"
    trend: Callable[[tuple[str, ...], int], Sequence[float]] | None = None  # (path, n) -> watts


def _fit(text: str, width: int) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…" if width > 0 else ""
    return text


def header_cells(layout: Layout, sort_key: str) -> list[tuple[str, str]]:
    sort_col = {"watts": "watts", "cpu": "cpu", "energy": "energy"}.get(sort_key)
    left = ("range", "trend")
    name_title = "  NAME" + (" ▲" if sort_key == "name" else "")
    cells: list[tuple[str, str]] = [(name_title.ljust(layout.name_width)[: layout.name_width], "title")]
    for col in layout.columns:
        title = col.title + ("▼" if col.key == sort_col else "")
        text = title.ljust(col.width) if col.key in left else title.rjust(col.width)
        cells.append((" " + text[-col.width:] if col.key not in left else " " + text[: col.width],
                      "title_sorted" if col.key == sort_col else "title"))
    if layout.pad:
        cells.append((" " * layout.pad, "title"))
    return cells


def line_cells(line: Line, layout: Layout, ctx: CellContext) -> list[tuple[str, str]]:
    """The cells of one tree line as (text, style key) pairs, exactly layout.width wide."""
    if line.row is None:
        return _hidden_cells(line, layout, ctx)
    row = line.row
    indent = "  " * line.depth
    marker = ("▾ " if line.expanded else "▸ ") if line.expandable else "  "
    label = row.name
    if row.pid is not None and str(row.pid) not in label:
        label = f"{label} ({row.pid})"
    suffix = ""
    if row.stale:
        suffix = f" [stale {fmt.fmt_age(row.age_s)}]" if row.age_s is not None else " [stale]"
    elif row.error:
        suffix = " [error]"
    synthetic = row.synthetic
    name_key = "synthetic" if synthetic else ("stale" if row.stale else ("match" if line.matched else "name"))
    if len(indent) + len(marker) >= layout.name_width:  # very deep row, narrow screen
        indent = indent[: max(0, layout.name_width - len(marker) - 1)]
    room = layout.name_width - len(indent) - len(marker)
    text = _fit(label + suffix, room)
    cells = [(indent, "name"), (marker, "marker"), (text.ljust(max(0, room)), name_key)]
    parent = line.parent
    share = None
    if parent is None:
        share = 100.0
    elif parent.watts > 0:
        share = row.watts / parent.watts * 100.0
    frac = row.watts / ctx.total if ctx.total > 0 else 0.0
    heat = "synthetic" if synthetic else ("hot" if frac >= 0.25 else ("warm" if frac >= 0.10 else "num"))
    num = "synthetic" if synthetic else "num"
    est = ctx.estimated or row.estimated
    add = cells.append
    for col in layout.columns:
        k, w = col.key, col.width
        text_of = _TEXT.get(k)
        if text_of is not None:  # most columns: one right-aligned cell
            t = text_of(row, ctx, share, est)
            add((" " + (t if len(t) <= w else _fit(t, w)).rjust(w), heat if k == "watts" else num))
        elif k == "range":
            a, b, c = bars.range_bar(row.watts_lo, row.watts, row.watts_hi, ctx.scale, w)
            cells += ((" ", "num"), (bars.BAR_LO * a, "bar_lo"), (bars.BAR_VALUE * b, "bar_val"),
                      (bars.BAR_HI * c, "bar_hi"), (" " * (w - a - b - c), "num"))
        elif k == "trend":
            add(_trend_cell(line, row, ctx, w))
        else:  # pragma: no cover - ORDER and BASE agree
            add((" " + " " * w, num))
    if layout.pad:
        cells.append((" " * layout.pad, "num"))
    return cells


def _hidden_cells(line: Line, layout: Layout, ctx: CellContext) -> list[tuple[str, str]]:
    """The line that stands for the rows below the threshold."""
    indent = "  " * line.depth
    name = f"{indent}  … {line.hidden_count} row{'s' if line.hidden_count != 1 else ''} below threshold"
    cells = [(_fit(name, layout.name_width).ljust(layout.name_width), "dim")]
    for col in layout.columns:
        text = fmt.fmt_watts(line.hidden_watts, ctx.estimated) if col.key == "watts" else ""
        cells.append((" " + text.rjust(col.width), "dim"))
    if layout.pad:
        cells.append((" " * layout.pad, "dim"))
    return cells


def _trend_cell(line: Line, row: Row, ctx: CellContext, w: int) -> tuple[str, str]:
    values = ctx.trend(line.path, w) if ctx.trend is not None else ()
    spark = ""
    if len(values) > 1:
        # Scaled to the row's own history but never tighter than its current
        # bound: a swing smaller than the uncertainty must look small.
        lo = min(min(values), row.watts_lo)
        hi = max(max(values), row.watts_hi)
        spark = bars.sparkline(values, w, top=hi if hi > lo else None, bottom=lo if hi > lo else 0.0)
    return (" " + spark.ljust(w), "trend")


def _work(row: Row) -> object:
    return row.extra.get("work") if row.extra else None


#: The text of each one-cell column: (row, context, share of the parent, estimated) -> text.
#: A table, not a chain of ifs: each of a 5,000-line tree's visible lines asks for 8 or more.
_TEXT: dict[str, Callable[[Row, CellContext, "float | None", bool], str]] = {
    "watts": lambda r, c, share, est: fmt.fmt_watts(r.watts, est),
    "bound": lambda r, c, share, est: fmt.fmt_bound(r.watts, r.watts_lo, r.watts_hi),
    "share": lambda r, c, share, est: fmt.fmt_pct(share),
    "cpu": lambda r, c, share, est: fmt.fmt_util(r.cpu_util),
    "mhz": lambda r, c, share, est: fmt.fmt_mhz(r.freq_mhz, r.freq_nominal),
    "gpu": lambda r, c, share, est: fmt.fmt_watts(r.gpu_watts),
    "energy": lambda r, c, share, est: fmt.fmt_energy(r.joules),
    "cost": lambda r, c, share, est: fmt.fmt_money(fmt.per_hour(r.watts, c.price_per_kwh)),
    "co2": lambda r, c, share, est: fmt.fmt_grams(fmt.per_hour(r.watts, c.co2e_g_per_kwh)),
    **{k: (lambda r, c, share, est, k=k: counter_cell(k, r)) for k in COUNTER_KEYS},
    **{k: (lambda r, c, share, est, k=k: work_cell(k, _work(r), est)) for k in WORK_KEYS},
}


def counter_cell(key: str, row: Row) -> str:
    """A hardware-counter column's text (empty where the row has no counters)."""
    if key == "ipc":
        return f"{row.ipc:.2f}" if row.ipc is not None else ""
    return fmt.fmt_rate(row.instructions if key == "insn" else row.llc_misses)


FREQ_SOURCE = {"cycles": "cycles ÷ on-CPU time", "cpufreq": "cpufreq", "nominal": "nominal, not measured",
               "mixed": "partly cycles, partly cpufreq"}


def counter_summary(row: Row) -> str:
    """Keck's zoom, for the detail pane: "3.4 GHz (cycles ÷ on-CPU time), 1.2G insn, IPC 1.50,
    40k LLC miss" — the frequency and where it came from, then the counters the row has."""
    parts = []
    if row.freq_mhz is not None:
        src = FREQ_SOURCE.get(row.freq_source or "", "nominal, not measured" if row.freq_nominal else "")
        parts.append(f"{row.freq_mhz / 1000:.1f} GHz" + (f" ({src})" if src else ""))
    if row.instructions is not None:
        parts.append(f"{fmt.fmt_rate(row.instructions)} insn")
    if row.ipc is not None:
        parts.append(f"IPC {row.ipc:.2f}")
    if row.llc_misses is not None:
        parts.append(f"{fmt.fmt_rate(row.llc_misses)} LLC miss")
    return ", ".join(parts)


def unit_abbrev(unit: str) -> str:
    return UNIT_ABBREV.get(unit, unit[:4])


def work_cell(key: str, work: object, estimated: bool = False) -> str:
    """A work column's text for a row's ``work`` object (empty for rows without one)."""
    if not isinstance(work, dict):
        return ""
    status = work.get("status")
    if key == "wrate":
        rate = work.get("rate")
        if status != "ok" or not isinstance(rate, (int, float)):
            return {"error": "error", "unavailable": "no ctr", "reset": "reset"}.get(str(status), "…")
        return f"{fmt.fmt_rate(rate)} {unit_abbrev(str(work.get('unit', '')))}"
    if key == "jpu":
        j = work.get("j_per_unit")
        return fmt.fmt_si(j, "J", estimated=estimated) if isinstance(j, (int, float)) else ""
    cost = work.get("cost_per_m")
    return fmt.fmt_money(cost) if isinstance(cost, (int, float)) else ""


def work_summary(work: object, estimated: bool = False) -> str:
    """One line for the detail pane: the work source, its rate, joules per unit with the
    bound, units per watt, cost and CO2e per million, or why there are none."""
    if not isinstance(work, dict):
        return ""
    unit = str(work.get("unit", "unit"))
    head = f"{work.get('name', '?')} ({work.get('source', '')})"
    status = work.get("status")
    if status != "ok" or not isinstance(work.get("rate"), (int, float)):
        why = work.get("why") or ""
        where = f" · {work['url']}" if work.get("url") else ""
        return f"{head} {status}{': ' + why if why else ''}{where}"
    parts = [f"{head} {fmt.fmt_rate(work['rate'])} {unit}/s"]
    j = work.get("j_per_unit")
    if isinstance(j, (int, float)):
        lo, hi = work.get("j_per_unit_lo"), work.get("j_per_unit_hi")
        rng = (f" ({fmt.fmt_si(lo, 'J')}–{fmt.fmt_si(hi, 'J') if hi is not None else '?'})"
               if isinstance(lo, (int, float)) else "")
        parts.append(f"{fmt.fmt_si(j, 'J', estimated=estimated)}/{unit}{rng}")
    elif work.get("why"):
        parts.append(str(work["why"]))
    if isinstance(work.get("units_per_j"), (int, float)):
        parts.append(f"{work['units_per_j']:.3g} {unit}/s per W")
    if isinstance(work.get("cost_per_m"), (int, float)):
        parts.append(f"{fmt.fmt_money(work['cost_per_m'], str(work.get('currency', '')))}/M")
    if isinstance(work.get("co2e_g_per_m"), (int, float)):
        parts.append(f"{work['co2e_g_per_m']:.3g} gCO2e/M")
    parts.append(f"over {work.get('rows', 0)} rows {fmt.fmt_watts(work.get('watts'), estimated)} W")
    for a in work.get("also") or ():
        if isinstance(a, dict) and isinstance(a.get("rate"), (int, float)):
            aj = a.get("j_per_unit")
            parts.append(f"{a.get('unit')} {fmt.fmt_rate(a['rate'])}/s"
                         + (f" {fmt.fmt_si(aj, 'J', estimated=estimated)}" if isinstance(aj, (int, float)) else ""))
    return " · ".join(parts)


def needs_gpu_column(root: Row | None) -> bool:
    """Whether any row in the tree carries GPU watts (the column appears only then)."""
    if root is None:
        return False
    stack = [root]
    while stack:
        r = stack.pop()
        if r.gpu_watts is not None:
            return True
        stack.extend(r.children)
    return False
