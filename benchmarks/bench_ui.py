"""UI benchmark: snapshot apply + repaint time, and keck-top's CPU beside top's.

1. Pilot: a mounted app at 130×213 (200 tree lines on screen) is given a new
   5,016-row snapshot with every row expanded (5,016 lines to flatten); we time
   ``show_snapshot`` (flatten, sort, history, header) and a full-frame repaint
   (the compositor renders every line of the screen; the tree renders only its
   200 visible lines), in wall and CPU time (CPU time is what matters on a
   shared box), and the Pilot round trip (``pilot.pause()``) beside the cost of
   an empty pause. Median and p95 over the runs.
2. CPU: the real ``keck-top`` (local sources, 1 s refresh, idle user) in a
   120×40 pty for 30 s, beside ``top -b -d 1`` over the same 30 s; CPU seconds
   from /proc/<pid>/stat (all threads), and their ratio.

Run: ``.venv/bin/python benchmarks/bench_ui.py [--runs 40] [--seconds 30] [--skip-cpu] [--skip-apply]``
(``make bench-ui``). ``--baseline-tree DIR --rounds N`` (a checkout of another commit, e.g. from
``git worktree add``) runs part 1 of that tree's bench_ui.py and of this one alternately, N
rounds, and prints each round's medians and the ratio: on a noisy shared VM only ratios
measured side by side mean anything. The CPU part runs twice: the real keck-top, then the TUI alone
over the fake fleet (benchmarks/ui_fake_run.py) to separate UI cost from sampling cost.
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ui"))
sys.path.insert(0, str(REPO))

import fake_fleet as ff  # noqa: E402
from keck_tui.clock import FakeClock  # noqa: E402
from keck_tui.config import Settings  # noqa: E402
from keck_tui.feed import StaticFeed  # noqa: E402
from keck_tui.ui.app import GC_THRESHOLDS, KeckApp, tune_gc  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def bench_apply(runs: int) -> dict[str, float]:
    """Time apply, a full-frame repaint, and the Pilot round trip for each new snapshot."""
    clock = FakeClock(now=1000.0)
    snaps = [ff.big_snapshot(step, time=clock.wall()) for step in range(2)]
    rows = ff.count_rows(snaps[0].root)
    app = KeckApp(StaticFeed(snaps[:1]), settings=Settings(), clock=clock, auto_poll=False)
    apply_ms: list[float] = []
    paint_ms: list[float] = []
    cpu_ms: list[float] = []
    pilot_ms: list[float] = []
    pilot_cpu_ms: list[float] = []
    idle_ms: list[float] = []
    async with app.run_test(size=(130, 213)) as pilot:
        app.show_snapshot(snaps[0])
        app.view.default_depth = 99
        for path, row in snaps[0].root.walk():
            if row.children:
                app.view.overrides[path] = True
        app.view.rebuild()
        app.power_tree.sync()
        await pilot.pause()
        lines = len(app.view.lines)
        visible = app.power_tree.scrollable_content_region.height
        app.power_tree.action_jump(2500)  # cursor mid-tree: the view scrolls there
        await pilot.pause()
        compositor = app.screen._compositor
        for i in range(runs):
            snap = snaps[(i + 1) % 2]
            clock.advance(1.0)
            c0 = time.process_time()
            t0 = time.perf_counter()
            app.show_snapshot(snap)
            t1 = time.perf_counter()
            compositor.render_strips()  # every line of the 130×213 screen, as an update would
            t2 = time.perf_counter()
            c1 = time.process_time()
            await pilot.pause()
            apply_ms.append((t1 - t0) * 1e3)
            paint_ms.append((t2 - t1) * 1e3)
            cpu_ms.append((c1 - c0) * 1e3)
        for i in range(runs):  # end to end through the Pilot, and the Pilot's own cost
            clock.advance(1.0)
            c0 = time.process_time()
            t0 = time.perf_counter()
            app.show_snapshot(snaps[i % 2])
            await pilot.pause()
            t1 = time.perf_counter()
            c1 = time.process_time()
            await pilot.pause()
            t2 = time.perf_counter()
            pilot_ms.append((t1 - t0) * 1e3)
            pilot_cpu_ms.append((c1 - c0) * 1e3)
            idle_ms.append((t2 - t1) * 1e3)
    total = [a + b for a, b in zip(apply_ms, paint_ms)]
    return {"rows": rows, "lines": lines, "visible": visible, "runs": runs,
            "apply": (statistics.median(apply_ms), pct(apply_ms, 0.95)),
            "paint": (statistics.median(paint_ms), pct(paint_ms, 0.95)),
            "total": (statistics.median(total), pct(total, 0.95)),
            "cpu": (statistics.median(cpu_ms), pct(cpu_ms, 0.95)),
            "pilot": (statistics.median(pilot_ms), pct(pilot_ms, 0.95)),
            "pilot_cpu": (statistics.median(pilot_cpu_ms), pct(pilot_cpu_ms, 0.95)),
            "idle": (statistics.median(idle_ms), pct(idle_ms, 0.95))}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PtyProc:
    """A program running in its own 120×40 pseudo-terminal whose output is drained."""

    def __init__(self, argv: list[str], rows: int = 40, cols: int = 120) -> None:
        self.argv = argv
        pid, fd = pty.fork()
        if pid == 0:  # child
            os.environ["TERM"] = "xterm-256color"
            os.environ.pop("NO_COLOR", None)
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self._stop = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:  # a terminal that is never read would block the program
        while not self._stop.is_set():
            try:
                if not os.read(self.fd, 65536):
                    break
            except OSError:
                break

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def quit(self, keys: bytes = b"q", timeout: float = 10.0) -> int | None:
        os.write(self.fd, keys)
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            done, st = os.waitpid(self.pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
                break
            time.sleep(0.1)
        if status is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        self._stop.set()
        os.close(self.fd)
        return status


def bench_cpu(seconds: float, ui_only: bool = False) -> dict[str, object]:
    """CPU seconds of keck-top (or the TUI alone) and of top/htop, all in 120×40 ptys
    at a 1 s refresh over the same ``seconds``, plus top -b for reference."""
    keck = Path(sys.executable).with_name("keck-top")
    if not keck.exists() or shutil.which("top") is None:
        raise SystemExit(f"need {keck} and top(1)")
    argv = [str(keck), "--interval", "1"]
    if ui_only:
        argv = [sys.executable, str(REPO / "benchmarks" / "ui_fake_run.py"), "1"]
    procs: dict[str, PtyProc] = {"keck": PtyProc(argv)}
    time.sleep(5.0)  # start-up (imports, first sample) is not the steady state
    procs["top"] = PtyProc([shutil.which("top") or "top", "-d", "1"])
    if shutil.which("htop"):
        procs["htop"] = PtyProc([shutil.which("htop") or "htop", "-d", "10"])  # tenths of a second
    batch = subprocess.Popen(["top", "-b", "-d", "1", "-n", str(int(seconds) + 2)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    before = {k: p.cpu() for k, p in procs.items()}
    before["top -b"] = cpu_seconds(batch.pid)
    w0 = time.monotonic()
    time.sleep(seconds)
    after = {k: p.cpu() for k, p in procs.items()}
    after["top -b"] = cpu_seconds(batch.pid)
    wall = time.monotonic() - w0
    batch.kill()
    batch.wait()
    status = procs["keck"].quit(b"q")
    for k in ("top", "htop"):
        if k in procs:
            procs[k].quit(b"q")
    used = {k: after[k] - before[k] for k in after}
    return {"wall_s": wall, "cpu_s": used, "exit_status": status}


def medians(output: str) -> dict[str, float]:
    """The medians bench_ui prints for apply, repaint and their sum (any version's output)."""
    out = {}
    for line in output.splitlines():
        for key, start in (("apply", "show_snapshot ("), ("repaint", "repaint ("), ("total", "apply + repaint, wall")):
            if line.strip().startswith(start) and "median" in line:
                out[key] = float(line.split("median")[1].split()[0])
    return out


def ab_rounds(baseline: Path, rounds: int, runs: int) -> None:
    """Part 1 of the baseline tree's bench and of this one, alternately."""
    trees = (("baseline", baseline), ("this tree", REPO))
    totals: dict[str, list[float]] = {name: [] for name, _ in trees}
    for i in range(rounds):
        for name, tree in (trees if i % 2 == 0 else trees[::-1]):
            script = tree / "benchmarks" / "bench_ui.py"
            done = subprocess.run([sys.executable, str(script), "--skip-cpu", "--runs", str(runs)],
                                  capture_output=True, text=True, timeout=900)
            m = medians(done.stdout)
            if "total" not in m:
                raise SystemExit(f"{script}: no medians in its output:\n{done.stdout}{done.stderr}")
            totals[name].append(m["total"])
            print(f"round {i + 1} {name:9s} apply {m.get('apply', 0):6.1f}  repaint {m.get('repaint', 0):6.1f}"
                  f"  apply + repaint {m['total']:6.1f} ms (medians of {runs})")
    ratios = [a / b for a, b in zip(totals["this tree"], totals["baseline"])]
    print(f"apply + repaint, this tree / baseline, per round: {' '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}; this tree's median of medians "
          f"{statistics.median(totals['this tree']):.1f} ms (target ≤ 50)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-apply", action="store_true")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout to compare part 1 with, side by side")
    ap.add_argument("--rounds", type=int, default=4, help="with --baseline-tree: alternations")
    args = ap.parse_args()
    if args.baseline_tree is not None:
        if not (args.baseline_tree / "benchmarks" / "bench_ui.py").is_file():
            ap.error(f"{args.baseline_tree}: no benchmarks/bench_ui.py there")
        ab_rounds(args.baseline_tree, args.rounds, args.runs)
        return 0
    if not args.skip_apply:
        tune_gc()  # as run_tui does
        print(f"(GC thresholds {GC_THRESHOLDS}, as run_tui sets them)")
        report_apply(asyncio.run(bench_apply(args.runs)))
    if not args.skip_cpu:
        for ui_only, label in ((False, "keck-top (local sources + TUI)"),
                               (True, "TUI alone (fake fleet, no sampling)")):
            c = bench_cpu(args.seconds, ui_only=ui_only)
            used: dict[str, float] = c["cpu_s"]  # type: ignore[assignment]
            wall: float = c["wall_s"]  # type: ignore[assignment]
            print(f"CPU over the same {wall:.1f} s, 1 s refresh, 120×40 ptys, idle user, load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:")
            names = {"keck": label, "top": "top -d 1 (interactive)", "htop": "htop -d 10 (interactive)",
                     "top -b": "top -b -d 1 > /dev/null"}
            for key, name in names.items():
                if key in used:
                    extra = f"  (exit status {c['exit_status']})" if key == "keck" else \
                        f"  keck/this = {used['keck'] / used[key]:.1f}" if used[key] > 0 else ""
                    print(f"  {name:40s} {used[key]:5.2f} s = {used[key] / wall * 100:4.1f} % of one CPU{extra}")
    return 0


def report_apply(r: dict) -> None:
    load = os.getloadavg()[0]
    print(f"apply a {r['rows']}-row snapshot ({r['lines']} lines expanded, {r['visible']} tree lines "
          f"on a 130×213 screen), {r['runs']} runs, load average {load:.1f} on {os.cpu_count()} CPUs:")
    for key, label in (("apply", "show_snapshot (flatten, sort, history, header)"),
                       ("paint", "repaint (render every screen line)"),
                       ("total", "apply + repaint, wall"),
                       ("cpu", "apply + repaint, CPU time"),
                       ("pilot", "Pilot round trip (show_snapshot + pilot.pause()), wall"),
                       ("pilot_cpu", "Pilot round trip, CPU time"),
                       ("idle", "an empty pilot.pause(), wall (timer waits)")):
        med, p95 = r[key]
        print(f"  {label:50s} median {med:6.1f} ms   p95 {p95:6.1f} ms")
    print("  target: apply + repaint ≤ 50 ms median")


if __name__ == "__main__":
    sys.exit(main())
