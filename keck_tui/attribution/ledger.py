"""Session energy per row: joules accumulated under each row's stable id path."""
from __future__ import annotations

from keck_tui.model import Row


class EnergyLedger:
    """Accumulates ``watts × interval`` per id path across snapshots.

    Rows that have not been seen for ``forget_after`` snapshots are dropped so
    memory stays bounded on machines that churn through processes.
    """

    def __init__(self, forget_after: int = 300) -> None:
        self._joules: dict[tuple[str, ...], float] = {}
        self._seen: dict[tuple[str, ...], int] = {}
        self._tick = 0
        self._forget_after = forget_after

    def __len__(self) -> int:
        return len(self._joules)

    def apply(self, root: Row, interval_s: float) -> Row:
        """A copy of ``root`` whose ``joules`` are the session totals (this interval included)."""
        self._tick += 1
        out = self._apply(root, (), interval_s)
        if self._tick % 32 == 0:
            horizon = self._tick - self._forget_after
            for key in [k for k, t in self._seen.items() if t < horizon]:
                del self._seen[key]
                del self._joules[key]
        return out

    def _apply(self, row: Row, parent: tuple[str, ...], interval_s: float) -> Row:
        path = parent + (row.id,)
        total = self._joules.get(path, 0.0) + max(0.0, row.watts) * interval_s
        self._joules[path] = total
        self._seen[path] = self._tick
        children = tuple(self._apply(c, path, interval_s) for c in row.children)
        return _with_joules(row, total, children)


def _with_joules(row: Row, joules: float, children: tuple[Row, ...]) -> Row:
    """``dataclasses.replace(row, joules=joules, children=children)`` without building the
    row anew: its text was checked when it was built (Row.__post_init__) and neither field
    is text. Every row of every snapshot goes through here; replace() was most of apply()."""
    new = object.__new__(Row)
    fields = new.__dict__
    fields.update(row.__dict__)
    fields["joules"] = joules
    fields["children"] = children
    return new
