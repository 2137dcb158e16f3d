"""Polling keck-top agents: per-agent timeout, retries with backoff, stale rows, lazy drill-down.

Each agent's root row becomes a ``node`` row of its cluster. An agent that
fails keeps its last known row, marked ``stale`` with ``age_s`` (seconds since
the last good answer) and ``error``; one that never answered is a 0 W row with
a note. Failed agents are retried after 1, 2, 4 … up to ``max_backoff`` seconds
so a dead node doesn't cost a timeout every interval. Subtrees the UI expands
are fetched with ``?path=&depth=`` and refreshed every poll.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field, replace
from ssl import SSLContext
from typing import Callable
from urllib.parse import urlsplit

import aiohttp

from keck_tui.common.bgloop import describe
from keck_tui.common.http import HttpError, bearer, get_json
from keck_tui.common.ids import safe_id
from keck_tui.model import Row, Snapshot, SnapshotFormatError, SourceStatus, STATUS_ERROR, STATUS_OK
from keck_tui.sources.remote import never_answered
from keck_tui.sources.tree import graft

EXPAND_DEPTH = 1


@dataclass(frozen=True)
class AgentSpec:
    url: str
    cluster: str = "default"
    name: str | None = None  # node id to show; default: the agent's own host name
    token: str | None = None
    timeout: float = 2.0
    ssl: SSLContext | bool | None = None

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc or self.url


@dataclass
class AgentState:
    spec: AgentSpec
    last: Snapshot | None = None
    last_ok: float | None = None  # monotonic time of the last good answer
    error: str | None = None
    failures: int = 0
    next_try: float = 0.0
    expanded: dict[tuple[str, ...], Row | None] = field(default_factory=dict)
    node_id: str = ""
    polls: int = 0


class AgentSource:
    """All agents of a fleet; ``poll`` refreshes them concurrently."""

    def __init__(self, specs: list[AgentSpec], depth: int | None = None, max_backoff: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.agents = [AgentState(s) for s in specs]
        self.depth = depth
        self.max_backoff = max_backoff
        self._mono = monotonic
        self._rng = rng or random.Random(0)
        for a in self.agents:
            a.node_id = safe_id(a.spec.name or a.spec.label)

    async def poll(self, session: aiohttp.ClientSession) -> None:
        now = self._mono()
        due = [a for a in self.agents if now >= a.next_try]
        await asyncio.gather(*(self._poll_one(session, a) for a in due))

    async def _poll_one(self, session: aiohttp.ClientSession, a: AgentState) -> None:
        try:
            await self._fetch_one(session, a)
        except Exception as exc:  # noqa: BLE001 - one agent's surprise must not stop the others
            self._failed(a, f"internal error: {describe(exc)}")

    def failed(self, error: str) -> None:
        """The whole poll failed unforeseen (the fleet calls it): every agent's row goes stale."""
        for a in self.agents:
            a.error = error

    def _failed(self, a: AgentState, error: str) -> None:
        a.error = error
        a.failures += 1
        backoff = min(self.max_backoff, 2.0 ** (a.failures - 1))
        a.next_try = self._mono() + backoff * (0.8 + 0.4 * self._rng.random())

    async def _fetch_one(self, session: aiohttp.ClientSession, a: AgentState) -> None:
        a.polls += 1
        params = {} if self.depth is None else {"depth": str(self.depth)}
        try:
            doc = await get_json(session, f"{a.spec.base}/api/v1/snapshot", params=params,
                                 headers=bearer(a.spec.token), timeout=a.spec.timeout, ssl=a.spec.ssl, peer="agent")
            try:
                snap = Snapshot.from_json(doc)
            except SnapshotFormatError as exc:
                raise HttpError(f"not a keck-top snapshot: {exc}") from None
            if a.expanded:
                await asyncio.gather(*(self._expand_one(session, a, p) for p in list(a.expanded)))
        except HttpError as exc:
            self._failed(a, str(exc))
            return
        a.last = snap
        a.last_ok = self._mono()
        a.error = None
        a.failures = 0
        a.next_try = 0.0
        if a.spec.name is None:
            a.node_id = safe_id(snap.root.id or a.spec.label)

    async def _expand_one(self, session: aiohttp.ClientSession, a: AgentState, path: tuple[str, ...]) -> None:
        try:
            doc = await get_json(session, f"{a.spec.base}/api/v1/snapshot",
                                 params={"path": "/".join(path), "depth": str(EXPAND_DEPTH)},
                                 headers=bearer(a.spec.token), timeout=a.spec.timeout, ssl=a.spec.ssl,
                                 allow_404=True, peer="agent")
        except HttpError:
            return  # keep the old subtree; the main fetch decides staleness
        if doc is None:
            a.expanded.pop(path, None)  # the row is gone
            return
        try:
            a.expanded[path] = Row.from_json(doc["root"])
        except (SnapshotFormatError, KeyError, TypeError):
            a.expanded.pop(path, None)

    def find(self, cluster_id: str, node_id: str) -> AgentState | None:
        return next((a for a in self.agents if safe_id(a.spec.cluster) == cluster_id and a.node_id == node_id), None)

    async def expand(self, session: aiohttp.ClientSession, cluster_id: str, node_id: str,
                     rest: tuple[str, ...]) -> bool:
        """Start fetching the subtree below ``rest`` (ids under the node) of one agent."""
        a = self.find(cluster_id, node_id)
        if a is None or a.last is None:
            return False
        path = (a.last.root.id,) + rest
        a.expanded.setdefault(path, None)
        await self._expand_one(session, a, path)
        return path in a.expanded

    def node_rows(self, cluster: str) -> list[Row]:
        now = self._mono()
        return [self.node_row(a, now) for a in self.agents if a.spec.cluster == cluster]

    def clusters(self) -> list[str]:
        out: list[str] = []
        for a in self.agents:
            if a.spec.cluster not in out:
                out.append(a.spec.cluster)
        return out

    def node_row(self, a: AgentState, now: float) -> Row:
        if a.last is None:
            return never_answered("node", a.node_id, a.spec.name or a.spec.label, a.error, "agent",
                                  labels={"url": a.spec.url})
        root = a.last.root
        for path, sub in a.expanded.items():
            if sub is not None:
                root = graft(root, path, sub)
        age = now - a.last_ok if a.last_ok is not None else None
        labels = dict(root.labels or {})
        labels["url"] = a.spec.url
        row = replace(root, level="node", id=a.node_id, labels=labels,
                      name=root.name if a.spec.name is None else a.spec.name,
                      age_s=round(age, 3) if age is not None else None)
        if a.error is not None:
            row = replace(row, stale=True, error=a.error)
        return row

    def statuses(self) -> list[SourceStatus]:
        out = []
        for a in self.agents:
            ok = a.error is None and a.last is not None
            out.append(SourceStatus(
                name=f"agent {a.spec.cluster}/{a.node_id}", status=STATUS_OK if ok else STATUS_ERROR,
                detail=a.error or "", watts=a.last.root.watts if a.last is not None else None,
                extra={"url": a.spec.url}))
        return out
