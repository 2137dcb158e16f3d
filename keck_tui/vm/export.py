"""The per-VM power document ("keck-top-vm/1") a host exports for each of its guests.

The host builds one from every ``vm`` row of its snapshot (:func:`vm_documents`); the agent
serves it at ``GET /api/v1/vm/<name>`` and ``serve --vm-export-dir`` writes it to
``<dir>/<name>/power.json``. The guest reads it back with :func:`parse_vm_document`, which
checks every field (finite numbers, watts ≥ 0, lo ≤ watts ≤ hi, bounded strings and sizes)
and raises :class:`VmDocumentError` with a one-line reason otherwise::

    {"schema": "keck-top-vm/1", "vm": "web1", "kind": "qemu", "host": "hv1",
     "time": 1764650000.0, "interval_s": 1.0, "seq": 42,
     "watts": 12.5, "watts_lo": 11.9, "watts_hi": 13.1, "joules": 5230.0,
     "components": {"cpu": 9.1, "dram": 3.4}, "estimated": false,
     "sources": ["rapl"], "host_sources": [{"name": "rapl", "status": "ok", "kind": "measured"}]}

``joules`` is the VM's energy since the host's agent started (a counter: it only grows while
the agent runs); ``time`` is the end of the host's interval in host wall-clock seconds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from keck_tui.common.bounded import BoundedInputError, parse_json
from keck_tui.model import Row, Snapshot

SCHEMA = "keck-top-vm/1"
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_NAME = 128
MAX_COMPONENTS = 16
MAX_SOURCES = 16
MAX_INTERVAL_S = 3600.0


class VmDocumentError(ValueError):
    """The document is not a usable keck-top-vm/1 document (one-line reason)."""


@dataclass(frozen=True)
class VmPower:
    vm: str
    kind: str
    host: str
    time: float
    interval_s: float
    watts: float
    watts_lo: float
    watts_hi: float
    joules: float
    components: Mapping[str, float] = field(default_factory=dict)
    estimated: bool = False
    sources: tuple[str, ...] = ()
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA, "vm": self.vm, "kind": self.kind, "host": self.host, "time": self.time,
            "interval_s": self.interval_s, "watts": self.watts, "watts_lo": self.watts_lo,
            "watts_hi": self.watts_hi, "joules": self.joules, "components": dict(self.components),
            "estimated": self.estimated, "sources": list(self.sources)}
        if self.seq is not None:
            out["seq"] = self.seq
        return out

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), allow_nan=False, separators=(",", ":")).encode("utf-8")


def iter_vm_rows(row: Row) -> Iterator[Row]:
    """Every ``vm`` row of a tree (VMs do not nest)."""
    if row.level == "vm":
        yield row
        return
    for child in row.children:
        yield from iter_vm_rows(child)


def vm_name_of(row: Row) -> str:
    info = row.extra.get("vm") if row.extra else None
    if isinstance(info, Mapping) and isinstance(info.get("name"), str):
        name = info["name"]
        ns = info.get("namespace")
        return f"{ns}.{name}" if isinstance(ns, str) and ns else name
    return row.name


def vm_documents(snap: Snapshot, seq: int | None = None) -> dict[str, VmPower]:
    """name → document for each VM row of a snapshot (the first row wins a duplicate name)."""
    out: dict[str, VmPower] = {}
    host_sources = tuple(snap.root.sources or ())
    for row in iter_vm_rows(snap.root):
        name = vm_name_of(row)
        if name in out:
            continue
        info = row.extra.get("vm") if row.extra else None
        kind = str(info.get("kind", "vm")) if isinstance(info, Mapping) else "vm"
        comps = {k: float(v) for k, v in (row.components or {}).items() if math.isfinite(v) and v >= 0}
        out[name] = VmPower(vm=name, kind=kind, host=snap.host, time=snap.time, interval_s=snap.interval_s,
                            watts=row.watts, watts_lo=min(row.watts_lo, row.watts),
                            watts_hi=max(row.watts_hi, row.watts), joules=row.joules, components=comps,
                            estimated=bool(row.estimated or snap.estimated),
                            sources=tuple(dict.fromkeys((row.sources or ()) + host_sources)), seq=seq)
    return out


def _number(doc: Mapping[str, Any], key: str, *, minimum: float | None = 0.0) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VmDocumentError(f"{key} is not a number")
    value = float(value)
    if not math.isfinite(value):
        raise VmDocumentError(f"{key} is not finite")
    if minimum is not None and value < minimum:
        raise VmDocumentError(f"{key} is negative")
    return value


def _text(doc: Mapping[str, Any], key: str, limit: int = MAX_NAME, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise VmDocumentError(f"{key} is not a short printable string")
    return value


def parse_vm_document(raw: bytes | str) -> VmPower:
    """Check and decode one document; :class:`VmDocumentError` says what is wrong."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise VmDocumentError(f"document larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        doc = parse_json(raw, max_depth=4, what="VM power document")
    except BoundedInputError as exc:
        raise VmDocumentError(str(exc)) from None
    if not isinstance(doc, dict):
        raise VmDocumentError("not a JSON object")
    if doc.get("schema") != SCHEMA:
        raise VmDocumentError(f"schema is {str(doc.get('schema'))[:40]!r}, expected {SCHEMA!r}")
    watts = _number(doc, "watts")
    lo = _number(doc, "watts_lo")
    hi = _number(doc, "watts_hi")
    if not lo <= watts <= hi:
        raise VmDocumentError("bound does not hold: watts_lo <= watts <= watts_hi")
    interval = _number(doc, "interval_s")
    if not 0 < interval <= MAX_INTERVAL_S:
        raise VmDocumentError(f"interval_s must be in (0, {MAX_INTERVAL_S:g}]")
    comps_raw = doc.get("components", {})
    if not isinstance(comps_raw, dict) or len(comps_raw) > MAX_COMPONENTS:
        raise VmDocumentError("components is not a small object")
    comps: dict[str, float] = {}
    for key in comps_raw:
        if not isinstance(key, str) or not key or len(key) > 32 or not key.isprintable():
            raise VmDocumentError("components has a bad key")
        comps[key] = _number(comps_raw, key)
    if math.fsum(comps.values()) > hi * (1 + 1e-6) + 1e-6:
        raise VmDocumentError("components add up to more than watts_hi")
    sources_raw = doc.get("sources", [])
    if not isinstance(sources_raw, list) or len(sources_raw) > MAX_SOURCES or not all(
            isinstance(s, str) and 0 < len(s) <= 64 and s.isprintable() for s in sources_raw):
        raise VmDocumentError("sources is not a short list of short strings")
    estimated = doc.get("estimated", False)
    if not isinstance(estimated, bool):
        raise VmDocumentError("estimated is not true or false")
    seq = doc.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise VmDocumentError("seq is not a counter")
    return VmPower(vm=_text(doc, "vm"), kind=_text(doc, "kind", 32), host=_text(doc, "host", 255),
                   time=_number(doc, "time"), interval_s=interval, watts=watts, watts_lo=lo, watts_hi=hi,
                   joules=_number(doc, "joules"), components=comps, estimated=estimated,
                   sources=tuple(sources_raw), seq=seq)
