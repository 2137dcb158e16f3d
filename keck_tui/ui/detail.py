"""The detail pane for the selected line: history, bounds, provenance, metadata."""
from __future__ import annotations

import math
from typing import Callable

from rich.style import Style
from rich.text import Text

from keck_tui.common import formatting as fmt
from keck_tui.model import Row, Snapshot
from keck_tui.ui import format as bars
from keck_tui.ui.columns import counter_summary, work_summary
from keck_tui.ui.header import calibration_text
from keck_tui.ui.history import History
from keck_tui.ui.view import Line

#: Why each kind of synthetic row exists (shown with the row's own ``note``).
SYNTHETIC_WHY = {
    "(idle)": "power drawn with nothing running; it belongs to no process (idle policy: separate)",
    "(residual)": "measured power the model could not pin on a process (short-lived tasks, model "
                  "error); kept so that children sum exactly to the parent",
    "(platform)": "wall power no component explains: fans, PSU loss, disks, NICs "
                  "(BMC reading minus CPU, DRAM and GPU)",
    "(kernel)": "CPU time in the kernel outside any process: interrupts, softirqs, kernel threads",
    "(dram)": "memory (DRAM) power split by PSS: a process's share, or the summed share of small "
              "processes that used no CPU this interval",
}

DETAIL_LINES = 6


Styler = Callable[[str], "Style | str"]  # a style key → the style to draw it with


def detail_lines(line: Line | None, snapshot: Snapshot | None, history: History,
                 width: int, *, span_label: str, threshold_w: float = 0.0,
                 styles: dict[str, Style | str] | None = None) -> list[Text]:
    s = styles or {}

    def st(key: str) -> Style | str:
        return s.get(key, "")

    out = [Text(no_wrap=True, overflow="ellipsis") for _ in range(DETAIL_LINES)]
    if line is None or snapshot is None:
        out[0].append(" nothing selected", st("dim"))
        return out
    if line.row is None:
        n = line.hidden_count
        out[0].append(f" {n} row{'s' if n != 1 else ''} below {fmt.fmt_watts(threshold_w)} W "
                      f"{'are' if n != 1 else 'is'} hidden", st("title"))
        out[1].append(f" together {fmt.fmt_watts(line.hidden_watts, snapshot.estimated)} W — Enter or t shows them",
                      st("dim"))
        return out
    row = line.row
    est = snapshot.estimated or row.estimated
    _identity(out[0], row, line, st)  # 1: identity
    _history(out[1], out[2], row, est, line, snapshot, history, width, span_label, st)  # 2 and 3: history
    _provenance(out[3], row, est, snapshot, st)  # 4: provenance
    _why(out[4], row, est, st)  # 5 and 6: work, why (synthetic), errors, labels, per-core breakdown
    _cores(out[5], row, est, snapshot, st)
    return out


def _identity(t: Text, row: Row, line: Line, st: Styler) -> None:
    t.append(f" {row.name}", st("title"))
    t.append(f" · {row.level}", st("dim"))
    ident = []
    if row.pid is not None:
        ident.append(f"pid {row.pid}")
    if row.cpu is not None:
        ident.append(f"cpu {row.cpu}")
    if row.namespace:
        ident.append(f"ns {row.namespace}")
    if row.pod_uid:
        ident.append(f"pod {row.pod_uid}")
    if row.container_id:
        ident.append(f"container {row.container_id[:12]}")
    if row.cmd:
        ident.append(f"cmd: {row.cmd}")
    if ident:
        t.append(" · " + " · ".join(ident))
    else:
        t.append(" · id " + "/".join(line.path), st("dim"))


def _history(t: Text, t2: Text, row: Row, est: bool, line: Line, snapshot: Snapshot, history: History,
             width: int, span_label: str, st: Styler) -> None:
    series = history.series(line.path)
    if not series or series[-1][0] < snapshot.time:  # history is sampled sparsely: add "now"
        series = series + [(snapshot.time, row.watts, row.watts_lo, row.watts_hi)]
    spark_w = max(8, min(60, width - 48))
    watts = [w for _, w, _, _ in series][-spark_w:]
    halves = [max(hi - w, w - lo, 0.0) for _, w, lo, hi in series][-spark_w:]
    recent = series[-spark_w:]
    top = max((hi for _, _, _, hi in recent), default=0.0)
    bottom = min((lo for _, _, lo, _ in recent), default=0.0)
    t.append(" watts  ", st("dim"))
    # Scaled from the lowest lower bound to the highest upper bound in view, so a
    # swing smaller than the uncertainty looks small.
    t.append(bars.sparkline(watts, spark_w, top=top if top > bottom else None,
                           bottom=bottom if top > bottom else 0.0).ljust(spark_w), st("spark"))
    t.append(f"  now {fmt.fmt_watts(row.watts, est)} W")
    finite = [w for w in watts if math.isfinite(w)]
    if len(finite) > 1:
        t.append(f"  min {fmt.fmt_watts(min(finite))}  max {fmt.fmt_watts(max(finite))}", st("dim"))
    t.append(f"  {span_label}", st("dim"))
    half = fmt.bound_halfwidth(row.watts, row.watts_lo, row.watts_hi)
    pct = f" ({half / row.watts * 100:.1f} %)" if row.watts > 0 else ""
    t2.append(" ±      ", st("dim"))
    t2.append(bars.sparkline(halves, spark_w, top=max(halves, default=0.0) or None).ljust(spark_w), st("spark_bound"))
    t2.append(f"  now ±{fmt.fmt_watts(half)} W{pct}")
    t2.append(f"  range {fmt.fmt_watts(row.watts_lo)}–{fmt.fmt_watts(row.watts_hi)} W", st("dim"))
    if len(halves) > 1:
        t2.append(f"  widest ±{fmt.fmt_watts(max(halves))}", st("dim"))
    terms = bound_terms_text(row.extra.get("bound") if row.extra else None)
    if terms:
        t2.append(f"  {terms}", st("dim"))


