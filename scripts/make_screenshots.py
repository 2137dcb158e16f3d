"""Write screenshots/*.svg (and *.png where a converter exists) of the main TUI views.

Data: the simulated fleet from ``keck_tui.demo`` when it is importable, else the
test suite's deterministic fake fleet (tests/ui/fake_fleet.py). Everything is
replayed with a fake clock, so the same code gives the same pictures.

    make screenshots        # or: .venv/bin/python scripts/make_screenshots.py [--out DIR] [--no-png]

PNG conversion uses ``rsvg-convert`` (Debian: librsvg2-bin) or the ``cairosvg``
module, whichever is there; without either, only SVGs are written.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Awaitable, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "ui"))

from keck_tui.clock import FakeClock  # noqa: E402
from keck_tui.config import Settings  # noqa: E402
from keck_tui.feed import StaticFeed  # noqa: E402
from keck_tui.model import Row, Snapshot  # noqa: E402
from keck_tui.ui.app import KeckApp  # noqa: E402

SETTINGS = Settings(price_per_kwh=0.30, currency="€", co2e_g_per_kwh=250.0, history_minutes=10.0)
STEP_S = 10.0  # between replayed snapshots: 60 of them fill a 10-minute history
STEPS = 60


@dataclass
class Data:
    source: str
    fleet: list[Snapshot]
    node: list[Snapshot]
    estimated: list[Snapshot]


def load_data() -> Data:
    """The demo fleet if present, else the fake fleet; both deterministic."""
    import fake_fleet as ff
    fake_clock = FakeClock(now=1000.0)
    estimated = ff.series(STEPS, fake_clock, estimated=True, interval=STEP_S)
    try:
        from keck_tui.demo.sim import DemoFleet
    except ImportError:
        return Data("fake fleet (tests/ui/fake_fleet.py)",
                    ff.series(STEPS, fake_clock, fleet=True, interval=STEP_S),
                    ff.series(STEPS, fake_clock, interval=STEP_S), estimated)
    demo = DemoFleet(seed=1, interval=STEP_S)
    fleet: list[Snapshot] = []
    node: list[Snapshot] = []
    node_name = None
    for _ in range(STEPS):
        snap = demo.step()
        fleet.append(snap)
        if node_name is None:  # the hungriest node is the most interesting one
            nodes = [n for c in snap.root.children for n in c.children]
            node_name = max(nodes, key=lambda r: r.watts).id
        one = demo.node_snapshot(node_name)
        if one is not None:
            node.append(one)
    return Data("keck_tui.demo (DemoFleet seed 1)", fleet, node or fleet, estimated)


def heaviest_path(root: Row, level: str) -> tuple[str, ...] | None:
    best: tuple[float, tuple[str, ...]] | None = None
    for path, row in root.walk():
        if row.level == level and row.children and (best is None or row.watts > best[0]):
            best = (row.watts, path)
    return None if best is None else best[1]


Prepare = Callable[[KeckApp], Awaitable[None] | None]


async def shoot(snaps: list[Snapshot], size: tuple[int, int], prepare: Prepare | None = None, *,
                settings: Settings = SETTINGS, age: float = 0.4, keys: tuple[str, ...] = ()) -> str:
    clock = FakeClock(now=snaps[-1].time + age, wall_offset=0.0)
    app = KeckApp(StaticFeed(snaps[-1:]), settings=settings, clock=clock, auto_poll=False)
    async with app.run_test(size=size) as pilot:
        for snap in snaps:  # replay: fills the history the detail pane draws
            app.show_snapshot(snap)
        if prepare is not None:
            result = prepare(app)
            if result is not None:
                await result
            app.refresh_all()
        if keys:
            await pilot.press(*keys)
        await pilot.pause()
        return app.export_screenshot(title="keck-top")


def open_path(app: KeckApp, path: tuple[str, ...] | None, *, expand_self: bool = True) -> None:
    """Open every row on the way to ``path`` and select it."""
    if path is None:
        return
    for i in range(2, len(path) + (1 if expand_self else 0)):
        app.view.overrides[path[:i]] = True
    app.view.rebuild()
    app.view.select(path)


def views(data: Data) -> dict[str, Callable[[], Awaitable[str]]]:
    node, fleet = data.node, data.fleet
    proc = heaviest_path(node[-1].root, "process")
    pod = heaviest_path(fleet[-1].root, "pod")

    def select_proc(app: KeckApp) -> None:
        open_path(app, proc, expand_self=False)

    def cores(app: KeckApp) -> None:
        open_path(app, proc)

    def zoom(app: KeckApp) -> None:
        if pod is not None:
            app.view.zoom_to(pod[:-1])
            open_path(app, pod)

    def expand_fleet(app: KeckApp) -> None:
        for path, row in fleet[-1].root.walk():
            if row.level in ("fleet", "cluster", "node"):
                app.view.overrides[path] = True
        app.view.rebuild()

    return {
        "overview": lambda: shoot(node, (120, 40), select_proc),
        "cores": lambda: shoot(node, (120, 40), cores),
        "fleet-160x50": lambda: shoot(fleet, (160, 50), expand_fleet, keys=("c",)),
        "zoom": lambda: shoot(fleet, (120, 40), zoom),
        "filter": lambda: shoot(fleet, (120, 40), keys=("slash", *"gunicorn", "enter")),
        "estimated-stale": lambda: shoot(data.estimated, (120, 40), age=45.0),
        "help": lambda: shoot(node, (120, 40), keys=("question_mark",)),
        "narrow-80x24": lambda: shoot(node, (80, 24), select_proc),
        "light": lambda: shoot(node, (120, 40), select_proc, settings=replace(SETTINGS, theme="light")),
        "wide-200x60": lambda: shoot(fleet, (200, 60), expand_fleet),
    }


def svg_for_png(svg: str) -> str:
    """Textual's SVG, adjusted for librsvg/cairo: plain spaces kept as written and a
    monospace font whose advance matches the 12.2 px cell (DejaVu Sans Mono)."""
    svg = svg.replace("&#160;", " ").replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg = svg.replace('"Fira Code"', '"DejaVu Sans Mono"').replace("Fira Code, monospace",
                                                                   "DejaVu Sans Mono, monospace")
    return re.sub(r"font-size: 20px", "font-size: 20.266px", svg)


def to_png(svg_path: Path, png_path: Path) -> str | None:
    fixed = svg_path.with_suffix(".png.svg")
    fixed.write_text(svg_for_png(svg_path.read_text()))
    try:
        if shutil.which("rsvg-convert"):
            subprocess.run(["rsvg-convert", str(fixed), "-o", str(png_path)], check=True, timeout=60)
            return "rsvg-convert"
        try:
            import cairosvg  # type: ignore[import-not-found]
        except ImportError:
            return None
        cairosvg.svg2png(url=str(fixed), write_to=str(png_path))
        return "cairosvg"
    finally:
        fixed.unlink(missing_ok=True)


async def main_async(out: Path, png: bool) -> int:
    data = load_data()
    print(f"data: {data.source}")
    out.mkdir(parents=True, exist_ok=True)
    converter_missing = False
    for name, make in views(data).items():
        svg = await make()
        path = out / f"{name}.svg"
        path.write_text(svg)
        line = f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}"
        if png and not converter_missing:
            how = to_png(path, path.with_suffix(".png"))
            if how is None:
                converter_missing = True
                print("  (no rsvg-convert or cairosvg: SVGs only; apt-get install librsvg2-bin for PNGs)")
            else:
                line += f" + .png ({how})"
        print(line)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="write the TUI screenshots")
    ap.add_argument("--out", type=Path, default=REPO / "screenshots")
    ap.add_argument("--no-png", action="store_true", help="write SVGs only")
    args = ap.parse_args()
    return asyncio.run(main_async(args.out, png=not args.no_png))


if __name__ == "__main__":
    sys.exit(main())
