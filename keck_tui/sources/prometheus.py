"""Prometheus as a source: PromQL instant queries (``/api/v1/query``) → fleet tree.

Gauges (keck-top, Kepler 0.10+, Scaphandre) come from one selector query;
pre-0.10 Kepler joule counters from ``rate(...[window])``, one query each.
The decoding lives in :mod:`keck_tui.sources.promdata`.
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from keck_tui.common.errors import SourceConfigError
from keck_tui.common.http import HttpError, bearer, get_json
from keck_tui.common.urls import UrlError, check_url
from keck_tui.model import MAX_WATTS, Row, SourceStatus, STATUS_ERROR, STATUS_OK
from keck_tui.sources.promdata import LabelConfig, Sample, build_clusters
from keck_tui.sources.remote import RemoteTrees, RemoteTreesSource, never_answered
from keck_tui.sources.tree import sum_row

GAUGE_SELECTOR = ('{__name__=~"keck_(node|component|namespace|pod|container|process)_power_watts'
                  '|keck_node_power_(lower|upper)_bound_watts'
                  '|kepler_(node|pod)_(cpu|gpu|platform)_watts'
                  '|scaph_(host|socket|domain)_power_microwatts|scaph_process_power_consumption_microwatts"}')
# A Prometheus duration: units in this order, each at most once ("1h30m", "90s", "500ms").
_DURATION = re.compile(r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?\Z")
#: How long a node that dropped out of Prometheus stays as a stale row (Prometheus's own
#: lookback is 5 minutes; a node gone for longer was most likely removed on purpose).
VANISHED_KEEP_S = 600.0
OLD_KEPLER_COUNTERS = (
    "kepler_node_package_joules_total", "kepler_node_dram_joules_total", "kepler_node_other_joules_total",
    "kepler_node_platform_joules_total", "kepler_node_gpu_joules_total", "kepler_container_joules_total",
)


#: The largest sample value used: 1e10 W (the snapshot limit) in µW, Scaphandre's unit.
MAX_SAMPLE = MAX_WATTS * 1e6


def _usable(value: float) -> bool:
    """Power gauges and rates are finite, ≥ 0 and below MAX_SAMPLE; an exporter's NaN, Inf,
    negative or absurd sample is left out (and counted) instead of poisoning the fleet's sums."""
    return math.isfinite(value) and 0.0 <= value <= MAX_SAMPLE


def parse_vector(doc: Any, name: str | None = None) -> list[Sample]:
    """Samples of an instant-vector answer; ``name`` for results that lost ``__name__``."""
    if not isinstance(doc, dict) or doc.get("status") != "success":
        err = doc.get("error") if isinstance(doc, dict) else None
        raise HttpError(f"Prometheus query failed: {err or 'unexpected answer'}")
    data = doc.get("data") or {}
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise HttpError(f"Prometheus answered {str(kind)[:40]!r}, expected a vector")
    result = data.get("result") or []
    if not isinstance(result, list):
        raise HttpError("Prometheus answered a vector that is not a list")
    out = []
    for item in result:
        try:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            continue
        metric = name or labels.pop("__name__", "")
        labels.pop("__name__", None)
        if metric:  # NaN, Inf and the like are counted and left out by _usable
            out.append(Sample(metric, labels, value))
    return out


@dataclass(frozen=True)
class PrometheusConfig:
    """Which Prometheus to read and how its labels name clusters and nodes."""

    url: str
    cluster_label: str = "cluster"
    node_label: str | None = None  # None: node, then node_name, then instance
    rate_window: str = "1m"  # window of rate() over pre-0.10 Kepler joule counters
    timeout: float = 5.0  # seconds per query


