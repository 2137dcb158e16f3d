"""Hostile keck-top/1 documents: rejected whole with a one-line reason, never an uncaught exception."""
from __future__ import annotations

import json
import math
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from keck_tui.model import MAX_WATTS, Row, Snapshot, SnapshotFormatError
from keck_tui.recording import encode_line
from tests.hostile import documents as docs
from tests.hostile.mutate import mutate


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
    doc = mutate(data, docs.good())
    try:
        snap = Snapshot.from_json(doc)
    except SnapshotFormatError as exc:
        assert "\n" not in str(exc)
        return
    _check_invariants(snap.root)
    Snapshot.loads(snap.dumps())  # what was accepted re-encodes and decodes …
    Snapshot.loads(encode_line(snap))  # … also through the recorder's encoder
