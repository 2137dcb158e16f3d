"""Pod names, namespaces and container names from the kubelet's ``/pods`` endpoint.

The kubelet serves the node's PodList on its authenticated port (10250, HTTPS,
bearer token) and, where enabled, its read-only port (10255, plain HTTP). The
client polls it on its own thread (asyncio + aiohttp), keeps the latest answer
and never blocks a caller: ``pods()`` returns what is cached, ``request_refresh()``
asks for an early poll (an unknown pod UID appeared), rate-limited.
"""
from __future__ import annotations

import asyncio
import os
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


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
        self._refresh_s = refresh_s
        self._min_gap_s = min_gap_s
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._pods: dict[str, PodInfo] = {}
        self._status = SourceStatus("kubelet", STATUS_OK, "waiting for the first /pods answer")
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_fetch: float | None = None
        self._working: KubeletEndpoint | None = None
        self._first_done = threading.Event()
        self._in_flight: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any] | None] | None = None

    # ---- called from the collector's thread: never block ----
    def pods(self) -> dict[str, PodInfo]:
        self._ensure_started()
        with self._lock:
            return self._pods

    def status(self) -> SourceStatus:
        with self._lock:
            return self._status

    def request_refresh(self) -> None:
        self._ensure_started()
        self._wake.set()

    def wait_for_first(self, timeout: float) -> bool:
        """Start polling and block until the first fetch finished (either way) or ``timeout``."""
        self._ensure_started()
        return self._first_done.wait(timeout) if self._thread is not None else True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            fetch = self._in_flight
        if fetch is not None:
            loop, task = fetch
            try:
                loop.call_soon_threadsafe(task.cancel)  # type: ignore[union-attr]
            except RuntimeError:  # the loop has just finished
                pass
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 1)

    def _ensure_started(self) -> None:
        if self._thread is None and self._endpoints:
            self._thread = threading.Thread(target=self._run, name="keck-kubelet", daemon=True)
            self._thread.start()

    # ---- background thread ----
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._fetch_cancellable())
            except asyncio.CancelledError:
                break  # stop() cancelled a fetch in flight
            finally:
                self._first_done.set()
            self._wake.clear()
            self._wake.wait(self._refresh_s)
            if self._stop.is_set():
                break
            # Rate-limit early refreshes.
            if self._last_fetch is not None:
                gap = self._clock.monotonic() - self._last_fetch
                if gap < self._min_gap_s:
                    self._stop.wait(self._min_gap_s - gap)

    async def _fetch_cancellable(self) -> SourceStatus:
        """fetch_once() that stop() can cancel (a slow kubelet must not hold up shutdown)."""
        with self._lock:
            self._in_flight = (asyncio.get_running_loop(), asyncio.current_task())
        try:
            if self._stop.is_set():
                raise asyncio.CancelledError
            return await self.fetch_once()
        finally:
            with self._lock:
                self._in_flight = None

    async def fetch_once(self) -> SourceStatus:
        """Poll the endpoints (the one that worked last first); update the cache and status."""
        import aiohttp

        self._last_fetch = self._clock.monotonic()
        order = ([self._working] if self._working else []) + [e for e in self._endpoints if e != self._working]
        errors: list[str] = []
        for ep in order:
            try:
                pods = await self._fetch(aiohttp, ep)
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

    async def _fetch(self, aiohttp: Any, ep: KubeletEndpoint) -> dict[str, PodInfo]:
        headers = {"Accept": "application/json"}
        if ep.token_file:
            try:
                with open(ep.token_file, encoding="utf-8") as fh:
                    headers["Authorization"] = "Bearer " + fh.read().strip()
            except OSError as exc:
                raise _FetchError(f"cannot read token {ep.token_file}: {exc.strerror}") from None
        ssl_arg: Any = None
        if ep.url.startswith("https:"):
            if not ep.verify_tls:
                ssl_arg = False
            else:
                try:
                    ssl_arg = ssl.create_default_context(cafile=ep.ca_file) if ep.ca_file else None
                except (OSError, ssl.SSLError) as exc:
                    raise _FetchError(f"cannot load CA {ep.ca_file}: {exc}") from None
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(ep.url, headers=headers, ssl=ssl_arg) as resp:
                    if resp.status in (401, 403):
                        raise _FetchError(f"HTTP {resp.status} (the token may lack 'get' on nodes/pods; "
                                          "nodes/proxy before Kubernetes 1.36)")
                    if resp.status != 200:
                        raise _FetchError(f"HTTP {resp.status}")
                    body = await resp.read()
        except _FetchError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _FetchError(f"TLS verification failed ({exc.certificate_error}); "
                              "set [kubelet] insecure = true in the config if the kubelet's "
                              "certificate is self-signed") from None
        except asyncio.TimeoutError:
            raise _FetchError(f"timed out after {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise _FetchError(str(exc) or type(exc).__name__) from None
        import json
        try:
            return parse_pod_list(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _FetchError(f"bad PodList: {exc}") from None


class _FetchError(Exception):
    pass
