"""The agent's HTTP connections: what aiohttp does by default that an agent beside secrets must not.

- A request aiohttp cannot parse is answered with a fixed JSON 400, never with
  aiohttp's message, which quotes the offending header line — an
  ``Authorization: Bearer <token>\\x7f`` header echoed the token back and wrote
  it, with a traceback, into the log. The log gets one line without it.
- The access log shows the path without its query string (a token someone
  put in ``?token=`` must not land in a log) and never a header.
- Slow or idle connections are closed: a connection must complete a request
  within ``header_timeout`` seconds of opening and of each previous request
  (a slowloris client sending one header byte a second is dropped), and at
  most ``max_connections`` are held at once (more are closed on arrival).

aiohttp has no public hook for its parse-error page, so this subclasses its
request handler; tests pin each behaviour so an aiohttp change that breaks it
fails loudly.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("keck_tui.agent")

DEFAULT_HEADER_TIMEOUT = 10.0  # seconds to send a whole request's headers
DEFAULT_MAX_CONNECTIONS = 256
KEEPALIVE_TIMEOUT = 15.0  # idle keep-alive connections are closed after this


class SafeAccessLogger(AbstractAccessLogger):
    """One line per request: client, method, path (no query), status, size, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %s %s %.1fms", request.remote, request.method, request.path,
                         response.status, response.body_length, 1000 * time)


class _SafeRequestHandler(RequestHandler):
    def __init__(self, *args: Any, header_timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        self._watch: asyncio.TimerHandle | None = None
        self._seen_requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self._manager.connections) > self._max_connections:  # type: ignore[union-attr]
            log.warning("closing a connection: %d are open (limit %d)", len(self._manager.connections),
                        self._max_connections)
            transport.close()
            return
        self._watch = self._loop.call_later(self._header_timeout, self._check_progress)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def _check_progress(self) -> None:
        """Close the connection unless a new request arrived (or one is being answered)."""
        busy = self._current_request is not None
        if self._request_count == self._seen_requests and not busy:
            if self.transport is not None:
                self.transport.close()
            self._watch = None
            return
        self._seen_requests = self._request_count
        self._watch = self._loop.call_later(self._header_timeout, self._check_progress)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's message quotes the request (headers included): neither logged nor sent.
        reason = "bad request" if status == 400 else "internal error"
        if status >= 500:
            log.error("error answering a request from %s: %s", request.remote, type(exc).__name__)
        else:
            log.info("unparseable request from %s (%d, %s)", request.remote, status, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        body = json.dumps({"error": f"{reason}: the request could not be parsed" if status == 400 else reason,
                           "status": status})
        resp = web.Response(status=status, text=body, content_type="application/json")
        resp.force_close()
        return resp


class _SafeServer(web.Server):
    def __init__(self, *args: Any, header_timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = {"header_timeout": header_timeout, "max_connections": max_connections}

    def __call__(self) -> RequestHandler:
        return _SafeRequestHandler(self, loop=self._loop, **self._limits, **self._kwargs)


class SafeAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are handled by :class:`_SafeRequestHandler`."""

    def __init__(self, app: web.Application, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_TIMEOUT)
        kwargs.setdefault("access_log_class", SafeAccessLogger)
        super().__init__(app, **kwargs)
        self._limits = {"header_timeout": header_timeout, "max_connections": max_connections}

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts and freezes the app, as AppRunner does
        return _SafeServer(plain.request_handler, request_factory=plain.request_factory,
                           loop=asyncio.get_running_loop(), **self._limits, **self._kwargs)