class PrometheusSource(RemoteTreesSource):
    """Polls one Prometheus; keeps the last good tree (marked stale) when it fails."""

    def __init__(self, url: str, labels: LabelConfig = LabelConfig(), rate_window: str = "1m",
                 token: str | None = None, timeout: float = 5.0, ssl_setting: Any = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = url.rstrip("/")
        self.labels = labels
        self.rate_window = rate_window
        self.token = token
        self.timeout = timeout
        self.ssl = ssl_setting
        self._mono = monotonic
        self._trees = RemoteTrees(monotonic)
        self.polled = False
        self.ignored = 0  # samples of the last answer that were not usable numbers
        # (cluster id, node id) → (last row, monotonic time last seen, cluster name)
        self._seen: dict[tuple[str, str], tuple[Row, float, str]] = {}

    async def query(self, session: aiohttp.ClientSession, promql: str, name: str | None = None) -> list[Sample]:
        doc = await get_json(session, f"{self.url}/api/v1/query", params={"query": promql},
                             headers=bearer(self.token), timeout=self.timeout, ssl=self.ssl)
        return parse_vector(doc, name)

    async def samples(self, session: aiohttp.ClientSession) -> list[Sample]:
        queries = [self.query(session, GAUGE_SELECTOR)]
        queries += [self.query(session, f"rate({c}[{self.rate_window}])", c) for c in OLD_KEPLER_COUNTERS]
        results = await asyncio.gather(*queries)
        return [s for batch in results for s in batch]

    async def poll(self, session: aiohttp.ClientSession) -> None:
        self.polled = True
        try:
            samples = await self.samples(session)
        except HttpError as exc:
            self._trees.failed(str(exc))
            return
        usable = [s for s in samples if _usable(s.value)]
        self.ignored = len(samples) - len(usable)
        self._trees.fresh(build_clusters(usable, self.labels), finish=self._with_vanished)

    @property
    def rows(self) -> list[Row]:
        return self._trees.rows

    def _with_vanished(self, fresh: list[Row], now: float) -> list[Row]:
        """``fresh`` plus, for VANISHED_KEEP_S, a stale copy of each node that was there before.

        When an agent dies Prometheus marks its series stale and they drop out of
        instant queries: without this the node would silently vanish from the tree
        and the fleet total shrink without a word. Agents' stale rows work the same way.
        """
        present = set()
        for c in fresh:
            for n in c.children:
                present.add((c.id, n.id))
                self._seen[(c.id, n.id)] = (n, now, c.name)
        gone: dict[str, list[Row]] = {}
        names: dict[str, str] = {}
        for key, (n, seen, cname) in list(self._seen.items()):
            if key in present:
                continue
            if now - seen > VANISHED_KEEP_S:
                del self._seen[key]
                continue
            gone.setdefault(key[0], []).append(replace(
                n, stale=True, age_s=round(now - seen, 3),
                error="no longer in Prometheus: its target is down or its series went stale"))
            names[key[0]] = cname
        if not gone:
            return fresh
        out = []
        for c in fresh:
            if c.id in gone:
                c = sum_row("cluster", c.id, c.name, list(c.children) + gone.pop(c.id), sources=c.sources)
            out.append(c)
        out += [sum_row("cluster", cid, names[cid], rows, sources=("prometheus",)) for cid, rows in gone.items()]
        return out

    def cluster_rows(self) -> list[Row]:
        if self.error is not None and not self.rows:
            host = urlsplit(self.url).netloc or self.url
            return [never_answered("cluster", "(prometheus)", f"prometheus {host}", self.error, "Prometheus")]
        return self._trees.current()

    def statuses(self) -> list[SourceStatus]:
        ok = self.error is None and self.polled
        ignored = (f"{self.ignored} sample(s) ignored: not finite, negative or above {MAX_SAMPLE:g}"
                   if self.ignored else "")
        return [SourceStatus(name="prometheus", status=STATUS_OK if ok else STATUS_ERROR,
                             detail=self.error or ignored or ("" if self.polled else "not polled yet"),
                             watts=sum(r.watts for r in self.rows) if self.rows else None,
                             extra={"url": self.url})]


def prometheus_source(config: PrometheusConfig, token: str | None = None,
                      ssl_setting: Any = None) -> PrometheusSource:
    """The source ``config`` describes; a bad URL or rate window raises SourceConfigError up front."""
    try:
        check_url(config.url, "--prometheus")
    except UrlError as exc:
        raise SourceConfigError(str(exc)) from None
    if not _DURATION.match(config.rate_window):  # else every poll fails with Prometheus's parse error
        raise SourceConfigError(f"--rate-window must be a Prometheus duration like 1m, 30s or 1h30m, "
                                f"got {config.rate_window!r}")
    labels = LabelConfig(cluster_label=config.cluster_label, node_label=config.node_label)
    return PrometheusSource(config.url, labels, config.rate_window, token, config.timeout, ssl_setting)
