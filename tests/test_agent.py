"""The agent's HTTP API: endpoints, drill-down, auth, errors, history, TLS, shared collector."""
from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import ssl
import subprocess
import threading
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.agent_procs import REPO, AgentProc
from keck_tui.agent import auth as auth_mod
from keck_tui.agent.app import AgentService, build_app
from fakes.snapshots import fake_snapshot
from keck_tui.agent.history import History
from keck_tui.common import tokens
from keck_tui.feed import StaticFeed, ThreadedFeed
from keck_tui.model import Snapshot

TOKEN = "s3cret-token-abc"


def _service(snaps=None, **kw) -> tuple[StaticFeed, AgentService]:
    feed = StaticFeed(snaps or [fake_snapshot("node-a", 100.0)])
    return feed, AgentService(feed, **kw)


async def _client(service: AgentService, token: str | None = None) -> TestClient:
    client = TestClient(TestServer(build_app(service, token)))
    await client.start_server()
    return client


async def test_whole_snapshot_round_trips() -> None:
    feed, svc = _service()
    client = await _client(svc)
    try:
        resp = await client.get("/api/v1/snapshot")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        snap = Snapshot.from_json(await resp.json())
        assert snap == feed.latest()
        assert snap.root.watts == 100.0
    finally:
        await client.close()


async def test_drill_down_path_and_depth() -> None:
    _, svc = _service()
    client = await _client(svc)
    try:
        resp = await client.get("/api/v1/snapshot", params={"path": "node-a/ns-ns0", "depth": "1"})
        assert resp.status == 200
        doc = await resp.json()
        assert doc["path"] == ["node-a", "ns-ns0"]
        row = doc["root"]
        assert row["id"] == "ns-ns0" and row["watts"] == pytest.approx(40.0)
        assert [c["id"] for c in row["children"]] == ["pod-pod0-0", "pod-pod0-1"]
        # depth 1: the pods come without their containers, flagged as having children
        assert all(c["children"] == [] and c["has_children"] is True for c in row["children"])
        resp = await client.get("/api/v1/snapshot", params={"depth": "0"})
        doc = await resp.json()
        assert doc["root"]["children"] == [] and doc["root"]["has_children"] is True
        resp = await client.get("/api/v1/snapshot",
                                params={"path": "node-a/ns-ns1/pod-pod1-1/c-pod1-1/pid1111"})
        doc = await resp.json()
        assert doc["root"]["pid"] == 1111 and doc["root"]["watts"] == pytest.approx(10.0)
    finally:
        await client.close()


@pytest.mark.parametrize("query,status,fragment", [
    ({"path": "node-a/nope"}, 404, "no row at path"),
    ({"path": "other-node"}, 404, "no row at path"),
    ({"path": "node-a//ns-ns0"}, 400, "empty id"),
    ({"depth": "deep"}, 400, "whole number"),
    ({"depth": "-1"}, 400, "between 0"),
    ({"depth": "100000"}, 400, "between 0"),
    ({"verbose": "1"}, 400, "unknown query parameter"),
    ({"path": "x" * 5000}, 400, "too long"),
])
async def test_bad_snapshot_queries_are_4xx_json(query, status, fragment) -> None:
    _, svc = _service()
    client = await _client(svc)
    try:
        resp = await client.get("/api/v1/snapshot", params=query)
        assert resp.status == status
        doc = await resp.json()
        assert fragment in doc["error"] and doc["status"] == status
        assert "Traceback" not in await resp.text()
    finally:
        await client.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/api/v1/snapshot", "/api/v1/history", "/metrics", "/healthz"])
async def test_read_only_other_methods_405(method, path) -> None:
    _, svc = _service()
    client = await _client(svc)
    try:
        resp = await client.request(method, path, data=b"{}")
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"]
        assert (await resp.json())["error"].startswith(f"method {method} not allowed")
    finally:
        await client.close()


async def test_unknown_endpoint_404_json() -> None:
    _, svc = _service()
    client = await _client(svc)
    try:
        resp = await client.get("/api/v2/whatever")
        assert resp.status == 404
        assert (await resp.json()) == {"error": "no such endpoint", "status": 404}
    finally:
        await client.close()


