"""The "keck-top/1" snapshot: the one document every mode shares.

Plain frozen dataclasses with explicit to/from JSON. Field names are the
schema (see docs/design.md, "Snapshot JSON"); unknown fields read from JSON are kept in ``extra`` so a
document from a newer keck-top survives a round trip through an older one.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterator, Mapping

from keck_tui.common.text import terminal_safe

SCHEMA = "keck-top/1"

#: Ids of synthetic rows: present so that children sum to their parent.
SYNTHETIC_IDS = ("(idle)", "(residual)", "(platform)", "(kernel)", "(dram)")

STATUS_OK = "ok"
STATUS_UNAVAILABLE = "unavailable"
STATUS_ERROR = "error"

KIND_MEASURED = "measured"
KIND_ESTIMATED = "estimated"


class SnapshotFormatError(ValueError):
    """A document is not a valid keck-top/1 snapshot."""


@dataclass(frozen=True)
class SourceStatus:
    """State of one source in one snapshot (shown in the header and by doctor)."""

    name: str
    status: str  # ok | unavailable | error
    detail: str = ""
    kind: str = KIND_MEASURED  # measured | estimated
    watts: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A source's detail often quotes a peer (an HTTP error body, a BMC's message).
        for name in ("name", "status", "detail", "kind"):
            value = getattr(self, name)
            limit = MAX_DETAIL if name == "detail" else MAX_TEXT
            if isinstance(value, str) and (len(value) > limit or not value.isprintable()):
                object.__setattr__(self, name, terminal_safe(value, limit))

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(name=self.name, status=self.status, detail=self.detail,
                   kind=self.kind, watts=self.watts)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SourceStatus":
        if not isinstance(data, Mapping):
            raise SnapshotFormatError("source is not an object")
        _require(data, ("name", "status"), "source")
        known = {"name", "status", "detail", "kind", "watts"}
        watts = _opt_float(data.get("watts"), "source watts")
        if watts is not None:
            _check_range(watts, "source watts", 0.0, MAX_WATTS)
        return cls(
            name=_text(data["name"], "source name"),
            status=_text(data["status"], "source status"),
            detail=_text(data.get("detail") or "", "source detail", MAX_DETAIL),
            kind=_text(data.get("kind") or KIND_MEASURED, "source kind"),
            watts=watts,
            extra=_extra(data, known, "source"),
        )


# Row fields holding text (checked by Row.__post_init__).
_ROW_TEXT = ("level", "id", "name", "cmd", "pod_uid", "namespace", "container_id", "note", "error", "freq_source")
_ROW_DETAIL = frozenset({"cmd", "note", "error"})  # up to MAX_DETAIL characters; the others MAX_TEXT
# Row fields that are always written (null when unknown), then the optional ones
# that are written only when set.
_ROW_ALWAYS = ("level", "id", "name", "watts", "watts_lo", "watts_hi", "joules",
               "freq_mhz", "cpu_util", "estimated", "cpu_s")
_ROW_OPTIONAL = ("components", "pid", "cmd", "cpu", "pod_uid", "namespace",
                 "container_id", "gpu_watts", "freq_nominal", "note", "sources",
                 "labels", "stale", "age_s", "error", "has_children", "instructions",
                 "llc_misses", "ipc", "freq_source")


@dataclass(frozen=True)
class Row:
    """One node of the power tree.

    ``watts`` is the mean power over the snapshot's interval; ``joules`` the
    energy accumulated by this row (same stable id) since the session started.
    ``children`` always sum to ``watts`` (synthetic rows make up the rest).
    """

    level: str
    id: str
    name: str
    watts: float
    watts_lo: float
    watts_hi: float
    joules: float = 0.0
    freq_mhz: float | None = None
    cpu_util: float | None = None
    estimated: bool = False
    cpu_s: float | None = None
    components: Mapping[str, float] | None = None
    pid: int | None = None
    cmd: str | None = None
    cpu: int | None = None
    pod_uid: str | None = None
    namespace: str | None = None
    container_id: str | None = None
    gpu_watts: float | None = None
    freq_nominal: bool | None = None  # freq_mhz is the nominal value, not measured
    note: str | None = None  # why a synthetic row exists, or a warning
    sources: tuple[str, ...] | None = None  # sources that produced this row's watts
    labels: Mapping[str, str] | None = None  # cmdline-independent metadata (pod labels, ...)
    stale: bool | None = None  # remote row whose data is old
    age_s: float | None = None
    error: str | None = None
    has_children: bool | None = None  # children exist but were not sent (depth limit)
    # Hardware counters over the interval (core and process rows, where a PMU counts).
    instructions: float | None = None  # instructions retired
    llc_misses: float | None = None  # last-level cache misses
    ipc: float | None = None  # instructions per cycle
    freq_source: str | None = None  # what freq_mhz is: "cycles" (counted), "cpufreq" or "nominal"
    children: tuple["Row", ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Text from outside — other users' process names and command lines, pod and
        # namespace names, labels, a peer's errors — is made terminal-safe here, where
        # every row of every source is built, so no output (TUI, tables, JSON that a
        # user prints) ever carries an escape sequence. The common case (all printable)
        # costs one join and one str.isprintable() in C.
        # Text is also cut to the limits a reader enforces (MAX_TEXT, MAX_DETAIL): a
        # process whose command line is 100 kB long must not make keck-top's own
        # snapshot unreadable by its own agent client, recorder or replay.
        # All of it shorter than MAX_TEXT means every field fits; otherwise the slow
        # path measures field by field.
        try:
            text = "".join(filter(None, (self.level, self.id, self.name, self.cmd, self.pod_uid, self.namespace,
                                         self.container_id, self.note, self.error, self.freq_source)))
            sources = "" if self.sources is None else "".join(self.sources)
            labels = "".join(f"{k}{v}" for k, v in self.labels.items()) if self.labels else ""
            if (len(text) <= MAX_TEXT and len(sources) <= MAX_TEXT and len(labels) <= MAX_TEXT
                    and text.isprintable() and sources.isprintable() and labels.isprintable()):
                return
        except TypeError:  # not text where text belongs: let the slow path leave it alone
            pass
        self._make_terminal_safe()

    def _make_terminal_safe(self) -> None:
        for name in _ROW_TEXT:
            value = getattr(self, name)
            limit = MAX_DETAIL if name in _ROW_DETAIL else MAX_TEXT
            if isinstance(value, str) and (len(value) > limit or not value.isprintable()):
                object.__setattr__(self, name, terminal_safe(value, limit))
        if self.sources is not None and not all(len(s) <= MAX_TEXT and s.isprintable() for s in self.sources):
            object.__setattr__(self, "sources", tuple(terminal_safe(s, MAX_TEXT) for s in self.sources))
        if self.labels and not all(len(k) <= MAX_TEXT and len(v) <= MAX_TEXT and k.isprintable() and v.isprintable()
                                   for k, v in self.labels.items()):
            object.__setattr__(self, "labels", {terminal_safe(k, MAX_TEXT): terminal_safe(v, MAX_TEXT)
                                                for k, v in self.labels.items()})

    @property
    def synthetic(self) -> bool:
        return self.id.startswith("(") and self.id.endswith(")")

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], "Row"]]:
        """Yield (id path, row) for this row and every descendant, depth first."""
        here = path + (self.id,)
        yield here, self
        for child in self.children:
            yield from child.walk(here)

    def find(self, path: tuple[str, ...] | list[str]) -> "Row | None":
        """The row at ``path`` (ids from this row down, this row's id first)."""
        path = tuple(path)
        if not path or path[0] != self.id:
            return None
        row: Row = self
        for part in path[1:]:
            nxt = next((c for c in row.children if c.id == part), None)
            if nxt is None:
                return None
            row = nxt
        return row

    def pruned(self, depth: int) -> "Row":
        """A copy with at most ``depth`` levels of children (0: this row only)."""
        if depth <= 0:
            return replace(self, children=(), has_children=bool(self.children) or self.has_children)
        return replace(self, children=tuple(c.pruned(depth - 1) for c in self.children))

    def to_json(self) -> dict[str, Any]:
        # Unrolled on purpose: this runs for every row of every snapshot that is served,
        # recorded or printed (a loop over field names with getattr is ~4× slower).
        out: dict[str, Any] = dict(self.extra) if self.extra else {}
        out["level"] = self.level
        out["id"] = self.id
        out["name"] = self.name
        out["watts"] = self.watts
        out["watts_lo"] = self.watts_lo
        out["watts_hi"] = self.watts_hi
        out["joules"] = self.joules
        out["freq_mhz"] = self.freq_mhz
        out["cpu_util"] = self.cpu_util
        out["estimated"] = self.estimated
        out["cpu_s"] = self.cpu_s
        if self.components is not None:
            out["components"] = dict(self.components)
        if self.pid is not None:
            out["pid"] = self.pid
        if self.cmd is not None:
            out["cmd"] = self.cmd
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.pod_uid is not None:
            out["pod_uid"] = self.pod_uid
        if self.namespace is not None:
            out["namespace"] = self.namespace
        if self.container_id is not None:
            out["container_id"] = self.container_id
        if self.gpu_watts is not None:
            out["gpu_watts"] = self.gpu_watts
        if self.freq_nominal is not None:
            out["freq_nominal"] = self.freq_nominal
        if self.note is not None:
            out["note"] = self.note
        if self.sources is not None:
            out["sources"] = list(self.sources)
        if self.labels is not None:
            out["labels"] = dict(self.labels)
        if self.stale is not None:
            out["stale"] = self.stale
        if self.age_s is not None:
            out["age_s"] = self.age_s
        if self.error is not None:
            out["error"] = self.error
        if self.has_children is not None:
            out["has_children"] = self.has_children
        if self.instructions is not None:
            out["instructions"] = self.instructions
        if self.llc_misses is not None:
            out["llc_misses"] = self.llc_misses
        if self.ipc is not None:
            out["ipc"] = self.ipc
        if self.freq_source is not None:
            out["freq_source"] = self.freq_source
        out["children"] = [c.to_json() for c in self.children]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Row":
        """Decode and validate a row tree (see :class:`RowDecoder` for the rules)."""
        return RowDecoder().row(data)


@dataclass(frozen=True)
class Snapshot:
    """One interval's power tree plus where it came from."""

    time: float
    interval_s: float
    host: str
    model: str
    sources: tuple[SourceStatus, ...]
    root: Row
    schema: str = SCHEMA
    idle_policy: str | None = None
    estimated: bool = False  # no measured power source: every watt is a guess
    warnings: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("host", "model", "idle_policy"):
            value = getattr(self, name)
            if isinstance(value, str) and (len(value) > MAX_TEXT or not value.isprintable()):
                object.__setattr__(self, name, terminal_safe(value, MAX_TEXT))
        if not all(isinstance(w, str) and len(w) <= MAX_DETAIL and w.isprintable() for w in self.warnings):
            object.__setattr__(self, "warnings", tuple(terminal_safe(str(w), MAX_DETAIL) for w in self.warnings))

    def source(self, name: str) -> SourceStatus | None:
        return next((s for s in self.sources if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            schema=self.schema, time=self.time, interval_s=self.interval_s,
            host=self.host, model=self.model,
            sources=[s.to_json() for s in self.sources],
        )
        if self.idle_policy is not None:
            out["idle_policy"] = self.idle_policy
        out["estimated"] = self.estimated
        if self.warnings:
            out["warnings"] = list(self.warnings)
        out["root"] = self.root.to_json()
        return out

    def dumps(self, indent: int | None = None) -> str:
        return json.dumps(self.to_json(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Snapshot":
        if not isinstance(data, Mapping):
            raise SnapshotFormatError("snapshot is not an object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise SnapshotFormatError(f"unsupported schema {schema!r} (expected {SCHEMA!r})")
        _require(data, ("time", "interval_s", "host", "root"), "snapshot")
        sources = data.get("sources")
        sources = [] if sources is None else sources
        if not isinstance(sources, list):
            raise SnapshotFormatError("sources is not a list")
        if len(sources) > MAX_SOURCES:
            raise SnapshotFormatError(f"more than {MAX_SOURCES} sources")
        warnings = data.get("warnings") or []
        if not isinstance(warnings, list) or len(warnings) > MAX_SOURCES:
            raise SnapshotFormatError(f"warnings is not a list of at most {MAX_SOURCES} strings")
        idle_policy = data.get("idle_policy")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            time=_check_range(_float(data["time"], "time"), "time", 0.0, MAX_TIME),
            interval_s=_check_range(_float(data["interval_s"], "interval_s"), "interval_s", 0.0, MAX_INTERVAL),
            host=_text(data["host"], "host"),
            model=_text(data.get("model") or "", "model"),
            sources=tuple(SourceStatus.from_json(s) for s in sources),
            root=Row.from_json(data["root"]),
            schema=SCHEMA,
            idle_policy=None if idle_policy is None else _text(idle_policy, "idle_policy"),
            estimated=_bool(data.get("estimated", False), "estimated"),
            warnings=tuple(_text(w, "warning", MAX_DETAIL) for w in warnings),
            extra=_extra(data, known, "snapshot"),
        )

    @classmethod
    def loads(cls, text: str | bytes) -> "Snapshot":
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotFormatError(f"not JSON: {exc}") from exc
        except RecursionError:
            raise SnapshotFormatError("not JSON: nested too deeply") from None
        return cls.from_json(data)


# Limits on documents from outside (agents, recordings, files). A document that breaks one
# is rejected as a whole with a one-line reason; see docs/design.md, "Trust".
MAX_DEPTH = 32  # rows nested below the root: fleet→cluster→node→…→core is 8
MAX_ROWS = 1_000_000  # rows in one document
MAX_WATTS = 1e10  # 10 GW: more than any fleet one terminal shows
MAX_JOULES = 1e20  # 10 GW for 300 years
MAX_TIME = 1e11  # unix seconds (year 5138)
MAX_INTERVAL = 1e8  # seconds
MAX_TEXT = 4096  # characters of an id, name or label
MAX_DETAIL = 16384  # characters of a command line, note, error or source detail
MAX_LABELS = 256
MAX_SOURCES = 1024
MAX_EXTRA_DEPTH = 16  # nesting of unknown fields kept for round trips
MAX_COUNT = 1e24  # hardware events in one row's interval (10⁴ cores × 10 GHz × 10⁸ s)
_TOLERANCE = 1e-9  # relative: lo ≤ watts ≤ hi may be off by float rounding
#: Upper limits of a row's optional non-negative numbers (RowDecoder and checked_tree).
_ROW_HIGH = {"freq_mhz": 1e6, "cpu_util": 1e7, "cpu_s": MAX_INTERVAL * 1e4, "gpu_watts": MAX_WATTS, "age_s": MAX_TIME,
             "instructions": MAX_COUNT, "llc_misses": MAX_COUNT, "ipc": 1e3}


class RowDecoder:
    """Decodes a row tree from JSON, validating every field.

    Types must match (a string is not a number, a list is not an object),
    numbers must be finite and within range (watts ≥ 0, lo ≤ watts ≤ hi,
    magnitudes below the MAX_* limits), text is made terminal-safe, and the tree
    may be at most MAX_DEPTH deep and MAX_ROWS large. Any violation raises
    :class:`SnapshotFormatError` naming the row's id path and the field.
    """

    def __init__(self, max_rows: int = MAX_ROWS, max_depth: int = MAX_DEPTH) -> None:
        self.max_rows = max_rows
        self.max_depth = max_depth
        self.rows = 0

    def row(self, data: Any, depth: int = 0, path: str = "") -> Row:
        if not isinstance(data, Mapping):
            raise SnapshotFormatError(f"row {path or '(root)'} is not an object")
        self.rows += 1
        if self.rows > self.max_rows:
            raise SnapshotFormatError(f"more than {self.max_rows} rows")
        _require(data, ("level", "id", "name", "watts"), f"row {path or '(root)'}")
        row_id = _text(data["id"], "id")
        here = f"{path}/{row_id}" if path else row_id
        try:
            return self._fields(data, depth, here, row_id)
        except SnapshotFormatError as exc:
            if str(exc).startswith("row "):
                raise
            raise SnapshotFormatError(f"row {here}: {exc}") from None

    def _fields(self, data: Mapping[str, Any], depth: int, here: str, row_id: str) -> Row:
        watts = _float(data["watts"], "watts")
        lo = _float(data.get("watts_lo", watts), "watts_lo")
        hi = _float(data.get("watts_hi", watts), "watts_hi")
        _check_bounds(watts, lo, hi)
        kwargs: dict[str, Any] = dict(
            level=_text(data["level"], "level"), id=row_id, name=_text(data["name"], "name"),
            watts=watts, watts_lo=lo, watts_hi=hi,
            joules=_check_range(_float(data.get("joules", 0.0), "joules"), "joules", 0.0, MAX_JOULES),
            freq_mhz=_opt_range(data.get("freq_mhz"), "freq_mhz", 0.0, _ROW_HIGH["freq_mhz"]),
            cpu_util=_opt_range(data.get("cpu_util"), "cpu_util", 0.0, _ROW_HIGH["cpu_util"]),
            estimated=_bool(data.get("estimated", False), "estimated"),
            cpu_s=_opt_range(data.get("cpu_s"), "cpu_s", 0.0, _ROW_HIGH["cpu_s"]),
        )
        comps = data.get("components")
        if comps is not None:
            if not isinstance(comps, Mapping) or len(comps) > MAX_LABELS:
                raise SnapshotFormatError("components is not an object of numbers")
            kwargs["components"] = {_text(k, "component"): _check_range(
                _float(v, "components"), "components", -MAX_WATTS, MAX_WATTS) for k, v in comps.items()}
        for name, top in (("pid", 2**31 - 1), ("cpu", 2**20)):
            if data.get(name) is not None:
                kwargs[name] = _int(data[name], name, 0, top)
        for name in ("pod_uid", "namespace", "container_id", "freq_source"):
            if data.get(name) is not None:
                kwargs[name] = _text(data[name], name)
        for name in ("cmd", "note", "error"):
            if data.get(name) is not None:
                kwargs[name] = _text(data[name], name, MAX_DETAIL)
        for name in ("gpu_watts", "age_s", "instructions", "llc_misses", "ipc"):
            if data.get(name) is not None:
                kwargs[name] = _check_range(_float(data[name], name), name, 0.0, _ROW_HIGH[name])
        for name in ("freq_nominal", "stale", "has_children"):
            if data.get(name) is not None:
                kwargs[name] = _bool(data[name], name)
        sources = data.get("sources")
        if sources is not None:
            if not isinstance(sources, list) or len(sources) > MAX_SOURCES:
                raise SnapshotFormatError("sources is not a list of strings")
            kwargs["sources"] = tuple(_text(s, "sources") for s in sources)
        labels = data.get("labels")
        if labels is not None:
            if not isinstance(labels, Mapping) or len(labels) > MAX_LABELS:
                raise SnapshotFormatError(f"labels is not an object of at most {MAX_LABELS} strings")
            kwargs["labels"] = {_text(k, "label"): _text(v, "label") for k, v in labels.items()}
        children = data.get("children")
        children = [] if children is None else children
        if not isinstance(children, list):
            raise SnapshotFormatError("children is not a list")
        if children and depth >= self.max_depth:
            raise SnapshotFormatError(f"rows nested more than {self.max_depth} deep")
        kwargs["children"] = tuple(self.row(c, depth + 1, here) for c in children)
        kwargs["extra"] = _extra(data, _ROW_KNOWN, "row")
        return Row(**kwargs)


def checked_tree(root: Row, max_rows: int = MAX_ROWS, max_depth: int = MAX_DEPTH) -> Row:
    """``root`` if every row of a tree built from outside data obeys the snapshot rules, else
    :class:`SnapshotFormatError` naming the row's id path: finite numbers, watts ≥ 0,
    lo ≤ watts ≤ hi, magnitudes below the MAX_* limits, at most ``max_depth`` deep and
    ``max_rows`` large, unknown fields (``extra``) JSON with finite numbers. Text in
    ``extra`` is made terminal-safe (the returned tree is a copy only where it changed).
    For sources that build rows themselves from a peer's figures (the Keck controller,
    Prometheus): what :class:`RowDecoder` checks for an agent's snapshot.
    """
    counter = [0]
    return _checked(root, 0, root.id, counter, max_rows, max_depth)


def _checked(row: Row, depth: int, here: str, counter: list[int], max_rows: int, max_depth: int) -> Row:
    counter[0] += 1
    if counter[0] > max_rows:
        raise SnapshotFormatError(f"more than {max_rows} rows")
    try:
        _check_row_numbers(row)
        extra = _extra(row.extra, frozenset(), "row") if row.extra else row.extra
    except SnapshotFormatError as exc:
        raise SnapshotFormatError(f"row {here}: {exc}") from None
    except TypeError:
        raise SnapshotFormatError(f"row {here}: a number is not a number") from None
    if row.children and depth >= max_depth:
        raise SnapshotFormatError(f"row {here}: rows nested more than {max_depth} deep")
    children = tuple(_checked(c, depth + 1, f"{here}/{c.id}", counter, max_rows, max_depth) for c in row.children)
    if extra == row.extra and all(a is b for a, b in zip(children, row.children)):
        return row
    return replace(row, extra=extra, children=children)


def _check_row_numbers(row: Row) -> None:
    for name in ("watts", "watts_lo", "watts_hi"):
        _finite(getattr(row, name), name)
    _check_bounds(row.watts, row.watts_lo, row.watts_hi)
    _check_range(_finite(row.joules, "joules"), "joules", 0.0, MAX_JOULES)
    for name, high in _ROW_HIGH.items():
        value = getattr(row, name)
        if value is not None:
            _check_range(_finite(value, name), name, 0.0, high)
    for name, top in (("pid", 2**31 - 1), ("cpu", 2**20)):
        value = getattr(row, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top):
            raise SnapshotFormatError(f"{name} out of range [0, {top}]")
    for key, value in (row.components or {}).items():
        _check_range(_finite(value, f"components {key}"), "components", -MAX_WATTS, MAX_WATTS)


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SnapshotFormatError(f"{name} is not a finite number: {value!r}"[:120])
    return float(value)


_ROW_KNOWN = frozenset(_ROW_ALWAYS) | frozenset(_ROW_OPTIONAL) | {"children"}


def _check_bounds(watts: float, lo: float, hi: float) -> None:
    tol = _TOLERANCE * max(1.0, abs(watts))
    if watts < -tol or lo < -tol:
        raise SnapshotFormatError(f"negative watts ({lo} ≤ {watts})")
    if watts > MAX_WATTS or hi > MAX_WATTS:
        raise SnapshotFormatError(f"watts above {MAX_WATTS:g} ({watts}, hi {hi})")
    if lo > watts + tol or watts > hi + tol:
        raise SnapshotFormatError(f"bounds out of order: watts_lo {lo} ≤ watts {watts} ≤ watts_hi {hi} fails")


def _check_range(value: float, name: str, low: float, high: float) -> float:
    if value < low or value > high:
        raise SnapshotFormatError(f"{name} out of range [{low:g}, {high:g}]: {value}")
    return value


def _opt_range(value: Any, name: str, low: float, high: float) -> float | None:
    return None if value is None else _check_range(_float(value, name), name, low, high)


def _text(value: Any, name: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise SnapshotFormatError(f"{name} is not a string: {type(value).__name__}")
    if len(value) > limit:
        raise SnapshotFormatError(f"{name} longer than {limit} characters")
    return terminal_safe(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise SnapshotFormatError(f"{name} is not true/false: {type(value).__name__}")
    return value


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotFormatError(f"{name} is not a whole number: {type(value).__name__}")
    if not low <= value <= high:
        raise SnapshotFormatError(f"{name} out of range [{low}, {high}]")
    return value


def _extra(data: Mapping[str, Any], known: frozenset[str] | set[str], what: str) -> dict[str, Any]:
    """Unknown fields, kept for round trips, once checked to re-encode safely.

    Nesting is bounded (re-encoding must not recurse without end), numbers must be
    finite (the encoder refuses NaN), and strings are made terminal-safe.
    """
    extra = {k: v for k, v in data.items() if k not in known}
    return {k: _clean_value(v, what, k) for k, v in extra.items()} if extra else extra


def _json_int(value: int, what: str, key: str) -> int:
    if not -(2**63) <= value < 2**64:  # what every JSON encoder here (orjson included) can write
        raise SnapshotFormatError(f"{what} field {key!r} is out of range")
    return value


def _clean_value(value: Any, what: str, key: str) -> Any:
    """A copy of a JSON value with terminal-safe strings; iterative, so depth can't exhaust the stack."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return _json_int(value, what, key)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SnapshotFormatError(f"{what} field {key!r} is not finite")
        return value
    if isinstance(value, str):
        return terminal_safe(value)
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]  # (item, parent, slot, depth)
    while stack:
        item, parent, slot, depth = stack.pop()
        if isinstance(item, Mapping):
            if depth >= MAX_EXTRA_DEPTH:
                raise SnapshotFormatError(f"{what} field {key!r} nested more than {MAX_EXTRA_DEPTH} deep")
            copy: Any = {}
            stack.extend((v, copy, terminal_safe(str(k)), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            if depth >= MAX_EXTRA_DEPTH:
                raise SnapshotFormatError(f"{what} field {key!r} nested more than {MAX_EXTRA_DEPTH} deep")
            copy = [None] * len(item)
            stack.extend((v, copy, i, depth + 1) for i, v in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise SnapshotFormatError(f"{what} field {key!r} is not finite")
        elif isinstance(item, str):
            copy = terminal_safe(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            copy = _json_int(item, what, key)
        elif item is None or isinstance(item, (bool, float)):
            copy = item
        else:
            raise SnapshotFormatError(f"{what} field {key!r} is not JSON")
        parent[slot] = copy
    return root[0]


def _require(data: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise SnapshotFormatError(f"{what} lacks {', '.join(missing)}")


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SnapshotFormatError(f"{name} is not a number: {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:  # a 400-digit integer
        raise SnapshotFormatError(f"{name} is out of range") from None
    if not math.isfinite(out):
        raise SnapshotFormatError(f"{name} is not finite")
    return out


def _opt_float(value: Any, name: str = "value") -> float | None:
    return None if value is None else _float(value, name)
