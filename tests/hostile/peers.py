"""Hostile peers: real HTTP servers (aiohttp, on a thread) that keck-top's clients talk to.

A :class:`Peer` serves a table of routes on 127.0.0.1 and records every request it
gets (method, path, headers, body), so a test can run keck-top as a real process
against it and then assert both what keck-top printed and what the peer received
(e.g. that a second "other host" peer never saw an ``Authorization`` header).

The behaviours below are the answers a hostile or broken agent, BMC, Prometheus or
Keck controller can give: deep JSON, a 200 MB answer, an endless chunked answer, a
trickle, wrong types, 1e308, negative watts, lo > hi, NaN/Infinity, escape sequences,
redirects elsewhere. Each is a handler factory; ``agent_routes``, ``bmc_routes``,
``prometheus_routes`` and ``keck_routes`` put them where each kind of peer answers.
"""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from tests.hostile import documents

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MB = 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """An HTTP server on 127.0.0.1 serving ``routes`` (path → handler) on its own thread."""

    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-peer", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Peer":
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("hostile peer did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(20)
        except TimeoutError:
            pass  # a handler that never ends (endless answers): the thread is a daemon
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            body = await request.read()
            self.seen.append(Seen(request.method, request.path, request.query_string,
                                  dict(request.headers), body))
            return await handler(request)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            handler = self.routes.get(request.path)
            if handler is None:
                return web.json_response({"error": "no such path"}, status=404)
            return await handler(request)

        app = web.Application(middlewares=[record], client_max_size=4 * MB)
        app.router.add_route("*", "/{tail:.*}", dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def requests_with(self, header: str) -> list[Seen]:
        return [s for s in self.seen if any(k.lower() == header.lower() for k in s.headers)]


# ---------------------------------------------------------------- behaviours

def json_answer(doc: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=json.dumps(doc).encode(), status=status, content_type="application/json")
    return handler


def raw_answer(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type=content_type)
    return handler


def deep_json(depth: int = 100_000) -> bytes:
    """``{"a":{"a":…1…}}`` nested ``depth`` deep (Python's parser overflows its stack on it)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def huge_answer(size: int = 200 * MB, declare: bool = True) -> Handler:
    """A valid-looking JSON answer of ``size`` bytes, written 1 MiB at a time."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declare:
            resp.content_length = size
        await resp.prepare(request)
        head = b'{"pad": "'
        await resp.write(head)
        chunk = b"a" * MB
        sent = len(head)
        try:
            while sent + MB <= size - 2:
                await resp.write(chunk)
                sent += MB
            await resp.write(b"a" * (size - 2 - sent) + b'"}')
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what a bounded reader does
        return resp
    return handler


def endless_answer(chunk: bytes = b" " * (64 * 1024), delay: float = 0.0) -> Handler:
    """A chunked answer that never ends (or trickles ``chunk`` every ``delay`` seconds)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            await resp.write(b'{"pad": "')
            while True:
                await resp.write(chunk)
                await asyncio.sleep(delay)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        return resp
    return handler


def slow_answer(doc: Any, seconds: float) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(body=json.dumps(doc).encode(), content_type="application/json")
    return handler


def redirect_to(url: str, status: int = 302) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": url})
    return handler


# ---------------------------------------------------------------- agents

#: name → handler of GET /api/v1/snapshot, for a hostile agent.
def hostile_agents() -> dict[str, Handler]:
    out: dict[str, Handler] = {
        "deep JSON": raw_answer(deep_json()),
        "200 MB answer": huge_answer(),
        "endless chunked answer": endless_answer(),
        "trickle (1 byte / 0.2 s)": endless_answer(b" ", 0.2),
        "slow answer": slow_answer(documents.good("slow"), 30.0),
        "not JSON": raw_answer(b"<html>hello</html>", content_type="text/html"),
        "escape sequences": json_answer(documents.with_escapes()),
        "NaN watts": raw_answer(json.dumps(documents.good("nan")).replace("100.0", "NaN", 1).encode()),
        "Infinity watts": raw_answer(json.dumps(documents.good("inf")).replace("100.0", "Infinity", 1).encode()),
        "redirect elsewhere": redirect_to("http://127.0.0.1:9/api/v1/snapshot"),
    }
    for what, build in documents.REJECTED:
        out[what] = json_answer(build())
    return out


def agent_routes(handler: Handler) -> dict[str, Handler]:
    return {"/api/v1/snapshot": handler}


# ---------------------------------------------------------------- Redfish BMCs

def bmc_routes(other: str, *, reading: str = "374.0", sessions_elsewhere: bool = False,
               chassis_elsewhere: bool = False, root: Handler | None = None) -> dict[str, Handler]:
    """A Redfish BMC with one chassis whose EnvironmentMetrics reading is ``reading`` (JSON text:
    ``Infinity``, ``1e999``, ``-5``…); ``other`` is another origin that some links point to."""
    links: dict[str, Any] = {}
    if sessions_elsewhere:
        links["Sessions"] = {"@odata.id": f"{other}/redfish/v1/SessionService/Sessions"}
    service = {"@odata.id": "/redfish/v1", "RedfishVersion": "1.15.0",
               "Chassis": {"@odata.id": "/redfish/v1/Chassis"}, "Links": links}
    members = [{"@odata.id": "/redfish/v1/Chassis/1"}]
    if chassis_elsewhere:
        members.insert(0, {"@odata.id": f"{other}/redfish/v1/Chassis/evil"})
    chassis = {"@odata.id": "/redfish/v1/Chassis/1", "Id": "1", "Name": "Node \x1b[31mchassis",
               "ChassisType": "RackMount",
               "EnvironmentMetrics": {"@odata.id": "/redfish/v1/Chassis/1/EnvironmentMetrics"}}
    env = ('{"@odata.id": "/redfish/v1/Chassis/1/EnvironmentMetrics", "PowerWatts": {"Reading": '
           + reading + "}}").encode()

    async def sessions(request: web.Request) -> web.StreamResponse:
        return web.json_response({"Id": "1"}, status=201,
                                 headers={"X-Auth-Token": "bmc-session-token",
                                          "Location": "/redfish/v1/SessionService/Sessions/1"})

    return {
        "/redfish/v1": root or json_answer(service),
        "/redfish/v1/": root or json_answer(service),
        "/redfish/v1/Chassis": json_answer({"Members": members, "Members@odata.count": len(members)}),
        "/redfish/v1/Chassis/1": json_answer(chassis),
        "/redfish/v1/Chassis/1/EnvironmentMetrics": raw_answer(env),
        "/redfish/v1/SessionService/Sessions": sessions,
    }


def other_host_routes() -> dict[str, Handler]:
    """What the "other host" answers: anything, so a client that follows a link gets an answer."""
    async def anything(request: web.Request) -> web.StreamResponse:
        return web.json_response({"Id": "evil", "PowerWatts": {"Reading": 1.0}}, status=201,
                                 headers={"X-Auth-Token": "stolen"})
    paths = ["/redfish/v1/Chassis/evil", "/redfish/v1/SessionService/Sessions", "/api/v1/snapshot"]
    return {p: anything for p in paths}


# ---------------------------------------------------------------- Prometheus and Keck

def prometheus_vector(samples: list[tuple[dict[str, str], str]]) -> dict[str, Any]:
    """An instant-vector answer; values are strings as Prometheus sends them ("NaN", "+Inf")."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1.7e9, value]} for labels, value in samples]}}


def prometheus_routes(handler: Handler) -> dict[str, Handler]:
    return {"/api/v1/query": handler}


def keck_routes(cluster: Any, nodes: Any, namespaces: Any, pods: Any) -> dict[str, Handler]:
    def answer(doc: Any) -> Handler:
        return doc if callable(doc) else json_answer(doc)
    return {"/api/v1/cluster": answer(cluster), "/api/v1/nodes": answer(nodes),
            "/api/v1/namespaces": answer(namespaces), "/api/v1/pods-by-namespace": answer(pods)}


def keck_node(name: str = "k1", watts: float = 100.0, **extra: Any) -> dict[str, Any]:
    node = {"node_name": name, "cpu_watts": watts * 0.6, "memory_watts": watts * 0.2, "gpu_watts": 0.0,
            "platform_watts": watts, "error_ratio": 0.05, "last_seen_secs_ago": 1}
    node.update(extra)
    return node


def keck_pod(name: str = "web-0", watts: float = 10.0, **extra: Any) -> dict[str, Any]:
    pod = {"pod_name": name, "pod_uid": "u1", "namespace": "default", "node_name": "k1",
           "total_watts": watts, "cpu_watts": watts}
    pod.update(extra)
    return pod
