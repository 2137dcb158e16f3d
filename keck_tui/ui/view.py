"""The tree's view state, independent of Textual: what is expanded, selected,
zoomed, sorted and filtered, and the flat list of lines that results.

Everything is keyed by *id paths* (the tuple of row ids from the snapshot's
root down), so selection and expansion survive refreshes: a new snapshot with
the same ids looks the same, only the numbers move.
"""
from __future__ import annotations

from keck_tui.model import Row
from keck_tui.ui.lines import HIDDEN_ID, FlatLines, Line, Node, Path, sort_children

SORT_KEYS = ("watts", "cpu", "name", "energy")
COLLAPSED_LEVELS = frozenset({"process"})  # closed until opened, whatever their depth
__all__ = ["COLLAPSED_LEVELS", "HIDDEN_ID", "SORT_KEYS", "Line", "Path", "TreeView", "sort_children"]


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
        self.lines: FlatLines = FlatLines(None, self.sort_key, set())
        self._index: dict[Path, int] | None = {}
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
        """Line index by id path, for all lines (makes them all: ``find`` does not)."""
        if self._index is None:
            self._index = {line.path: i for i, line in enumerate(self.lines)}
        return self._index

    def find(self, path: Path) -> int | None:
        """The index of ``path``'s line, or None when it has none."""
        depth, i = self.lines.locate(path)
        return i if depth == len(path) and i >= 0 else None

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
        """Count the lines of the open rows again (new data, or the view changed); the
        lines themselves are made when asked for (see ``keck_tui.ui.lines``)."""
        old_cursor = self.cursor
        self._index = None
        zrow = self.zoom_row
        if zrow is None:
            self.lines = FlatLines(None, self.sort_key, set())
            self.cursor = 0
            return
        needle = self.filter_text.casefold()
        keep: set[Path] | None = None
        matched: set[Path] = set()
        if needle:
            keep = set()
            self._mark_matches(zrow, self.zoom, needle, keep, matched)
        thr = self.threshold_w if self.threshold_on else None
        root = self._visit(zrow, self.zoom, 0, None, keep, matched, thr, False)
        self.lines = FlatLines(root, self.sort_key, matched)
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

    def _visit(self, row: Row, path: Path, depth: int, parent: Row | None,
               keep: set[Path] | None, matched: set[Path], thr: float | None,
               under_match: bool) -> Node:
        """``row``'s Node: whether it is open and, if so, its visible children and lines."""
        children = row.children
        expandable = bool(children) or bool(row.has_children)
        is_match = bool(matched) and path in matched
        expanded = False
        if expandable:
            # While filtering, ancestors of matches open by themselves.
            expanded = (keep is not None and not under_match and not is_match and path in keep
                        and self.overrides.get(path) is not False) or self.is_expanded(path, row)
        node = Node(row, path, depth, parent, expandable, expanded, is_match)
        if not expanded:
            return node
        if row.has_children and not row.children:
            if path not in self._requested:
                self._requested.add(path)
                self.pending_subtrees.append(path)
        elif path in self._requested:
            self._requested.discard(path)
        under = under_match or is_match
        kids, subs, hidden = node.kids, node.subs, node.hidden
        size = 1
        visit = self._visit
        for child in children:
            if keep is not None and not under and path + (child.id,) not in keep:
                continue
            if thr is not None and child.watts < thr:
                hidden.append(child)
                continue
            kids.append(child)
            if child.children or child.has_children:
                sub = subs[id(child)] = visit(child, path + (child.id,), depth + 1, row, keep,
                                             matched, thr, under)
                size += sub.size
            else:  # a leaf (most rows: processes' cores, lone processes): one line
                size += 1
        node.size = size + (1 if hidden else 0)
        return node

    def _restore_cursor(self, old_cursor: int) -> None:
        """The cursor on the selection's line, else on its nearest shown ancestor, else
        where it was (within the lines)."""
        if not self.lines:
            self.cursor = 0
            return
        _, i = self.lines.locate(self.selected or ())
        self.cursor = i if i >= 0 else max(0, min(old_cursor, len(self.lines) - 1))
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
        i = self.find(path)
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
        if self.find(parent) is not None:
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
