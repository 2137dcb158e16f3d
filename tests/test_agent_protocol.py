"""The agent's connections: no secret in error bodies or logs, slow and surplus connections dropped (issue 12)."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiohttp import web

from keck_tui.agent.protocol import SafeAppRunner

TOKEN = "s3cr3t-token-value"


def _app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", ok)
    app.router.add_get("/api/v1/snapshot", ok)
    return app


async def _start(**limits) -> tuple[SafeAppRunner, int]:
    runner = SafeAppRunner(_app(), access_log=logging.getLogger("keck_tui.agent.access"), **limits)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def _raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_a_control_byte_in_the_authorization_header_is_not_echoed_or_logged(caplog):
    caplog.set_level(logging.DEBUG)
    runner, port = await _start()
    try:
        answer = await _raw(port, b"GET /api/v1/snapshot HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                            + TOKEN.encode() + b"\x7f\r\nConnection: close\r\n\r\n")
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0]
    assert b"application/json" in head and b'"status": 400' in body
    assert TOKEN.encode() not in answer
    assert TOKEN not in caplog.text and "Traceback" not in caplog.text


async def test_the_access_log_has_no_query_string(caplog):
    caplog.set_level(logging.INFO, logger="keck_tui.agent.access")
    runner, port = await _start()
    try:
        answer = await _raw(port, f"GET /healthz?token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                            .encode())
    finally:
        await runner.cleanup()
    assert b" 200 " in answer.split(b"\r\n")[0]
    lines = [r.getMessage() for r in caplog.records if r.name == "keck_tui.agent.access"]
    assert lines and "GET /healthz 200" in lines[0]
    assert TOKEN not in caplog.text and "?" not in lines[0]


async def test_a_slowloris_connection_is_closed_after_the_header_timeout():
    runner, port = await _start(header_timeout=0.5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        await writer.drain()
        t0 = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 5)
        assert data == b"" and 0.4 <= time.monotonic() - t0 < 2.5
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_keep_alive_client_that_keeps_asking_is_not_cut_off():
    runner, port = await _start(header_timeout=0.5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(6):  # 1.8 s over several header timeouts, a request every 0.3 s
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 2)
            assert b" 200 " in status
            await asyncio.wait_for(reader.readuntil(b'{"ok": true}'), 2)
            await asyncio.sleep(0.3)
        writer.close()
    finally:
        await runner.cleanup()


async def test_connections_beyond_the_cap_are_closed_on_arrival():
    runner, port = await _start(max_connections=3, header_timeout=5)
    conns = []
    try:
        for _ in range(3):
            conns.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed at once
        writer.close()
        r0, w0 = conns[0]  # the held ones still work
        w0.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b" 200 " in (await asyncio.wait_for(r0.read(), 2)).split(b"\r\n")[0]
    finally:
        for _, w in conns:
            w.close()
        await runner.cleanup()
