"""Snapshot builders with known watts, for the record/replay/report tests."""
from __future__ import annotations

from keck_tui.model import Row, Snapshot, SourceStatus

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def row(level: str, rid: str, watts: float, children: tuple[Row, ...] = (), *, name: str | None = None,
        spread: float = 0.1, **kw) -> Row:
    return Row(level=level, id=rid, name=name or rid, watts=watts, watts_lo=watts * (1 - spread),
               watts_hi=watts * (1 + spread), children=children, **kw)


def node_tree(host: str = "n1", scale: float = 1.0) -> Row:
    """n1 (100 W × scale): ns-a 60 (pod-a1 40 = web 30 + web 10, pod-a2 20 = db 20),
    ns-b 25 (pod-b1 25 = batch 25), (idle) 15."""
    s = scale
    web1 = row("process", "pid-10", 30 * s, name="web (10)", pid=10, cmd="web --port 80",
               children=(row("core", "core-0", 30 * s, cpu=0),))
    web2 = row("process", "pid-11", 10 * s, name="web (11)", pid=11, cmd="web --port 81")
    db = row("process", "pid-12", 20 * s, name="db (12)", pid=12, cmd="db")
    batch = row("process", "pid-13", 25 * s, name="batch (13)", pid=13, cmd="batch")
    ns_a = row("namespace", "ns-a", 60 * s, (
        row("pod", "uid-a1", 40 * s, (web1, web2), name="pod-a1", namespace="ns-a", pod_uid="uid-a1"),
        row("pod", "uid-a2", 20 * s, (db,), name="pod-a2", namespace="ns-a", pod_uid="uid-a2")))
    ns_b = row("namespace", "ns-b", 25 * s, (
        row("pod", "uid-b1", 25 * s, (batch,), name="pod-b1", namespace="ns-b", pod_uid="uid-b1"),))
    idle = row("synthetic", "(idle)", 15 * s, note="idle")
    return row("node", host, 100 * s, (ns_a, ns_b, idle), components={"cpu": 80 * s, "dram": 20 * s})


def snapshot(i: int, *, t0: float = T0, interval: float = 1.0, scale: float | None = None,
             host: str = "n1") -> Snapshot:
    """The i-th snapshot: time t0 + (i+1)·interval, node watts 100 × scale (default 1 + i % 3)."""
    s = float(1 + i % 3) if scale is None else scale
    return Snapshot(time=t0 + (i + 1) * interval, interval_s=interval, host=host, model="cpu-time",
                    sources=(SourceStatus("rapl", "ok", watts=80 * s),), root=node_tree(host, s),
                    idle_policy="separate", extra={"model_reason": "test"})


def fleet_snapshot(i: int, t0: float = T0) -> Snapshot:
    """A fleet → cluster → node tree: two nodes (100 W and 200 W) in one cluster."""
    n1 = node_tree("n1", 1.0)
    n2 = node_tree("n2", 2.0)
    cluster = row("cluster", "c1", 300.0, (n1, n2), spread=0.1)
    fleet = row("fleet", "fleet", 300.0, (cluster,), spread=0.1)
    return Snapshot(time=t0 + i + 1, interval_s=1.0, host="fleet", model="mixed", sources=(),
                    root=fleet)
