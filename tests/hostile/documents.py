"""keck-top/1 documents a hostile or broken peer could send, each with what is wrong with it."""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterator

from keck_tui.model import SCHEMA


def good(host: str = "n1", watts: float = 100.0) -> dict[str, Any]:
    """A valid snapshot: node → process + (idle)."""
    return {
        "schema": SCHEMA, "time": 1.7e9, "interval_s": 1.0, "host": host, "model": "cpu-time",
        "sources": [{"name": "rapl", "status": "ok", "detail": "", "kind": "measured", "watts": watts}],
        "root": {"level": "node", "id": host, "name": host, "watts": watts, "watts_lo": watts * 0.95,
                 "watts_hi": watts * 1.05, "joules": 10.0, "children": [
                     {"level": "process", "id": "p1", "name": "worker", "pid": 42, "cmd": "worker --x",
                      "watts": watts * 0.6, "watts_lo": watts * 0.5, "watts_hi": watts * 0.7, "children": []},
                     {"level": "synthetic", "id": "(idle)", "name": "(idle)", "watts": watts * 0.4,
                      "watts_lo": watts * 0.3, "watts_hi": watts * 0.5, "children": []}]},
    }


def nested_rows(depth: int) -> dict[str, Any]:
    """Rows nested ``depth`` levels below the node."""
    doc = good()
    row = doc["root"]
    for i in range(depth):
        child = {"level": "process", "id": f"r{i}", "name": f"r{i}", "watts": 1.0, "children": []}
        row["children"] = [child]
        row = child
    return doc


def _with(path: list[Any], value: Any) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        doc = good()
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return doc
    return build


PROCESS = ["root", "children", 0]

#: (what, builder): documents that must be rejected as a whole with a SnapshotFormatError.
REJECTED: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("pid is a string", _with(PROCESS + ["pid"], "abc")),
    ("pid has 400 digits", _with(PROCESS + ["pid"], int("9" * 400))),
    ("watts has 400 digits", _with(PROCESS + ["watts"], int("9" * 400))),
    ("labels is a list", _with(PROCESS + ["labels"], ["a", "b"])),
    ("sources is an int", _with(["root", "sources"], 7)),
    ("snapshot sources is an object", _with(["sources"], {"name": "x"})),
    ("a source is a string", _with(["sources"], ["rapl"])),
    ("name is a list", _with(PROCESS + ["name"], ["x"])),
    ("watts is a string", _with(PROCESS + ["watts"], "12")),
    ("watts is true", _with(PROCESS + ["watts"], True)),
    ("negative watts", _with(PROCESS + ["watts"], -5.0)),
    ("watts_lo above watts_hi", lambda: _bounds(60.0, 70.0, 50.0)),
    ("watts above watts_hi", lambda: _bounds(80.0, 50.0, 70.0)),
    ("1e308 watts", lambda: _bounds(1e308, 1e308, 1e308)),
    ("1e308 joules", _with(PROCESS + ["joules"], 1e308)),
    ("negative joules", _with(PROCESS + ["joules"], -1.0)),
    ("time is 1e308", _with(["time"], 1e308)),
    ("negative interval", _with(["interval_s"], -1.0)),
    ("estimated is a string", _with(PROCESS + ["estimated"], "false")),
    ("children is an object", _with(PROCESS + ["children"], {"x": 1})),
    ("a child is a number", _with(PROCESS + ["children"], [3])),
    ("rows 300 deep", lambda: nested_rows(300)),
    ("id of a megabyte", _with(PROCESS + ["id"], "x" * 1_000_000)),
    ("unknown field nested 5000 deep", lambda: _deep_extra(5000)),
    ("cpu out of range", _with(PROCESS + ["cpu"], -1)),
    ("components value is a string", _with(["root", "components"], {"cpu": "7"})),
    ("warnings is a string", _with(["warnings"], "careful")),
    ("source watts negative", _with(["sources", 0, "watts"], -3.0)),
    ("host is null", _with(["host"], None)),
]

#: Text with terminal escape sequences, bidi overrides and other controls.
ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x1b[31mred\u202eevil\x00nul\x9bcsi"


def with_escapes() -> dict[str, Any]:
    """A valid document whose every text field carries terminal escapes."""
    doc = good(host="h" + ESCAPES)
    doc["root"]["name"] = "node" + ESCAPES
    proc = doc["root"]["children"][0]
    proc.update(name="w" + ESCAPES, cmd="cmd" + ESCAPES, note=ESCAPES, labels={"app" + ESCAPES: ESCAPES},
                namespace=ESCAPES, error=ESCAPES)
    doc["sources"][0]["detail"] = ESCAPES
    doc["warnings"] = [ESCAPES]
    return doc


def _bounds(w: float, lo: float, hi: float) -> dict[str, Any]:
    doc = good()
    doc["root"]["children"][0].update(watts=w, watts_lo=lo, watts_hi=hi)
    return doc


def _deep_extra(depth: int) -> dict[str, Any]:
    doc = good()
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    doc["root"]["future"] = value
    return doc


def all_strings(value: Any) -> Iterator[str]:
    """Every string (keys included) inside a decoded JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def copy_of(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(doc)
