"""Plain-text numbers: watts, energy, money, grams CO2e, percentages, durations, times.

One set for every output (TUI columns and panes, ``--once``/``--batch`` tables, ``attach``
tables, ``report``), so the same number reads the same everywhere. The UI adds its own
styling in :mod:`keck_tui.ui`; nothing here knows about colours.

The rounding rule, for every formatter: a value takes the finest precision of its ladder
whose *rounded* text still fits that step (``999.96`` W is ``1000``, not ``1000.0``; ``€0.0996``
is ``€0.10``, not ``€0.100``), rounding half to even on the binary value as Python's ``format``
does. A value that is None, NaN or infinite is ``missing`` (empty by default).
"""
from __future__ import annotations

import math
import time
from typing import Sequence

#: A ladder step: (values whose rounded magnitude is below ``limit``, decimals, divisor, suffix).
Step = tuple[float, int, float, str]

WATTS: Sequence[Step] = ((1000, 1, 1, ""), (10000, 0, 1, ""), (100, 1, 1000, "k"), (math.inf, 0, 1000, "k"))
ENERGY_WH: Sequence[Step] = ((10, 2, 1, " Wh"), (100, 1, 1, " Wh"), (1000, 0, 1, " Wh"),
                             (10, 2, 1e3, " kWh"), (100, 1, 1e3, " kWh"), (1000, 0, 1e3, " kWh"),
                             (10, 2, 1e6, " MWh"), (100, 1, 1e6, " MWh"), (math.inf, 0, 1e6, " MWh"))
MONEY: Sequence[Step] = ((0.1, 3, 1, ""), (100, 2, 1, ""), (math.inf, 0, 1, ""))
GRAMS: Sequence[Step] = ((10, 1, 1, ""), (10000, 0, 1, ""), (math.inf, 1, 1000, "k"))
PERCENT: Sequence[Step] = ((10, 1, 1, "%"), (math.inf, 0, 1, "%"))
J_PER_WH = 3600.0


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


_FIXED = tuple(f".{d}f" for d in range(10))  # format specs by decimals (no nested f-string per call)


def ladder(value: float, steps: Sequence[Step]) -> str:
    """``value`` at the first step whose rounded magnitude stays below the step's limit."""
    for limit, decimals, divisor, suffix in steps:
        text = format(value / divisor if divisor != 1 else value, _FIXED[decimals])
        if abs(float(text)) < limit:
            return text + suffix
    limit, decimals, divisor, suffix = steps[-1]
    return format(value / divisor if divisor != 1 else value, _FIXED[decimals]) + suffix


def fmt_watts(watts: float | None, estimated: bool = False) -> str:
    """412.3 · 4123 · 12.3k · 123k; ``~`` in front of estimated values."""
    if not _finite(watts):
        return ""
    text = ladder(watts, WATTS)  # type: ignore[arg-type]
    return ("~" + text) if estimated else text


def bound_halfwidth(watts: float, lo: float, hi: float) -> float:
    """The ± of a row: the larger distance from the value to either bound."""
    return max(0.0, hi - watts, watts - lo)


def fmt_bound(watts: float, lo: float, hi: float) -> str:
    """The ± of a row as watts text (no sign)."""
    return fmt_watts(bound_halfwidth(watts, lo, hi))


def fmt_energy(joules: float | None) -> str:
    """1920 J · 1.00 Wh · 56.7 Wh · 944 Wh · 2.41 kWh · 123 kWh · 2.50 MWh (3 significant digits)."""
    if not _finite(joules):
        return ""
    text = f"{joules:.0f}"
    if float(text) < J_PER_WH:
        return text + " J"
    return ladder(joules / J_PER_WH, ENERGY_WH)  # type: ignore[operator]


def fmt_money(value: float | None, currency: str = "", missing: str = "") -> str:
    """€0.012 · €0.12 · €12.35 · €1234 (per hour in the TUI, per group in a report)."""
    if not _finite(value):
        return missing
    return currency + ladder(value, MONEY)  # type: ignore[arg-type]


