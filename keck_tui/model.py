"""The "keck-top/1" snapshot: the one document every mode shares.

Plain frozen dataclasses with explicit to/from JSON. Field names are the
schema (see DESIGN.md); unknown fields read from JSON are kept in ``extra`` so a
document from a newer keck-top survives a round trip through an older one.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterator, Mapping

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
        _require(data, ("name", "status"), "source")
        known = {"name", "status", "detail", "kind", "watts"}
        return cls(
            name=str(data["name"]),
            status=str(data["status"]),
            detail=str(data.get("detail") or ""),
            kind=str(data.get("kind") or KIND_MEASURED),
            watts=_opt_float(data.get("watts")),
            extra={k: v for k, v in data.items() if k not in known},
        )


# Row fields that are always written (null when unknown), then the optional ones
# that are written only when set.
_ROW_ALWAYS = ("level", "id", "name", "watts", "watts_lo", "watts_hi", "joules",
               "freq_mhz", "cpu_util", "estimated", "cpu_s")
_ROW_OPTIONAL = ("components", "pid", "cmd", "cpu", "pod_uid", "namespace",
                 "container_id", "gpu_watts", "freq_nominal", "note", "sources",
                 "labels", "stale", "age_s", "error", "has_children")


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
    children: tuple["Row", ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

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
        out["children"] = [c.to_json() for c in self.children]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Row":
        if not isinstance(data, Mapping):
            raise SnapshotFormatError("row is not an object")
        _require(data, ("level", "id", "name", "watts"), "row")
        watts = _float(data["watts"], "watts")
        kwargs: dict[str, Any] = dict(
            level=str(data["level"]), id=str(data["id"]), name=str(data["name"]),
            watts=watts,
            watts_lo=_float(data.get("watts_lo", watts), "watts_lo"),
            watts_hi=_float(data.get("watts_hi", watts), "watts_hi"),
            joules=_float(data.get("joules", 0.0), "joules"),
            freq_mhz=_opt_float(data.get("freq_mhz")),
            cpu_util=_opt_float(data.get("cpu_util")),
            estimated=bool(data.get("estimated", False)),
            cpu_s=_opt_float(data.get("cpu_s")),
        )
        comps = data.get("components")
        if comps is not None:
            if not isinstance(comps, Mapping):
                raise SnapshotFormatError("components is not an object")
            kwargs["components"] = {str(k): _float(v, "components") for k, v in comps.items()}
        for name in ("pid", "cpu"):
            if data.get(name) is not None:
                kwargs[name] = int(data[name])
        for name in ("cmd", "pod_uid", "namespace", "container_id", "note", "error"):
            if data.get(name) is not None:
                kwargs[name] = str(data[name])
        for name in ("gpu_watts", "age_s"):
            if data.get(name) is not None:
                kwargs[name] = _float(data[name], name)
        for name in ("freq_nominal", "stale", "has_children"):
            if data.get(name) is not None:
                kwargs[name] = bool(data[name])
        if data.get("sources") is not None:
            kwargs["sources"] = tuple(str(s) for s in data["sources"])
        if data.get("labels") is not None:
            kwargs["labels"] = {str(k): str(v) for k, v in dict(data["labels"]).items()}
        children = data.get("children")
        children = [] if children is None else children
        if not isinstance(children, list):
            raise SnapshotFormatError("children is not a list")
        kwargs["children"] = tuple(cls.from_json(c) for c in children)
        known = set(_ROW_ALWAYS) | set(_ROW_OPTIONAL) | {"children"}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)


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
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            time=_float(data["time"], "time"),
            interval_s=_float(data["interval_s"], "interval_s"),
            host=str(data["host"]),
            model=str(data.get("model") or ""),
            sources=tuple(SourceStatus.from_json(s) for s in sources),
            root=Row.from_json(data["root"]),
            schema=SCHEMA,
            idle_policy=data.get("idle_policy"),
            estimated=bool(data.get("estimated", False)),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def loads(cls, text: str | bytes) -> "Snapshot":
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotFormatError(f"not JSON: {exc}") from exc
        return cls.from_json(data)


def _require(data: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise SnapshotFormatError(f"{what} lacks {', '.join(missing)}")


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise SnapshotFormatError(f"{name} is not a number")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise SnapshotFormatError(f"{name} is not a number: {value!r}") from exc
    if not math.isfinite(out):
        raise SnapshotFormatError(f"{name} is not finite")
    return out


def _opt_float(value: Any) -> float | None:
    return None if value is None else _float(value, "value")
