"""sources/remote.RemoteTrees: energy since attach and stale marking, one rule for Keck and Prometheus.

The two sources had copies that disagreed: a failed Prometheus gave its nodes age_s, a failed
Keck controller did not. Now both mark the cluster row and its nodes stale with the error and
age_s = the node's own age at the last good answer + the time since.
"""
from __future__ import annotations

from keck_tui.clock import FakeClock
from keck_tui.model import Row
from keck_tui.sources.keck import KeckSource
from keck_tui.sources.prometheus import PrometheusSource
from keck_tui.sources.remote import RemoteTrees, aged, never_answered


def _node(name: str, watts: float, age: float | None = None) -> Row:
    return Row(level="node", id=name, name=name, watts=watts, watts_lo=watts, watts_hi=watts, age_s=age)


def _cluster(*nodes: Row) -> Row:
    w = sum(n.watts for n in nodes)
    return Row(level="cluster", id="c", name="c", watts=w, watts_lo=w, watts_hi=w, children=nodes)


def test_energy_since_attach_counts_good_answers_in_a_row_only():
    clock = FakeClock()
    t = RemoteTrees(clock.monotonic)
    assert t.current() == [] and t.age() is None and not t.answered
    (c,) = t.fresh([_cluster(_node("a", 100.0))])
    assert c.joules == 0.0  # the first answer: no interval yet
    clock.advance(2.0)
    (c,) = t.fresh([_cluster(_node("a", 100.0))])
    assert c.joules == 200.0 and c.children[0].joules == 200.0
    clock.advance(5.0)
    t.failed("cannot connect: Connection refused")
    clock.advance(5.0)
    (c,) = t.fresh([_cluster(_node("a", 100.0))])
    assert c.joules == 200.0  # the gap added nothing
    clock.advance(1.0)
    (c,) = t.fresh([_cluster(_node("a", 50.0))])
    assert c.joules == 250.0


def test_stale_marks_cluster_and_nodes_with_error_and_age():
    clock = FakeClock()
    t = RemoteTrees(clock.monotonic)
    t.fresh([_cluster(_node("a", 10.0), _node("b", 20.0, age=30.0))])
    clock.advance(4.5)
    t.failed("timed out after 5 s")
    (c,) = t.current()
    assert (c.stale, c.error, c.age_s) == (True, "timed out after 5 s", 4.5)
    assert [(n.stale, n.error, n.age_s) for n in c.children] == [
        (True, "timed out after 5 s", 4.5), (True, "timed out after 5 s", 34.5)]
    assert c.watts == 30.0  # the last good numbers, marked, not dropped


def test_helpers():
    row = never_answered("cluster", "k", "k", None, "Keck controller")
    assert row.stale and row.watts == 0.0 and row.error == "not polled yet"
    assert row.note == "Keck controller never answered: 0 W shown, not measured"
    assert aged(_node("a", 1.0), "x", None).age_s is None
    assert aged(_node("a", 1.0, age=1.0), "x", 0.12345).age_s == 1.123


async def test_keck_and_prometheus_mark_a_failure_the_same_way():
    """Both sources, unreachable after one good answer, show the same marks."""
    clock = FakeClock()
    keck = KeckSource("http://127.0.0.1:9", "c", monotonic=clock.monotonic, timeout=1.0)
    prom = PrometheusSource("http://127.0.0.1:9", monotonic=clock.monotonic, timeout=1.0)
    for src in (keck, prom):
        src._trees.fresh([_cluster(_node("a", 10.0))])
    clock.advance(3.0)
    import aiohttp
    async with aiohttp.ClientSession() as session:
        await keck.poll(session)
        await prom.poll(session)
    marks = []
    for src in (keck, prom):
        (c,) = src.cluster_rows()
        marks.append([(r.stale, r.age_s, r.error.startswith("cannot connect")) for r in (c,) + c.children])
    assert marks[0] == marks[1] == [(True, 3.0, True), (True, 3.0, True)]
