"""keck_tui.common.ids.safe_id: the one text → row id mapping (local and remote rows)."""
from __future__ import annotations

import pytest

from keck_tui.common.ids import safe_id


@pytest.mark.parametrize("text, expected", [
    ("node1", "node1"), ("rack/1", "rack∕1"), ("a/b/c", "a∕b∕c"), ("  padded ", "padded"), ("", "(unnamed)"),
    ("   ", "(unnamed)"), (42, "42"), ("system.slice", "system.slice"), ("pid-7", "pid-7"), ("a:b", "a:b"),
])
def test_safe_id(text, expected):
    assert safe_id(text) == expected
    assert "/" not in safe_id(text)


def test_local_tree_uses_the_same_mapping():
    """The engine mapped '/' to ':' (remote sources to '∕'): a host or group named with a '/'
    got a different id locally than through an agent or Prometheus."""
    from attribution_inputs import activity, proc, rapl
    from keck_tui.attribution.engine import AttributionInput, attribute
    from keck_tui.hierarchy.types import GroupLevel

    inp = AttributionInput("rack/1", 1.0, activity([proc(1, {0: 0.5})]), (rapl(20.0),),
                           groups={1: (GroupLevel("slice", "a/b.slice", "a/b.slice"),)})
    root = attribute(inp).root
    assert root.id == "rack∕1" and root.name == "rack/1"
    assert [c.id for c in root.children if c.level == "slice"] == ["a∕b.slice"]


def test_fileio_listdir(tmp_path):
    """samplers.fileio.listdir: the one copy (rapl, hwmon and cpufreq each had one)."""
    from keck_tui.samplers.fileio import listdir

    (tmp_path / "a").write_text("")
    assert listdir(tmp_path) == ["a"] and listdir(str(tmp_path)) == ["a"]
    assert listdir(tmp_path / "missing") == [] and listdir(tmp_path / "a") == []  # absent, not a folder
