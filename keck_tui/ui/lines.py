"""The tree's flattened lines, made when asked for.

A rebuild (every snapshot) only walks the open rows to count the lines below each;
the lines themselves — and the sorting of each row's children — are made when a line
is asked for: the screen asks for the ~50 lines it shows and the cursor's line, so a
5,000-row tree with every row open sorts a few dozen child lists per snapshot, not a
thousand, and makes 50 ``Line`` objects, not 5,000. Iterating makes them all (in order).
"""
from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter
from typing import Iterable, Iterator, NamedTuple, Sequence, overload

from keck_tui.model import SYNTHETIC_IDS, Row

Path = tuple[str, ...]
HIDDEN_ID = "…"  # last id of the path of a "N rows below threshold" line
#: Synthetic rows close their parent in this order: activity-like first, machine-level last.
SYNTHETIC_ORDER = ("(kernel)", "(residual)", "(dram)", "(idle)", "(platform)")
_SYNTH_ORDER = {sid: i for i, sid in enumerate(SYNTHETIC_ORDER + tuple(
    s for s in SYNTHETIC_IDS if s not in SYNTHETIC_ORDER))}


class Line(NamedTuple):
    """One visible line of the tree: a row, or a summary of rows hidden by `t`.

    A NamedTuple: cheap to make, and every line on screen is made again for each snapshot.
    """

    path: Path
    row: Row | None  # None for a hidden-rows summary line
    depth: int
    parent: Row | None
    expandable: bool = False
    expanded: bool = False
    matched: bool = False
    hidden_count: int = 0
    hidden_watts: float = 0.0


#: A Line from all its fields in order, skipping NamedTuple's keyword-handling ``__new__``:
#: ``_NEW(Line, (path, row, …, hidden_watts))``.
_NEW = tuple.__new__


_BY_ID = attrgetter("id")
_by_watts = attrgetter("watts")
_BY_JOULES = attrgetter("joules")


def _casefold_name(r: Row) -> str:
    return r.name.casefold()


def _cpu_or_minus_one(r: Row) -> float:
    return r.cpu_util if r.cpu_util is not None else -1.0


def sort_children(children: Iterable[Row], key: str) -> list[Row]:
    """Children in display order: real rows by ``key``, synthetic rows last."""
    real: list[Row] = []
    synth: list[Row] = []
    for c in children:
        i = c.id  # Row.synthetic, inlined: this runs for every child of every parent on screen
        (synth if i[:1] == "(" and i[-1:] == ")" else real).append(c)
    # Two stable C-level sorts (by id, then by the key) instead of tuple keys (and none
    # for one row: a process's one core).
    if len(real) > 1:
        real.sort(key=_BY_ID)
        if key == "name":
            real.sort(key=_casefold_name)
        elif key == "cpu":
            real.sort(key=_by_watts, reverse=True)
            real.sort(key=_cpu_or_minus_one, reverse=True)
        elif key == "energy":
            real.sort(key=_by_watts, reverse=True)
            real.sort(key=_BY_JOULES, reverse=True)
        else:
            real.sort(key=_by_watts, reverse=True)
    if not synth:
        return real
    if len(synth) > 1:
        synth.sort(key=_synth_key)
    return real + synth


def _synth_key(r: Row) -> tuple[int, str]:
    return _SYNTH_ORDER.get(r.id, len(_SYNTH_ORDER)), r.id


