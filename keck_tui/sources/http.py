"""One JSON GET with a timeout, a bearer token and readable errors (aiohttp client)."""
from __future__ import annotations

import asyncio
import errno
import json
import os
import ssl
from typing import Any, Mapping

import aiohttp


class FetchError(Exception):
    """A remote call failed; the message is one short line for a stale row."""


def client_ssl(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext | bool | None:
    """TLS setting for aiohttp: verify (default), a private CA, or no verification."""
    if insecure:
        return False
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load CA file {ca_file}: {exc}") from None
    return None


async def fetch_json(session: aiohttp.ClientSession, url: str, *, params: Mapping[str, str] | None = None,
                     token: str | None = None, timeout: float = 2.0,
                     ssl_setting: ssl.SSLContext | bool | None = None, allow_404: bool = False) -> Any:
    headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {}
    if ssl_setting is not None:
        kwargs["ssl"] = ssl_setting
    try:
        async with session.get(url, params=params, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout), **kwargs) as resp:
            body = await resp.read()
            if resp.status == 404 and allow_404:
                return None
            if resp.status >= 400:
                raise FetchError(f"HTTP {resp.status}: {_reason(body) or resp.reason}")
    except asyncio.TimeoutError:
        raise FetchError(f"timed out after {timeout:g} s") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchError(f"TLS certificate not trusted: {exc.certificate_error}") from None
    except aiohttp.ClientConnectorError as exc:
        raise FetchError(f"cannot connect: {_connect_reason(exc.os_error)}") from None
    except aiohttp.ServerDisconnectedError:
        hint = " (is it an https:// agent?)" if url.startswith("http://") else ""
        raise FetchError(f"server disconnected{hint}") from None
    except aiohttp.ClientError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}"[:200]) from None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchError("answer is not JSON") from None


def _connect_reason(err: OSError) -> str:
    """``Connection refused`` rather than asyncio's ``Connect call failed ('10.0.0.1', 9464)``."""
    if isinstance(err, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(err):
        return "TLS handshake failed: the server does not speak TLS (is it an http:// agent?)"
    text = str(err.strerror or err)
    if text.startswith("Connect call failed") and err.errno and err.errno > 0:
        return os.strerror(err.errno)
    if text.startswith("Multiple exceptions") and f"[Errno {errno.ECONNREFUSED}]" in text:  # all refused
        return os.strerror(errno.ECONNREFUSED)
    return text


def _reason(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:120].decode("utf-8", "replace").strip()
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"][:200]
    return ""
