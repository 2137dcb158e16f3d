"""What to count: ``[[work]]`` entries of the config file, and the presets' equivalents.

A work entry names the rows it applies to, a Prometheus counter (a sample name with an
optional exact label filter) at a metrics URL, and the unit it counts::

    [[work]]
    name = "api"                      # shown in the detail pane (default: the counter)
    process = "gunicorn"              # rows: process name (regex, whole name) ...
    cmdline = "myapp\\\\.wsgi"          # ... and/or command line (regex, anywhere) ...
    pod = "api-*"                     # ... or pod / namespace / container names (globs)
    url = "http://127.0.0.1:9100/metrics"
    counter = "http_requests_total"
    labels = { code = "200" }         # only series with these label values (summed)
    unit = "request"
    children = true                   # a matched process's descendants count too (default)
    timeout = 2.0                     # seconds per scrape (default 2)
    also = [ { counter = "http_response_bytes_total", unit = "byte" } ]

Everything is checked when the config is read: a typo fails at start-up, it is never a
silently empty column.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Mapping

MAX_ENTRIES = 64
MAX_TIMEOUT_S = 30.0
DEFAULT_TIMEOUT_S = 2.0
_KEYS = {"name", "process", "cmdline", "pod", "namespace", "container", "url", "counter", "labels", "unit",
         "children", "timeout", "also"}
_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")  # a Prometheus sample name


class WorkSpecError(ValueError):
    """A ``[[work]]`` entry is unusable (one line, naming the entry and the key)."""


@dataclass(frozen=True)
class CounterSpec:
    """One counter: the sample name, an exact label filter, and the unit it counts."""

    counter: str
    unit: str
    labels: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"counter": self.counter, "unit": self.unit}
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class RowMatch:
    """Which rows a work entry applies to (every given condition must hold)."""

    process: re.Pattern[str] | None = None  # the process name (comm), whole
    cmdline: re.Pattern[str] | None = None  # searched in the command line
    pid: int | None = None  # presets: the server's own process
    pod: str | None = None  # globs on the names
    namespace: str | None = None
    container: str | None = None
    children: bool = True

    @property
    def by_process(self) -> bool:
        return self.process is not None or self.cmdline is not None or self.pid is not None

    def process_matches(self, pid: int, name: str, cmd: str) -> bool:
        if self.pid is not None and pid != self.pid:
            return False
        if self.process is not None and not self.process.fullmatch(name):
            return False
        if self.cmdline is not None and not self.cmdline.search(cmd):
            return False
        return self.by_process

    def group_matches(self, level: str, name: str, namespace: str | None) -> bool:
        """A pod or container row (processes are matched by :meth:`process_matches`)."""
        if self.by_process:
            return False
        if self.container is not None:
            if level != "container" or not fnmatchcase(name, self.container):
                return False
            return self.namespace is None or fnmatchcase(namespace or "", self.namespace)
        if self.pod is not None:
            if level != "pod" or not fnmatchcase(name, self.pod):
                return False
            return self.namespace is None or fnmatchcase(namespace or "", self.namespace)
        if self.namespace is not None:
            return level == "namespace" and fnmatchcase(name, self.namespace)
        return False


@dataclass(frozen=True)
class WorkSpec:
    """One source of work: its counters at one URL, and the rows whose energy it is."""

    name: str
    url: str | None  # None: nothing to scrape (``why`` says so)
    primary: CounterSpec
    match: RowMatch
    also: tuple[CounterSpec, ...] = ()
    source: str = "config"  # config | preset
    timeout_s: float = DEFAULT_TIMEOUT_S
    why: str = ""  # why there is no URL (a server without its metrics flag)

    @property
    def key(self) -> tuple[str | None, str, tuple[tuple[str, str], ...]]:
        return (self.url, self.primary.counter, self.primary.labels)


def _text(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise WorkSpecError(f"{where}: '{key}' is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise WorkSpecError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _regex(entry: Mapping[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    text = _text(entry, key, where)
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise WorkSpecError(f"{where}: '{key}' is not a regular expression: {exc}") from None


def _labels(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in value.items()):
        raise WorkSpecError(f"{where}: 'labels' must be a table of strings, e.g. {{ code = \"200\" }}")
    return tuple(sorted(value.items()))


def _counter(entry: Mapping[str, Any], where: str) -> CounterSpec:
    counter = _text(entry, "counter", where, required=True)
    assert counter is not None
    if not _NAME.match(counter):
        raise WorkSpecError(f"{where}: 'counter' is not a Prometheus sample name: {counter!r}")
    unit = _text(entry, "unit", where, required=True)
    assert unit is not None
    return CounterSpec(counter, unit.strip(), _labels(entry.get("labels"), where))


def parse_entry(entry: Mapping[str, Any], where: str) -> WorkSpec:
    """One ``[[work]]`` table → WorkSpec (WorkSpecError with the reason)."""
    if not isinstance(entry, Mapping):
        raise WorkSpecError(f"{where}: not a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise WorkSpecError(f"{where}: unknown key {unknown[0]!r}")
    match = RowMatch(process=_regex(entry, "process", where), cmdline=_regex(entry, "cmdline", where),
                     pod=_text(entry, "pod", where), namespace=_text(entry, "namespace", where),
                     container=_text(entry, "container", where),
                     children=_bool(entry.get("children", True), "children", where))
    if not (match.by_process or match.pod or match.namespace or match.container):
        raise WorkSpecError(f"{where}: say which rows: process, cmdline, pod, namespace or container")
    if match.by_process and (match.pod or match.container):
        raise WorkSpecError(f"{where}: match processes (process/cmdline) or pods/containers, not both")
    url = _text(entry, "url", where, required=True)
    assert url is not None
    url = _check_url(url, f"{where}: url")
    primary = _counter(entry, where)
    also_raw = entry.get("also") or []
    if not isinstance(also_raw, list):
        raise WorkSpecError(f"{where}: 'also' must be a list of tables")
    also = []
    for i, a in enumerate(also_raw, 1):
        if not isinstance(a, Mapping) or set(a) - {"counter", "unit", "labels"}:
            raise WorkSpecError(f"{where}: also entry {i} must be a table of counter, unit and labels")
        also.append(_counter(a, f"{where}: also entry {i}"))
    timeout = entry.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or not 0 < timeout <= MAX_TIMEOUT_S:
        raise WorkSpecError(f"{where}: 'timeout' must be a number of seconds in (0, {MAX_TIMEOUT_S:g}]")
    name = _text(entry, "name", where) or primary.counter
    return WorkSpec(name=name, url=url, primary=primary, match=match, also=tuple(also), source="config",
                    timeout_s=float(timeout))


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise WorkSpecError(f"{where}: '{key}' must be true or false")
    return value


def _check_url(url: str, what: str) -> str:
    from keck_tui.common.urls import UrlError, check_url

    try:
        return check_url(url, what, example="http://127.0.0.1:8000/metrics")
    except UrlError as exc:
        raise WorkSpecError(str(exc)) from None


def parse_entries(entries: Any, where: str = "config") -> tuple[WorkSpec, ...]:
    """The ``work`` array of tables of a config file."""
    if not isinstance(entries, list):
        raise WorkSpecError(f"{where}: 'work' must be an array of tables ([[work]])")
    if len(entries) > MAX_ENTRIES:
        raise WorkSpecError(f"{where}: at most {MAX_ENTRIES} [[work]] entries")
    return tuple(parse_entry(e, f"{where}: [[work]] entry {i}") for i, e in enumerate(entries, 1))