def fmt_grams(value: float | None, unit: bool = False, missing: str = "") -> str:
    """Grams CO2e: 9.6 · 96 · 12.3k; with ``unit``: 9.6 g · 96 g · 12.3 kg."""
    if not _finite(value):
        return missing
    text = ladder(value, GRAMS)  # type: ignore[arg-type]
    if not unit:
        return text
    return text[:-1] + " kg" if text.endswith("k") else text + " g"


def fmt_pct(value: float | None) -> str:
    """49% · 4.6% · 0%; empty when unknown."""
    if not _finite(value):
        return ""
    if value == 0:
        return "0%"
    return ladder(value, PERCENT)  # type: ignore[arg-type]


def fmt_util(value: float | None) -> str:
    """CPU utilisation in percent of one CPU, one decimal (200.0 = two cores)."""
    return f"{value:.1f}" if _finite(value) else ""


def fmt_mhz(mhz: float | None, nominal: bool | None = False) -> str:
    """3410, or 3600* when the value is the nominal frequency, not a measurement."""
    if not _finite(mhz):
        return ""
    return f"{mhz:.0f}" + ("*" if nominal else "")


def fmt_age(seconds: float) -> str:
    """<1 s · 7 s · 12 min · 2.5 h — whole units, so the text (and the screen)
    changes at most once a second while nothing else does."""
    if seconds < 1:
        return "<1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_duration(seconds: float) -> str:
    """A span to the second: 0m07s · 12m05s · 3h02m00s."""
    s = int(round(max(0.0, seconds))) if math.isfinite(seconds) else 0
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def fmt_clock(t: float | None, date: bool = False, missing: str = "—") -> str:
    """Local wall-clock time of unix ``t``: 14:03:07, or 2026-06-15 14:03:07 with ``date``."""
    if not _finite(t):
        return missing
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(t))


#: SI prefixes for :func:`fmt_si` (the value's magnitude picks the first that fits).
SI: Sequence[tuple[float, str]] = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"))


def fmt_si(value: float | None, unit: str, digits: int = 3, estimated: bool = False, missing: str = "") -> str:
    """Three significant digits and an SI prefix: 0.51 J · 2.12 mJ · 850 µJ · 11.6 J · 1.3 kJ ·
    6.86 W · 540 mW — for figures that span many magnitudes (a run's energy, joules per token).
    Values from 0.1 to 1 keep the plain unit (0.51 J, not 510 mJ)."""
    if not _finite(value):
        return missing
    r = abs(float(f"{value:.{digits}g}"))  # the prefix follows the rounded value (999.96 → 1 k)
    scale, prefix = 1.0, ""
    if r >= 1e3:
        scale, prefix = next((s, p) for s, p in SI if r >= s)
    elif 0 < r < 0.1:
        scale, prefix = next(((s, p) for s, p in SI if s < 1 and r >= s), SI[-1])
    v = value / scale  # type: ignore[operator]
    text = f"{v:.{digits}g}"
    if "e" in text:
        text = f"{v:.0f}"
    return ("~" if estimated else "") + f"{text} {prefix}{unit}"


def fmt_rate(value: float | None, missing: str = "") -> str:
    """Units per second: 3.5 · 412 · 1.2k · 46k · 1.2M (short, for a column)."""
    if not _finite(value):
        return missing
    a = abs(value)  # type: ignore[arg-type]
    if f"{a:.1f}" != "10.0" and a < 9.95:
        return f"{value:.1f}"
    if a < 999.5:
        return f"{value:.0f}"
    for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        v = value / scale  # type: ignore[operator]
        if abs(v) < 9.95:
            return f"{v:.1f}{suffix}"
        if abs(v) < 999.5 or suffix == "G":
            return f"{v:.0f}{suffix}"
    return f"{value:.0f}"  # pragma: no cover


def per_hour(watts: float, per_kwh: float | None) -> float | None:
    """Cost (or grams) per hour of a constant ``watts`` at ``per_kwh``."""
    if per_kwh is None:
        return None
    return watts / 1000.0 * per_kwh
