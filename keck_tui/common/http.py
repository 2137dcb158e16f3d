"""The one HTTP JSON client (aiohttp): bounded reads, one error mapping, no secrets in errors.

Every document keck-top fetches (agents, Keck controllers, Prometheus, Redfish BMCs, the
kubelet) comes through here:

* the body is read in chunks up to ``max_bytes`` (after gzip: a compressed bomb stops at
  the cap too); an answer that says or turns out to be larger is an error, never read whole;
* one total timeout covers connecting, sending and reading the whole body, so an endless
  or trickling answer ends there;
* JSON nested deeper than ``max_depth`` is rejected (:mod:`keck_tui.common.bounded`:
  Python's parser raises RecursionError on very deep nesting, that becomes the same error);
* headers are per request: the caller attaches credentials (``bearer(token)``) only to
  requests for its own origin (see :mod:`keck_tui.common.urls`); redirects are followed
  only within the origin asked (aiohttp would carry custom headers such as
  ``X-Auth-Token`` to any host a redirect names);
* every failure is an :class:`HttpError` with one short line (``cannot connect: …``,
  ``timed out after 2 s``, ``HTTP 401: …``, ``answer is not JSON: …``) and a ``kind``. No
  message contains a header value sent with the request (a token or password).
"""
from __future__ import annotations

import asyncio
import errno
import json
import os
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from keck_tui.common import bounded
from keck_tui.common.text import terminal_safe
from keck_tui.common.urls import UrlError, redact, resolve_same_origin

if TYPE_CHECKING:  # aiohttp is imported when a request is made: --once --json never loads it
    import aiohttp

MAX_BYTES = 32 * 1024 * 1024
MAX_DEPTH = bounded.MAX_NESTING
CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
SECRET_HEADERS = frozenset({"authorization", "x-auth-token", "cookie", "proxy-authorization"})
#: HttpError kinds.
TIMEOUT, CONNECT, TLS, STATUS, TOO_LARGE, BAD_JSON, PROTOCOL = (
    "timeout", "connect", "tls", "status", "too-large", "json", "protocol")


