"""Keck controller source: a local server replays the fixture bodies; totals equal expected.json."""
from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import shared_fixture
from keck_tui.sources.fleet import Fleet
from keck_tui.sources.keck import KeckSource, cluster_row

TOL = 1e-6


def _replay_app(folder: Path, calls: list[str]) -> web.Application:
    """Serves the fixture files the way the controller routes them (query-parameter endpoints)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.path_qs)
        name = request.path.strip("/").replace("/", "_")
        if name == "api_v1_pods-by-namespace":
            ns = request.query.get("ns", "")
            path = folder / f"api_v1_pods-by-namespace_{ns}.json"
            if not path.exists():
                return web.json_response([])
        else:
            path = folder / f"{name}.json"
        if request.query.get("method", "keck") != "keck" or not path.exists():
            return web.Response(status=404)
        # compact JSON, as the real server sends
        return web.Response(body=json.dumps(json.loads(path.read_text()), separators=(",", ":")),
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_keck_controller_totals_equal_fixture() -> None:
    folder = shared_fixture("keck-controller")
    expected = json.loads((folder / "expected.json").read_text())
    calls: list[str] = []
    runner, url = await _serve(_replay_app(folder, calls))
    try:
        fleet = Fleet(None, [KeckSource(url, cluster="lab")])
        async with aiohttp.ClientSession() as session:
            await fleet.poll(session)
        snap = fleet.snapshot()
    finally:
        await runner.cleanup()
    assert sorted(c.split("?")[0] for c in calls) == sorted(
        ["/api/v1/cluster", "/api/v1/nodes", "/api/v1/namespaces"] + ["/api/v1/pods-by-namespace"] * 3)
    cluster = snap.root.children[0]
    assert (snap.root.level, cluster.level, cluster.id) == ("fleet", "cluster", "lab")
    exp_c = expected["cluster"]
    comps = cluster.components
    assert comps["cpu"] == pytest.approx(exp_c["cpu_watts"], abs=TOL)
    assert comps["dram"] == pytest.approx(exp_c["memory_watts"], abs=TOL)
    assert comps["gpu"] == pytest.approx(exp_c["gpu_watts"], abs=TOL)
    assert comps["cpu"] + comps["dram"] + comps["gpu"] == pytest.approx(exp_c["total_attributed_watts"], abs=TOL)
    pods = [r for _, r in cluster.walk() if r.level == "pod"]
    assert len(pods) == exp_c["pod_count"]
    assert sum(p.watts for p in pods) == pytest.approx(exp_c["sum_of_pod_total_watts"], abs=TOL)
    nodes = {n.id: n for n in cluster.children}
    assert len(nodes) == exp_c["node_count"]
    for name, e in expected["nodes"].items():
        n = nodes[name]
        assert n.components["cpu"] == pytest.approx(e["cpu_watts"], abs=TOL)
        assert n.components["dram"] == pytest.approx(e["memory_watts"], abs=TOL)
        assert n.components["gpu"] == pytest.approx(e["gpu_watts"], abs=TOL)
        # node power: PSU input when there is one (the widest measured reading), else cpu+memory+gpu
        want = e["platform_watts"] if e["platform_watts"] is not None else e["node_power_watts"]
        assert n.watts == pytest.approx(want, abs=TOL)
        # the controller's error ratio is the bound; an estimated node is never surer than ±40 %
        ratio = max(e["error_ratio"], 0.40) if n.estimated else e["error_ratio"]
        assert n.watts_lo == pytest.approx(want * (1 - ratio), abs=TOL)
        assert n.watts_hi == pytest.approx(want * (1 + ratio), abs=TOL)
        node_pods = [r for _, r in n.walk() if r.level == "pod"]
        assert len(node_pods) == e["pod_count"]
        assert sum(p.watts for p in node_pods) == pytest.approx(e["sum_of_pod_total_watts"], abs=TOL)
        for p in node_pods:  # pods carry their node's relative bound
            assert p.watts_lo == pytest.approx(p.watts * (1 - ratio), abs=TOL)
            assert p.watts_hi == pytest.approx(p.watts * (1 + ratio), abs=TOL)
        residual = n.find((name, "(residual)"))
        assert residual.watts == pytest.approx(want - e["sum_of_pod_total_watts"], abs=TOL)
        assert sum(c.watts for c in n.children) == pytest.approx(n.watts, abs=TOL)
        assert n.extra["error_ratio"] == e["error_ratio"]
    assert nodes["worker-b"].estimated is True and nodes["worker-a"].estimated is False
    assert cluster.watts == pytest.approx(272.0 + 164.934669, abs=TOL)
    for ns, e in expected["namespaces"].items():
        rows = [r for _, r in cluster.walk() if r.level == "namespace" and r.id == ns]
        assert sum(r.watts for r in rows) == pytest.approx(e["total_watts"], abs=TOL)
        assert sum(r.components["cpu"] for r in rows) == pytest.approx(e["cpu_watts"], abs=TOL)
        assert sum(len(r.children) for r in rows) == e["pod_count"]
    for pod_name, e in expected["pods"].items():
        row = cluster.find(("lab", e["node_name"], e["namespace"], pod_name))
        assert row is not None, pod_name
        assert row.watts == pytest.approx(e["total_watts"], abs=TOL)
        assert row.pod_uid == e["pod_uid"]


def test_empty_cluster_decodes_to_zero() -> None:
    folder = shared_fixture("keck-controller")
    doc = json.loads((folder / "api_v1_cluster_empty.json").read_text())
    row = cluster_row("c", doc, None, [])
    assert row.watts == 0.0 and row.children == ()


async def test_keck_controller_down_keeps_last_tree_stale() -> None:
    folder = shared_fixture("keck-controller")
    runner, url = await _serve(_replay_app(folder, []))
    src = KeckSource(url, cluster="lab", timeout=0.5)
    async with aiohttp.ClientSession() as session:
        await src.poll(session)
        await runner.cleanup()
        await src.poll(session)
    row = src.cluster_rows()[0]
    assert row.stale and row.error.startswith("cannot connect")
    assert row.watts == pytest.approx(436.934669, abs=TOL)
    assert all(n.stale for n in row.children)
    assert src.statuses()[0].status == "error"


def test_node_the_controller_has_not_heard_from_is_stale() -> None:
    folder = shared_fixture("keck-controller")
    nodes = json.loads((folder / "api_v1_nodes.json").read_text())
    nodes[1]["last_seen_secs_ago"] = 95
    nodes[0]["node_name"] = "rack/1"  # ids never carry '/'
    row = cluster_row("c", None, nodes, [])
    a, b = row.children
    assert a.id == "rack∕1" and a.name == "rack/1" and not a.stale
    assert b.stale is True and b.age_s == 95.0 and "95 s ago" in b.error
    assert b.watts == pytest.approx(164.934669, abs=TOL)  # last known figures kept


async def test_keck_rows_accumulate_energy_between_good_polls() -> None:
    """QA: the controller reports watts only, so its rows kept joules = 0 in the TUI's ENERGY column
    and in the fleet's 'energy since start' while agents' rows counted theirs."""
    folder = shared_fixture("keck-controller")
    runner, url = await _serve(_replay_app(folder, []))
    now = [100.0]
    src = KeckSource(url, cluster="lab", monotonic=lambda: now[0])
    try:
        async with aiohttp.ClientSession() as session:
            await src.poll(session)  # the first answer: no interval yet
            assert src.cluster_rows()[0].find(("lab", "worker-a")).joules == 0.0
            now[0] += 2.0
            await src.poll(session)
            now[0] += 3.0
            await src.poll(session)
    finally:
        await runner.cleanup()
    lab = src.cluster_rows()[0]
    assert lab.find(("lab", "worker-a")).joules == pytest.approx(272.0 * 5, abs=TOL)
    assert lab.find(("lab", "worker-b", "ml-serving", "triton-inference-0")).joules == pytest.approx(
        106.031669 * 5, abs=TOL)
    assert lab.joules == pytest.approx((272.0 + 164.934669) * 5, abs=TOL)
    now[0] += 10.0
    src.url = "http://127.0.0.1:1"  # the controller goes away: no energy is invented for the gap
    async with aiohttp.ClientSession() as session:
        await src.poll(session)
    assert src.cluster_rows()[0].find(("lab", "worker-a")).joules == pytest.approx(272.0 * 5, abs=TOL)
