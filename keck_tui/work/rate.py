"""Units of work per interval from successive values of one counter.

Each collector interval consumes the newest scrape it has not consumed yet: the units are
the counter's increase since the last consumed scrape, and the rate is that over the
time between the two scrapes. A scrape is consumed once, so summed over snapshots the
units are exactly the counter's increase — a recording's report divides energy by them
without double counting or gaps (a failed scrape only makes the next step longer).

* the counter went down: the server restarted it. Like Prometheus, the new value counts
  as the units since the restart, but the step is not rated (when the restart happened
  is unknown); the row says so.
* no new scrape since the last interval (a slow endpoint): nothing is consumed, the row
  says it waits; the next scrape brings the units of both intervals.
* when a scrape read the counters is known only to within its duration (the middle is
  taken): ``timing_s`` says by how much the window's length may be off.
* the scrape failed or the series is missing: the row says why; the last good value
  stays the baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

OK = "ok"
WARMING = "warming up"  # the first value: nothing to compare with yet
RESET = "reset"
WAITING = "waiting"
ERROR = "error"


@dataclass(frozen=True)
class Step:
    """What one counter did over one collector interval."""

    status: str
    units: float | None  # counted this interval (None: nothing consumed)
    rate: float | None  # units per second (None: not rated)
    window_s: float | None  # seconds between the two scrapes the rate is over
    total: float | None  # the counter's value
    why: str = ""
    timing_s: float = 0.0  # how uncertain the window's length is: half of both scrapes' durations


class CounterTrack:
    """Consumes successive (time, value) of one counter; see the module docstring."""

    def __init__(self) -> None:
        self._t: float | None = None  # monotonic time of the last consumed scrape
        self._v: float | None = None
        self._d = 0.0  # how long that scrape took
        self._scrape_id: int | None = None
        self._error: Step | None = None  # the newest scrape failed: said until another one arrives

    def step(self, scrape_id: int, t: float, value: float | None, why: str = "", duration_s: float = 0.0) -> Step:
        """The step for the newest scrape (``scrape_id`` tells a new scrape from the same one)."""
        if scrape_id == self._scrape_id:
            if self._error is not None:
                return self._error
            return Step(WAITING, None, None, None, self._v, "no new scrape since the last interval")
        self._scrape_id = scrape_id
        if value is None:
            self._error = Step(ERROR, None, None, None, self._v, why or "no value")
            return self._error
        self._error = None
        prev_t, prev_v, prev_d = self._t, self._v, self._d
        self._t, self._v, self._d = t, value, duration_s
        if prev_t is None or prev_v is None:
            return Step(WARMING, None, None, None, value, "first scrape: the rate needs two")
        dt = t - prev_t
        if value < prev_v:
            return Step(RESET, value, None, dt, value,
                        f"counter went down ({prev_v:g} → {value:g}): the server restarted it; "
                        f"{value:g} counted since, this interval not rated")
        if dt <= 0:
            return Step(WAITING, None, None, None, value, "scrape times did not advance")
        units = value - prev_v
        return Step(OK, units, units / dt, dt, value, timing_s=(prev_d + duration_s) / 2)
