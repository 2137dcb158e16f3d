"""Synthetic snapshots with known numbers: for tests and benchmarks (benchmarks/bench_agent.py).

The tree is node → namespace → pod → container → process, plus an ``(idle)``
row, and every level sums exactly to its parent.
"""
from __future__ import annotations

from keck_tui.model import Row, Snapshot, SourceStatus


def fake_snapshot(host: str = "node-a", watts: float = 100.0, time: float = 1_700_000_000.0,
                  namespaces: int = 2, pods: int = 2, processes: int = 2, interval_s: float = 1.0,
                  idle_share: float = 0.2) -> Snapshot:
    """A node of ``watts`` W: ``idle_share`` in (idle), the rest spread evenly down the tree."""
    active = watts * (1.0 - idle_share)
    per_ns = active / namespaces
    ns_rows = []
    for n in range(namespaces):
        ns_name = f"ns{n}"
        per_pod = per_ns / pods
        pod_rows = []
        for p in range(pods):
            pod_name = f"pod{n}-{p}"
            per_proc = per_pod / processes
            procs = tuple(
                Row(level="process", id=f"pid{n * 1000 + p * 10 + k + 100}", name=f"worker{k}",
                    watts=per_proc, watts_lo=per_proc * 0.9, watts_hi=per_proc * 1.1,
                    pid=n * 1000 + p * 10 + k + 100, cmd=f"/bin/worker{k} --serve",
                    cpu_s=0.1)
                for k in range(processes))
            container = Row(level="container", id=f"c-{pod_name}", name="app", watts=per_pod,
                            watts_lo=per_pod * 0.9, watts_hi=per_pod * 1.1, namespace=ns_name,
                            children=procs)
            pod_rows.append(Row(level="pod", id=f"pod-{pod_name}", name=pod_name, watts=per_pod,
                                watts_lo=per_pod * 0.9, watts_hi=per_pod * 1.1, namespace=ns_name,
                                pod_uid=f"uid-{pod_name}", children=(container,)))
        ns_rows.append(Row(level="namespace", id=f"ns-{ns_name}", name=ns_name, watts=per_ns,
                           watts_lo=per_ns * 0.9, watts_hi=per_ns * 1.1, namespace=ns_name,
                           children=tuple(pod_rows)))
    idle = watts - active
    ns_rows.append(Row(level="idle", id="(idle)", name="(idle)", watts=idle, watts_lo=idle * 0.9,
                       watts_hi=idle * 1.1, note="power drawn when nothing runs"))
    root = Row(level="node", id=host, name=host, watts=watts, watts_lo=watts * 0.95,
               watts_hi=watts * 1.05, components={"cpu": watts * 0.7, "dram": watts * 0.1, "platform": watts * 0.2},
               children=tuple(ns_rows))
    return Snapshot(time=time, interval_s=interval_s, host=host, model="cpu-time",
                    sources=(SourceStatus("rapl", "ok", watts=watts * 0.8),
                             SourceStatus("nvml", "unavailable", detail="no NVIDIA driver")),
                    root=root)
