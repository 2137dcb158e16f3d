"""A deterministic fake fleet for TUI tests, screenshots and the UI benchmark.

fleet → cluster → node → namespace → pod → container → process → core, with
watts conserved exactly at every level (parents are sums of children, the
rest is in synthetic rows), bounds that widen upward, an estimated snapshot
and a stale one. Every number is a function of (step, names): no randomness.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from keck_tui.clock import FakeClock
from keck_tui.feed import StaticFeed
from keck_tui.model import Row, Snapshot, SourceStatus

SESSION_S = 1200.0  # joules = watts × this: 20 minutes into the session
START_WALL = 1_700_000_000.0
N_CPUS = 24


def _wobble(step: int, key: str) -> float:
    """A deterministic factor in [0.9, 1.1] that changes with step."""
    h = sum(ord(ch) * (i + 1) for i, ch in enumerate(key))
    return 1.0 + 0.1 * (((step * 3 + h) % 9) - 4) / 4


def _leaf(level: str, rid: str, name: str, watts: float, rel: float, **kw: Any) -> Row:
    return Row(level=level, id=rid, name=name, watts=watts, watts_lo=watts * (1 - rel),
               watts_hi=watts * (1 + rel), joules=watts * SESSION_S, **kw)


def _parent(level: str, rid: str, name: str, children: Sequence[Row], **kw: Any) -> Row:
    w = sum(c.watts for c in children)
    lo = sum(c.watts_lo for c in children)
    hi = sum(c.watts_hi for c in children)
    util = [c.cpu_util for c in children if c.cpu_util is not None]
    if level == "process":  # cores: % of one core; everything above: % of the machine
        util = [u / N_CPUS for u in util]
    total = sum(util) / len(util) if level in ("cluster", "fleet") and util else sum(util)
    kw.setdefault("cpu_util", round(total, 1) if util else None)
    return Row(level=level, id=rid, name=name, watts=w, watts_lo=lo, watts_hi=hi,
               joules=w * SESSION_S, children=tuple(children), **kw)


def _process(step: int, pid: int, name: str, cmd: str, cores: Sequence[tuple[int, float, float]],
             *, mhz: float = 3500.0, gpu: float | None = None, nominal: bool = False) -> Row:
    kids = []
    for cpu, watts, util in cores:
        w = round(watts * _wobble(step, f"{pid}/{cpu}"), 2)
        kids.append(_leaf("core", f"core{cpu}", f"core {cpu}", w, 0.06, cpu=cpu,
                          cpu_util=round(min(100.0, util * _wobble(step, f"u{pid}{cpu}")), 1),
                          freq_mhz=mhz, freq_nominal=nominal or None))
    if not kids:
        return _leaf("process", str(pid), name, 0.4, 0.3, pid=pid, cmd=cmd, cpu_util=0.1, freq_mhz=mhz)
    return _parent("process", str(pid), name, kids, pid=pid, cmd=cmd, freq_mhz=mhz,
                   gpu_watts=gpu, freq_nominal=nominal or None, sources=("rapl", "ebpf"))


def node_row(step: int = 0, name: str = "node-7", scale: float = 1.0, *,
             estimated: bool = False) -> Row:
    """One node: namespaces → pods → containers → processes → cores, plus synthetic rows."""
    s = scale
    vllm = _process(step, 4121, "vllm", "python -m vllm.entrypoints.openai.api_server --model llama-3-8b",
                    [(3, 28.4 * s, 99.0), (7, 27.9 * s, 98.1), (11, 26.0 * s, 97.0), (15, 24.5 * s, 95.2),
                     (19, 22.0 * s, 90.0), (23, 20.1 * s, 88.4)], mhz=3520, gpu=71.0 * s)
    tok = _process(step, 4130, "tokenizer", "python -m tokenizer_worker", [(5, 6.1 * s, 31.0)], mhz=3100)
    envoy = _process(step, 4188, "envoy", "envoy -c /etc/envoy.yaml", [(9, 7.2 * s, 12.0)], mhz=2100)
    embed = _process(step, 4301, "embed-server", "python serve_embed.py", [(1, 6.0 * s, 20.0), (2, 5.5 * s, 18.0)],
                     mhz=2900)
    java = _process(step, 5120, "java", "java -Xmx8g -jar etl.jar", [(4, 31.0 * s, 80.0), (6, 29.0 * s, 77.0),
                                                                     (8, 18.2 * s, 50.0)], mhz=3300)
    proxy = _process(step, 880, "kube-proxy", "kube-proxy --config=/var/lib/kube-proxy/config.conf",
                     [(0, 3.1 * s, 4.0)], mhz=2200, nominal=True)
    kubelet = _process(step, 610, "kubelet", "/usr/bin/kubelet", [(0, 5.0 * s, 6.0)], mhz=2200, nominal=True)

    def container(cid: str, name: str, procs: Sequence[Row]) -> Row:
        return _parent("container", cid, name, procs, container_id=f"{cid}0c1d2e3f4a5b6c7d8e9f")

    llm = _parent("pod", "pod/llm-0", "pod/llm-0",
                  [container("vllm", "vllm", [vllm, tok]), container("sidecar", "sidecar", [envoy])],
                  namespace="ml-serving", pod_uid="6f1c1a2e-llm0", labels={"app": "llm", "tier": "gpu"})
    emb = _parent("pod", "pod/embed-2", "pod/embed-2", [container("embed", "embed", [embed])],
                  namespace="ml-serving", pod_uid="77aa-embed2", labels={"app": "embed"})
    residual = _leaf("residual", "(residual)", "(residual)", 1.6 * s, 0.5,
                     note="short-lived tasks that exited between samples")
    ml = _parent("namespace", "ml-serving", "ml-serving", [llm, emb, residual], namespace="ml-serving")
    etl = _parent("pod", "pod/etl-5", "pod/etl-5", [container("spark", "spark", [java])],
                  namespace="batch", pod_uid="9b9b-etl5")
    batch = _parent("namespace", "batch", "batch", [etl], namespace="batch")
    kp = _parent("pod", "pod/kube-proxy-x2", "pod/kube-proxy-x2",
                 [container("kube-proxy", "kube-proxy", [proxy])], namespace="kube-system")
    ks = _parent("namespace", "kube-system", "kube-system", [kp], namespace="kube-system")
    system = _parent("namespace", "system.slice", "system.slice", [kubelet])
    kernel = _leaf("kernel", "(kernel)", "(kernel)", 6.0 * s, 0.15, cpu_util=1.4)
    idle = _leaf("idle", "(idle)", "(idle)", 78.0 * s, 0.07, note="idle baseline learned over 212 samples")
    platform = _leaf("platform", "(platform)", "(platform)", 22.0 * s, 0.28,
                     note="fans, PSU loss, disks — BMC minus components")
    kids = [ml, batch, ks, system, kernel, idle, platform]
    node = _parent("node", name, name, kids, freq_mhz=3410, sources=("redfish", "rapl", "nvml", "ebpf"))
    cpu = node.watts - platform.watts - 31.0 * s - 71.0 * s
    node = replace(node, components={"cpu": round(cpu, 1), "dram": 31.0 * s, "gpu": 71.0 * s,
                                     "platform": 22.0 * s}, gpu_watts=71.0 * s)
    if estimated:
        node = _estimate(node)
    return node


def _estimate(row: Row) -> Row:
    """The same tree as a no-sensor estimate: ±40 % everywhere."""
    kids = tuple(_estimate(c) for c in row.children)
    return replace(row, estimated=True, watts_lo=row.watts * 0.6, watts_hi=row.watts * 1.4,
                   children=kids, sources=("estimate",) if row.sources else None)


def fleet_row(step: int = 0, *, stale_node: bool = False) -> Row:
    """Two clusters, three nodes; with ``stale_node`` node-1's agent stopped answering 42 s ago."""
    a = _parent("cluster", "cluster-a", "cluster-a",
                [node_row(step, "node-7"), node_row(step, "node-3", 0.6)])
    node1 = node_row(step, "node-1", 0.8)
    if stale_node:
        node1 = replace(node1, stale=True, age_s=42.0)
    b = _parent("cluster", "cluster-b", "cluster-b", [node1])
    return _parent("fleet", "fleet", "fleet", [a, b])


