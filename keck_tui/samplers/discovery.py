"""Sensors found once, and looked for again now and then while there are none.

RAPL zones and hwmon sensors do not come and go while keck-top runs, except that a
driver may be loaded after it started. Searching sysfs at every sample (a dozen
directory listings) cost a tenth of a sample on a VM that has none; here a search
that finds nothing is repeated every ``every_s`` seconds instead.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from keck_tui.clock import Clock

T = TypeVar("T")
W = TypeVar("W")

#: Seconds between searches while nothing was found.
REDISCOVER_S = 30.0


class Discovery(Generic[T]):
    """``get()``: what ``find`` found, found once; while empty, searched again every ``every_s``."""

    def __init__(self, find: Callable[[], tuple[T, ...]], clock: Clock, every_s: float = REDISCOVER_S) -> None:
        self._find = find
        self._clock = clock
        self.every_s = every_s
        self._found: tuple[T, ...] = ()
        self._next: float | None = None  # when to search again (nothing found)
        self.searches = 0  # how many searches ran
        self._why: tuple[int, object] | None = None  # (search, why it found nothing)

    def get(self) -> tuple[T, ...]:
        if not self._found:
            now = self._clock.monotonic()
            if self._next is None or now >= self._next:
                self._found = tuple(self._find())
                self.searches += 1
                self._next = None if self._found else now + self.every_s
        return self._found

    def absent(self, why: Callable[[], W]) -> W:
        """Why nothing was found: ``why()`` made once per search and kept until the next."""
        if self._why is None or self._why[0] != self.searches:
            self._why = (self.searches, why())
        return self._why[1]  # type: ignore[return-value]