class Node:
    """An expandable row in the view: its own line's flags and, when it is open, its
    visible children (in the snapshot's order until a line below it is asked for)."""

    __slots__ = ("row", "path", "depth", "parent", "expandable", "expanded", "matched",
                 "kids", "subs", "hidden", "size", "_entries", "_starts")

    def __init__(self, row: Row, path: Path, depth: int, parent: Row | None,
                 expandable: bool, expanded: bool, matched: bool) -> None:
        self.row, self.path, self.depth, self.parent = row, path, depth, parent
        self.expandable, self.expanded, self.matched = expandable, expanded, matched
        self.kids: list[Row] = []  # visible children
        self.subs: dict[int, Node] = {}  # id(child) -> its Node, for the expandable ones
        self.hidden: list[Row] = []  # children below the threshold (one summary line)
        self.size = 1  # lines: its own and all below it
        self._entries: list[Node | Row | None] | None = None  # None: the hidden-rows line
        self._starts: list[int] = []

    def line(self) -> Line:
        return _NEW(Line, (self.path, self.row, self.depth, self.parent, self.expandable,
                           self.expanded, self.matched, 0, 0.0))

    def entries(self, sort_key: str) -> tuple[list["Node | Row | None"], list[int]]:
        """The children in display order (Node for expandable ones, the Row for leaves,
        None for the hidden-rows line last) and each one's first line, counted from this
        row's own line (0). Sorted once: the view makes new Nodes when the sort changes."""
        if self._entries is None:
            subs = self.subs
            entries: list[Node | Row | None] = [subs.get(id(r), r) for r in sort_children(self.kids, sort_key)]
            if self.hidden:
                entries.append(None)
            starts = []
            at = 1
            for e in entries:
                starts.append(at)
                at += e.size if isinstance(e, Node) else 1
            self._entries, self._starts = entries, starts
        return self._entries, self._starts

    def hidden_line(self, sort_key: str) -> Line:
        # Summed in display order, as the rows would have been listed.
        watts = 0.0
        for r in sort_children(self.hidden, sort_key):
            watts += r.watts
        return Line(self.path + (HIDDEN_ID,), None, self.depth + 1, self.row,
                    hidden_count=len(self.hidden), hidden_watts=watts)


class FlatLines(Sequence[Line]):
    """The open rows of a ``Node`` tree as lines, each made (and kept) when first asked for."""

    def __init__(self, root: Node | None, sort_key: str, matched: set[Path]) -> None:
        self._root = root
        self._sort_key = sort_key
        self._matched = matched
        self._n = 0 if root is None else root.size
        self._made: dict[int, Line] = {}

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Line: ...
    @overload
    def __getitem__(self, i: slice) -> list[Line]: ...

    def __getitem__(self, i: int | slice) -> Line | list[Line]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("line index out of range")
        line = self._made.get(i)
        if line is None:
            line = self._made[i] = self._find(i)
        return line

    def __iter__(self) -> Iterator[Line]:
        if self._root is None:
            return
        made = self._made
        for i, line in self._walk(self._root, 0):
            made[i] = line
            yield line

    def __repr__(self) -> str:
        return f"FlatLines({self._n} lines, {len(self._made)} made)"

    def _child_line(self, node: Node, entry: "Node | Row | None") -> Line:
        if entry is None:
            return node.hidden_line(self._sort_key)
        if isinstance(entry, Node):
            return entry.line()
        path = node.path + (entry.id,)
        return _NEW(Line, (path, entry, node.depth + 1, node.row, False, False,
                           bool(self._matched) and path in self._matched, 0, 0.0))

    def _find(self, i: int) -> Line:
        node = self._root
        assert node is not None
        base = 0
        while True:
            if i == base:
                return node.line()
            entries, starts = node.entries(self._sort_key)
            k = bisect_right(starts, i - base) - 1
            entry = entries[k]
            at = base + starts[k]
            if isinstance(entry, Node) and i != at:
                node, base = entry, at
                continue
            return self._child_line(node, entry)

    def _walk(self, node: Node, at: int) -> Iterator[tuple[int, Line]]:
        yield at, node.line()
        if node.size == 1:
            return
        entries, starts = node.entries(self._sort_key)
        for entry, start in zip(entries, starts):
            if isinstance(entry, Node):
                yield from self._walk(entry, at + start)
            else:
                yield at + start, self._child_line(node, entry)

    def locate(self, path: Path) -> tuple[int, int]:
        """(how many leading ids of ``path`` have a line, the index of the deepest one);
        (0, -1) when not even the top does."""
        node = self._root
        if node is None or path[:len(node.path)] != node.path:
            return 0, -1
        depth, base = len(node.path), 0
        while depth < len(path):
            if node.size == 1:
                break
            want = path[depth]
            entries, starts = node.entries(self._sort_key)
            for entry, start in zip(entries, starts):
                eid = HIDDEN_ID if entry is None else (entry.row.id if isinstance(entry, Node) else entry.id)
                if eid == want:
                    break
            else:
                break
            depth += 1
            base += start
            if not isinstance(entry, Node):
                break
            node = entry
        return depth, base
