"""The `?` help screen: keys, columns and what the symbols mean."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from keck_tui.model import Snapshot

HELP_TEXT = """\
[b]keck-top[/b] — where the watts go, and how sure that is

[b]Moving[/b]
  ↑ ↓ j k  PgUp PgDn  Home End   move the selection (the mouse works too)
  Enter                          expand / collapse the selected row
  → l   ← h                      expand (or step into) · collapse (or step to the parent)
  z                              zoom: the selected row becomes the root
  u  Backspace                   zoom out one level

[b]Showing[/b]
  s        cycle sort: watts → CPU → name → energy (synthetic rows stay last)
  /        filter rows by name, pid command or id (incremental; Esc clears)
  t        hide rows below 1 % of the zoomed root's watts (they are summed in a "…" line)
  c        cost columns: money and gCO2e per hour at the configured price and intensity
  w        work columns: units/s and joules per unit (tokens of inference servers, [[work]])
  e        hardware-counter columns: instructions, IPC, LLC misses (where a PMU counts)
  i        detail pane on/off        T  light/dark theme
  + -      refresh faster / slower   p  pause (the screen keeps the last sample)
  r        start/stop recording      d  sources: what works, what failed, how to fix
  ?        this help                 q  Ctrl-C  quit
  Ctrl-P   command palette (every action above, by name)

[b]Columns[/b]
  WATTS    mean power over the last interval; [b]~[/b] = estimated, not measured
  ±        half-width of the error bound (the larger of value−lo and hi−value)
  RANGE    █ up to the lower bound, ▒ up to the value, ░ up to the upper bound —
           a wide shaded tail means: don't trust the digits
  SHARE    share of the parent row's watts
  CPU%     CPU utilisation        MHz  frequency; [b]*[/b] = nominal (no cpufreq), not measured
  GPU W    GPU watts attributed to the row    ENERGY  energy this session (J, Wh, kWh)
  TREND    (wide terminals) the row's watts over the history span, scaled to its own range
  WORK/s   units of work per second (w)   J/UNIT  joules per unit   /M  cost per million units
  INSN     instructions in the interval (e)   IPC  instructions per cycle   LLC MISS  last-level cache misses

[b]Rows[/b]
  ▸ closed  ▾ open   [i](idle) (residual) (platform) (kernel) (dram)[/i] are synthetic rows:
  they make children add up exactly to their parent; the detail pane says why each exists.
  \\[stale 12 s] remote data that stopped updating · \\[error] the source of that row failed

[b]Header[/b]
  sources: ✓ measured and working · ~ an estimate · ✗ unavailable · ! error
  (press [b]d[/b] or run [b]keck-top doctor[/b] to see why and how to fix)
  STALE: the newest sample is older than 3 intervals — the numbers are not live.

Esc, q or ? closes this screen.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "close"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $panel; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP_TEXT, id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


def sources_text(snapshot: Snapshot | None) -> Text:
    """Every source of the snapshot: state, kind, watts, why, and how to fix it."""
    from keck_tui.ui.header import source_glyph
    text = Text()
    text.append("Power sources", "bold")
    text.append("   (the same as `keck-top doctor`, from the latest sample)\n\n", "dim")
    if snapshot is None:
        text.append("no sample yet\n")
        return text
    if snapshot.estimated:
        text.append("No measured power source: every watt on screen is an estimate (~).\n\n", "bold")
    width = max([len(s.name) for s in snapshot.sources] + [6])
    for src in snapshot.sources:
        text.append(f"  {source_glyph(src)} {src.name.ljust(width)}  ", "bold")
        watts = f"  {src.watts:.1f} W" if src.watts is not None else ""
        text.append(f"{src.status} · {src.kind}{watts}\n")
        if src.detail:
            text.append(f"      {src.detail}\n", "dim")
        fix = src.extra.get("fix") if src.extra else None
        if fix and not src.ok:
            text.append("      fix: ", "bold")
            text.append(f"{fix}\n")
    for warning in snapshot.warnings:
        text.append(f"\n  ⚠ {warning}", "bold")
    text.append("\n\nEsc, q or d closes this screen.", "dim")
    return text


class SourcesScreen(ModalScreen[None]):
    """`d`: which sources produced the numbers, which failed, and how to fix them."""

    BINDINGS = [Binding("escape,q,d", "dismiss", "close")]

    DEFAULT_CSS = HelpScreen.DEFAULT_CSS.replace("HelpScreen", "SourcesScreen")

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(sources_text(self.snapshot), id="sources-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
