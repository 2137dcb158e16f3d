"""`attach`: fleets of agents merged into fleet → cluster → node; stale and recovered agents."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import aiohttp
import pytest
from aiohttp import web

from tests.agent_procs import REPO, AgentProc, free_port
from keck_tui.agent.app import AgentService, build_app
from fakes.snapshots import fake_snapshot
from keck_tui.feed import StaticFeed
from keck_tui.model import Snapshot
from keck_tui.sources.agents import AgentSource, AgentSpec
from keck_tui.sources.fleet import Fleet, FleetError, RemoteFeed, load_fleet


class FakeAgent:
    """An in-process agent on a fixed loopback port that can be killed and restarted."""

    def __init__(self, host: str, watts: float, token: str | None = None) -> None:
        self.feed = StaticFeed([fake_snapshot(host, watts)])
        self.service = AgentService(self.feed)
        self.token = token
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.AppRunner(build_app(self.service, self.token, ingest=False))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _fleet_of(n: int) -> list[FakeAgent]:
    agents = [FakeAgent(f"node{i:02d}", 10.0 + i) for i in range(n)]
    await asyncio.gather(*(a.start() for a in agents))
    return agents


async def test_fifty_agents_one_killed_goes_stale_then_recovers() -> None:
    agents = await _fleet_of(50)
    clock = Clock()
    # A generous timeout: fifty agents answer from this one loop, slowly on a loaded machine; the
    # killed one is refused at once, so no step below waits for it.
    specs = [AgentSpec(a.url, cluster="east" if i < 25 else "west", timeout=60.0) for i, a in enumerate(agents)]
    fleet = Fleet(AgentSource(specs, monotonic=clock))
    try:
        async with aiohttp.ClientSession() as session:
            await fleet.poll(session)
            snap = fleet.snapshot()
            assert snap.root.level == "fleet" and snap.root.id == "fleet"
            assert [c.id for c in snap.root.children] == ["east", "west"]
            assert all(c.level == "cluster" for c in snap.root.children)
            nodes = [n for c in snap.root.children for n in c.children]
            assert len(nodes) == 50 and all(n.level == "node" for n in nodes)
            assert [n.id for n in nodes] == [f"node{i:02d}" for i in range(50)]
            assert snap.root.watts == pytest.approx(sum(10.0 + i for i in range(50)))
            assert snap.root.children[0].watts == pytest.approx(sum(10.0 + i for i in range(25)))
            assert not any(n.stale for n in nodes)
            # the agents' own trees come along: node → namespace → pod → …
            assert nodes[3].find(("node03", "ns-ns1", "pod-pod1-0")) is not None

            await agents[7].stop()
            clock.now += 1.0
            await fleet.poll(session)
            snap = fleet.snapshot()
            east = snap.root.children[0]
            dead = east.children[7]
            assert dead.stale is True and dead.id == "node07"
            assert dead.error.startswith("cannot connect")
            assert dead.watts == 17.0  # last known watts kept
            assert dead.age_s == pytest.approx(1.0)
            assert snap.warnings == ("1 node(s) stale",)
            assert [n.stale for i, n in enumerate(east.children) if i != 7] == [None] * 24
            status = next(s for s in snap.sources if s.name == "agent east/node07")
            assert status.status == "error" and "cannot connect" in status.detail

            # backoff: the dead agent is not retried at once
            polls = fleet.agents.agents[7].polls
            await fleet.poll(session)
            assert fleet.agents.agents[7].polls == polls

            await agents[7].start()
            clock.now += 60.0
            await fleet.poll(session)
            snap = fleet.snapshot()
            back = snap.root.children[0].children[7]
            assert back.stale is None and back.error is None and back.watts == 17.0
            assert snap.warnings == ()
    finally:
        await asyncio.gather(*(a.stop() for a in agents))


async def test_agent_that_never_answered_is_zero_with_note() -> None:
    clock = Clock()
    port = free_port()
    fleet = Fleet(AgentSource([AgentSpec(f"http://127.0.0.1:{port}", timeout=0.5)], monotonic=clock))
    async with aiohttp.ClientSession() as session:
        await fleet.poll(session)
    node = fleet.snapshot().root.children[0].children[0]
    assert node.stale is True and node.watts == 0.0 and "never answered" in node.note
    assert node.id == f"127.0.0.1:{port}"


async def test_slow_agent_times_out_and_others_update() -> None:
    fast = FakeAgent("fast", 40.0)
    await fast.start()

    async def slow_handler(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response(fake_snapshot("slow", 1.0).to_json())

    slow_app = web.Application()
    slow_app.router.add_get("/api/v1/snapshot", slow_handler)
    runner = web.AppRunner(slow_app)
    await runner.setup()
    slow_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", slow_port).start()
    fleet = Fleet(AgentSource([AgentSpec(fast.url, timeout=0.3),
                               AgentSpec(f"http://127.0.0.1:{slow_port}", timeout=0.3)]))
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            await fleet.poll(session)
            assert time.monotonic() - started < 1.5
        nodes = fleet.snapshot().root.children[0].children
        assert nodes[0].watts == 40.0 and not nodes[0].stale
        assert nodes[1].stale and nodes[1].error == "timed out after 0.3 s"
    finally:
        await fast.stop()
        await runner.cleanup()


async def test_token_and_duplicate_names() -> None:
    a = FakeAgent("same", 5.0, token="tok-1")
    b = FakeAgent("same", 6.0, token="tok-1")
    await asyncio.gather(a.start(), b.start())
    fleet = Fleet(AgentSource([AgentSpec(a.url, token="tok-1"), AgentSpec(b.url, token="wrong")]))
    try:
        async with aiohttp.ClientSession() as session:
            await fleet.poll(session)
        nodes = fleet.snapshot().root.children[0].children
        assert nodes[0].id == "same" and nodes[0].watts == 5.0
        assert nodes[1].stale and nodes[1].error == "HTTP 401: missing or wrong bearer token"
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_remote_feed_lazy_drill_down() -> None:
    agents = await _fleet_of(2)
    feed = RemoteFeed(Fleet(AgentSource([AgentSpec(x.url) for x in agents], depth=1)), interval=0.2)
    heard: list[tuple[object, str]] = []  # (the latest snapshot when told, the thread that told)
    feed.subscribe(lambda: heard.append((feed.latest(), threading.current_thread().name)))
    feed.start()
    try:
        snap = None
        for _ in range(50):
            snap = feed.latest()
            if snap is not None:
                break
            await asyncio.sleep(0.05)
        assert snap is not None
        node = snap.root.children[0].children[0]
        ns = node.children[0]
        assert ns.id == "ns-ns0" and ns.children == () and ns.has_children is True
        feed.request_subtree(("fleet", "default", "node00", "ns-ns0"))
        for _ in range(50):
            await asyncio.sleep(0.05)
            ns = feed.latest().root.children[0].children[0].children[0]
            if ns.children:
                break
        assert [c.id for c in ns.children] == ["pod-pod0-0", "pod-pod0-1"]
        assert ns.children[0].has_children is True  # one more level at a time
        # expanded subtrees stay live across polls
        polls = feed.polls
        while feed.polls < polls + 2:
            await asyncio.sleep(0.05)
        assert feed.latest().root.children[0].children[0].children[0].children
    finally:
        feed.stop()
        await asyncio.gather(*(a.stop() for a in agents))
    # a screen is told of each poll's snapshot and of the drill-down's, on the poller's thread
    assert len(heard) >= feed.polls + 1 and all(s is not None for s, _ in heard)
    assert {name for _, name in heard} == {"keck-remote"}
    assert len({id(s) for s, _ in heard}) == len(heard)


def test_fleet_file(tmp_path) -> None:
    (tmp_path / "prod.token").write_text("prod-secret\n")
    f = tmp_path / "fleet.toml"
    f.write_text("""
