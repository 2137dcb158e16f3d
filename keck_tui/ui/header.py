"""The three header lines: how much, how sure, where from, how old.

Built as rich ``Text`` from plain data so the exact wording is unit-tested.
Style names are resolved by the caller (see ``HeaderPanel``): the text must
read correctly without colour (NO_COLOR), so every state also has a word or
a glyph.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from rich.style import Style
from rich.text import Text

from keck_tui.common import formatting as fmt
from keck_tui.model import Snapshot, SourceStatus

COMPONENT_ORDER = ("cpu", "dram", "gpu", "platform")
COMPONENT_LABEL = {"cpu": "CPU", "dram": "DRAM", "gpu": "GPU", "platform": "platform"}


@dataclass(frozen=True)
class HeaderState:
    snapshot: Snapshot | None
    title: str | None
    now: float  # wall clock, unix seconds
    interval: float
    paused: bool = False
    recording: bool = False
    session_start: float | None = None  # snapshot time of the first sample shown
    price_per_kwh: float | None = None
    currency: str = "€"
    co2e_g_per_kwh: float | None = None
    sort_key: str = "watts"
    filter_text: str = ""
    threshold_w: float | None = None  # set while `t` hides small rows
    feed_error: str | None = None

    @property
    def age(self) -> float | None:
        return None if self.snapshot is None else self.now - self.snapshot.time

    def shown(self) -> tuple[object, ...]:
        """Everything the lines show except the snapshot, with the clock reduced to the age
        text and staleness: equal values (and the same snapshot) draw the same lines."""
        age = self.age
        return (replace(self, snapshot=None, now=0.0), None if age is None else fmt.fmt_age(age), self.stale)

    @property
    def stale(self) -> bool:
        age = self.age
        if age is None or self.snapshot is None:
            return False
        return age > 3 * max(self.interval, self.snapshot.interval_s)


def calibration_text(snap: Snapshot) -> str | None:
    """The model's calibration in a few words: "calibrating 12/60" or "calibrated: ±0.30 W, R² 0.997"
    (None where it cannot run: nothing measures the CPU power)."""
    cal = snap.extra.get("calibration")
    if not isinstance(cal, dict):
        return None
    status = cal.get("status")
    if status == "calibrating":
        samples, needed = cal.get("samples"), cal.get("needed")
        if isinstance(samples, int) and isinstance(needed, int) and samples < needed:
            return f"calibrating {samples}/{needed}"
        return "calibrating: needs varied load"
    if status == "calibrated":
        rmse, r2 = cal.get("rmse_w"), cal.get("r2")
        bits = []
        if isinstance(rmse, (int, float)):
            bits.append(f"tracking ±{fmt.fmt_watts(rmse)} W")
        if isinstance(r2, (int, float)):
            bits.append(f"R² {r2:.3f}")
        return "calibrated" + (": " + ", ".join(bits) if bits else "")
    return None


def source_glyph(src: SourceStatus) -> str:
    """✓ measured and ok · ~ an estimate · ✗ unavailable · ! error."""
    if src.status == "ok":
        return "~" if src.kind == "estimated" else "✓"
    if src.status == "error":
        return "!"
    return "✗"


def _source_style(src: SourceStatus) -> str:
    if src.status == "ok":
        return "warn" if src.kind == "estimated" else "good"
    return "bad" if src.status == "error" else "dim"


def header_lines(h: HeaderState, styles: dict[str, Style | str] | None = None,
                 width: int = 120) -> list[Text]:
    """Three lines; below 100 columns the brand is left out to keep the totals whole."""
    s = styles or {}

    def st(key: str) -> Style | str:
        return s.get(key, "")

    return [_totals_line(h, width, st), _sources_line(h, st), _status_line(h, st)]


def _totals_line(h: HeaderState, width: int, st: Callable[[str], Style | str]) -> Text:
    snap = h.snapshot
    l1 = Text(no_wrap=True, overflow="ellipsis")
    if width >= 100:
        l1.append(" keck-top ", st("brand"))
    l1.append(" ")
    l1.append(h.title or (snap.host if snap else ""), st("host"))
    # States the user switched on come before the numbers, so they are never cut off.
    if h.paused:
        l1.append("  ‖ PAUSED", st("paused"))
    if h.recording:
        l1.append("  ● REC", st("rec"))
    l1.append("   ")
    if snap is None:
        l1.append("waiting for the first sample…", st("dim"))
        return l1
    root = snap.root
    half = fmt.bound_halfwidth(root.watts, root.watts_lo, root.watts_hi)
    if snap.estimated:
        pct = half / root.watts * 100 if root.watts > 0 else 0.0
        l1.append(f"~{fmt.fmt_watts(root.watts)} W (estimated, ±{pct:.0f} %)", st("estimated"))
        l1.append(" — no power sensor; run keck-top doctor", st("warn"))
    else:
        l1.append(f"{fmt.fmt_watts(root.watts)} W", st("total"))
        l1.append(f" ±{fmt.fmt_watts(half)}", st("bound"))
    comps = root.components or {}
    keys = [k for k in COMPONENT_ORDER if k in comps] + sorted(k for k in comps if k not in COMPONENT_ORDER)
    if keys:
        l1.append("   ")
        for i, k in enumerate(keys):
            if i:
                l1.append(" · ", st("dim"))
            l1.append(f"{COMPONENT_LABEL.get(k, k)} ", st("dim"))
            l1.append(_short_watts(comps[k], snap.estimated))
    return l1


def _sources_line(h: HeaderState, st: Callable[[str], Style | str]) -> Text:
    snap = h.snapshot
    l2 = Text(no_wrap=True, overflow="ellipsis")
    l2.append(" ")
    if snap is None:
        return l2
    if snap.sources:
        for i, src in enumerate(snap.sources):
            if i:
                l2.append(" ")
            l2.append(f"{src.name} {source_glyph(src)}", st(_source_style(src)))
    else:
        l2.append("no sources", st("dim"))
    l2.append("  · ", st("dim"))
    age = h.age or 0.0
    if h.stale:
        l2.append(f" STALE: age {fmt.fmt_age(age)} ", st("stale"))
    else:
        l2.append(f"age {fmt.fmt_age(age)}", st("dim"))
    bits = [f"every {h.interval:g} s"]
    if snap.model:
        cal = calibration_text(snap)
        bits.append(f"model {snap.model}" + (f" ({cal})" if cal else ""))
    if snap.idle_policy:
        bits.append(f"idle {snap.idle_policy}")
    l2.append(" · " + " · ".join(bits), st("dim"))
    profile = profile_text(snap)
    if profile is not None:
        text, stepped = profile
        l2.append(" · ", st("dim"))
        l2.append(text, st("warn") if stepped else st("dim"))
    return l2


def _status_line(h: HeaderState, st: Callable[[str], Style | str]) -> Text:
    snap = h.snapshot
    l3 = Text(no_wrap=True, overflow="ellipsis")
    l3.append(" ")
    parts: list[tuple[str, str]] = []
    if snap is not None:
        root = snap.root
        parts.append((f"energy {fmt.fmt_energy(root.joules)} since start", "plain"))
        cost = fmt.per_hour(root.watts, h.price_per_kwh)
        if cost is not None:
            parts.append((f"{fmt.fmt_money(cost, h.currency)}/h", "plain"))
        co2 = fmt.per_hour(root.watts, h.co2e_g_per_kwh)
        if co2 is not None:
            parts.append((f"{fmt.fmt_grams(co2)} gCO2e/h", "plain"))
    parts.append((f"sort {h.sort_key}", "dim"))
    if h.filter_text:
        parts.append((f"filter “{h.filter_text}”", "filter"))
    if h.threshold_w is not None:
        parts.append((f"hiding < {fmt.fmt_watts(h.threshold_w)} W", "filter"))
    if h.feed_error:
        parts.append((f"feed error: {h.feed_error}", "bad"))
    if snap is not None and snap.warnings:
        parts.append((f"⚠ {snap.warnings[0]}" + (f" (+{len(snap.warnings) - 1})" if len(snap.warnings) > 1 else ""), "warn"))
    for i, (text, key) in enumerate(parts):
        if i:
            l3.append(" · ", st("dim"))
        l3.append(text, st(key) if key != "plain" else "")
    return l3


def profile_text(snap: Snapshot) -> tuple[str, bool] | None:
    """``profile standard``, or ``profile minimal ↓ from standard (CPU 7.2 % > budget 5 %…)``
    after a step down; and whether it stepped down. None when the snapshot names no profile."""
    info = snap.extra.get("profile")
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        return None
    name = info["name"]
    if not info.get("stepped_down"):
        return f"profile {name}", False
    step = info.get("last_step")
    why = step.get("reason") if isinstance(step, dict) else None
    return f"profile {name} ↓ from {info.get('configured')}" + (f" ({why})" if why else ""), True


def _short_watts(watts: float, estimated: bool) -> str:
    """Component watts without decimals once they reach 10 W (288, not 288.0)."""
    if 10 <= abs(watts) < 9999.5:
        return ("~" if estimated else "") + f"{watts:.0f}"
    return fmt.fmt_watts(watts, estimated)
