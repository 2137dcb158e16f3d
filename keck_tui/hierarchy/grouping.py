"""Group paths for processes (interim: systemd slice/service from the cgroup path).

Contract used by the collector: ``make_grouper(settings, kubelet_url, procfs_root)``
returns a Grouper. The Kubernetes-aware version replaces this module.
"""
from __future__ import annotations

from keck_tui.config import Settings
from keck_tui.hierarchy.types import GroupLevel, GroupPath, Grouper
from keck_tui.samplers.types import ProcessSample


class CgroupPathGrouper:
    """node → slice → service/scope from the cgroup v2 path; root cgroup → no group."""

    def group_of(self, process: ProcessSample) -> GroupPath:
        parts = [p for p in process.cgroup.split("/") if p]
        levels: list[GroupLevel] = []
        for part in parts:
            if part.endswith(".slice"):
                levels = [GroupLevel(level="slice", id=part, name=part)]
            elif part.endswith((".service", ".scope")):
                levels.append(GroupLevel(level="service", id=part, name=part))
                break
        return tuple(levels)


def make_grouper(settings: Settings, kubelet_url: str | None = None, procfs_root: str = "/proc") -> Grouper:
    return CgroupPathGrouper()
