"""The Keck controller (github.com/avivgt/keck) as a source: cluster → node → namespace → pod.

Its JSON is already in watts (the controller divides its integer µW by 1e6).
A node's power is its PSU input (``platform_watts``, the widest measured
reading) when it has one, else cpu + memory + gpu; the controller's
``error_ratio`` (PSU reconciliation error) is the bound: watts × (1 ± ratio).
Pods come from ``/pods-by-namespace`` (``/pods-by-node`` returns no pods,
despite its name). Pods don't add up to their node (kubelet, runtime and
kernel run outside pods), so each node gets a ``(residual)`` row with the rest.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp

from keck_tui.attribution.estimate import ESTIMATE_RELATIVE_ERROR
from keck_tui.common.http import HttpError, bearer, get_json
from keck_tui.common.ids import safe_id
from keck_tui.model import Row, SourceStatus, STATUS_ERROR, STATUS_OK
from keck_tui.sources.remote import RemoteTrees, RemoteTreesSource, never_answered
from keck_tui.sources.tree import sum_row

STALE_AFTER_S = 60.0  # the controller's own staleness threshold


def _f(value: Any) -> float:
    """A figure of the controller's: absent (None) is 0; anything else that is not a finite
    number is NaN, so the answer is rejected with the row's name (RemoteTrees.fresh)
    rather than summed as 0 W or as 1e308."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _opt(value: Any) -> float | None:
    return None if value is None else _f(value)


def pod_row(pod: Mapping[str, Any], ratio: float = 0.0, estimated: bool = False) -> Row:
    """A pod with its node's relative bound (the controller gives none per pod)."""
    total = _f(pod.get("total_watts"))
    comps = {"cpu": _f(pod.get("cpu_watts")), "dram": _f(pod.get("memory_watts")),
             "gpu": _f(pod.get("gpu_watts")), "storage": _f(pod.get("storage_watts")),
             "io": _f(pod.get("io_watts"))}
    name = str(pod.get("pod_name") or pod.get("pod_uid") or "(pod)")
    return Row(level="pod", id=safe_id(name), name=name, watts=total, watts_lo=max(0.0, total * (1 - ratio)),
               watts_hi=total * (1 + ratio), estimated=estimated,
               components=comps, pod_uid=str(pod.get("pod_uid") or "") or None,
               namespace=str(pod.get("namespace") or "") or None, sources=("keck",))