timeout = 1.5
[clusters.prod]
token_file = "prod.token"
agents = ["http://10.0.0.1:9464", { url = "https://10.0.0.2:9464", name = "db1" }]
[clusters.lab]
agents = []
keck = "http://keck:8080"
""")
    cfg = load_fleet(f)
    assert [(a.url, a.cluster, a.name, a.token, a.timeout) for a in cfg.agents] == [
        ("http://10.0.0.1:9464", "prod", None, "prod-secret", 1.5),
        ("https://10.0.0.2:9464", "prod", "db1", "prod-secret", 1.5)]
    assert cfg.keck == [("lab", "http://keck:8080", None)]
    for text, msg in [("[clusters.x]\nagents = ['ftp://a']", "must start with http"),
                      ("[clusters.x]\nagents = ['http://']", "must start with http"),  # no host
                      ("[clusters.x]\nagents = ['http://a:99999']", "bad port"),
                      ("[clusters.x]\nagents = [{ url = 'http://u:pw@a' }]", "credentials in the URL are refused"),
                      ("[clusters.x]\nkeck = 'http://'", "keck URL: not an http"),
                      ("[clusters.x]\nagnets = []", "unknown key 'agnets'"),
                      ("timeout = 'x'\n[clusters.x]\nagents=['http://a']", "timeout must be"),
                      ("[clusters.x]\nagents = []", "no agents"),
                      ("clusters = 3", "needs at least one"),
                      ("[clusters.x]\ntoken_file = 'missing'\nagents=['http://a']", "does not exist"),
                      ("[clusters", "fleet file")]:
        f.write_text(text)
        with pytest.raises(FleetError, match=msg):
            load_fleet(f)


def _attach(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keck_tui", "attach", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_attach_once_json_over_two_real_serve_processes(tmp_path) -> None:
    procs = [AgentProc(tmp_path, fake_snapshot(f"real{i}", 30.0 + i)) for i in range(2)]
    try:
        for p in procs:
            p.start()
        cfg = tmp_path / "none.toml"
        wait = ("--timeout", "60")  # answers come slowly on a loaded machine; a killed agent is refused at once
        out = _attach(procs[0].url, procs[1].url, "--once", "--json", "--cluster", "lab", "--config", str(cfg), *wait)
        assert out.returncode == 0, out.stderr
        snap = Snapshot.from_json(json.loads(out.stdout))
        assert snap.root.level == "fleet"
        assert [(c.level, c.id) for c in snap.root.children] == [("cluster", "lab")]
        nodes = snap.root.children[0].children
        assert [(n.level, n.id, n.watts) for n in nodes] == [("node", "real0", 30.0), ("node", "real1", 31.0)]
        assert snap.root.watts == 61.0
        # full depth with --once
        assert nodes[0].find(("real0", "ns-ns1", "pod-pod1-1", "c-pod1-1", "pid1111")) is not None
        out = _attach(procs[0].url, procs[1].url, "--batch", "-n", "2", "--interval", "0.2", "--config", str(cfg),
                      *wait)
        assert out.returncode == 0, out.stderr
        tables = [t for t in out.stdout.split("\n\n") if t.strip()]
        assert len(tables) == 2
        assert "fleet  61.0 W" in tables[0] and "    real1" in tables[0]
        # one killed: --once still answers, with that node stale
        procs[1].stop()
        out = _attach(procs[0].url, procs[1].url, "--once", "--json", "--config", str(cfg), *wait)
        snap = Snapshot.from_json(json.loads(out.stdout))
        dead = snap.root.children[0].children[1]
        assert dead.stale and dead.watts == 0.0 and dead.error.startswith("cannot connect")
        out = _attach(procs[0].url, "--once", "--config", str(cfg), *wait)
        assert "real0" in out.stdout and "30.0" in out.stdout
    finally:
        for p in procs:
            p.stop()


def test_attach_usage_errors(tmp_path) -> None:
    cfg = tmp_path / "none.toml"
    cfg.write_text("")
    out = _attach("--once", "--config", str(cfg))
    assert out.returncode == 2 and out.stderr.strip() == (
        "keck-top: error: nothing to attach to: give agent URLs, --fleet FILE, --keck URL or --prometheus URL")
    out = _attach("localhost:9464", "--once", "--config", str(cfg))
    assert out.returncode == 2 and "must start with http" in out.stderr
    for url in ("http://", "https://:9464"):  # a prefix check let these through to fail at every poll
        out = _attach(url, "--once", "--config", str(cfg))
        assert out.returncode == 2 and "name a host" in out.stderr and out.stderr.count("\n") == 1
    out = _attach("--keck", "http://", "--once", "--config", str(cfg))
    assert out.returncode == 2 and "--keck: not an http(s) URL" in out.stderr
    out = _attach("--prometheus", "http://u:pw@p:9090", "--once", "--config", str(cfg))
    assert out.returncode == 2 and "credentials in the URL" in out.stderr and "pw" not in out.stderr
    out = _attach("--fleet", str(tmp_path / "missing.toml"), "--once", "--config", str(cfg))
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_two_real_sampling_agents_killed_and_restarted(tmp_path) -> None:
    try:
        from keck_tui import wiring  # noqa: F401
    except ImportError:
        pytest.skip("local sampling (keck_tui.wiring) not available yet")
    flags = ["--no-gpu", "--probes", "procfs"]
    procs = [AgentProc(tmp_path, None, interval=0.3, extra=flags + ["--host-name", f"host{i}"]) for i in range(2)]
    feed = None
    try:
        for p in procs:
            p.start()
        # Generous waits: a sampling agent answers slowly on a loaded machine (a late answer is not
        # what this test is about); a killed one is refused at once.
        feed = RemoteFeed(Fleet(AgentSource([AgentSpec(p.url, timeout=30.0) for p in procs], max_backoff=1.0)),
                          interval=0.3)
        feed.start()

        def wait_for(pred, timeout=90.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                snap = feed.latest()
                if snap is not None and pred(snap):
                    return snap
                time.sleep(0.05)
            raise AssertionError(f"condition not met; last: {feed.latest() and feed.latest().warnings}")

        snap = wait_for(lambda s: all(not n.stale for n in s.root.children[0].children))
        nodes = snap.root.children[0].children
        assert [n.id for n in nodes] == ["host0", "host1"]
        assert all(n.watts > 0 and n.level == "node" for n in nodes)
        assert snap.root.watts == pytest.approx(sum(n.watts for n in nodes))
        procs[1].stop()
        snap = wait_for(lambda s: s.root.children[0].children[1].stale is True)
        dead = snap.root.children[0].children[1]
        assert dead.watts > 0 and dead.error and dead.age_s is not None
        assert not snap.root.children[0].children[0].stale  # the other keeps updating
        t0 = snap.time
        snap = wait_for(lambda s: s.time > t0 + 0.5)
        assert not snap.root.children[0].children[0].stale
        procs[1].start()
        wait_for(lambda s: not s.root.children[0].children[1].stale)
    finally:
        if feed is not None:
            feed.stop()
        for p in procs:
            p.stop()


async def test_fleet_file_cluster_merges_agents_and_keck_controller(tmp_path) -> None:
    from tests.conftest import shared_fixture
    from keck_tui.sources.keck import KeckSource
    folder = shared_fixture("keck-controller")

    async def replay(request: web.Request) -> web.Response:
        name = request.path.strip("/").replace("/", "_")
        if name == "api_v1_pods-by-namespace":
            name += "_" + request.query["ns"]
        return web.Response(body=(folder / f"{name}.json").read_bytes(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", replay)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    keck_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    agent = FakeAgent("edge1", 12.0)
    await agent.start()
    f = tmp_path / "fleet.toml"
    f.write_text(f'[clusters.lab]\nagents = ["{agent.url}"]\nkeck = "{keck_url}"\n')
    cfg = load_fleet(f)
    fleet = Fleet(AgentSource(cfg.agents), [KeckSource(u, c, t) for c, u, t in cfg.keck])
    try:
        async with aiohttp.ClientSession() as session:
            await fleet.poll(session)
        snap = fleet.snapshot()
    finally:
        await agent.stop()
        await runner.cleanup()
    (lab,) = snap.root.children
    assert [n.id for n in lab.children] == ["edge1", "worker-a", "worker-b"]
    assert lab.watts == pytest.approx(12.0 + 272.0 + 164.934669, abs=1e-6)


def test_fleet_file_rejects_bad_cluster_timeout_and_non_boolean_insecure_tls(tmp_path) -> None:
    """QA: a cluster's timeout = "slow" was a traceback, -1 silently meant no timeout, and
    insecure_tls = "false" (a string) turned certificate checks off."""
    f = tmp_path / "fleet.toml"
    for text, msg in [("[clusters.x]\nagents=['https://a']\ntimeout = 'slow'", "clusters.x: timeout must be"),
                      ("[clusters.x]\nagents=['https://a']\ntimeout = -1", "clusters.x: timeout must be"),
                      ("[clusters.x]\nagents=['https://a']\ntimeout = nan", "clusters.x: timeout must be"),
                      ("timeout = inf\n[clusters.x]\nagents=['https://a']", "timeout must be"),
                      ("[clusters.x]\nagents=['https://a']\ninsecure_tls = 'false'", "insecure_tls must be true or false"),
                      ("insecure_tls = 1\n[clusters.x]\nagents=['https://a']", "insecure_tls must be true or false")]:
        f.write_text(text)
        with pytest.raises(FleetError, match=msg):
            load_fleet(f)
    f.write_text("[clusters.x]\nagents=['https://a']\ntimeout = 3\ninsecure_tls = true")
    cfg = load_fleet(f)
    assert cfg.agents[0].timeout == 3.0 and cfg.agents[0].ssl is False


def test_attach_timeout_zero_is_an_error_not_the_default(tmp_path) -> None:
    """QA: --timeout 0 was silently replaced by the 2 s default."""
    cfg = tmp_path / "none.toml"
    cfg.write_text("")
    for value in ("0", "nan", "-1"):
        out = _attach("http://127.0.0.1:1", "--once", "--timeout", value, "--config", str(cfg))
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "argument --timeout: must be" in out.stderr and "(> 0 – 300 s)" in out.stderr


async def test_fetch_errors_say_what_went_wrong() -> None:
    """QA: 'Connect call failed (...)' instead of 'Connection refused'; http:// against a TLS agent
    and https:// against a plain one gave no hint."""
    from keck_tui.common.http import HttpError, get_json

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # what an https server does with a plain-text request: drops it
        writer.close()

    closer = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    closer_port = closer.sockets[0].getsockname()[1]
    plain = FakeAgent("plain", 1.0)
    await plain.start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(HttpError) as e:
                await get_json(session, f"http://127.0.0.1:{free_port()}/api/v1/snapshot", timeout=2,
                               peer="agent")
            assert str(e.value) == "cannot connect: Connection refused"
            with pytest.raises(HttpError) as e:
                await get_json(session, f"http://127.0.0.1:{closer_port}/api/v1/snapshot", timeout=2,
                               peer="agent")
            assert str(e.value) == "server disconnected (is it an https:// agent?)"
            with pytest.raises(HttpError) as e:
                await get_json(session, f"https://127.0.0.1:{plain.port}/api/v1/snapshot", timeout=2,
                               peer="agent")
            assert "does not speak TLS (is it an http:// agent?)" in str(e.value)
    finally:
        closer.close()
        await plain.stop()


