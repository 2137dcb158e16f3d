"""The agent's HTTP application (aiohttp): read-only JSON API, history and /metrics.

One :class:`AgentService` owns the feed (the single collector every client
shares), the history ring buffer and the metrics state; on a hypervisor host it also
keeps each VM's power document (``GET /api/v1/vm/<name>``, readable with the host's
token or that VM's own token from ``--vm-token-dir``) and writes it to
``--vm-export-dir`` (keck_tui/vm/). Its ingest task polls
``feed.latest()`` and, once per new snapshot, updates history and counters and
encodes the JSON body once; requests only read those results, so 100 clients
cost 100 cheap responses, never 100 samplings.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from keck_tui.agent.auth import bearer_ok
from keck_tui.vm.export import vm_documents
from keck_tui.vm.files import ExportError, write_vm_file
from keck_tui.vm.tokens import VmTokens, bearer_value
from keck_tui.agent.history import History
from keck_tui.agent.metrics import MetricsState, make_registry
from keck_tui.feed import SnapshotFeed
from keck_tui.model import Row, Snapshot

log = logging.getLogger("keck_tui.agent")

API = "/api/v1"
MAX_DEPTH = 64
MAX_PATH_CHARS = 4096
_CACHE_ENTRIES = 256
#: How long /healthz says "starting" beyond 3 intervals + 10 s before the first snapshot
#: (a BMC or the kubelet is waited for first, and eBPF takes seconds to load).
STARTUP_GRACE_S = 60.0



class BadRequest(ValueError):
    """A client error worth a 4xx JSON answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class AgentService:
    """Shared state behind every request (one per agent)."""

    def __init__(self, feed: SnapshotFeed, history: History | None = None,
                 metrics: MetricsState | None = None, poll_s: float | None = None,
                 wall: Callable[[], float] = time.time, *, vm_tokens: VmTokens | None = None,
                 vm_export_dir: str | None = None) -> None:
        self.feed = feed
        self.history = history if history is not None else History(max_entries=600)
        self.metrics = metrics if metrics is not None else MetricsState(wall=wall)
        self.registry = make_registry(self.metrics)
        self.poll_s = poll_s
        self._wall = wall
        self.current: Snapshot | None = None
        self.body: bytes | None = None
        self._gzip: bytes | None = None
        self._subtrees: OrderedDict[tuple[tuple[str, ...], int | None], bytes] = OrderedDict()
        self.ingested = 0
        self.vm_tokens = vm_tokens
        self.vm_export_dir = vm_export_dir
        self.vm_bodies: dict[str, bytes] = {}  # VM name -> keck-top-vm/1 document
        self.vm_export_errors: dict[str, str] = {}  # VM name -> why its file was not written
        self.ingest_error: str | None = None
        self._rejected: Snapshot | None = None
        self._created_at = self._ingested_at = time.monotonic()

    def ingest(self) -> bool:
        """Take the feed's latest snapshot if it is new; True when it was.

        A snapshot that cannot be served (it does not encode, history or metrics
        refuse it) is skipped and said by ``/healthz``; the previous one stays.
        """
        snap = self.feed.latest()
        if snap is None or snap is self.current or snap is self._rejected:
            return False
        try:
            body = snap.dumps().encode("utf-8")
            self.history.add(snap)
            self.metrics.update(snap)
        except Exception as exc:  # noqa: BLE001 - a bad snapshot must not take the agent down
            self._rejected = snap
            self.ingest_error = f"a snapshot could not be served: {type(exc).__name__}: {exc}"[:500]
            log.warning("%s", self.ingest_error)
            return False
        self.body = body
        self._gzip = None
        self._subtrees.clear()
        self.current = snap
        self.ingest_error = None
        self._ingested_at = time.monotonic()
        self.ingested += 1
        try:
            self._ingest_vms(snap)
        except Exception:  # noqa: BLE001 - the node's snapshot is served even if a VM's is not
            log.exception("could not build the VM documents")
        return True

    def _ingest_vms(self, snap: Snapshot) -> None:
        """Each VM's document, once per snapshot; written to the export folder when asked."""
        docs = vm_documents(snap, seq=self.ingested)
        self.vm_bodies = {name: doc.dumps() for name, doc in docs.items()}
        if self.vm_tokens is not None:
            self.vm_tokens.reload()
        if self.vm_export_dir is None:
            return
        errors: dict[str, str] = {}
        for name, body in self.vm_bodies.items():
            try:
                write_vm_file(self.vm_export_dir, name, body)
            except ExportError as exc:
                errors[name] = str(exc)
        for name, why in errors.items():
            if self.vm_export_errors.get(name) != why:  # log a problem once, not every interval
                log.warning("VM %s: cannot write its power file: %s", name, why)
        self.vm_export_errors = errors

    def health(self) -> dict[str, Any]:
        """What /healthz says: ``ok`` (a new snapshot within 3 intervals + 10 s), ``starting``
        (none yet, no error), ``failing`` (none that recent, or none yet and an error) or
        ``stopped`` (the feed's thread ended: it never recovers, restart the agent).
        ``error`` is the feed's last error or why the last snapshot could not be served."""
        snap = self.current
        age = None if snap is None else max(0.0, self._wall() - snap.time)
        error = self.ingest_error or self.feed.last_error()
        alive = getattr(self.feed, "alive", None)
        interval = getattr(self.feed, "interval", 1.0) or 1.0
        since = time.monotonic() - (self._ingested_at if snap is not None else self._created_at)
        if callable(alive) and not alive():
            status = "stopped"
        elif snap is not None and since <= 3 * interval + 10.0:
            status = "ok"
        elif snap is None and error is None and since <= 3 * interval + 10.0 + STARTUP_GRACE_S:
            status = "starting"
        else:
            status = "failing"
        return {"status": status, "snapshot_age_s": age, "error": error}

    async def run_ingest(self) -> None:
        while True:
            try:
                self.ingest()
            except Exception:  # noqa: BLE001 - a bad snapshot must not kill the agent
                log.exception("could not ingest a snapshot")
            interval = getattr(self.feed, "interval", 1.0) or 1.0
            await asyncio.sleep(self.poll_s if self.poll_s is not None else min(0.1, interval / 4))

    def gzip_body(self) -> bytes:
        if self._gzip is None and self.body is not None:
            self._gzip = gzip.compress(self.body, compresslevel=5)
        return self._gzip or b""

    def subtree(self, path: tuple[str, ...], depth: int | None) -> bytes:
        key = (path, depth)
        cached = self._subtrees.get(key)
        if cached is not None:
            self._subtrees.move_to_end(key)
            return cached
        snap = self.current
        assert snap is not None
        row = snap.root.find(path) if path else snap.root
        if row is None:
            raise BadRequest(f"no row at path {'/'.join(path)!r}", status=404)
        if depth is not None:
            row = row.pruned(depth)
        doc = replace(snap, root=row).to_json()
        doc["path"] = list(path) if path else [snap.root.id]
        body = json.dumps(doc, allow_nan=False).encode("utf-8")
        self._subtrees[key] = body
        if len(self._subtrees) > _CACHE_ENTRIES:
            self._subtrees.popitem(last=False)
        return body