def _provenance(t: Text, row: Row, est: bool, snapshot: Snapshot, st: Styler) -> None:
    t.append(" from ", st("dim"))
    bits = []
    if est:
        bits.append("ESTIMATED (no power sensor)")
    if snapshot.model:
        cal = calibration_text(snapshot)
        bits.append(f"model {snapshot.model}" + (f" ({cal})" if cal else ""))
    srcs = row.sources if row.sources is not None else tuple(x.name for x in snapshot.sources if x.ok)
    if srcs:
        bits.append("sources " + ", ".join(srcs))
    if row.components:
        bits.append("components " + ", ".join(f"{k} {fmt.fmt_watts(v)}" for k, v in row.components.items()))
    if row.gpu_watts is not None:
        bits.append(f"GPU {fmt.fmt_watts(row.gpu_watts)} W")
    if row.instructions is not None or row.llc_misses is not None or row.freq_source == "cycles":
        bits.append(counter_summary(row))  # "3.4 GHz (cycles ÷ on-CPU time), 1.2G insn, IPC 1.50, …"
    elif row.freq_mhz is not None:
        bits.append(f"{fmt.fmt_mhz(row.freq_mhz)} MHz" + (" (nominal, not measured)" if row.freq_nominal else ""))
    if row.cpu_s is not None:
        bits.append(f"on-CPU {row.cpu_s:.2f} s")
    t.append(" · ".join(bits) if bits else "—")


def _why(t: Text, row: Row, est: bool, st: Styler) -> None:
    work = row.extra.get("work") if row.extra else None
    if isinstance(work, dict):
        t.append(" work ", st("dim"))
        t.append(work_summary(work, est), st("bad") if work.get("status") == "error" else "")
    elif row.synthetic or row.note:
        why = SYNTHETIC_WHY.get(row.id, "")
        text = " · ".join(x for x in (row.note, why) if x)
        t.append(" why  ", st("dim"))
        t.append(text, st("note"))
    elif row.error or row.stale:
        t.append(" ! ", st("bad"))
        t.append(row.error or f"stale: no fresh data for {fmt.fmt_age(row.age_s or 0.0)}", st("bad"))
    elif row.labels:
        t.append(" labels ", st("dim"))
        t.append(", ".join(f"{k}={v}" for k, v in sorted(row.labels.items())))
    else:
        t.append(f" energy {fmt.fmt_energy(row.joules)} this session", st("dim"))
        if row.cpu_util is not None:
            t.append(f" · CPU {fmt.fmt_util(row.cpu_util)} %", st("dim"))


def _cores(t: Text, row: Row, est: bool, snapshot: Snapshot, st: Styler) -> None:
    cores = [c for c in row.children if c.level == "core"]
    if cores:
        cores.sort(key=lambda c: -c.watts)
        t.append(f" {len(cores)} core{'s' if len(cores) != 1 else ''}: ", st("dim"))
        for i, c in enumerate(cores):
            if i:
                t.append(" · ", st("dim"))
            util = f" {c.cpu_util:.0f}%" if c.cpu_util is not None else ""
            if c.instructions is not None or c.llc_misses is not None:  # Keck's zoom
                t.append(f"{c.name}: {fmt.fmt_watts(c.watts, est)} W{util} ({counter_summary(c)})")
                continue
            mhz = f" {fmt.fmt_mhz(c.freq_mhz, c.freq_nominal)}" if c.freq_mhz is not None else ""
            t.append(f"{c.name} {fmt.fmt_watts(c.watts, est)} W{util}{mhz}")
    elif row.labels and (row.synthetic or row.note or row.error or row.stale):
        t.append(" labels " + ", ".join(f"{k}={v}" for k, v in sorted(row.labels.items())), st("dim"))
    elif row is snapshot.root and snapshot.warnings:
        t.append(" ⚠ " + " · ".join(snapshot.warnings), st("warn"))


def bound_terms_text(bound: object) -> str | None:
    """How a row's CPU bound is made: its independent terms, combined in quadrature (root-sum-square)."""
    if not isinstance(bound, dict):
        return None
    parts = []
    for key, label in (("sensor_w", "sensor"), ("idle_w", "idle"), ("model_w", "model"), ("tick_w", "tick")):
        v = bound.get(key)
        if isinstance(v, (int, float)) and v > 0 and math.isfinite(v):
            kind = bound.get("model")
            extra = f" ({kind})" if key == "model_w" and isinstance(kind, str) else ""
            parts.append(f"{label} ±{fmt.fmt_watts(v)}{extra}")
    return "in quadrature: " + " · ".join(parts) if parts else None
