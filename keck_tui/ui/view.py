"""The tree's view state, independent of Textual: what is expanded, selected,
zoomed, sorted and filtered, and the flat list of lines that results.

Everything is keyed by *id paths* (the tuple of row ids from the snapshot's
root down), so selection and expansion survive refreshes: a new snapshot with
the same ids looks the same, only the numbers move.
"""
from __future__ import annotations

from operator import attrgetter
from typing import Iterable, NamedTuple

from keck_tui.model import SYNTHETIC_IDS, Row

Path = tuple[str, ...]
SORT_KEYS = ("watts", "cpu", "name", "energy")
HIDDEN_ID = "…"  # last id of the path of a "N rows below threshold" line
COLLAPSED_LEVELS = frozenset({"process"})  # closed until opened, whatever their depth
#: Synthetic rows close their parent in this order: activity-like first, machine-level last.
SYNTHETIC_ORDER = ("(kernel)", "(residual)", "(dram)", "(idle)", "(platform)")
_SYNTH_ORDER = {sid: i for i, sid in enumerate(SYNTHETIC_ORDER + tuple(
    s for s in SYNTHETIC_IDS if s not in SYNTHETIC_ORDER))}


class Line(NamedTuple):
    """One visible line of the tree: a row, or a summary of rows hidden by `t`.

    A NamedTuple because a 5,000-row rebuild makes 5,000 of them per snapshot.
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


#: A Line from all its fields in order, skipping NamedTuple's keyword-handling ``__new__``
#: (a 5,000-row rebuild makes 5,000 of them): ``_NEW(Line, (path, row, …, hidden_watts))``.
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
        i = c.id  # Row.synthetic, inlined: this runs for every row of a 5,000-row rebuild
        (synth if i[:1] == "(" and i[-1:] == ")" else real).append(c)
    # Two stable C-level sorts (by id, then by the key) instead of tuple keys:
    # sorting is most of a 5,000-row rebuild (none for one row: a process's one core).
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


class TreeView:
    """Selection, expansion, zoom, sort, filter and threshold over a Row tree."""

    def __init__(self, default_depth: int = 2, threshold_fraction: float = 0.01) -> None:
        self.root: Row | None = None
        self.default_depth = default_depth  # levels below the zoom root that start open
        self.overrides: dict[Path, bool] = {}
        self.zoom: Path = ()
        self.selected: Path | None = None
        self.sort_key = "watts"
        self.filter_text = ""
        self.threshold_on = False
        self.threshold_fraction = threshold_fraction
        self.lines: list[Line] = []
        self._index: dict[Path, int] | None = {}
        self._chain: dict[int, int] = {}  # rebuild: line index of each emitted prefix of the selection, by length
        self.cursor = 0
        self.pending_subtrees: list[Path] = []  # open lazy rows whose children must be fetched
        self._requested: set[Path] = set()

    # ---- data -----------------------------------------------------------
    def set_root(self, root: Row) -> None:
        """Show a new tree, keeping selection, expansion and zoom by id path."""
        if self.root is None or not self.zoom or self.zoom[0] != root.id:
            self.zoom = (root.id,)
        self.root = root
        while len(self.zoom) > 1 and root.find(self.zoom) is None:
            self.zoom = self.zoom[:-1]
        self.rebuild()

    @property
    def zoom_row(self) -> Row | None:
        return None if self.root is None else self.root.find(self.zoom)

    @property
    def threshold_w(self) -> float:
        z = self.zoom_row
        return 0.0 if z is None else max(0.0, z.watts) * self.threshold_fraction

    @property
    def index(self) -> dict[Path, int]:
        """Line index by id path, built when first asked for after a rebuild (a rebuild
        itself needs only where the selection's path is: see ``_chain``)."""
        if self._index is None:
            self._index = {line.path: i for i, line in enumerate(self.lines)}
        return self._index

    @property
    def current(self) -> Line | None:
        return self.lines[self.cursor] if self.lines else None

    def breadcrumb(self) -> list[tuple[Path, str]]:
        out: list[tuple[Path, str]] = []
        if self.root is None:
            return out
        for i in range(1, len(self.zoom) + 1):
            row = self.root.find(self.zoom[:i])
            if row is None:
                break
            out.append((self.zoom[:i], row.name))
        return out

    def is_expanded(self, path: Path, row: Row | None = None) -> bool:
        """Open by the user's choice, else by default: the zoom root and the levels
        just below it, except process rows (their per-core rows are detail)."""
        if path == self.zoom:
            return True
        choice = self.overrides.get(path)
        if choice is not None:
            return choice
        if row is not None and row.level in COLLAPSED_LEVELS:
            return False
        return len(path) - len(self.zoom) < self.default_depth

    # ---- flattening -----------------------------------------------------
    def rebuild(self) -> None:
        old_cursor = self.cursor
        self.lines = []
        self._index = None
        self._chain = {}
        zrow = self.zoom_row
        if zrow is None:
            self.cursor = 0
            return
        needle = self.filter_text.casefold()
        keep: set[Path] | None = None
        matched: set[Path] = set()
        if needle:
            keep = set()
            self._mark_matches(zrow, self.zoom, needle, keep, matched)
        thr = self.threshold_w if self.threshold_on else None
        self._emit(zrow, self.zoom, 0, None, keep, matched, thr, False)
        self._restore_cursor(old_cursor)

    def _mark_matches(self, row: Row, path: Path, needle: str, keep: set[Path],
                      matched: set[Path]) -> bool:
        hit = needle in row.name.casefold() or needle in row.id.casefold() or \
            (row.cmd is not None and needle in row.cmd.casefold()) or \
            (row.pid is not None and needle == str(row.pid))
        below = False
        for child in row.children:
            if self._mark_matches(child, path + (child.id,), needle, keep, matched):
                below = True
        if hit:
            matched.add(path)
        if hit or below:
            keep.add(path)
        return hit or below

    def _emit(self, row: Row, path: Path, depth: int, parent: Row | None,
              keep: set[Path] | None, matched: set[Path], thr: float | None,
              under_match: bool) -> None:
        children = row.children
        expandable = bool(children) or bool(row.has_children)
        is_match = bool(matched) and path in matched
        expanded = False
        if expandable:
            # While filtering, ancestors of matches open by themselves.
            expanded = (keep is not None and not under_match and not is_match and path in keep
                        and self.overrides.get(path) is not False) or self.is_expanded(path, row)
        lines = self.lines
        sel = self.selected or ()
        n = len(path)
        on_chain = sel[:n] == path
        if on_chain:
            self._chain[n] = len(lines)
        lines.append(_NEW(Line, (path, row, depth, parent, expandable, expanded, is_match, 0, 0.0)))
        if not expanded:
            return
        if row.has_children and not row.children:
            if path not in self._requested:
                self._requested.add(path)
                self.pending_subtrees.append(path)
        elif path in self._requested:
            self._requested.discard(path)
        under = under_match or is_match
        hidden_n = 0
        hidden_w = 0.0
        emit = self._emit
        # The selection's next id below this row, if this row is on its path: its line
        # index is kept for the cursor without indexing every line.
        target = sel[n] if on_chain and len(sel) > n else None
        chain = self._chain
        has_matches = bool(matched)
        for child in sort_children(children, self.sort_key):
            cpath = path + (child.id,)
            if keep is not None and not under and cpath not in keep:
                continue
            if thr is not None and child.watts < thr:
                hidden_n += 1
                hidden_w += child.watts
                continue
            if child.children or child.has_children:
                emit(child, cpath, depth + 1, row, keep, matched, thr, under)
            else:  # a leaf (most rows: processes' cores, lone processes): its line, no recursion
                if target is not None and child.id == target:
                    chain[n + 1] = len(lines)
                lines.append(_NEW(Line, (cpath, child, depth + 1, row, False, False,
                                        has_matches and cpath in matched, 0, 0.0)))
        if hidden_n:
            if target == HIDDEN_ID:
                chain[n + 1] = len(lines)
            lines.append(Line(path + (HIDDEN_ID,), None, depth + 1, row,
                              hidden_count=hidden_n, hidden_watts=hidden_w))

    def _restore_cursor(self, old_cursor: int) -> None:
        """The cursor on the selection's line, else on its nearest shown ancestor, else
        where it was (within the lines)."""
        if not self.lines:
            self.cursor = 0
            return
        if self._chain:
            self.cursor = self._chain[max(self._chain)]
        else:
            self.cursor = max(0, min(old_cursor, len(self.lines) - 1))
        self.selected = self.lines[self.cursor].path

    # ---- actions (each returns whether anything changed) ----------------
    def move(self, delta: int) -> bool:
        return self.move_to(self.cursor + delta)

    def move_to(self, index: int) -> bool:
        if not self.lines:
            return False
        index = max(0, min(len(self.lines) - 1, index))
        changed = index != self.cursor
        self.cursor = index
        self.selected = self.lines[index].path
        return changed

    def select(self, path: Path) -> bool:
        i = self.index.get(path)
        return False if i is None else (self.move_to(i) or True)

    def expand(self) -> bool:
        """Open the selected row; on an open row, step to its first child."""
        line = self.current
        if line is None or not line.expandable:
            return False
        if line.expanded:
            if self.cursor + 1 < len(self.lines) and self.lines[self.cursor + 1].depth > line.depth:
                return self.move(1)
            return False
        self.overrides[line.path] = True
        self._requested.discard(line.path)  # opening by hand always asks again
        self.rebuild()
        return True

    def collapse(self) -> bool:
        """Close the selected row; on a closed row or leaf, step to its parent."""
        line = self.current
        if line is None:
            return False
        if line.expanded and line.path != self.zoom:
            self.overrides[line.path] = False
            self.rebuild()
            return True
        parent = line.path[:-1]
        if parent in self.index:
            return self.select(parent)
        return False

    def toggle(self) -> bool:
        """Open or close the selected row; on a "rows below threshold" line, show them."""
        line = self.current
        if line is not None and line.row is None:
            self.toggle_threshold()
            return True
        if line is None or not line.expandable:
            return False
        if line.expanded:
            return self.collapse()
        return self.expand()

    def zoom_in(self) -> bool:
        line = self.current
        if line is None or line.row is None or line.path == self.zoom:
            return False
        if not line.expandable:
            return False
        self.zoom = line.path
        self.selected = line.path
        self._requested.discard(line.path)
        self.rebuild()
        return True

    def zoom_out(self) -> bool:
        if len(self.zoom) <= 1:
            return False
        old = self.zoom
        self.zoom = self.zoom[:-1]
        self.selected = old
        self.rebuild()
        return True

    def zoom_to(self, path: Path) -> bool:
        if self.root is None or self.root.find(path) is None:
            return False
        self.zoom = tuple(path)
        self.selected = self.zoom
        self.rebuild()
        return True

    def cycle_sort(self) -> str:
        i = SORT_KEYS.index(self.sort_key)
        return self.set_sort(SORT_KEYS[(i + 1) % len(SORT_KEYS)])

    def set_sort(self, key: str) -> str:
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}")
        self.sort_key = key
        self.rebuild()
        return key

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.rebuild()

    def toggle_threshold(self) -> bool:
        self.threshold_on = not self.threshold_on
        self.rebuild()
        return self.threshold_on

    def take_pending_subtrees(self) -> list[Path]:
        out, self.pending_subtrees = self.pending_subtrees, []
        return out