SERVICE_KEY = web.AppKey("service", AgentService)
INGEST_KEY = web.AppKey("ingest_task", asyncio.Task)


def parse_path(text: str | None) -> tuple[str, ...]:
    """``a/b/c`` → ("a", "b", "c"); empty or missing → () (the root)."""
    if text is None or text == "":
        return ()
    if len(text) > MAX_PATH_CHARS:
        raise BadRequest("path is too long")
    parts = tuple(text.strip("/").split("/"))
    if any(p == "" for p in parts):
        raise BadRequest("path has an empty id (a doubled '/')")
    return parts


def parse_depth(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        depth = int(text)
    except ValueError:
        raise BadRequest(f"depth must be a whole number, got {text[:40]!r}") from None
    if depth < 0 or depth > MAX_DEPTH:
        raise BadRequest(f"depth must be between 0 and {MAX_DEPTH}")
    return depth


def parse_since(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        since = float(text)
    except ValueError:
        raise BadRequest(f"since must be unix seconds, got {text[:40]!r}") from None
    if since != since or since in (float("inf"), float("-inf")):
        raise BadRequest("since must be a finite number")
    return since


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


_ALLOWED_PARAMS = {
    f"{API}/snapshot": {"path", "depth"},
    f"{API}/history": {"path", "since"},
    "/metrics": set(),
    "/healthz": set(),
}


def build_app(service: AgentService, token: str | None = None, *, ingest: bool = True) -> web.Application:
    """The aiohttp app. ``token``: bearer token required on all but /healthz."""
    api = _Api(service)
    app = web.Application(middlewares=[_errors, _auth(token, service), _params], client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app.router.add_get(f"{API}/snapshot", api.snapshot)
    app.router.add_get(f"{API}/history", api.history)
    app.router.add_get(f"{API}/vm/{{name}}", api.vm, name="vm")
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/healthz", api.healthz)
    if ingest:
        _run_ingest_with(app, service)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure is a JSON error with a 4xx/5xx status, never a traceback."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return _error(exc.status, str(exc))
    except web.HTTPMethodNotAllowed as exc:
        return _error(405, f"method {request.method} not allowed (this API is read-only)",
                      Allow=",".join(sorted(exc.allowed_methods)))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = "no such endpoint" if exc.status == 404 else exc.reason
        return _error(exc.status, reason)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - never a traceback to the client
        log.exception("error answering %s %s", request.method, request.path)
        return _error(500, "internal error (see the agent's log)")


def _auth(token: str | None, service: AgentService) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        """The host's token reads everything; a VM's token (``--vm-token-dir``) reads that VM's
        ``/api/v1/vm/<name>`` only. Without a host token the agent is open (loopback), but a
        request that presents a VM's token is still held to that VM."""
        if request.path == "/healthz":
            return await handler(request)
        header = request.headers.get("Authorization")
        if token is not None and bearer_ok(header, token):
            return await handler(request)
        presented = bearer_value(header)
        granted = service.vm_tokens.vms_for(presented) if (presented and service.vm_tokens) else set()
        if granted:
            name = request.match_info.get("name") if request.match_info.route.name == "vm" else None
            if name is None or name not in granted:
                return _error(403, "this token reads its own VM's power only (GET /api/v1/vm/<its name>)")
            return await handler(request)
        if token is not None:
            return _error(401, "missing or wrong bearer token", **{"WWW-Authenticate": 'Bearer realm="keck-top"'})
        return await handler(request)
    return auth


@web.middleware
async def _params(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown or repeated query parameters are a 400, not silently ignored."""
    allowed = _ALLOWED_PARAMS.get(request.path)
    if allowed is not None and request.method in ("GET", "HEAD"):
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            raise BadRequest(f"unknown query parameter {unknown[0][:40]!r}")
        for key in allowed:
            if len(request.query.getall(key, [])) > 1:
                raise BadRequest(f"query parameter {key!r} given more than once")
    return await handler(request)


class _Api:
    """The endpoints over one AgentService."""

    def __init__(self, service: AgentService) -> None:
        self.service = service

    def need_snapshot(self) -> Snapshot:
        service = self.service
        service.ingest()  # cheap identity check: serve the newest snapshot
        if service.current is None:
            raise BadRequest("no snapshot yet: the agent is still taking its first sample", status=503)
        return service.current

    async def snapshot(self, request: web.Request) -> web.Response:
        service = self.service
        snap = self.need_snapshot()
        path = parse_path(request.query.get("path"))
        depth = parse_depth(request.query.get("depth"))
        if path == (snap.root.id,):
            path = ()
        if not path and depth is None:
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                return web.Response(body=service.gzip_body(), content_type="application/json",
                                    headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
            return web.Response(body=service.body, content_type="application/json")
        return web.Response(body=service.subtree(path, depth), content_type="application/json")

    async def history(self, request: web.Request) -> web.Response:
        service = self.service
        snap = self.need_snapshot()
        path = parse_path(request.query.get("path")) or (snap.root.id,)
        since = parse_since(request.query.get("since"))
        key = "/".join(path)
        if not service.history.known(key):
            raise BadRequest(f"no history for path {key!r}", status=404)
        doc: dict[str, Any] = {
            "schema": "keck-top/1-history", "host": snap.host, "path": list(path),
            "interval_s": snap.interval_s, "oldest": service.history.oldest,
            "points": service.history.series(key, since),
        }
        return web.json_response(doc)

    async def vm(self, request: web.Request) -> web.Response:
        if request.query:
            raise BadRequest("this endpoint takes no query parameters")
        self.need_snapshot()
        name = request.match_info["name"]
        body = self.service.vm_bodies.get(name)
        if body is None:
            raise BadRequest(f"no VM named {name[:80]!r} on this host now", status=404)
        return web.Response(body=body, content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        self.need_snapshot()
        body = generate_latest(self.service.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def healthz(self, request: web.Request) -> web.Response:
        doc = self.service.health()
        return web.json_response(doc, status=200 if doc["status"] in ("ok", "starting") else 503)


def _run_ingest_with(app: web.Application, service: AgentService) -> None:
    """Ingest the feed's snapshots on the app's loop while it runs."""
    async def start_ingest(app: web.Application) -> None:
        app[INGEST_KEY] = asyncio.get_running_loop().create_task(service.run_ingest())

    async def stop_ingest(app: web.Application) -> None:
        task = app.get(INGEST_KEY)
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    app.on_startup.append(start_ingest)
    app.on_cleanup.append(stop_ingest)