async def test_a_reset_connection_says_connection_lost() -> None:
    """A peer that resets the connection (e.g. a pooled keep-alive connection it dropped) said
    'ClientOSError: [Errno 104] Connection reset by peer'."""
    import socket
    import struct

    from keck_tui.common.http import CONNECT, HttpError, get_json

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the whole request, then an RST instead of an answer
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            seen = set()
            for _ in range(5):  # the RST may arrive before or after the client's read begins
                with pytest.raises(HttpError) as e:
                    await get_json(session, f"http://127.0.0.1:{port}/api/v1/snapshot", timeout=2, peer="agent")
                assert e.value.kind == CONNECT, str(e.value)
                seen.add(str(e.value))
            assert seen <= {"connection lost (Connection reset by peer)",
                            "server disconnected (is it an https:// agent?)"}, seen
            assert not any("Errno" in text or "ClientOSError" in text for text in seen)
    finally:
        server.close()


def test_attach_batch_iterations_must_be_positive(tmp_path) -> None:
    """QA: attach --batch -n 0 printed nothing and exited 0 (keck-top --batch -n 0 is an error)."""
    cfg = tmp_path / "none.toml"
    cfg.write_text("")
    out = _attach("http://127.0.0.1:1", "--batch", "-n", "0", "--config", str(cfg))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "argument -n/--iterations: must be positive (1 – 1000000000), got 0" in out.stderr


