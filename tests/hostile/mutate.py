"""Hypothesis strategies that mutate JSON documents the way a broken or hostile peer would."""
from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

special = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1.0, 10**400, "\x1b[2J", ""])
json_leaf = (special | st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)
#: Numbers a peer could report for a power figure.
hostile_number = (st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, -1.0, 0.0, 1e10, 1e11, 10**400])
                  | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20))
FIELDS = ["watts", "watts_lo", "watts_hi", "joules", "pid", "labels", "children", "future", "name", "cpu"]


def paths(value: Any, here: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) inside a JSON value, the value itself first."""
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, here + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, here + (i,)))
    return out


def get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def put(doc: Any, path: tuple, value: Any) -> Any:
    """``doc`` with the value at ``path`` replaced (the document itself when ``path`` is empty)."""
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def mutate(data: st.DataObject, doc: Any, rounds: tuple[int, int] = (1, 4)) -> Any:
    """``doc`` changed 1–4 times: a value replaced anywhere, or a field added to an object."""
    for _ in range(data.draw(st.integers(*rounds))):
        all_paths = paths(doc)
        dicts = [p for p in all_paths if isinstance(get(doc, p), dict)]
        if dicts and data.draw(st.booleans()):
            target = get(doc, data.draw(st.sampled_from(dicts)))
            target[data.draw(st.sampled_from(FIELDS))] = data.draw(json_value)
        else:
            doc = put(doc, data.draw(st.sampled_from(all_paths)), data.draw(json_value))
    return doc