MEASURED_SOURCES = (
    SourceStatus("rapl", "ok", "2 packages + dram"),
    SourceStatus("nvml", "ok", "1 GPU"),
    SourceStatus("redfish", "ok", "BMC every 10 s"),
    SourceStatus("ebpf", "ok", "sched_switch"),
)
ESTIMATED_SOURCES = (
    SourceStatus("rapl", "unavailable", "no /sys/class/powercap"),
    SourceStatus("nvml", "unavailable", "no NVIDIA driver"),
    SourceStatus("estimate", "ok", "TDP × utilisation", kind="estimated"),
    SourceStatus("procfs", "ok", "per-process CPU time"),
)


def snapshot(step: int = 0, *, clock: FakeClock | None = None, fleet: bool = False,
             estimated: bool = False, age: float = 0.3, interval: float = 1.0,
             stale_node: bool = False) -> Snapshot:
    """A snapshot stamped ``age`` seconds before ``clock``'s wall time (a stale one:
    ``age`` > 3 × ``interval``; a fleet with one stale node: ``stale_node``)."""
    wall = (clock.wall() if clock is not None else START_WALL + step * interval) - age
    root = fleet_row(step, stale_node=stale_node) if fleet else node_row(step, estimated=estimated)
    return Snapshot(time=wall, interval_s=interval, host="fleet" if fleet else "node-7",
                    model="frequency-weighted", idle_policy="separate", estimated=estimated,
                    sources=ESTIMATED_SOURCES if estimated else MEASURED_SOURCES, root=root)


