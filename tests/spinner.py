"""Busy children whose real CPU time a test can read, so that what keck-top measured is checked
against what the process actually got — on a loaded machine (a busy 2-core CI VM) a spinner gets
far less than a whole CPU, and a fixed "over 50 %" only says how busy the machine was.

* :func:`cpu_ticks` / :func:`cpu_seconds`: the kernel's utime+stime of a process, read now.
* :class:`Spinner`: a child spinning until stopped that logs (wall time, own CPU time) every
  2 ms; :func:`cpu_rate_range` gives, from that log, the lowest and highest CPU share it had
  over any window of a given length ending in a given span (where keck-top's window lies).
"""
from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")

SPIN = r"""
import json, signal, sys, time
samples = []
def done(*_):
    with open(sys.argv[1], "w") as f:
        json.dump(samples, f)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
nxt = 0.0
while True:
    t = time.time()
    if t >= nxt:
        samples.append((t, time.process_time()))
        nxt = t + 0.002
"""


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (its total is the scheduler's exact runtime, cut to ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    return cpu_ticks(pid) / HZ


class Spinner:
    """``with Spinner(tmp_path) as s:`` a child spinning from the moment the block starts; after the
    block ``s.samples`` holds its (wall time, own CPU seconds) log."""

    def __init__(self, folder: Path, *marker: str) -> None:
        self.log = Path(folder) / f"spinner-{os.getpid()}-{id(self)}.json"
        self.marker = marker
        self.proc: subprocess.Popen[str] | None = None
        self.samples: list[tuple[float, float]] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Spinner:
        self.proc = subprocess.Popen([sys.executable, "-c", SPIN, str(self.log), *self.marker],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"  # spinning now, however slow the start was
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self.log.exists():
            self.samples = [(float(t), float(c)) for t, c in json.loads(self.log.read_text())]


def _cpu_at(samples: list[tuple[float, float]], times: list[float], t: float) -> float:
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def cpu_rate_range(samples: list[tuple[float, float]], length: float, end_from: float,
                   end_to: float) -> tuple[float, float]:
    """(lowest, highest) CPU share (1.0 = one whole CPU) over windows of ``length`` seconds ending
    anywhere in [end_from, end_to], clipped to the logged span. The log is interpolated linearly;
    the extremes lie at the log's own points, which are all tried."""
    assert len(samples) >= 2 and length > 0
    times = [t for t, _ in samples]
    end_from = max(end_from, times[0] + length)
    end_to = min(end_to, times[-1])
    assert end_from <= end_to, "the spinner's log does not cover the window"
    ends = {end_from, end_to}
    ends.update(t for t in times if end_from <= t <= end_to)
    ends.update(t + length for t in times if end_from <= t + length <= end_to)
    rates = [(_cpu_at(samples, times, e) - _cpu_at(samples, times, e - length)) / length for e in ends]
    return min(rates), max(rates)
