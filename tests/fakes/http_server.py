"""A local aiohttp server on its own thread, for tests of HTTP clients (kubelet, Redfish)."""
from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Iterator

from aiohttp import web


@contextmanager
def serve_in_thread(app: web.Application, ssl_context=None) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) until the block ends; yields the base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        # A handler still running when the block ends (a peer that hangs on purpose) is cancelled
        # after a second, not waited for (aiohttp's default is 60 s; the join below gives up at 10).
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(box["runner"].cleanup())  # type: ignore[union-attr]
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    started.wait(10)
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{box['port']}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
