"""Fleets: the fleet file, merging sources into one fleet → cluster → node snapshot, and the feed.

Fleet file (TOML)::

    timeout = 2.0                 # seconds per agent request (default 2)
    token_file = "/etc/keck/token"  # default token for every agent (optional)

    [clusters.prod]
    agents = ["https://n1:9464", "https://n2:9464"]
    token_file = "/etc/keck/prod.token"   # overrides the default
    ca_file = "/etc/keck/ca.pem"          # trust a private CA (optional)

    [clusters.lab]
    agents = [{ url = "http://lab1:9464", name = "lab1", token_file = "lab1.token" }]
    keck = "http://keck-controller.keck-system.svc:8080"   # a Keck controller (optional)
"""
from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

import aiohttp

from keck_tui.common.bgloop import Poller, describe
from keck_tui.common.errors import UsageError
from keck_tui.common.http import client_session, client_tls
from keck_tui.common.ids import safe_id
from keck_tui.common.tokens import TokenError, load_token
from keck_tui.common.urls import UrlError, check_url
from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.sources.agents import AgentSource, AgentSpec
from keck_tui.sources.tree import sum_row, unique_ids

FLEET_ID = "fleet"


class FleetError(UsageError):
    """The fleet file or the attach arguments are unusable (one line, exit 2)."""


@dataclass
class FleetConfig:
    agents: list[AgentSpec] = field(default_factory=list)
    keck: list[tuple[str, str, str | None]] = field(default_factory=list)  # (cluster, url, token)


def _token(path: Any, base: Path, where: str) -> str | None:
    if path is None:
        return None
    if not isinstance(path, str):
        raise FleetError(f"{where}: token_file must be a string")
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = base / p
    try:
        return load_token(p)
    except TokenError as exc:
        raise FleetError(f"{where}: {exc}") from None


def _check_url(url: Any, where: str, what: str = "agent URL") -> str:
    try:
        return check_url(url, f"{where}: {what}")
    except UrlError as exc:
        raise FleetError(str(exc)) from None


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise FleetError(f"{where}: timeout must be a positive number")
    return float(value)


def load_fleet(path: Path) -> FleetConfig:
    """Parse a fleet file; every problem is a FleetError naming the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetError(f"fleet file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetError(f"cannot read fleet file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetError(f"fleet file {path}: {exc}") from None
    base = path.parent
    known = {"timeout", "token_file", "ca_file", "insecure_tls", "clusters"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FleetError(f"fleet file {path}: unknown key {unknown[0]!r}")
    timeout = _timeout(data.get("timeout", 2.0), f"fleet file {path}")
    default_token = _token(data.get("token_file"), base, str(path))
    clusters = data.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        raise FleetError(f"fleet file {path}: needs at least one [clusters.NAME] table")
    cfg = FleetConfig()
    for cname, cdata in clusters.items():
        where = f"fleet file {path}: clusters.{cname}"
        if not isinstance(cdata, dict):
            raise FleetError(f"{where} must be a table")
        unknown = sorted(set(cdata) - {"agents", "token_file", "ca_file", "insecure_tls", "keck", "timeout"})
        if unknown:
            raise FleetError(f"{where}: unknown key {unknown[0]!r}")
        token = _token(cdata.get("token_file"), base, where) or default_token
        ca = cdata.get("ca_file", data.get("ca_file"))
        if ca is not None and not isinstance(ca, str):
            raise FleetError(f"{where}: ca_file must be a string")
        if ca is not None:
            ca = str(Path(ca).expanduser() if Path(ca).expanduser().is_absolute() else base / ca)
        insecure = cdata.get("insecure_tls", data.get("insecure_tls", False))
        if not isinstance(insecure, bool):  # "false" (a string) must not turn verification off
            raise FleetError(f"{where}: insecure_tls must be true or false, got {insecure!r}")
        try:
            ssl_setting = client_tls(ca, insecure)
        except ValueError as exc:
            raise FleetError(f"{where}: {exc}") from None
        ctimeout = _timeout(cdata.get("timeout", timeout), where)
        agents = cdata.get("agents", [])
        if not isinstance(agents, list):
            raise FleetError(f"{where}: agents must be a list")
        for i, item in enumerate(agents):
            if isinstance(item, str):
                cfg.agents.append(AgentSpec(_check_url(item, where), cname, None, token, ctimeout, ssl_setting))
            elif isinstance(item, dict):
                url = _check_url(item.get("url"), f"{where}.agents[{i}]")
                atoken = _token(item.get("token_file"), base, f"{where}.agents[{i}]") or token
                name = item.get("name")
                cfg.agents.append(AgentSpec(url, cname, str(name) if name else None, atoken, ctimeout, ssl_setting))
            else:
                raise FleetError(f"{where}: agents[{i}] must be a URL or a table with url")
        keck = cdata.get("keck")
        if keck is not None:
            cfg.keck.append((cname, _check_url(keck, where, "keck URL"), token))
        if not agents and keck is None:
            raise FleetError(f"{where}: lists no agents and no keck controller")
    return cfg


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

    async def poll(self, session: aiohttp.ClientSession) -> None:
        tasks = [s.poll(session) for s in self.others]
        if self.agents is not None:
            tasks.append(self.agents.poll(session))
        await asyncio.gather(*tasks)

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


class RemoteFeed:
    """A SnapshotFeed over a :class:`Fleet`: polls on its own thread and asyncio loop
    (:class:`keck_tui.common.bgloop.Poller`).

    ``latest()`` never blocks; ``request_subtree(path)`` asks for a lazy
    drill-down and returns at once (the subtree appears in a later snapshot).
    """

    def __init__(self, fleet: Fleet, interval: float = 1.0, connections: int = 256) -> None:
        self.fleet = fleet
        self.interval = interval
        fleet.interval = interval
        self._connections = connections
        self._latest: Snapshot | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._poller = Poller("keck-remote", self._poll, lambda: self.interval,
                              on_start=self._open, on_stop=self._close)
        self.polls = 0

    def start(self) -> None:
        self._poller.start()

    async def _open(self) -> None:
        self._session = client_session(self._connections)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _poll(self) -> None:
        if self._session is not None:
            await self.poll_once(self._session)

    async def poll_once(self, session: aiohttp.ClientSession) -> Snapshot | None:
        try:
            await self.fleet.poll(session)
            snap = self.fleet.snapshot()
        except Exception as exc:  # noqa: BLE001 - a feed must survive its sources
            self._error = describe(exc)
            return None
        self._error = None
        with self._lock:
            self._latest = snap
        self.polls += 1
        return snap

    def stop(self) -> None:
        self._poller.stop(timeout=10.0)

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._latest

    def last_error(self) -> str | None:
        return self._error or self._poller.error

    def set_interval(self, seconds: float) -> None:
        self.interval = max(0.05, float(seconds))
        self.fleet.interval = self.interval
        self._poller.wake()

    def request_subtree(self, path: tuple[str, ...] | list[str]) -> None:
        async def go() -> None:
            session = self._session
            if session is not None and await self.fleet.expand(session, tuple(path)):
                snap = self.fleet.snapshot()
                with self._lock:
                    self._latest = snap

        self._poller.submit(go())


async def poll_once(fleet: Fleet, connections: int = 256) -> Snapshot:
    """One poll of every source (for ``--once``)."""
    async with client_session(connections) as session:
        await fleet.poll(session)
        return fleet.snapshot()
