"""keck_tui.common.http: size cap, timeout, depth limit, error mapping, no secret in errors.

Against a local aiohttp server (tests/fakes/http_server.py) that misbehaves on purpose.
"""
from __future__ import annotations

import asyncio
import gzip
import socket
import time

import aiohttp
import pytest
from aiohttp import web

from keck_tui.common import http
from keck_tui.common.http import HttpError, bearer, get_json, parse_json, request
from tests.fakes.http_server import serve_in_thread

TOKEN = "s3cret-token-value"


def _app(sent: dict[str, int] | None = None) -> web.Application:
    sent = sent if sent is not None else {}

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"rows": [')
        sent["endless"] = 0
        try:
            while True:  # never ends: only the client's cap stops it
                await resp.write(b'"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",' * 1024)
                sent["endless"] += 1
        except (ConnectionError, asyncio.CancelledError):
            return resp

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b" ")
            await asyncio.sleep(0.1)
        return resp

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 600_000 + b"1]", content_type="application/json")

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b" " * 5_000_000 + b"{}"), content_type="application/json",
                            headers={"Content-Encoding": "gzip"})

    async def deep(request: web.Request) -> web.Response:
        n = int(request.query.get("n", "100000"))
        return web.Response(body=b"[" * n + b"]" * n, content_type="application/json")

    async def doc(request: web.Request) -> web.Response:
        return web.Response(body=request.query["body"].encode(), content_type="application/json")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        echo = request.headers.get("Authorization", "")
        if request.query.get("json"):
            return web.json_response({"error": f"bad token {echo}"}, status=code)
        return web.Response(status=code, text=f"denied \x1b[31m{echo}\x07")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def headers(request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    app = web.Application()
    for path, handler in (("/endless", endless), ("/trickle", trickle), ("/big", big), ("/bomb", bomb),
                          ("/deep", deep), ("/doc", doc), ("/status/{code}", status), ("/slow", slow),
                          ("/headers", headers)):
        app.router.add_get(path, handler)
    return app


async def _get(url: str, **kw):
    async with aiohttp.ClientSession() as session:
        return await get_json(session, url, **kw)


def test_endless_chunked_body_stops_at_the_cap():
    sent: dict[str, int] = {}
    with serve_in_thread(_app(sent)) as base:
        t0 = time.monotonic()
        with pytest.raises(HttpError) as e:
            asyncio.run(_get(f"{base}/endless", max_bytes=1_000_000, timeout=20))
        took = time.monotonic() - t0
    assert e.value.kind == http.TOO_LARGE and str(e.value) == "answer too large: more than 1000000 bytes"
    assert took < 5  # stopped by the cap, not by the 20 s timeout


def test_declared_size_over_the_cap_is_refused_and_gzip_is_capped_after_decompression():
    with serve_in_thread(_app()) as base:
        with pytest.raises(HttpError, match=r"^answer too large: 1200003 bytes \(the limit is 1000000\)$"):
            asyncio.run(_get(f"{base}/big", max_bytes=1_000_000))
        assert len(asyncio.run(_get(f"{base}/big"))) == 600_001
        with pytest.raises(HttpError, match="answer too large: more than 1000000 bytes"):
            asyncio.run(_get(f"{base}/bomb", max_bytes=1_000_000))  # 5 kB on the wire, 5 MB inflated


def test_total_timeout_covers_a_trickling_body_and_a_slow_answer():
    with serve_in_thread(_app()) as base:
        for path in ("/trickle", "/slow"):
            t0 = time.monotonic()
            with pytest.raises(HttpError) as e:
                asyncio.run(_get(base + path, timeout=0.5))
            assert str(e.value) == "timed out after 0.5 s" and e.value.kind == http.TIMEOUT
            assert time.monotonic() - t0 < 3


def test_depth_limit_and_recursion_error_are_the_mapped_error():
    with serve_in_thread(_app()) as base:
        for n, limit in ((100_000, 64), (65, 64), (10, 8)):
            with pytest.raises(HttpError) as e:
                asyncio.run(_get(f"{base}/deep?n={n}", max_depth=limit))
            assert e.value.kind == http.BAD_JSON and str(e.value) in (
                f"answer is nested more than {limit} deep", "answer is nested too deeply")
        doc = asyncio.run(_get(f"{base}/deep?n=64", max_depth=64))
        for _ in range(63):
            doc = doc[0]
        assert doc == []


@pytest.mark.parametrize("body, message", [
    ("{not json", "answer is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("", "answer is not JSON: Expecting value: line 1 column 1 (char 0)"),
])
def test_bad_json(body, message):
    with serve_in_thread(_app()) as base:
        with pytest.raises(HttpError) as e:
            asyncio.run(_get(f"{base}/doc", params={"body": body}))
    assert str(e.value) == message and e.value.kind == http.BAD_JSON


def test_parse_json_directly():
    assert parse_json(b'{"a": [1, 2.5, {"b": null}]}') == {"a": [1, 2.5, {"b": None}]}
    with pytest.raises(HttpError, match="answer is not JSON"):
        parse_json(b'"\xff\xfe\xfa"')
    assert parse_json(b'{"a": {"b": {"c": 1}}}', max_depth=3) == {"a": {"b": {"c": 1}}}
    with pytest.raises(HttpError, match="nested more than 3 deep"):
        parse_json(b'{"a": {"b": {"c": {}}}}', max_depth=3)


def test_status_errors_carry_the_status_and_never_the_token():
    with serve_in_thread(_app()) as base:
        with pytest.raises(HttpError) as e:
            asyncio.run(_get(f"{base}/status/401", params={"json": "1"}, headers=bearer(TOKEN)))
        assert e.value.kind == http.STATUS and e.value.status == 401
        assert str(e.value) == "HTTP 401: bad token ***" and TOKEN not in str(e.value)
        with pytest.raises(HttpError) as e:
            asyncio.run(_get(f"{base}/status/403", headers={"X-Auth-Token": TOKEN}))
        msg = str(e.value)
        assert msg.startswith("HTTP 403: denied") and TOKEN not in msg and "\x1b" not in msg and "\x07" not in msg
        assert asyncio.run(_get(f"{base}/status/404", allow_404=True)) is None


def test_headers_are_per_request():
    with serve_in_thread(_app()) as base:
        async def both():
            async with aiohttp.ClientSession() as session:
                a = await get_json(session, f"{base}/headers", headers=bearer(TOKEN))
                b = await get_json(session, f"{base}/headers")
                return a, b
        with_token, without = asyncio.run(both())
    assert with_token["Authorization"] == f"Bearer {TOKEN}" and "Authorization" not in without
    assert bearer(None) == {} and bearer("") == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_errors_and_tls_hints():
    with pytest.raises(HttpError) as e:
        asyncio.run(_get(f"http://127.0.0.1:{_free_port()}/x", timeout=2, headers=bearer(TOKEN)))
    assert str(e.value) == "cannot connect: Connection refused" and e.value.kind == http.CONNECT
    with serve_in_thread(_app()) as base:  # plain HTTP server spoken to with TLS
        with pytest.raises(HttpError) as e:
            asyncio.run(_get(base.replace("http://", "https://") + "/doc", params={"body": "{}"}, timeout=2,
                             peer="agent"))
    assert "does not speak TLS (is it an http:// agent?)" in str(e.value)


def test_untrusted_certificate_is_a_tls_error():
    trustme = pytest.importorskip("trustme")
    import ssl
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with serve_in_thread(_app(), ssl_context=ctx) as base:
        with pytest.raises(HttpError) as e:
            asyncio.run(_get(f"{base}/headers", timeout=2))
        assert e.value.kind == http.TLS and str(e.value).startswith("TLS verification failed: certificate not trusted")
        assert asyncio.run(_get(f"{base}/headers", timeout=2, ssl=False))["Host"].startswith("127.0.0.1")


def test_a_bad_header_value_is_an_error_without_the_secret():
    async def go():
        async with aiohttp.ClientSession() as session:
            await request(session, "GET", "http://127.0.0.1:9/x", headers={"Authorization": f"Bearer {TOKEN}\r\nX: y"})
    with pytest.raises(HttpError) as e:
        asyncio.run(go())
    assert TOKEN not in str(e.value) and "\n" not in str(e.value)


def test_client_tls(tmp_path):
    assert http.client_tls() is None and http.client_tls(insecure=True) is False
    with pytest.raises(ValueError, match="cannot load CA file"):
        http.client_tls(str(tmp_path / "missing.pem"))


def test_redirects_stay_on_the_origin_asked():
    """aiohttp carries custom headers (X-Auth-Token) to any host a redirect names: only
    redirects within the origin are followed."""
    seen: list[str] = []

    async def other(request: web.Request) -> web.Response:
        seen.append(f"{request.path} {request.headers.get('X-Auth-Token', '')}")
        return web.json_response({"stolen": True})

    evil = web.Application()
    evil.router.add_get("/{tail:.*}", other)
    with serve_in_thread(evil) as evil_base:
        async def hop(request: web.Request) -> web.Response:
            where = request.query["to"]
            raise web.HTTPFound(where if where.startswith("http") else where)

        async def final(request: web.Request) -> web.Response:
            return web.json_response({"token": request.headers.get("X-Auth-Token"), "q": request.query.get("q")})

        async def loop(request: web.Request) -> web.Response:
            raise web.HTTPFound("/loop")

        app = web.Application()
        app.router.add_get("/hop", hop)
        app.router.add_get("/final", final)
        app.router.add_get("/loop", loop)
        with serve_in_thread(app) as base:
            same = asyncio.run(_get(f"{base}/hop", params={"to": "/final?q=1"}, headers={"X-Auth-Token": TOKEN}))
            assert same == {"token": TOKEN, "q": "1"}
            with pytest.raises(HttpError) as e:
                asyncio.run(_get(f"{base}/hop", params={"to": f"{evil_base}/x"}, headers={"X-Auth-Token": TOKEN}))
            assert "redirected to another origin" in str(e.value) and TOKEN not in str(e.value)
            with pytest.raises(HttpError, match="more than 5 redirects"):
                asyncio.run(_get(f"{base}/loop"))
    assert seen == []