class HttpError(Exception):
    """A request failed; ``str()`` is one short line for a status or a stale row."""

    def __init__(self, message: str, kind: str = PROTOCOL, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


def bearer(token: str | None) -> dict[str, str]:
    """``Authorization: Bearer <token>`` (none without a token), for the caller's own origin."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def client_tls(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext | bool | None:
    """TLS for aiohttp: verify (None, the default), a private CA, or no verification (False).

    ValueError when the CA file cannot be loaded.
    """
    if insecure:
        return False
    if ca_file:
        try:  # read bounded first: a FIFO or /dev/zero as --ca-file must not hang or fill memory
            pem = bounded.read_file(ca_file, bounded.CONFIG_FILE, "CA file").decode("ascii", "replace")
            return ssl.create_default_context(cadata=pem)
        except bounded.BoundedInputError as exc:
            raise ValueError(str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load CA file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from None
    return None


def client_session(connections: int = 100, **kwargs: Any) -> aiohttp.ClientSession:
    """A session with at most ``connections`` open connections (create it inside the loop)."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), **kwargs)


async def request(session: aiohttp.ClientSession, method: str, url: str, *,
                  params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                  json_body: Any = None, timeout: float = 5.0, ssl: ssl.SSLContext | bool | None = None,
                  max_bytes: int = MAX_BYTES, peer: str = "server", redirects: bool = True) -> Answer:
    """One request; the answer's body read up to ``max_bytes``. Transport failures → HttpError.

    ``peer`` names the other side in hints ("is it an https:// agent?"). Redirects are followed
    only within the origin of ``url``; ``redirects=False`` answers a 3xx as it is.
    """
    import aiohttp

    secrets = _secrets(headers)
    kwargs: dict[str, Any] = {"params": params, "headers": dict(headers or {}),
                              "timeout": aiohttp.ClientTimeout(total=timeout)}
    if ssl is not None:
        kwargs["ssl"] = ssl
    if json_body is not None:
        kwargs["json"] = json_body
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                async with session.request(method, url, allow_redirects=False, **kwargs) as resp:
                    location = resp.headers.get("Location") if redirects and resp.status in REDIRECTS else None
                    if location is None:
                        body = await _read_capped(resp, max_bytes)
                        return Answer(resp.status, resp.reason or "", dict(resp.headers), body)
                    status = resp.status
                url = _redirect_target(url, location)  # the same origin, or an error: headers carry secrets
                kwargs["params"] = None  # the new location carries its own query
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method = "GET"
                    kwargs.pop("json", None)
            raise HttpError(f"more than {MAX_REDIRECTS} redirects", PROTOCOL)
    except HttpError:
        raise
    except (asyncio.TimeoutError, TimeoutError):
        raise HttpError(f"timed out after {timeout:g} s", TIMEOUT) from None
    except aiohttp.ClientError as exc:
        raise _client_error(exc, url, peer, secrets) from None
    except (OSError, ValueError) as exc:  # a refused or malformed request, e.g. a bad header value
        raise HttpError(_scrub(f"{type(exc).__name__}: {exc}", secrets)[:200], PROTOCOL) from None


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > max_bytes and "Content-Encoding" not in resp.headers:
        raise HttpError(f"answer too large: {declared} bytes (the limit is {max_bytes})", TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            resp.close()  # drop the connection: the rest is never read
            raise HttpError(f"answer too large: more than {max_bytes} bytes", TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def _redirect_target(url: str, location: str) -> str:
    try:
        return resolve_same_origin(url, location)
    except UrlError:
        raise HttpError(f"redirected to another origin ({terminal_safe(redact(location), 120)}): not followed",
                        PROTOCOL) from None


def status_error(answer: Answer, secrets: frozenset[str] = frozenset()) -> HttpError:
    """``HTTP 401: missing or wrong bearer token`` (the peer's JSON ``error``, else its reason)."""
    reason = _reason(answer.body) or answer.reason
    text = f"HTTP {answer.status}: {reason}" if reason else f"HTTP {answer.status}"
    return HttpError(_scrub(text, secrets), STATUS, answer.status)


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON answer, nested at most ``max_depth`` deep (:func:`keck_tui.common.bounded.parse_json`)."""
    try:
        return bounded.parse_json(body, max_depth=max_depth, what="answer")
    except bounded.BoundedInputError as exc:
        raise HttpError(str(exc), BAD_JSON) from None


async def get_json(session: aiohttp.ClientSession, url: str, *, params: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None, timeout: float = 5.0,
                   ssl: ssl.SSLContext | bool | None = None, max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH, allow_404: bool = False, peer: str = "server") -> Any:
    """GET ``url`` and return its JSON (None for a 404 when ``allow_404``); HttpError otherwise."""
    answer = await request(session, "GET", url, params=params,
                           headers={"Accept": "application/json", "Accept-Encoding": "gzip", **(headers or {})},
                           timeout=timeout, ssl=ssl, max_bytes=max_bytes, peer=peer)
    if answer.status == 404 and allow_404:
        return None
    if answer.status >= 400:
        raise status_error(answer, _secrets(headers))
    return parse_json(answer.body, max_depth)


def _secrets(headers: Mapping[str, str] | None) -> frozenset[str]:
    out = set()
    for k, v in (headers or {}).items():
        if k.lower() in SECRET_HEADERS and v:
            out.add(str(v))
            # the token without "Bearer " (a short one would blank out ordinary words)
            out.update(p for p in str(v).split() if len(p) >= 8)
    return frozenset(out)


def _scrub(text: str, secrets: frozenset[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def _client_error(exc: aiohttp.ClientError, url: str, peer: str, secrets: frozenset[str]) -> HttpError:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return HttpError(f"TLS verification failed: certificate not trusted ({exc.certificate_error})", TLS)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HttpError(f"cannot connect: {_connect_reason(exc.os_error, peer)}", CONNECT)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        hint = f" (is it an https:// {peer}?)" if url.startswith("http://") else ""
        return HttpError(f"server disconnected{hint}", CONNECT)
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        # e.g. a pooled keep-alive connection the peer dropped, or a peer restarting
        return HttpError(f"connection lost ({os.strerror(exc.errno)})", CONNECT)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return HttpError("the answer broke off (" + _scrub(str(exc), secrets)[:120] + ")", PROTOCOL)
    return HttpError(_scrub(f"{type(exc).__name__}: {exc}", secrets)[:200], PROTOCOL)


def _connect_reason(err: OSError, peer: str) -> str:
    """``Connection refused`` rather than asyncio's ``Connect call failed ('10.0.0.1', 9464)``."""
    if isinstance(err, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(err):
        return f"TLS handshake failed: the server does not speak TLS (is it an http:// {peer}?)"
    text = str(err.strerror or err)
    if text.startswith("Connect call failed") and err.errno and err.errno > 0:
        return os.strerror(err.errno)
    if text.startswith("Multiple exceptions") and f"[Errno {errno.ECONNREFUSED}]" in text:  # all refused
        return os.strerror(errno.ECONNREFUSED)
    return text


def _reason(body: bytes) -> str:
    """The ``error`` of a JSON error body, else the start of the body; printable characters only."""
    try:
        doc = json.loads(body[:4096])
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = body[:120].decode("utf-8", "replace").strip()
    else:
        text = doc["error"][:200] if isinstance(doc, dict) and isinstance(doc.get("error"), str) else ""
    return terminal_safe(" ".join(text.split()))
