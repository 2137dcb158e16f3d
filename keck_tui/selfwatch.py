"""keck-top watching its own cost: CPU and RSS against a budget, stepping profiles.

:class:`SelfWatch` is told after every sample how much CPU time and memory the
process has used (:class:`ProcSelfUsage` reads ``/proc/self``; tests inject a
fake). When the CPU share over the last ``window_s`` or the RSS stays above
its budget for ``sustain_s``, it steps one profile down (:data:`PROFILES`);
when both have stayed below ``recover_fraction`` of their budgets for
``recover_s`` it steps one back up, never above the profile that was asked
for. Every step is kept in :attr:`SelfWatch.steps` and shown in the snapshot
(``"profile": {...}``), the TUI header, ``/metrics`` and ``doctor``.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from keck_tui.clock import Clock, SystemClock
from keck_tui.profiles import Profile, higher, lower

#: Defaults: how long over budget before stepping down, and well under before stepping up.
SUSTAIN_S = 30.0
RECOVER_S = 300.0
RECOVER_FRACTION = 0.5
WINDOW_S = 10.0  # CPU share is measured over this trailing window
STEPS_KEPT = 20


class SelfUsage(Protocol):
    def __call__(self) -> tuple[float, int]:
        """(CPU seconds used by this process so far, resident bytes now)."""
        ...


class ProcSelfUsage:
    """CPU seconds of this process (every thread, ``time.process_time``: finer than procfs
    ticks) and its RSS from ``<procfs>/self/statm``."""

    def __init__(self, procfs_root: str = "/proc") -> None:
        self._statm = f"{procfs_root}/self/statm"
        self._page = os.sysconf("SC_PAGE_SIZE")

    def __call__(self) -> tuple[float, int]:
        with open(self._statm, "rb") as fh:
            rss = int(fh.read().split()[1]) * self._page
        return time.process_time(), rss


@dataclass(frozen=True)
class Budget:
    cpu_pct: float  # percent of one CPU
    mem_mib: float  # resident MiB


@dataclass(frozen=True)
class Step:
    time: float  # wall clock
    from_profile: str
    to_profile: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "from": self.from_profile, "to": self.to_profile, "reason": self.reason}


class SelfWatch:
    """Decides when to step profiles; ``apply(profile)`` is called on every step."""

    def __init__(self, configured: Profile, budget: Budget, apply: Callable[[Profile], None], *,
                 usage: SelfUsage | None = None, clock: Clock | None = None,
                 sustain_s: float = SUSTAIN_S, recover_s: float = RECOVER_S,
                 recover_fraction: float = RECOVER_FRACTION, window_s: float = WINDOW_S,
                 resolve: Callable[[Profile], Profile] = lambda p: p) -> None:
        self.configured = configured
        self.current = configured
        self.budget = budget
        self._apply = apply
        self._resolve = resolve  # the user's explicit --interval/--model put into a profile
        self._usage = usage or ProcSelfUsage()
        self.clock = clock or SystemClock()
        self.sustain_s = sustain_s
        self.recover_s = recover_s
        self.recover_fraction = recover_fraction
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()  # (monotonic, cpu seconds)
        self.cpu_pct: float | None = None
        self.rss_mib: float | None = None
        self._over_since: float | None = None
        self._under_since: float | None = None
        self.steps: deque[Step] = deque(maxlen=STEPS_KEPT)
        self.steps_total = 0
        self.error: str | None = None

    def check(self) -> Step | None:
        """Read this process's usage once; step a profile when the rules say so."""
        now = self.clock.monotonic()
        try:
            cpu_s, rss = self._usage()
        except (OSError, ValueError, IndexError) as exc:
            self.error = f"cannot read own usage: {type(exc).__name__}: {exc}"
            return None
        self.error = None
        self.rss_mib = rss / 2**20
        samples = self._samples
        samples.append((now, cpu_s))
        while len(samples) > 2 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        t0, c0 = samples[0]
        if now - t0 <= 0:
            return None  # the first reading: no window yet
        self.cpu_pct = 100.0 * max(0.0, cpu_s - c0) / (now - t0)
        over = self._over_reason()
        if over:
            self._under_since = None
            if self._over_since is None:
                self._over_since = now
            if now - self._over_since >= self.sustain_s:
                down = lower(self.current)
                if down is not None:
                    return self._step(down, f"{over} for {now - self._over_since:.0f} s")
            return None
        self._over_since = None
        if self._well_under():
            if self._under_since is None:
                self._under_since = now
            if now - self._under_since >= self.recover_s:
                up = higher(self.current, self.configured)
                if up is not None:
                    return self._step(up, f"under {100 * self.recover_fraction:.0f} % of the budget "
                                          f"for {now - self._under_since:.0f} s")
        else:
            self._under_since = None
        return None

    def _over_reason(self) -> str:
        b = self.budget
        if self.cpu_pct is not None and self.cpu_pct > b.cpu_pct:
            return f"CPU {self.cpu_pct:.1f} % > budget {b.cpu_pct:g} %"
        if self.rss_mib is not None and self.rss_mib > b.mem_mib:
            return f"RSS {self.rss_mib:.0f} MiB > budget {b.mem_mib:g} MiB"
        return ""

    def _well_under(self) -> bool:
        f = self.recover_fraction
        return (self.cpu_pct is not None and self.cpu_pct <= f * self.budget.cpu_pct
                and self.rss_mib is not None and self.rss_mib <= f * self.budget.mem_mib)

    def _step(self, to: Profile, reason: str) -> Step:
        step = Step(self.clock.wall(), self.current.name, to.name, reason)
        self.current = to
        self._over_since = self._under_since = None
        self._samples.clear()  # the new profile's cost is measured afresh
        self.steps.append(step)
        self.steps_total += 1
        self._apply(self._resolve(to))
        return step

    def state(self) -> dict[str, Any]:
        """The snapshot's ``"profile"`` object."""
        out: dict[str, Any] = {
            "name": self.current.name, "configured": self.configured.name,
            "budget_cpu_pct": self.budget.cpu_pct, "budget_mem_mib": self.budget.mem_mib,
            "cpu_pct": None if self.cpu_pct is None else round(self.cpu_pct, 2),
            "rss_mib": None if self.rss_mib is None else round(self.rss_mib, 1),
            "stepped_down": self.current.name != self.configured.name,
        }
        out["steps"] = self.steps_total
        if self.steps:
            out["last_step"] = self.steps[-1].to_json()
        if self.error:
            out["error"] = self.error
        return out
