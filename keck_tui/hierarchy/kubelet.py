"""Pod names, namespaces and container names from the kubelet's ``/pods`` endpoint.

The kubelet serves the node's PodList on its authenticated port (10250, HTTPS,
bearer token) and, where enabled, its read-only port (10255, plain HTTP). The
client polls it on its own thread (:class:`keck_tui.common.bgloop.Poller`, the
common HTTP JSON client), keeps the latest answer
and never blocks a caller: ``pods()`` returns what is cached, ``request_refresh()``
asks for an early poll (an unknown pod UID appeared), rate-limited.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from keck_tui.clock import Clock, SystemClock
from keck_tui.common import bounded
from keck_tui.common.bgloop import Poller
from keck_tui.common.http import BAD_JSON, TLS, HttpError, bearer, client_session, client_tls, get_json
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_TOKEN_BYTES = 64 * 1024
MAX_PODLIST_BYTES = 64 * 1024 * 1024  # a node's PodList: ~10 kB a pod, 110 pods by default, 500+ on big nodes


@dataclass(frozen=True)
class PodInfo:
    uid: str
    name: str
    namespace: str
    qos: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: Mapping[str, str] = field(default_factory=dict)  # container id -> name


def _strip_runtime(container_id: str) -> str:
    """``containerd://<id>`` → ``<id>`` (also docker://, cri-o://)."""
    return container_id.split("://", 1)[-1]


