"""``keck-top report`` as a rich table (the only part of report that needs rich)."""
from __future__ import annotations

import time
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from keck_tui.cost import format_grams, format_money
from keck_tui.report import GroupTotal, Report


def _wh(j: float) -> str:
    wh = j / 3600.0
    if wh >= 10_000:
        return f"{wh / 1000:,.1f} kWh"
    if wh >= 100:
        return f"{wh:,.0f} Wh"
    if wh >= 1:
        return f"{wh:.2f} Wh"
    if wh >= 0.1 or wh == 0:
        return f"{wh:.3f} Wh"
    return f"{wh * 1000:.2f} mWh"


def _w(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def _stamp(t: float | None) -> str:
    return "—" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _duration(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def build_table(report: Report) -> Table:
    title = (f"{report.path}: {report.snapshots} snapshots, {_stamp(report.start)} → {_stamp(report.end)}"
             f" ({_duration(report.duration_s)}), by {report.by}")
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    table.add_column(report.by, overflow="fold", no_wrap=False)
    table.add_column("where", style="dim", overflow="ellipsis", max_width=24)
    table.add_column("energy", justify="right")
    table.add_column("(lo…hi)", justify="right", style="dim")
    table.add_column("mean W", justify="right")
    table.add_column("(lo…hi)", justify="right", style="dim")
    table.add_column("peak W", justify="right")
    table.add_column("peak at", style="dim")
    table.add_column("share", justify="right")
    if report.has_price:
        table.add_column("cost", justify="right")
    if report.has_co2e:
        table.add_column("CO2e", justify="right")

    def add(g: GroupTotal, total: bool = False) -> None:
        mean, lo, hi = g.mean_watts(report.duration_s)
        share = f"{100 * g.joules / report.total.joules:.1f} %" if report.total.joules > 0 else "—"
        cells: list[str | Text] = [
            Text(g.name, style="bold" if total else ("dim" if g.name.startswith("(") else "")),
            g.where, _wh(g.joules), f"{_wh(g.joules_lo)}…{_wh(g.joules_hi)}",
            _w(mean), f"{_w(lo)}…{_w(hi)}", _w(g.peak_watts),
            time.strftime("%H:%M:%S", time.localtime(g.peak_time)) if g.peak_time else "—",
            share,
        ]
        if report.has_price:
            cells.append(format_money(g.cost, report.currency))
        if report.has_co2e:
            cells.append(format_grams(g.co2e_g))
        table.add_row(*cells, end_section=total)

    for g in report.groups:
        add(g)
    table.add_section()
    add(report.total, total=True)
    return table


def print_report(report: Report, file: IO[str] | None = None, width: int | None = None) -> None:
    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    if width is None and not console.is_terminal:
        console.width = 160  # a file or a pipe: don't squeeze the table into 80 columns
    console.print(build_table(report))
