"""TreeView: flattening, stable selection/expansion, zoom, sort, filter, threshold."""
from __future__ import annotations

from dataclasses import replace

import fake_fleet as ff
from keck_tui.model import Row
from keck_tui.ui.view import HIDDEN_ID, TreeView, sort_children


def names(view: TreeView) -> list[str]:
    return [("  " * ln.depth) + (ln.row.name if ln.row else "…") for ln in view.lines]


def test_default_expansion_and_order():
    v = TreeView()
    v.set_root(ff.node_row())
    assert names(v) == [
        "node-7", "  ml-serving", "    pod/llm-0", "    pod/embed-2", "    (residual)",
        "  batch", "    pod/etl-5", "  system.slice", "    kubelet", "  kube-system",
        "    pod/kube-proxy-x2", "  (kernel)", "  (idle)", "  (platform)"]
    assert v.selected == ("node-7",) and v.cursor == 0


def test_synthetic_rows_stay_last_for_every_sort():
    kids = ff.node_row().children
    for key in ("watts", "cpu", "name", "energy"):
        ids = [r.id for r in sort_children(kids, key)]
        assert ids[-3:] == ["(kernel)", "(idle)", "(platform)"], key
    assert [r.id for r in sort_children(kids, "name")][:4] == ["batch", "kube-system", "ml-serving", "system.slice"]


def test_selection_and_expansion_survive_a_refresh_with_new_numbers():
    v = TreeView()
    v.set_root(ff.node_row(0))
    assert v.select(("node-7", "ml-serving", "pod/llm-0"))
    v.expand()
    v.move(1)  # onto the first container
    assert v.selected == ("node-7", "ml-serving", "pod/llm-0", "vllm")
    v.set_root(ff.node_row(5))  # numbers move, ids stay
    assert v.selected == ("node-7", "ml-serving", "pod/llm-0", "vllm")
    assert v.lines[v.cursor].row.id == "vllm"
    assert v.overrides[("node-7", "ml-serving", "pod/llm-0")] is True


def test_selection_falls_back_to_the_nearest_ancestor_when_a_row_vanishes():
    root = ff.node_row()
    v = TreeView()
    v.set_root(root)
    v.select(("node-7", "batch", "pod/etl-5"))
    batch = next(c for c in root.children if c.id == "batch")
    gone = replace(root, children=tuple(replace(c, children=()) if c.id == "batch" else c
                                        for c in root.children))
    assert batch.children
    v.set_root(gone)
    assert v.selected == ("node-7", "batch")


def test_collapse_then_parent_and_toggle():
    v = TreeView()
    v.set_root(ff.node_row())
    v.select(("node-7", "ml-serving"))
    assert v.collapse() and not v.lines[v.cursor].expanded
    assert len(v.lines) == 11
    assert v.collapse() and v.selected == ("node-7",)  # closed row: step to the parent
    v.select(("node-7", "ml-serving"))
    assert v.toggle() and v.lines[v.cursor].expanded
    assert v.expand() and v.selected == ("node-7", "ml-serving", "pod/llm-0")  # open row: step in


def test_zoom_in_and_out_with_breadcrumb():
    v = TreeView()
    v.set_root(ff.fleet_row())
    path = ("fleet", "cluster-a", "node-7")
    v.select(path)
    assert v.zoom_in()
    assert v.zoom == path and v.lines[0].path == path and v.lines[0].depth == 0
    assert [n for _, n in v.breadcrumb()] == ["fleet", "cluster-a", "node-7"]
    v.select(path + ("ml-serving",))
    v.expand()
    v.select(path + ("ml-serving", "pod/llm-0"))
    assert v.zoom_in()
    assert [n for _, n in v.breadcrumb()] == ["fleet", "cluster-a", "node-7", "ml-serving", "pod/llm-0"]
    assert v.zoom_out() and v.zoom == path + ("ml-serving",)
    assert v.selected == path + ("ml-serving", "pod/llm-0")
    v.set_root(ff.fleet_row(3))  # zoom survives refreshes
    assert v.zoom == path + ("ml-serving",)


