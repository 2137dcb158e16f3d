"""Fuzz: mutated peer answers through the parsers AND the fleet merge (issue 12).

Agents answer mutated keck-top/1 snapshots, a Keck controller answers mutated node
and pod figures, Prometheus answers hostile sample values; the fleet merges them.
Whatever they send: no exception escapes, every good agent is in the tree and not
stale, the fleet conserves (fleet = Σ clusters, cluster = Σ nodes), every row has
finite lo ≤ watts ≤ hi, and the snapshot encodes.
"""
from __future__ import annotations

import asyncio
import copy
import math
from contextlib import ExitStack
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings, strategies as st

from keck_tui.common.http import HttpError
from keck_tui.model import MAX_WATTS, Snapshot
from keck_tui.sources import agents as agents_mod
from keck_tui.sources import keck as keck_mod
from keck_tui.sources import prometheus as prometheus_mod
from keck_tui.sources.agents import AgentSource, AgentSpec
from keck_tui.sources.fleet import Fleet
from keck_tui.sources.keck import KeckSource
from keck_tui.sources.prometheus import PrometheusSource
from tests.hostile import documents as docs
from tests.hostile.mutate import hostile_number, json_value, mutate
from tests.hostile.peers import keck_node, keck_pod, prometheus_vector

TOL = 1e-9


def _check(snap: Snapshot, good_hosts: list[str]) -> None:
    root = snap.root
    for _, row in root.walk():
        assert all(math.isfinite(v) for v in (row.watts, row.watts_lo, row.watts_hi, row.joules)), row.id
        tol = TOL * max(1.0, row.watts)
        assert -tol <= row.watts_lo <= row.watts + tol and row.watts <= row.watts_hi + tol, row.id
    # conservation where the merge promises it: fleet = Σ clusters, cluster = Σ nodes
    for parent in (root, *root.children):
        total = math.fsum(c.watts for c in parent.children)
        assert abs(parent.watts - total) <= TOL * max(1.0, total), parent.id
    nodes = {n.name: n for c in root.children for n in c.children}
    for host in good_hosts:
        assert host in nodes and not nodes[host].stale, (host, sorted(nodes))
        assert nodes[host].watts == 100.0
    Snapshot.loads(snap.dumps())  # finite and well-formed: it encodes and decodes
    assert root.watts <= len(nodes) * MAX_WATTS


def _merge(agent_docs: dict[str, Any], keck: tuple[Any, Any, Any, Any] | None,
           prometheus: Any | None) -> Snapshot:
    """One poll of a fleet whose peers answer the given documents (no network)."""
    async def agent_get(session: Any, url: str, **kw: Any) -> Any:
        doc = agent_docs[url.split("/")[2].split(":")[0]]
        if isinstance(doc, Exception):
            raise doc
        return copy.deepcopy(doc)

    async def keck_get(session: Any, url: str, **kw: Any) -> Any:
        cluster, nodes, namespaces, pods = keck  # type: ignore[misc]
        path = url.split("/", 3)[3]
        return copy.deepcopy({"api/v1/cluster": cluster, "api/v1/nodes": nodes,
                              "api/v1/namespaces": namespaces, "api/v1/pods-by-namespace": pods}[path])

    async def prometheus_get(session: Any, url: str, **kw: Any) -> Any:
        if "rate(" in kw.get("params", {}).get("query", ""):
            return {"status": "success", "data": {"resultType": "vector", "result": []}}
        return copy.deepcopy(prometheus)

    specs = [AgentSpec(f"http://{host}:9464", "c1") for host in agent_docs]
    others: list[Any] = []
    if keck is not None:
        others.append(KeckSource("http://keck:8080", "c2"))
    if prometheus is not None:
        others.append(PrometheusSource("http://prom:9090"))
    fleet = Fleet(AgentSource(specs), others)
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(agents_mod, "get_json", agent_get))
        stack.enter_context(mock.patch.object(keck_mod, "get_json", keck_get))
        stack.enter_context(mock.patch.object(prometheus_mod, "get_json", prometheus_get))
        asyncio.run(fleet.poll(None))  # type: ignore[arg-type]
    return fleet.snapshot()


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_peers_never_break_the_fleet(data) -> None:
    good_hosts = [f"good{i}" for i in range(data.draw(st.integers(1, 2)))]
    agent_docs: dict[str, Any] = {h: docs.good(h) for h in good_hosts}
    for i in range(data.draw(st.integers(1, 3))):
        bad = mutate(data, docs.good(f"bad{i}"))
        if data.draw(st.booleans()):
            bad = HttpError(data.draw(st.sampled_from(["timed out after 2 s", "answer too large", "not JSON"])))
        agent_docs[f"bad{i}"] = bad
    keck = None
    if data.draw(st.booleans()):
        node, pod = keck_node(), keck_pod()
        for target in (node, pod):
            key = data.draw(st.sampled_from(sorted(target)))
            target[key] = data.draw(hostile_number | json_value)
        keck = ({"node_count": 1}, [node], [{"namespace": "default"}], [pod])
    prometheus = None
    if data.draw(st.booleans()):
        values = data.draw(st.lists(st.sampled_from(["NaN", "+Inf", "-Inf", "-5", "1e308", "1e999", "12.5", "x"]),
                                    min_size=1, max_size=4))
        prometheus = prometheus_vector([({"__name__": "keck_node_power_watts", "node": f"p{i}"}, v)
                                        for i, v in enumerate(values)])
    _check(_merge(agent_docs, keck, prometheus), good_hosts)