def node_row(node: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> Row:
    name = str(node.get("node_name") or "(node)")
    cpu, mem, gpu = _f(node.get("cpu_watts")), _f(node.get("memory_watts")), _f(node.get("gpu_watts"))
    attributed = cpu + mem + gpu
    platform = _opt(node.get("platform_watts"))
    watts = platform if platform is not None and platform > 0 else attributed
    ratio = max(0.0, _f(node.get("error_ratio")))
    estimated = node.get("cpu_reading_type") == "estimated"
    if estimated:
        # The controller reports error_ratio 0 where it has no PSU reading to reconcile with;
        # an estimate is never that sure: use keck-top's own estimate bound.
        ratio = max(ratio, ESTIMATE_RELATIVE_ERROR)
    by_ns: dict[str, list[Row]] = {}
    for p in pods:
        by_ns.setdefault(str(p.get("namespace") or "(none)"), []).append(pod_row(p, ratio, estimated))
    children = [sum_row("namespace", ns, ns, rows, namespace=ns) for ns, rows in sorted(by_ns.items())]
    pod_sum = sum(r.watts for r in children)
    residual = watts - pod_sum
    note = None
    if residual < -1e-9:
        note = f"pods sum to {pod_sum:.1f} W, more than the node's {watts:.1f} W"
        residual = 0.0
    children.append(Row(level="residual", id="(residual)", name="(residual)", watts=residual,
                        watts_lo=max(0.0, residual * (1 - ratio)), watts_hi=residual * (1 + ratio),
                        note="node power outside pods: system processes, idle, fans, PSU loss"))
    age = node.get("last_seen_secs_ago")
    stale = age is not None and _f(age) > STALE_AFTER_S
    extra = {k: node.get(k) for k in ("platform_watts", "psu_output_watts", "idle_watts", "headroom_watts",
                                       "error_ratio", "pod_count", "cpu_source", "cpu_reading_type")
             if k in node}
    return Row(level="node", id=safe_id(name), name=name, watts=watts,
               watts_lo=max(0.0, watts * (1 - ratio)), watts_hi=watts * (1 + ratio),
               estimated=estimated,
               components={"cpu": cpu, "dram": mem, "gpu": gpu}, sources=("keck",),
               age_s=_f(age) if age is not None else None, stale=True if stale else None,
               error=f"controller last heard from this node {_f(age):.0f} s ago" if stale else None,
               note=note, children=tuple(children), extra=extra)


def cluster_row(name: str, cluster: Mapping[str, Any] | None, nodes: list[Mapping[str, Any]] | None,
                pods: list[Mapping[str, Any]]) -> Row:
    """Decode the controller's answers into one cluster row."""
    node_list = nodes if nodes is not None else list((cluster or {}).get("nodes") or [])
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for p in pods:
        by_node.setdefault(str(p.get("node_name") or ""), []).append(p)
    rows = [node_row(n, by_node.pop(str(n.get("node_name") or ""), [])) for n in node_list]
    for orphan_node, orphan_pods in by_node.items():  # pods whose node is unknown to /nodes
        rows.append(node_row({"node_name": orphan_node or "(unknown node)"}, orphan_pods))
    extra = {}
    if cluster:
        extra = {k: cluster.get(k) for k in ("cpu_watts", "memory_watts", "gpu_watts", "platform_watts",
                                              "psu_output_watts", "psu_loss_watts", "idle_watts",
                                              "total_attributed_watts", "avg_error_ratio", "node_count",
                                              "pod_count") if k in cluster}
    row = sum_row("cluster", name, name, rows, sources=("keck",))
    return replace(row, extra=extra)


class KeckSource(RemoteTreesSource):
    """Polls one Keck controller; keeps the last good cluster row when it fails."""

    def __init__(self, url: str, cluster: str | None = None, token: str | None = None,
                 timeout: float = 5.0, ssl_setting: Any = None, method: str = "keck",
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = url.rstrip("/")
        self.cluster = cluster or (urlsplit(url).hostname or "keck")
        self.token = token
        self.timeout = timeout
        self.ssl = ssl_setting
        self.method = method
        self._mono = monotonic
        self._trees = RemoteTrees(monotonic)

    @property
    def row(self) -> Row | None:
        return self._trees.rows[0] if self._trees.rows else None

    async def _get(self, session: aiohttp.ClientSession, path: str, **params: str) -> Any:
        return await get_json(session, f"{self.url}{path}", params=params, headers=bearer(self.token),
                              timeout=self.timeout, ssl=self.ssl)

    async def poll(self, session: aiohttp.ClientSession) -> None:
        try:
            cluster, nodes, namespaces = await asyncio.gather(
                self._get(session, "/api/v1/cluster", method=self.method),
                self._get(session, "/api/v1/nodes", method=self.method),
                self._get(session, "/api/v1/namespaces", method=self.method))
            if not isinstance(cluster, dict) or not isinstance(nodes, list) or not isinstance(namespaces, list):
                raise HttpError("unexpected answer shape from the Keck controller")
            names = [str(n.get("namespace")) for n in namespaces if isinstance(n, dict) and n.get("namespace")]
            pod_lists = await asyncio.gather(*(self._get(session, "/api/v1/pods-by-namespace", ns=ns,
                                                         method=self.method) for ns in names))
            pods = [p for lst in pod_lists if isinstance(lst, list) for p in lst if isinstance(p, dict)]
        except HttpError as exc:
            self._trees.failed(str(exc))
            return
        self._trees.fresh([cluster_row(self.cluster, cluster, [n for n in nodes if isinstance(n, dict)], pods)])

    def cluster_rows(self) -> list[Row]:
        if not self._trees.answered:
            return [never_answered("cluster", safe_id(self.cluster), self.cluster, self.error, "Keck controller")]
        return self._trees.current()

    def statuses(self) -> list[SourceStatus]:
        return [SourceStatus(name=f"keck {self.cluster}", status=STATUS_OK if self.error is None and self.row
                             else STATUS_ERROR, detail=self.error or "",
                             watts=self.row.watts if self.row is not None else None, extra={"url": self.url})]
