"""The keck-top/1 snapshot: round trips, required fields, bad input."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from keck_tui.model import SCHEMA, Row, Snapshot, SnapshotFormatError, SourceStatus

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.()", min_size=1, max_size=12)
# Text that decodes to itself: control/format characters and separators are made terminal-safe
# on the way in (tested on their own in test_names_from_outside_are_made_terminal_safe).
safe_chars = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")) | st.just(" ")


def text(max_size):
    return st.text(alphabet=safe_chars, max_size=max_size)


@st.composite
def rows(draw, depth=0):
    w = draw(finite)
    children = draw(st.lists(rows(depth + 1), max_size=3)) if depth < 3 else []
    return Row(
        level=draw(st.sampled_from(["node", "namespace", "pod", "process", "core", "synthetic"])),
        id=draw(ids), name=draw(text(20)), watts=w, watts_lo=w * 0.9, watts_hi=w * 1.1,
        joules=draw(finite), freq_mhz=draw(st.none() | finite), cpu_util=draw(st.none() | finite),
        estimated=draw(st.booleans()), cpu_s=draw(st.none() | finite),
        components=draw(st.none() | st.dictionaries(st.sampled_from(["cpu", "dram", "gpu"]), finite)),
        pid=draw(st.none() | st.integers(1, 4_000_000)), cmd=draw(st.none() | text(30)),
        cpu=draw(st.none() | st.integers(0, 255)),
        pod_uid=draw(st.none() | st.uuids().map(str)), note=draw(st.none() | text(10)),
        sources=draw(st.none() | st.tuples(st.sampled_from(["rapl", "nvml"]))),
        children=tuple(children),
    )


@given(rows(), st.lists(st.builds(SourceStatus, name=ids, status=st.sampled_from(["ok", "unavailable", "error"]),
                                   detail=text(20), watts=st.none() | finite), max_size=4))
@settings(max_examples=60, deadline=None)
def test_snapshot_round_trips_through_json(root, sources):
    snap = Snapshot(time=1.7e9, interval_s=1.0, host="h", model="cpu-time", sources=tuple(sources),
                    root=root, idle_policy="separate")
    text = snap.dumps()
    assert json.loads(text)["schema"] == SCHEMA
    assert Snapshot.loads(text) == snap


def test_documented_fields_are_written_even_when_null():
    row = Row(level="node", id="n", name="n", watts=1.0, watts_lo=0.5, watts_hi=2.0)
    data = Snapshot(time=1.0, interval_s=1.0, host="n", model="cpu-time", sources=(), root=row).to_json()
    assert set(data) >= {"schema", "time", "interval_s", "host", "model", "sources", "root"}
    assert set(data["root"]) >= {"level", "id", "name", "watts", "watts_lo", "watts_hi", "joules",
                                  "freq_mhz", "cpu_util", "estimated", "cpu_s", "children"}
    assert data["root"]["freq_mhz"] is None and data["root"]["children"] == []
    assert "pid" not in data["root"]  # optional fields only where set


def test_unknown_fields_survive_a_round_trip():
    doc = {"schema": SCHEMA, "time": 1, "interval_s": 1, "host": "h", "model": "m", "future": {"x": 1},
           "sources": [{"name": "s", "status": "ok", "new": 2}],
           "root": {"level": "node", "id": "h", "name": "h", "watts": 3, "shiny": True, "children": []}}
    snap = Snapshot.from_json(doc)
    again = snap.to_json()
    assert again["future"] == {"x": 1} and again["root"]["shiny"] is True and again["sources"][0]["new"] == 2


@pytest.mark.parametrize("text, message", [
    ("not json", "not JSON"),
    ('{"schema": "other/2"}', "unsupported schema"),
    ('{"schema": "keck-top/1", "time": 1}', "lacks"),
    ('{"schema": "keck-top/1", "time": 1, "interval_s": 1, "host": "h", "root": {"level": "n", "id": "x", '
     '"name": "x", "watts": "lots"}}', "not a number"),
    ('{"schema": "keck-top/1", "time": 1, "interval_s": 1, "host": "h", "root": {"level": "n", "id": "x", '
     '"name": "x", "watts": 1, "children": {}}}', "children"),
])
def test_bad_documents_raise_format_errors(text, message):
    with pytest.raises(SnapshotFormatError, match=message):
        Snapshot.loads(text)


def test_find_walk_and_prune():
    leaf = Row(level="process", id="pid-2", name="b", watts=1, watts_lo=1, watts_hi=1)
    mid = Row(level="pod", id="p", name="p", watts=1, watts_lo=1, watts_hi=1, children=(leaf,))
    root = Row(level="node", id="n", name="n", watts=1, watts_lo=1, watts_hi=1, children=(mid,))
    assert root.find(["n", "p", "pid-2"]) is leaf
    assert root.find(["n", "x"]) is None and root.find(["x"]) is None
    assert [p for p, _ in root.walk()] == [("n",), ("n", "p"), ("n", "p", "pid-2")]
    pruned = root.pruned(1)
    assert pruned.children[0].children == () and pruned.children[0].has_children is True


def test_to_json_writes_every_field_of_the_schema():
    from dataclasses import fields

    from keck_tui.model import _ROW_ALWAYS, _ROW_OPTIONAL
    values = {"components": {"cpu": 1.0}, "pid": 1, "cmd": "c", "cpu": 0, "pod_uid": "u", "namespace": "n",
              "container_id": "c", "gpu_watts": 1.0, "freq_nominal": True, "note": "n", "sources": ("a",),
              "labels": {"k": "v"}, "stale": True, "age_s": 1.0, "error": "e", "has_children": True,
              "instructions": 1.2e9, "llc_misses": 4e4, "ipc": 1.5, "freq_source": "cycles"}
    assert set(values) == set(_ROW_OPTIONAL)
    assert {f.name for f in fields(Row)} == set(_ROW_ALWAYS) | set(_ROW_OPTIONAL) | {"children", "extra"}
    row = Row(level="x", id="i", name="n", watts=1, watts_lo=1, watts_hi=1, **values)
    data = row.to_json()
    assert list(data) == [*_ROW_ALWAYS, *_ROW_OPTIONAL, "children"]
    assert Row.from_json(data) == row


@pytest.mark.parametrize("field, value, message", [
    ("instructions", -1.0, "instructions"), ("llc_misses", float("inf"), "llc_misses"),
    ("ipc", 1e9, "ipc"), ("ipc", "fast", "ipc"), ("freq_source", 3, "freq_source"),
])
def test_counter_fields_are_validated(field, value, message):
    from keck_tui.model import checked_tree

    data = Row(level="core", id="core-0", name="core 0", watts=1, watts_lo=1, watts_hi=1).to_json()
    data[field] = value
    with pytest.raises(SnapshotFormatError, match=message):
        Row.from_json(data)
    if field != "freq_source" and not isinstance(value, str):
        with pytest.raises(SnapshotFormatError, match=message):
            checked_tree(Row(level="core", id="core-0", name="core 0", watts=1, watts_lo=1, watts_hi=1,
                             **{field: value}))