def test_two_1e308_agents_do_not_make_an_infinite_fleet() -> None:
    """QA: two agents reporting 1e308 W summed to "inf W" and a --json traceback."""
    big = docs.good("big")
    big["root"].update(watts=1e308, watts_lo=1e308, watts_hi=1e308)
    snap = _merge({"good0": docs.good("good0"), "big1": big, "big2": copy.deepcopy(big)}, None, None)
    _check(snap, ["good0"])
    assert snap.root.watts == 100.0  # the bad ones are stale 0 W rows with the reason
    stale = [n for c in snap.root.children for n in c.children if n.stale]
    assert len(stale) == 2 and all("watts above" in (n.error or "") for n in stale)


def test_a_hostile_keck_controller_is_rejected_whole_with_its_reason() -> None:
    node = keck_node(error_ratio=1e308)  # watts_hi would be inf
    snap = _merge({"good0": docs.good("good0")},
                  ({"node_count": 1}, [node], [{"namespace": "default"}], [keck_pod()]), None)
    _check(snap, ["good0"])
    keck = next(s for s in snap.sources if s.name.startswith("keck"))
    assert keck.status == "error" and "answer rejected" in keck.detail and "watts_hi" in keck.detail


def test_prometheus_samples_that_are_not_usable_numbers_are_left_out_and_counted() -> None:
    prometheus = prometheus_vector([({"__name__": "keck_node_power_watts", "node": "p1"}, "50"),
                                    ({"__name__": "keck_node_power_watts", "node": "p2"}, "+Inf"),
                                    ({"__name__": "keck_node_power_watts", "node": "p3"}, "-5"),
                                    ({"__name__": "keck_node_power_watts", "node": "p4"}, "1e308")])
    snap = _merge({"good0": docs.good("good0")}, None, prometheus)
    _check(snap, ["good0"])
    prom = snap.source("prometheus")
    assert prom is not None and "3 sample(s) ignored" in prom.detail
    assert snap.root.watts == 150.0


def test_a_source_whose_poll_raises_is_its_own_error_not_the_fleets() -> None:
    """A bug a hostile answer finds in one source (here: a poll that raises) must not stop the
    fleet: the other sources' answers are merged, that source says what happened."""
    class Broken(KeckSource):
        async def poll(self, session):
            raise ZeroDivisionError("a bug a hostile answer found")

    async def agent_get(session: Any, url: str, **kw: Any) -> Any:
        if "bad" in url:
            raise TypeError("another bug")
        return docs.good("good0")

    fleet = Fleet(AgentSource([AgentSpec("http://good0:9464", "c1"), AgentSpec("http://bad:9464", "c1")]),
                  [Broken("http://keck:8080", "c2")])
    with mock.patch.object(agents_mod, "get_json", agent_get):
        asyncio.run(fleet.poll(None))  # type: ignore[arg-type]
    snap = fleet.snapshot()
    _check(snap, ["good0"])
    keck = next(s for s in snap.sources if s.name.startswith("keck"))
    assert keck.status == "error" and "ZeroDivisionError" in keck.detail
    bad = next(s for s in snap.sources if "bad" in s.name)
    assert "internal error: TypeError: another bug" in bad.detail
