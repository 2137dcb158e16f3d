"""Merging sources into one fleet → cluster → node snapshot.

Agents give node rows; cluster sources (Keck controllers, Prometheus) give whole cluster
rows. Rows of the same cluster id are merged under one cluster row that sums them; the
fleet row sums the clusters.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, Callable, Protocol

import aiohttp

from keck_tui.common.bgloop import describe
from keck_tui.common.ids import safe_id
from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.sources.agents import AgentSource
from keck_tui.sources.tree import sum_row, unique_ids

FLEET_ID = "fleet"


class ClusterSource(Protocol):
    """A source that yields whole cluster rows (Keck controller, Prometheus)."""

    async def poll(self, session: aiohttp.ClientSession) -> None: ...
    def cluster_rows(self) -> list[Row]: ...
    def statuses(self) -> list[SourceStatus]: ...


class Fleet:
    """Agents plus cluster sources, merged into one fleet snapshot."""

    def __init__(self, agents: AgentSource | None = None, others: list[ClusterSource] | None = None,
                 name: str = "fleet", wall: Callable[[], float] = time.time) -> None:
        self.agents = agents
        self.others = others or []
        self.name = name
        self._wall = wall
        self.interval = 1.0
        self.warnings: list[str] = []  # said once at start-up (token files others can read …)

    async def poll(self, session: aiohttp.ClientSession) -> None:
        """Poll every source at once. A source whose poll raises (a bug its hostile answer found)
        is that source's error, its rows stale; it never stops the others' answers."""
        sources: list[Any] = list(self.others) + ([self.agents] if self.agents is not None else [])
        results = await asyncio.gather(*(s.poll(session) for s in sources), return_exceptions=True)
        for source, result in zip(sources, results):
            if isinstance(result, Exception):
                failed = getattr(source, "failed", None)
                if callable(failed):
                    failed(f"internal error: {describe(result)}")
            elif isinstance(result, BaseException):
                raise result  # CancelledError, KeyboardInterrupt: not a source's failure

    def snapshot(self) -> Snapshot:
        clusters: dict[str, list[Row]] = {}
        extra: dict[str, Row] = {}
        statuses: list[SourceStatus] = []
        if self.agents is not None:
            for cname in self.agents.clusters():
                clusters.setdefault(safe_id(cname), []).extend(self.agents.node_rows(cname))
            statuses += self.agents.statuses()
        for src in self.others:
            for row in src.cluster_rows():
                nodes = clusters.setdefault(row.id, [])
                if nodes and row.id not in extra:
                    # Shares its cluster with agents: the live nodes must not look stale, so a
                    # controller that never answered gets a stale node row of its own instead.
                    if row.stale and not row.children:
                        what = next((st.name for st in src.statuses()), row.name)  # "keck lab"
                        nodes.append(replace(row, level="node", id=safe_id(f"({what})"), name=what))
                    else:
                        nodes.extend(row.children)  # stale ones carry their own mark
                    continue
                nodes.extend(row.children)
                extra.setdefault(row.id, row)
            statuses += src.statuses()
        rows = []
        for cid, nodes in clusters.items():
            template = extra.get(cid)
            row = sum_row("cluster", cid, template.name if template else cid, unique_ids(nodes))
            if template is not None and (template.stale or template.error or template.note):
                row = replace(row, stale=template.stale, error=template.error, note=template.note,
                              age_s=template.age_s)
            rows.append(row)
        root = sum_row("fleet", FLEET_ID, self.name, rows)
        stale = sum(1 for _, r in root.walk() if r.level == "node" and r.stale)
        warnings = (f"{stale} node(s) stale",) if stale else ()
        return Snapshot(time=self._wall(), interval_s=self.interval, host=self.name, model="remote",
                        sources=tuple(statuses), root=root, estimated=root.estimated, warnings=warnings)

    async def expand(self, session: aiohttp.ClientSession, path: tuple[str, ...]) -> bool:
        """Lazily fetch the subtree at a fleet path (fleet, cluster, node, ids below)."""
        if self.agents is None or len(path) < 4 or path[0] != FLEET_ID:
            return False
        return await self.agents.expand(session, path[1], path[2], tuple(path[3:]))
