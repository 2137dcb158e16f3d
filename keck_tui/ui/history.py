"""Per-row watts history for the detail pane: a bounded ring per id path.

Memory is bounded twice: each ring holds at most ``points`` samples (a new
sample is taken only once per ``span_s / points`` seconds), and rings of rows
not seen for a whole span are dropped. Samples are stored as float32 — plenty
for a sparkline — so 5,000 rows × 240 points stay around 20 MB.
"""
from __future__ import annotations

from array import array

from keck_tui.model import Row

Path = tuple[str, ...]


class _Ring:
    __slots__ = ("times", "vals", "head", "count", "cap", "last")

    def __init__(self, cap: int) -> None:
        self.times = array("d", bytes(8 * cap))  # float64: unix seconds need it
        self.vals = array("f", bytes(4 * cap * 3))  # watts, lo, hi as float32
        self.head = 0
        self.count = 0
        self.cap = cap
        self.last = 0.0

    def add(self, t: float, w: float, lo: float, hi: float) -> None:
        h = self.head
        self.times[h] = t
        v = self.vals
        v[3 * h] = w
        v[3 * h + 1] = lo
        v[3 * h + 2] = hi
        self.head = (h + 1) % self.cap
        if self.count < self.cap:
            self.count += 1
        self.last = t

    def items(self) -> list[tuple[float, float, float, float]]:
        start = (self.head - self.count) % self.cap
        out = []
        for k in range(self.count):
            i = (start + k) % self.cap
            out.append((self.times[i], self.vals[3 * i], self.vals[3 * i + 1], self.vals[3 * i + 2]))
        return out


class History:
    """Watts (with bounds) over the last ``span_s`` seconds, per id path."""

    def __init__(self, span_s: float = 600.0, points: int = 240) -> None:
        if span_s <= 0 or points < 2:
            raise ValueError("history needs a positive span and at least 2 points")
        self.span_s = float(span_s)
        self.points = int(points)
        self.step_s = self.span_s / self.points
        self._rings: dict[Path, _Ring] = {}
        self._last_t: float | None = None

    def __len__(self) -> int:
        return len(self._rings)

    def record(self, t: float, root: Row, force: bool = False) -> bool:
        """Add one sample for every row if a step has passed since the last one."""
        if not force and self._last_t is not None and self._last_t <= t < self._last_t + self.step_s * 0.999:
            return False
        self._last_t = t
        rings = self._rings
        stack: list[tuple[Path, Row]] = [((root.id,), root)]
        while stack:
            path, row = stack.pop()
            ring = rings.get(path)
            if ring is None:
                ring = rings[path] = _Ring(self.points)
            ring.add(t, row.watts, row.watts_lo, row.watts_hi)
            for child in row.children:
                stack.append((path + (child.id,), child))
        cutoff = t - self.span_s
        if len(rings) > 0:
            dead = [p for p, r in rings.items() if r.last < cutoff]
            for p in dead:
                del rings[p]
        return True

    def series(self, path: Path, now: float | None = None) -> list[tuple[float, float, float, float]]:
        """(time, watts, lo, hi) samples of ``path`` within the span, oldest first."""
        ring = self._rings.get(tuple(path))
        if ring is None:
            return []
        items = ring.items()
        if now is not None:
            items = [it for it in items if it[0] >= now - self.span_s]
        return items

    def spread(self, path: Path, n: int) -> list[float]:
        """Up to ``n`` watts samples spaced evenly over the whole ring, oldest first
        (cheap: reads n values, for a per-row trend column)."""
        ring = self._rings.get(path)
        if ring is None or ring.count == 0 or n <= 0:
            return []
        count = ring.count
        start = (ring.head - count) % ring.cap
        if count <= n:
            picks = range(count)
        else:
            picks = [round(i * (count - 1) / (n - 1)) for i in range(n)] if n > 1 else [count - 1]
        vals = ring.vals
        return [vals[3 * ((start + k) % ring.cap)] for k in picks]