async def test_dead_keck_controller_does_not_make_its_clusters_agents_stale(tmp_path) -> None:
    """QA: a fleet cluster with a live agent and a Keck controller that never answered was marked
    stale as a whole, with the note 'Keck controller never answered: 0 W shown' beside the agent's watts."""
    from keck_tui.sources.keck import KeckSource

    agent = FakeAgent("edge1", 12.0)
    await agent.start()
    fleet = Fleet(AgentSource([AgentSpec(agent.url, "lab")]),
                  [KeckSource(f"http://127.0.0.1:{free_port()}", "lab", timeout=1.0)])
    try:
        async with aiohttp.ClientSession() as session:
            await fleet.poll(session)
        snap = fleet.snapshot()
    finally:
        await agent.stop()
    (lab,) = snap.root.children
    assert lab.watts == 12.0 and not lab.stale and lab.note is None
    edge, keck = lab.children
    assert edge.id == "edge1" and not edge.stale
    assert (keck.level, keck.id, keck.name, keck.watts, keck.stale) == ("node", "(keck lab)", "keck lab", 0.0, True)
    assert keck.error.startswith("cannot connect") and "never answered" in keck.note
    # alone in its cluster, the controller's trouble is still the cluster row's
    fleet = Fleet(None, [KeckSource(f"http://127.0.0.1:{free_port()}", "k8s", timeout=1.0)])
    async with aiohttp.ClientSession() as session:
        await fleet.poll(session)
    (k8s,) = fleet.snapshot().root.children
    assert k8s.stale and k8s.children == () and "never answered" in k8s.note


def test_fleet_file_paths_expand_home(tmp_path, monkeypatch) -> None:
    """QA: token_file = "~/.config/keck-top/n1.token" (the path docs/deploy.md suggests) was read
    relative to the fleet file's folder and 'did not exist'; ca_file = 5 was a TypeError."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "n1.token").write_text("s3cret\n")
    monkeypatch.setenv("HOME", str(home))
    f = tmp_path / "fleet.toml"
    f.write_text('[clusters.x]\nagents = ["http://a:9464"]\ntoken_file = "~/.config/n1.token"\n')
    assert load_fleet(f).agents[0].token == "s3cret"
    f.write_text('[clusters.x]\nagents = ["https://a:9464"]\nca_file = 5\n')
    with pytest.raises(FleetError, match="ca_file must be a string"):
        load_fleet(f)
