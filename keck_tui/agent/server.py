"""Running the agent: --listen parsing, TLS context, the serve loop with clean shutdown."""
from __future__ import annotations

import asyncio
import os
import signal
import ssl
from typing import Callable

from aiohttp import web

from keck_tui.common import bounded
from keck_tui.common.ranges import RANGES, RangeError

from keck_tui.agent.protocol import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, SafeAppRunner

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``[v6]:PORT`` or ``HOST`` → (host, port)."""
    text = text.strip()
    if not text:
        raise ValueError("empty --listen")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad --listen {text!r}: unclosed '['")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        raise ValueError(f"bad --listen {text!r}: write IPv6 addresses as [addr]:port")
    else:
        host, port_text = text, ""
    host = host or DEFAULT_HOST
    if not port_text:
        return host, DEFAULT_PORT
    try:
        port = RANGES["port"].parse(port_text, f"bad --listen {text!r}: the port")
    except RangeError as exc:
        raise ValueError(str(exc)) from None
    return host, port


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server TLS context (TLS 1.2+) from PEM files; raises ValueError with a readable reason."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path, what in ((cert, "TLS certificate"), (key, "TLS key")):
        try:  # OpenSSL would block on a FIFO and read /dev/zero for ever: check them first
            bounded.read_file(path, bounded.CONFIG_FILE, what)
        except bounded.BoundedInputError as exc:
            raise ValueError(str(exc)) from None
        except OSError:
            pass  # missing or unreadable: load_cert_chain below says which
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        # ssl's FileNotFoundError carries no file name: find the missing one ourselves.
        missing = exc.filename or next((f for f in (cert, key) if not os.path.isfile(f)), f"{cert} or {key}")
        raise ValueError(f"TLS file not found: {missing}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return ctx


async def serve(app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                on_ready: Callable[[str], None] | None = None, access_log: bool = False,
                header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
    """Serve until SIGINT/SIGTERM, then shut down cleanly (connections handled by agent/protocol.py)."""
    runner = SafeAppRunner(app, access_log=web.access_logger if access_log else None,
                           header_timeout=header_timeout, max_connections=max_connections,
                           handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    scheme = "https" if ssl_context else "http"
    bound = runner.addresses[0] if runner.addresses else (host, port)
    shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
    if on_ready:
        on_ready(f"{scheme}://{shown}:{bound[1]}")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
