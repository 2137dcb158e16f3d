"""Hostile keck-top/1 documents: rejected whole with a one-line reason, never an uncaught exception."""
from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from keck_tui.model import MAX_WATTS, Row, Snapshot, SnapshotFormatError
from keck_tui.recording import encode_line
from tests.hostile import documents as docs


@pytest.mark.parametrize("what,build", docs.REJECTED, ids=[w for w, _ in docs.REJECTED])
def test_a_bad_document_is_rejected_whole_with_one_line(what, build):
    with pytest.raises(SnapshotFormatError) as info:
        Snapshot.from_json(build())
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 300, (what, message)


def test_the_good_document_is_accepted():
    snap = Snapshot.from_json(docs.good())
    assert snap.root.watts == 100.0 and [c.id for c in snap.root.children] == ["p1", "(idle)"]


def test_the_reason_names_the_row_and_the_field():
    doc = docs.good()
    doc["root"]["children"][0]["watts_lo"] = 70.0
    with pytest.raises(SnapshotFormatError, match=r"^row n1/p1: bounds out of order"):
        Snapshot.from_json(doc)


def test_deep_json_text_is_a_format_error_not_a_recursion_error():
    text = '{"a":' * 100_000 + "1" + "}" * 100_000
    with pytest.raises(SnapshotFormatError, match="nested too deeply"):
        Snapshot.loads(text)


def test_rows_as_deep_as_the_limit_are_accepted_one_more_is_not():
    from keck_tui.model import MAX_DEPTH

    assert Snapshot.from_json(docs.nested_rows(MAX_DEPTH)).root.children
    with pytest.raises(SnapshotFormatError, match="nested more than"):
        Snapshot.from_json(docs.nested_rows(MAX_DEPTH + 1))


def _unsafe(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text)


def test_escape_sequences_in_names_are_neutralised():
    snap = Snapshot.from_json(docs.with_escapes())
    out = snap.to_json()
    strings = list(docs.all_strings(out))
    assert any("pwned" in s for s in strings)  # the text is kept, readable …
    assert not [s for s in strings if _unsafe(s)]  # … but no control/format character survives
    assert "\x1b" not in json.dumps(out, ensure_ascii=False)


# ---- fuzz: mutated snapshots -------------------------------------------------------------------

special = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1.0, 10**400, "\x1b[2J", ""])
json_leaf = (special | st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)


def _paths(value: Any, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, here + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, here + (i,)))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _check_invariants(row: Row) -> None:
    for _, r in row.walk():
        assert math.isfinite(r.watts) and math.isfinite(r.watts_lo) and math.isfinite(r.watts_hi)
        tol = 1e-9 * max(1.0, r.watts)
        assert -tol <= r.watts_lo <= r.watts + tol and r.watts <= r.watts_hi + tol
        assert r.watts_hi <= MAX_WATTS and 0 <= r.joules
        assert not _unsafe(r.name) and not _unsafe(r.id)


@given(data=st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_snapshots_parse_or_fail_cleanly(data):
    doc = docs.good()
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(doc)
        dicts = [p for p in paths if isinstance(_get(doc, p), dict)]
        if dicts and data.draw(st.booleans()):  # add a field, known or unknown, to an object
            target = _get(doc, data.draw(st.sampled_from(dicts)))
            key = data.draw(st.sampled_from(["watts", "pid", "labels", "children", "future", "name", "cpu"]))
            target[key] = data.draw(json_value)
        else:
            doc = _set(doc, data.draw(st.sampled_from(paths)), data.draw(json_value))
    try:
        snap = Snapshot.from_json(doc)
    except SnapshotFormatError as exc:
        assert "\n" not in str(exc)
        return
    _check_invariants(snap.root)
    Snapshot.loads(snap.dumps())  # what was accepted re-encodes and decodes …
    Snapshot.loads(encode_line(snap))  # … also through the recorder's encoder