def test_zoom_falls_back_when_the_zoomed_row_disappears():
    v = TreeView()
    v.set_root(ff.fleet_row())
    v.zoom_to(("fleet", "cluster-b", "node-1"))
    fleet = ff.fleet_row()
    v.set_root(replace(fleet, children=tuple(c for c in fleet.children if c.id != "cluster-b")))
    assert v.zoom == ("fleet",)


def test_leaf_cannot_be_zoomed():
    v = TreeView()
    v.set_root(ff.node_row())
    v.select(("node-7", "(idle)"))
    assert not v.zoom_in() and v.zoom == ("node-7",)


def test_filter_opens_ancestors_of_matches_only():
    v = TreeView()
    v.set_root(ff.node_row())
    v.set_filter("ENVOY")
    assert names(v) == ["node-7", "  ml-serving", "    pod/llm-0", "      sidecar", "        envoy"]
    assert [ln.matched for ln in v.lines] == [False, False, False, False, True]
    v.set_filter("")
    assert len(v.lines) == 14


def test_threshold_hides_small_rows_into_a_summary_line():
    v = TreeView()
    root = ff.node_row()
    v.set_root(root)
    assert v.toggle_threshold()
    thr = root.watts * 0.01
    assert v.threshold_w == thr
    summary = [ln for ln in v.lines if ln.row is None]
    assert summary and summary[0].path[-1] == HIDDEN_ID
    hidden = [c for c in next(c for c in root.children if c.id == "ml-serving").children if c.watts < thr]
    ml_summary = next(s for s in summary if s.path[:-1] == ("node-7", "ml-serving"))
    assert ml_summary.hidden_count == len(hidden) == 1
    assert abs(ml_summary.hidden_watts - sum(c.watts for c in hidden)) < 1e-9
    assert all(ln.row.watts >= thr for ln in v.lines[1:] if ln.row is not None)


def test_lazy_rows_ask_for_their_subtree():
    lazy = Row(level="node", id="n1", name="n1", watts=1, watts_lo=1, watts_hi=1, has_children=True)
    root = Row(level="cluster", id="c", name="c", watts=1, watts_lo=1, watts_hi=1, children=(lazy,))
    v = TreeView(default_depth=1)
    v.set_root(root)
    assert v.take_pending_subtrees() == []  # closed: nothing fetched
    v.select(("c", "n1"))
    assert v.lines[v.cursor].expandable
    v.expand()
    assert v.take_pending_subtrees() == [("c", "n1")]
    v.set_root(root)  # still no children: not asked again on every refresh
    assert v.take_pending_subtrees() == []
    v2 = TreeView()  # default-open lazy rows ask by themselves
    v2.set_root(root)
    assert v2.take_pending_subtrees() == [("c", "n1")]


def test_filter_matches_a_pid_exactly_and_enter_on_a_summary_shows_hidden_rows():
    v = TreeView()
    v.set_root(ff.node_row())
    root = ff.node_row()
    renamed = Row(level="node", id="n", name="n", watts=1, watts_lo=1, watts_hi=1, children=(
        Row(level="process", id="proc-a", name="envoy", watts=1, watts_lo=1, watts_hi=1, pid=4188),))
    v.set_root(renamed)
    v.set_filter("4188")  # the pid, though neither name, id nor command shows it
    assert [ln.row.name for ln in v.lines] == ["n", "envoy"]
    v.set_filter("")
    v.set_root(root)
    v.toggle_threshold()
    i = next(i for i, ln in enumerate(v.lines) if ln.row is None)
    v.move_to(i)
    assert v.toggle() and not v.threshold_on


def test_a_matching_leaf_line_is_marked_and_every_line_is_indexed():
    v = TreeView()
    v.set_root(ff.node_row())
    v.set_filter("(idle)")
    leaf = [ln for ln in v.lines if ln.path == ("node-7", "(idle)")]
    assert len(leaf) == 1 and leaf[0].matched and not leaf[0].expandable and leaf[0].row.id == "(idle)"
    assert leaf[0].depth == 1 and leaf[0].parent is v.root
    v.set_filter("")
    assert all(v.index[ln.path] == i for i, ln in enumerate(v.lines))
    assert len(v.index) == len(v.lines)