def series(n: int, clock: FakeClock, *, fleet: bool = False, estimated: bool = False,
           interval: float = 1.0) -> list[Snapshot]:
    """``n`` snapshots ``interval`` apart ending now on ``clock`` (the clock is not moved)."""
    return [snapshot(i, clock=clock, fleet=fleet, estimated=estimated,
                     age=(n - 1 - i) * interval + 0.3, interval=interval) for i in range(n)]


def big_row(n_target: int = 5000, step: int = 0) -> Row:
    """A node tree with about ``n_target`` rows (groups → processes → 4 cores each)."""
    per_proc = 5  # process + 4 cores
    n_procs = max(1, (n_target - 1) // (per_proc + 0)) 
    groups = []
    per_group = 50
    made = 0
    g = 0
    while made < n_procs:
        procs = []
        for p in range(min(per_group, n_procs - made)):
            pid = 10000 + made
            cores = [(c, 0.5 + ((pid * 7 + c * 3 + step) % 11) / 4, 10.0 + (pid + c) % 80) for c in range(4)]
            procs.append(_process(step, pid, f"worker-{pid}", f"worker --id {pid}", cores))
            made += 1
        groups.append(_parent("namespace", f"group-{g}", f"group-{g}", procs))
        g += 1
    return _parent("node", "big-node", "big-node", groups)


def count_rows(row: Row) -> int:
    return 1 + sum(count_rows(c) for c in row.children)


def big_snapshot(step: int = 0, *, time: float = START_WALL, n_target: int = 5000) -> Snapshot:
    return Snapshot(time=time, interval_s=1.0, host="big-node", model="cpu-time",
                    sources=MEASURED_SOURCES, root=big_row(n_target, step))


def make_feed(snaps: Sequence[Snapshot], interval: float = 1.0) -> StaticFeed:
    feed = StaticFeed(snaps, interval=interval)
    feed.index = len(snaps) - 1
    return feed