def parse_pod_list(doc: Any) -> dict[str, PodInfo]:
    """UID → PodInfo from a kubelet ``/pods`` PodList. Malformed items are skipped."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("items"), list):
        raise ValueError("not a PodList (no 'items' list)")
    pods: dict[str, PodInfo] = {}
    for item in doc["items"]:
        if not isinstance(item, Mapping):
            continue
        meta = item.get("metadata") or {}
        status = item.get("status") or {}
        if not isinstance(meta, Mapping) or not isinstance(status, Mapping):
            continue
        uid, name, ns = meta.get("uid"), meta.get("name"), meta.get("namespace")
        if not (isinstance(uid, str) and isinstance(name, str)):
            continue
        containers: dict[str, str] = {}
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for cs in status.get(key) or ():
                if isinstance(cs, Mapping) and isinstance(cs.get("containerID"), str) and cs.get("name"):
                    containers[_strip_runtime(cs["containerID"])] = str(cs["name"])
        labels = meta.get("labels") or {}
        pods[uid] = PodInfo(
            uid=uid, name=name, namespace=str(ns or "default"),
            qos=status.get("qosClass") if isinstance(status.get("qosClass"), str) else None,
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
            containers=containers,
        )
    return pods


@dataclass(frozen=True)
class KubeletConfig:
    """How to reach the kubelet (the command line builds it from ``--kubelet`` and ``[kubelet]``)."""

    url: str | None = None  # None: auto-detected on a Kubernetes node
    token_file: str | None = None  # bearer token (default on https: the service account's)
    ca_file: str | None = None
    insecure: bool = False  # skip TLS verification (kubelet serving certificates are often self-signed)
    refresh_s: float = 30.0


@dataclass(frozen=True)
class KubeletEndpoint:
    """One way to reach the kubelet."""

    url: str  # full URL of /pods
    token_file: str | None = None  # bearer token, re-read each poll (projected tokens rotate)
    ca_file: str | None = None
    verify_tls: bool = True


def normalize_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/pods") else url + "/pods"


def endpoints_from_env(env: Mapping[str, str], config: KubeletConfig | None = None,
                       sa_dir: str = SA_DIR) -> list[KubeletEndpoint]:
    """Candidate endpoints when running on a Kubernetes node (``KUBERNETES_SERVICE_HOST`` set).

    The node's address comes from ``KECK_NODE_IP`` / ``NODE_IP`` / ``HOST_IP`` (the downward
    API's ``status.hostIP``), else 127.0.0.1 (a hostNetwork DaemonSet).
    """
    config = config or KubeletConfig()
    if not env.get("KUBERNETES_SERVICE_HOST"):
        return []
    host = env.get("KECK_NODE_IP") or env.get("NODE_IP") or env.get("HOST_IP") or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    token = config.token_file or os.path.join(sa_dir, "token")
    ca = config.ca_file or os.path.join(sa_dir, "ca.crt")
    verify = not config.insecure
    return [
        KubeletEndpoint(f"https://{host}:10250/pods", token_file=token,
                        ca_file=ca if os.path.exists(ca) else None, verify_tls=verify),
        KubeletEndpoint(f"http://{host}:10255/pods"),
    ]


class KubeletClient:
    """Background poller of the kubelet's PodList; ``pods()`` never blocks."""

    name = "kubelet"

    def __init__(self, endpoints: list[KubeletEndpoint], *, refresh_s: float = 30.0,
                 min_gap_s: float = 2.0, timeout: float = 5.0, clock: Clock | None = None) -> None:
        self._endpoints = list(endpoints)
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._pods: dict[str, PodInfo] = {}
        self._status = SourceStatus("kubelet", STATUS_OK, "waiting for the first /pods answer")
        self._working: KubeletEndpoint | None = None
        # Early refreshes (an unknown pod UID appeared) are rate-limited by min_gap_s.
        self._poller = Poller("keck-kubelet", self.fetch_once, refresh_s, from_end=True, min_gap=min_gap_s,
                              monotonic=self._clock.monotonic)

    # ---- called from the collector's thread: never block ----
    def pods(self) -> dict[str, PodInfo]:
        self._ensure_started()
        with self._lock:
            return self._pods

    def status(self) -> SourceStatus:
        with self._lock:
            status = self._status
        if self._poller.error:  # fetch_once itself failed: say so rather than go quiet
            return SourceStatus("kubelet", STATUS_ERROR, f"{status.detail}; poller: {self._poller.error}",
                                extra=status.extra)
        return status

    def request_refresh(self) -> None:
        self._ensure_started()
        self._poller.wake()

    def wait_for_first(self, timeout: float) -> bool:
        """Start polling and block until the first fetch finished (either way) or ``timeout``."""
        if not self._endpoints:
            return True
        return self._poller.wait_for_first(timeout)

    def stop(self) -> None:
        """Stop polling; a fetch in flight (a slow kubelet) is cancelled, not waited for."""
        self._poller.stop(timeout=self._timeout + 1)

    def _ensure_started(self) -> None:
        if self._endpoints:
            self._poller.start()

    async def fetch_once(self) -> SourceStatus:
        """Poll the endpoints (the one that worked last first); update the cache and status."""
        order = ([self._working] if self._working else []) + [e for e in self._endpoints if e != self._working]
        errors: list[str] = []
        for ep in order:
            try:
                pods = await self._fetch(ep)
            except _FetchError as exc:
                errors.append(f"{ep.url}: {exc}")
                continue
            status = SourceStatus("kubelet", STATUS_OK, f"{len(pods)} pods from {ep.url}")
            with self._lock:
                self._pods = pods
                self._status = status
                self._working = ep
            return status
        kept = " (keeping the last pod list)" if self._pods else ""
        status = SourceStatus(
            "kubelet", STATUS_ERROR if self._working else STATUS_UNAVAILABLE,
            "; ".join(errors) + kept,
            extra={"fix": "pass --kubelet URL (e.g. http://127.0.0.1:10255 or https://NODE:10250 with a "
                          "service-account token allowed to get nodes/pods, or nodes/proxy before "
                          "Kubernetes 1.36); without it pods show by UID"})
        with self._lock:
            self._status = status
        return status

    async def _fetch(self, ep: KubeletEndpoint) -> dict[str, PodInfo]:
        headers: dict[str, str] = {}
        if ep.token_file:  # re-read each poll: projected service-account tokens rotate
            try:
                token = bounded.read_file(ep.token_file, MAX_TOKEN_BYTES, "kubelet token file")
                headers = bearer(token.decode("utf-8", "replace").strip())
            except bounded.BoundedInputError as exc:
                raise _FetchError(str(exc)) from None
            except OSError as exc:
                raise _FetchError(f"cannot read token {ep.token_file}: {exc.strerror}") from None
        tls: Any = None
        if ep.url.startswith("https:"):
            try:
                tls = client_tls(ep.ca_file, insecure=not ep.verify_tls)
            except ValueError as exc:
                raise _FetchError(str(exc)) from None
        try:
            async with client_session(4) as session:
                doc = await get_json(session, ep.url, headers=headers, timeout=self._timeout, ssl=tls,
                                     max_bytes=MAX_PODLIST_BYTES, peer="kubelet")
        except HttpError as exc:
            raise _FetchError(_advice(exc)) from None
        try:
            return parse_pod_list(doc)
        except ValueError as exc:
            raise _FetchError(f"bad PodList: {exc}") from None


def _advice(exc: HttpError) -> str:
    """The client's one line, with what to do for the failures a kubelet typically gives."""
    if exc.status in (401, 403):
        return f"HTTP {exc.status} (the token may lack 'get' on nodes/pods; nodes/proxy before Kubernetes 1.36)"
    if exc.kind == TLS:
        return f"{exc}; set [kubelet] insecure = true in the config if the kubelet's certificate is self-signed"
    if exc.kind == BAD_JSON:
        return f"bad PodList: {exc}"
    return str(exc)


class _FetchError(Exception):
    pass
