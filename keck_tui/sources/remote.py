"""What every source of whole remote trees shares: energy since attach and stale marking.

The Keck controller and Prometheus report power only; :class:`RemoteTrees` integrates
their rows' watts into ``joules`` between two good answers in a row (a gap adds nothing),
and when a poll fails, keeps the last good rows marked stale: the cluster row and its
nodes carry ``stale``, the ``error`` and ``age_s`` — how old their data is (a node's own
age when it was last answered, plus the time since). Agents' node rows follow the same
rule (:mod:`keck_tui.sources.agents`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from keck_tui.model import Row, SnapshotFormatError, checked_tree
from keck_tui.sources.tree import integrate


def never_answered(level: str, row_id: str, name: str, error: str | None, what: str, **fields: object) -> Row:
    """The 0 W stale row of a source that has not answered yet."""
    return Row(level=level, id=row_id, name=name, watts=0.0, watts_lo=0.0, watts_hi=0.0, stale=True,
               error=error or "not polled yet", note=f"{what} never answered: 0 W shown, not measured",
               **fields)  # type: ignore[arg-type]


def aged(row: Row, error: str, age: float | None) -> Row:
    """``row`` marked stale with ``error``; its ``age_s`` grows by ``age`` seconds."""
    if age is None:
        return replace(row, stale=True, error=error)
    return replace(row, stale=True, error=error, age_s=round((row.age_s or 0.0) + age, 3))


class RemoteTreesSource:
    """For a source that keeps its cluster rows in ``self._trees``: its error and last good answer."""

    _trees: "RemoteTrees"

    @property
    def error(self) -> str | None:
        return self._trees.error

    @property
    def last_ok(self) -> float | None:
        return self._trees.last_ok

    def failed(self, error: str) -> None:
        """This poll failed in a way the source did not foresee (the fleet calls it): its rows go
        stale with ``error`` like after a failed request."""
        self._trees.failed(error)


class RemoteTrees:
    """The last good cluster rows of one remote source, their energy, and their staleness."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._mono = monotonic
        self.rows: list[Row] = []
        self.error: str | None = None
        self.last_ok: float | None = None  # monotonic time of the last good answer
        self.answered = False
        self._joules: dict[tuple[str, ...], float] = {}

    def fresh(self, rows: list[Row], finish: Callable[[list[Row], float], list[Row]] | None = None) -> list[Row]:
        """A good answer: ``rows`` with joules since attach, passed through ``finish(rows, now)``
        (rows to add that gain no energy) and kept as :attr:`rows`.

        An answer whose rows break the snapshot rules (:func:`keck_tui.model.checked_tree`:
        NaN, 1e308, negative watts, lo > hi …) is rejected as a whole: the source keeps its
        last good rows, marked stale with the one-line reason, as for a failed request.
        """
        try:
            rows = [checked_tree(row) for row in rows]
        except SnapshotFormatError as exc:
            self.failed(f"answer rejected: {exc}"[:300])
            return self.rows
        now = self._mono()
        dt = now - self.last_ok if self.last_ok is not None and self.error is None else 0.0
        rows, self._joules = integrate(rows, self._joules, dt)
        self.rows = finish(rows, now) if finish is not None else rows
        self.last_ok, self.error, self.answered = now, None, True
        return self.rows

    def failed(self, error: str) -> None:
        self.error = error

    def age(self) -> float | None:
        """Seconds since the last good answer (None before the first)."""
        return self._mono() - self.last_ok if self.last_ok is not None else None

    def current(self) -> list[Row]:
        """The rows as they should be shown now: fresh, or the last good ones marked stale."""
        if self.error is None:
            return self.rows
        age = self.age()
        return [replace(aged(r, self.error, age), children=tuple(aged(c, self.error, age) for c in r.children))
                for r in self.rows]
