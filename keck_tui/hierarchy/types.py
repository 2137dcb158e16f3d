"""Where a process sits above the node: the group levels of the tree."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from keck_tui.samplers.types import ProcessSample


@dataclass(frozen=True)
class GroupLevel:
    """One level between the node and a process, e.g. namespace, pod, container,
    or a systemd slice/service. ``id`` must be stable and must not contain '/'."""

    level: str  # "namespace" | "pod" | "container" | "slice" | "service" | "group" ...
    id: str
    name: str
    pod_uid: str | None = None
    namespace: str | None = None
    container_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # Optional nested data for the row (e.g. {"vm": {"kind": "qemu", "name": "web1"}}).
    extra: Mapping[str, Any] = field(default_factory=dict)


GroupPath = tuple[GroupLevel, ...]


class Grouper(Protocol):
    """Maps a process to its group path (outermost first). Empty: directly under node."""

    def group_of(self, process: ProcessSample) -> GroupPath: ...