async def test_internal_error_is_500_json_without_traceback(monkeypatch) -> None:
    _, svc = _service()
    client = await _client(svc)
    try:
        await client.get("/api/v1/snapshot")  # ingest first
        def boom(*a, **k):
            raise RuntimeError("secret internals")
        monkeypatch.setattr(svc, "subtree", boom)
        resp = await client.get("/api/v1/snapshot", params={"depth": "1"})
        assert resp.status == 500
        text = await resp.text()
        assert "secret internals" not in text and "Traceback" not in text
        assert json.loads(text)["error"].startswith("internal error")
    finally:
        await client.close()


async def test_no_snapshot_yet_is_503() -> None:
    class Empty(StaticFeed):
        def latest(self):
            return None
    svc = AgentService(Empty([fake_snapshot()]))
    client = await _client(svc)
    try:
        resp = await client.get("/api/v1/snapshot")
        assert resp.status == 503 and "first sample" in (await resp.json())["error"]
        resp = await client.get("/healthz")
        assert resp.status == 200 and (await resp.json())["status"] == "starting"
    finally:
        await client.close()


async def test_auth_missing_wrong_right_and_compare_digest_used(monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_mod.hmac, "compare_digest", spy)
    _, svc = _service()
    client = await _client(svc, token=TOKEN)
    try:
        for path in ("/api/v1/snapshot", "/api/v1/history", "/metrics", "/nope"):
            resp = await client.get(path)
            assert resp.status == 401, path
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in await resp.text()
        assert calls == []  # no header: nothing to compare
        resp = await client.get("/api/v1/snapshot", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
        assert calls[-1] == (b"wrong", TOKEN.encode())
        resp = await client.get("/api/v1/snapshot", headers={"Authorization": f"Basic {TOKEN}"})
        assert resp.status == 401
        resp = await client.get("/api/v1/snapshot", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200
        assert calls[-1] == (TOKEN.encode(), TOKEN.encode())
        resp = await client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        assert resp.status == 200
        resp = await client.get("/healthz")  # health stays open for probes
        assert resp.status == 200
    finally:
        await client.close()


def test_token_file_rules(tmp_path) -> None:
    f = tmp_path / "tok"
    f.write_text("  abc123\n")
    assert tokens.load_token(f) == "abc123"
    f.write_text("\n")
    with pytest.raises(tokens.TokenError, match="empty"):
        tokens.load_token(f)
    with pytest.raises(tokens.TokenError, match="does not exist"):
        tokens.load_token(tmp_path / "missing")
    assert auth_mod.is_loopback("127.0.0.1") and auth_mod.is_loopback("::1")
    assert auth_mod.is_loopback("localhost") and not auth_mod.is_loopback("0.0.0.0")
    assert not auth_mod.is_loopback("example.org")


async def test_history_bounds_and_since() -> None:
    snaps = [fake_snapshot("node-a", 100.0 + i, time=1000.0 + i) for i in range(10)]
    feed = StaticFeed(snaps)
    svc = AgentService(feed, history=History(max_entries=4))
    client = await _client(svc)
    try:
        for i in range(10):
            feed.index = i
            svc.ingest()
        resp = await client.get("/api/v1/history", params={"path": "node-a"})
        doc = await resp.json()
        assert [p["time"] for p in doc["points"]] == [1006.0, 1007.0, 1008.0, 1009.0]
        assert [p["watts"] for p in doc["points"]] == [106.0, 107.0, 108.0, 109.0]
        assert doc["points"][0]["watts_lo"] == pytest.approx(106.0 * 0.95)
        resp = await client.get("/api/v1/history", params={"path": "node-a/ns-ns0", "since": "1008"})
        doc = await resp.json()
        assert [p["watts"] for p in doc["points"]] == pytest.approx([108.0 * 0.4, 109.0 * 0.4])
        assert (await client.get("/api/v1/history")).status == 200  # root by default
        resp = await client.get("/api/v1/history", params={"path": "node-a/ghost"})
        assert resp.status == 404
        resp = await client.get("/api/v1/history", params={"since": "yesterday"})
        assert resp.status == 400
        resp = await client.get("/api/v1/history", params={"since": "nan"})
        assert resp.status == 400
    finally:
        await client.close()


def test_history_byte_cap_keeps_memory_bounded() -> None:
    import sys
    big = [fake_snapshot("n", 50.0, time=float(i), namespaces=10, pods=10, processes=5) for i in range(200)]
    rows = sum(1 for _ in big[0].root.walk())
    hist = History(max_entries=10_000, max_bytes=200_000)
    for s in big:
        hist.add(s)
    assert hist.nbytes <= 200_000
    strings = sum(sys.getsizeof("/".join(p)) + 72 for p, _ in big[0].root.walk())
    fixed = strings + 8 * rows + 120  # one shared key set: same shape every time
    per_entry = 8 * 3 * rows + 96
    assert len(hist) == (200_000 - fixed) // per_entry
    assert hist.nbytes == fixed + len(hist) * per_entry
    assert hist.dropped == 200 - len(hist)


def test_history_shape_churn_releases_key_sets_and_strings() -> None:
    hist = History(max_entries=3)
    for i in range(20):
        hist.add(fake_snapshot(f"host{i}", 10.0, time=float(i)))
    assert len(hist) == 3 and len(hist._keysets) == 3
    assert not hist.known("host0") and hist.known("host19/ns-ns1")
    per_set = sum(1 for _ in fake_snapshot().root.walk())
    assert len(hist._strings) == 3 * per_set  # paths of evicted shapes are gone
    assert hist.nbytes == (sum(e.nbytes for e in hist._entries) + sum(k.nbytes for k, _ in hist._keysets.values())
                           + sum(__import__("sys").getsizeof(k) + 72 for k in hist._strings))
    # processes churning under a stable tree share the path strings that stay
    hist2 = History(max_entries=100)
    hist2.add(fake_snapshot("n", 10.0, processes=2))
    hist2.add(fake_snapshot("n", 10.0, processes=3))
    assert len(hist2._keysets) == 2
    assert all(c == 2 for k, (_, c) in hist2._strings.items() if "pid" not in k or k.endswith(("pid100", "pid101")))


async def test_gzip_body_when_asked() -> None:
    feed, svc = _service([fake_snapshot("node-a", 80.0, namespaces=20, pods=20)])
    client = await _client(svc)
    try:
        resp = await client.get("/api/v1/snapshot", headers={"Accept-Encoding": "gzip"})
        assert resp.headers["Content-Encoding"] == "gzip"
        assert Snapshot.from_json(await resp.json()) == feed.latest()
    finally:
        await client.close()


async def test_tls_with_self_signed_cert(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_pem)
    for pem in cert.cert_chain_pems[1:]:
        with open(cert_pem, "ab") as fh:
            fh.write(pem.bytes())
    cert.private_key_pem.write_to_path(key_pem)
    from keck_tui.agent.server import tls_context
    server_ctx = tls_context(str(cert_pem), str(key_pem))
    _, svc = _service()
    runner = web.AppRunner(build_app(svc, TOKEN))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/api/v1/snapshot", ssl=client_ctx,
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["root"]["watts"] == 100.0
            # an untrusted client refuses the self-signed chain
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(f"https://127.0.0.1:{port}/healthz"):
                    pass
            # plain HTTP to the TLS port gets no answer
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz"):
                    pass
    finally:
        await runner.cleanup()
    with pytest.raises(ValueError, match="not found"):
        tls_context(str(tmp_path / "none.pem"), str(key_pem))
    # the message names the missing file (ssl's own error carries no file name)
    with pytest.raises(ValueError, match=f"TLS file not found: {tmp_path / 'nokey.pem'}$"):
        tls_context(str(cert_pem), str(tmp_path / "nokey.pem"))


async def test_one_collector_serves_a_hundred_clients() -> None:
    produced = 0
    lock = threading.Lock()

    def produce() -> Snapshot:
        nonlocal produced
        with lock:
            produced += 1
        return fake_snapshot("node-a", 100.0, time=time.time())

    feed = ThreadedFeed(produce, interval=0.2)
    feed.start()
    svc = AgentService(feed)
    client = await _client(svc)
    try:
        await asyncio.sleep(0.3)
        start = time.monotonic()
        for _ in range(3):
            resps = await asyncio.gather(*(client.get("/api/v1/snapshot") for _ in range(100)))
            assert all(r.status == 200 for r in resps)
            for r in resps:
                await r.read()
        elapsed = time.monotonic() - start + 0.3
        # sampling follows the interval, not the request count (300 requests here)
        assert produced <= elapsed / 0.2 + 2
        assert svc.ingested <= produced
    finally:
        await client.close()
        feed.stop()


def _serve_args(**kw) -> argparse.Namespace:
    from keck_tui.commands import serve as command
    parser = argparse.ArgumentParser()
    command.configure(parser)
    argv: list[str] = []
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        argv += [flag] if v is True else [flag, str(v)]
    return parser.parse_args(argv)


def test_serve_refuses_non_loopback_without_token(tmp_path, monkeypatch) -> None:
    from keck_tui.commands import serve as command
    from keck_tui.commands.base import CliError
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(CliError, match="refusing to listen on 0.0.0.0 without a token"):
        command.run(_serve_args(listen="0.0.0.0:9999"))
    with pytest.raises(CliError, match="go together"):
        command.run(_serve_args(listen="127.0.0.1:9999", tls_cert="x.pem"))
    with pytest.raises(CliError, match="does not exist"):
        command.run(_serve_args(listen="0.0.0.0:9999", token_file=str(tmp_path / "nope")))
    with pytest.raises(CliError, match="port"):
        command.run(_serve_args(listen="127.0.0.1:http"))


def test_serve_options_come_from_flags_then_the_agent_table(tmp_path, monkeypatch) -> None:
    from keck_tui.commands.base import settings_from_args
    from keck_tui.commands.serve import serve_config
    tok = tmp_path / "tok"
    tok.write_text("s3cret\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[agent]\nlisten = '0.0.0.0:9999'\ntoken_file = '{tok}'\nhistory_minutes = 3\ntop_processes = 7\n")
    args = _serve_args(config=str(cfg), max_pods=9)
    c = serve_config(args, settings_from_args(args))
    assert (c.host, c.port, c.token, c.history_minutes, c.top_processes, c.max_pods, c.history_max_mb) == \
        ("0.0.0.0", 9999, "s3cret", 3.0, 7, 9, 32.0)
    args = _serve_args(config=str(cfg), listen="127.0.0.1:8000", history_minutes=5)
    c = serve_config(args, settings_from_args(args))
    assert (c.host, c.port, c.history_minutes) == ("127.0.0.1", 8000, 5.0)


def test_parse_listen() -> None:
    from keck_tui.agent.server import parse_listen
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen(":8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen("0.0.0.0") == ("0.0.0.0", 9464)
    with pytest.raises(ValueError):
        parse_listen("::1:9000")
    with pytest.raises(ValueError):
        parse_listen("host:70000")


def test_real_serve_process_with_token_never_logs_it(tmp_path) -> None:
    import urllib.error
    import urllib.request

    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    agent = AgentProc(tmp_path, fake_snapshot("tokhost", 9.0),
                      extra=["--token-file", str(tok), "--access-log"])
    agent.url = f"http://127.0.0.1:{agent.port}"
    agent.args[agent.args.index("--listen") + 1] = f"0.0.0.0:{agent.port}"  # beyond loopback: token required
    agent.proc = subprocess.Popen(agent.args, cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{agent.url}/api/v1/snapshot", timeout=1)
            except urllib.error.HTTPError as exc:
                status = exc.code
                break
            except OSError:
                time.sleep(0.1)
        assert status == 401
        req = urllib.request.Request(f"{agent.url}/api/v1/snapshot?depth=0",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=2) as r:
            assert json.loads(r.read())["root"]["id"] == "tokhost"
        with urllib.request.urlopen(f"{agent.url}/healthz", timeout=2) as r:
            assert r.status == 200
    finally:
        agent.proc.terminate()
        _, err = agent.proc.communicate(timeout=10)
    text = err.decode()
    assert "GET /api/v1/snapshot" in text  # the access log ran
    assert TOKEN not in text
