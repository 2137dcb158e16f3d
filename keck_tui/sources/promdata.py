"""Power metrics from Prometheus-format series → fleet → cluster → node → namespace → pod rows.

Pure functions over :class:`Sample` (metric name, labels, value in the metric's
own unit). Understood exporters, first match per node wins:

- keck-top agents: ``keck_node_power_watts``, ``keck_component_power_watts``,
  ``keck_namespace/pod/container/process_power_watts``, the node bound gauges.
- Kepler 0.10+: ``kepler_node_cpu_watts{zone}``, ``kepler_node_platform_watts``,
  ``kepler_node_gpu_watts``, ``kepler_pod_cpu_watts``, ``kepler_container_cpu_watts``.
- Kepler before 0.10: ``kepler_node_{package,dram,other,platform}_joules_total`` and
  ``kepler_container_joules_total``, turned into watts with rate() (the samples
  handed in are already rates, named after the counter).
- Scaphandre: ``scaph_host_power_microwatts``, ``scaph_socket_power_microwatts``,
  ``scaph_domain_power_microwatts{domain_name}``, ``scaph_process_power_consumption_microwatts``
  (microwatts ÷ 1e6).

Zones overlap: RAPL ``core`` and ``uncore`` are inside ``package``, ``psys``
(platform) contains package and dram. A node is ``psys``/platform when present,
else package + dram (+ gpu); core and uncore are never added.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from keck_tui.common.ids import safe_id
from keck_tui.model import Row
from keck_tui.sources.tree import sum_row

UW = 1e-6
AUTO_NODE_LABELS = ("node", "node_name", "instance")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class LabelConfig:
    cluster_label: str = "cluster"
    node_label: str | None = None  # None: node, then node_name, then instance
    default_cluster: str = "default"
    default_node: str = "(unknown node)"

    def node(self, labels: Mapping[str, str]) -> str:
        if self.node_label:
            return labels.get(self.node_label) or self.default_node
        for name in AUTO_NODE_LABELS:
            if labels.get(name):
                return labels[name]
        return self.default_node

    def cluster(self, labels: Mapping[str, str]) -> str:
        return labels.get(self.cluster_label) or self.default_cluster


@dataclass
class _Node:
    exporter: str = ""
    watts: float | None = None
    lo: float | None = None
    hi: float | None = None
    components: dict[str, float] = field(default_factory=dict)
    zones: dict[str, float] = field(default_factory=dict)
    # (namespace, pod, container) → watts; processes: (pid, name, namespace, pod) → watts
    pods: dict[tuple[str, str], float] = field(default_factory=dict)
    containers: dict[tuple[str, str, str], float] = field(default_factory=dict)
    pod_zones: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    processes: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    namespaces_only: dict[str, float] = field(default_factory=dict)
    estimated: bool = False  # the exporter models power instead of measuring it


def _add(d: dict, key: object, value: float) -> None:
    d[key] = d.get(key, 0.0) + value


_PRIORITY = {"keck": 0, "kepler": 1, "kepler-old": 2, "scaphandre": 3}


def _exporter(name: str) -> str | None:
    if name.startswith("keck_"):
        return "keck"
    if name.startswith("kepler_") and name.endswith("_watts"):
        return "kepler"
    if name.startswith("kepler_") and name.endswith("_joules_total"):
        return "kepler-old"
    if name.startswith("scaph_"):
        return "scaphandre"
    return None


def build_clusters(samples: Iterable[Sample], cfg: LabelConfig = LabelConfig()) -> list[Row]:
    """Cluster rows (children: node rows) from power samples of any supported exporter."""
    # First pass: which exporter describes each node (the highest-priority one present).
    kept: list[tuple[tuple[str, str], str, Sample]] = []
    best: dict[tuple[str, str], str] = {}
    for s in samples:
        exp = _exporter(s.name)
        if exp is None or s.value != s.value or s.labels.get("state") == "terminated":
            continue
        key = (cfg.cluster(s.labels), cfg.node(s.labels))
        kept.append((key, exp, s))
        if key not in best or _PRIORITY[exp] < _PRIORITY[best[key]]:
            best[key] = exp
    nodes: dict[tuple[str, str], _Node] = {}
    for key, exp, s in kept:
        if exp != best[key]:
            continue
        node = nodes.setdefault(key, _Node(exporter=exp))
        _feed(node, s)
    clusters: dict[str, list[Row]] = {}
    for (cluster, name), node in sorted(nodes.items()):
        clusters.setdefault(cluster, []).append(_node_row(name, node))
    return [sum_row("cluster", c, c, rows, sources=("prometheus",)) for c, rows in clusters.items()]


def _feed(n: _Node, s: Sample) -> None:
    name, lab, v = s.name, s.labels, s.value
    ns = lab.get("namespace") or lab.get("pod_namespace") or lab.get("container_namespace") \
        or lab.get("kubernetes_pod_namespace") or ""
    pod = lab.get("pod") or lab.get("pod_name") or lab.get("kubernetes_pod_name") or ""
    if n.exporter == "keck":
        if name == "keck_node_power_watts":
            n.watts = (n.watts or 0.0) + v
        elif name == "keck_node_power_lower_bound_watts":
            n.lo = (n.lo or 0.0) + v
        elif name == "keck_node_power_upper_bound_watts":
            n.hi = (n.hi or 0.0) + v
        elif name == "keck_component_power_watts":
            _add(n.components, lab.get("component", "?"), v)
        elif name == "keck_pod_power_watts":
            _add(n.pods, (ns, pod), v)
        elif name == "keck_container_power_watts":
            _add(n.containers, (ns, pod, lab.get("container", "")), v)
        elif name == "keck_namespace_power_watts" and ns:
            _add(n.namespaces_only, ns, v)
        elif name == "keck_process_power_watts":
            _add(n.processes, (lab.get("pid", ""), lab.get("comm", ""), "", ""), v)
    elif n.exporter == "kepler":
        zone = lab.get("zone", "")
        if name == "kepler_node_cpu_watts":
            _add(n.zones, zone, v)
        elif name == "kepler_node_platform_watts":
            _add(n.zones, "platform", v)
        elif name == "kepler_node_gpu_watts":
            _add(n.zones, "gpu", v)
        elif name == "kepler_pod_cpu_watts":
            _add(n.pod_zones.setdefault((ns, pod), {}), zone, v)
        elif name == "kepler_pod_gpu_watts":
            _add(n.pod_zones.setdefault((ns, pod), {}), "gpu", v)
    elif n.exporter == "kepler-old":
        if lab.get("mode") not in (None, "", "dynamic", "idle"):
            return
        part = {"kepler_node_package_joules_total": "package", "kepler_node_dram_joules_total": "dram",
                "kepler_node_other_joules_total": "other", "kepler_node_platform_joules_total": "platform",
                "kepler_node_gpu_joules_total": "gpu", "kepler_node_core_joules_total": "core",
                "kepler_node_uncore_joules_total": "uncore"}.get(name)
        if part is not None:
            _add(n.zones, part, v)
            if lab.get("source") == "trained_power_model":
                n.estimated = True
        elif name == "kepler_container_joules_total" and lab.get("mode") != "idle":
            # 0.7's per-container "idle" energy does not add up to anything the node
            # reports (the fixture's is 20x the node's): containers get dynamic energy,
            # the node's idle stays in (residual).
            _add(n.containers, (ns, pod, lab.get("container_name", "")), v)
    elif n.exporter == "scaphandre":
        if name == "scaph_host_power_microwatts":
            n.watts = (n.watts or 0.0) + v * UW
        elif name == "scaph_socket_power_microwatts":
            _add(n.components, "cpu", v * UW)
        elif name == "scaph_domain_power_microwatts" and lab.get("domain_name") == "dram":
            _add(n.components, "dram", v * UW)
        elif name == "scaph_process_power_consumption_microwatts":
            pname = lab.get("exe") or (lab.get("cmdline") or "").split(" ")[0] or "?"
            _add(n.processes, (lab.get("pid", ""), pname, ns, pod), v * UW)


def _zone_total(zones: Mapping[str, float]) -> tuple[float, str]:
    """Node watts from RAPL-like zones without double counting, and which zones made it."""
    if zones.get("platform", 0.0) > 0:
        return zones["platform"], "platform"
    if zones.get("psys", 0.0) > 0:
        return zones["psys"], "psys"
    total = zones.get("package", 0.0) + zones.get("dram", 0.0) + zones.get("other", 0.0) + zones.get("gpu", 0.0)
    if total <= 0 and zones.get("core", 0.0) > 0:  # only core is exposed: it is all we know
        return zones["core"] + zones.get("uncore", 0.0), "core+uncore"
    return total, "package+dram"


def _node_row(name: str, n: _Node) -> Row:
    comps = dict(n.components)
    note = None
    if n.exporter in ("kepler", "kepler-old"):
        watts, basis = _zone_total(n.zones)
        comps = {k: v for k, v in (("cpu", n.zones.get("package")), ("dram", n.zones.get("dram")),
                                   ("gpu", n.zones.get("gpu")), ("other", n.zones.get("other"))) if v}
        note = f"Kepler node power from {basis} (core/uncore are inside package, not added)"
        for (ns, pod), zones in n.pod_zones.items():
            if basis in ("platform", "psys"):
                pw = zones.get("psys", 0.0) or (zones.get("package", 0.0) + zones.get("dram", 0.0) + zones.get("gpu", 0.0))
            else:
                pw = zones.get("package", 0.0) + zones.get("dram", 0.0) + zones.get("gpu", 0.0)
            _add(n.pods, (ns, pod), pw)
    else:
        watts = n.watts if n.watts is not None else sum(comps.values())
    lo = n.lo if n.lo is not None else watts
    hi = n.hi if n.hi is not None else watts
    children = _workload_rows(n)
    inside = sum(c.watts for c in children)
    residual = watts - inside
    if residual < -1e-9:
        note = (note + "; " if note else "") + f"workloads sum to {inside:.1f} W, more than the node's {watts:.1f} W"
        residual = 0.0
    if children:
        children.append(Row(level="residual", id="(residual)", name="(residual)", watts=residual,
                            watts_lo=residual, watts_hi=residual, note="node power not attributed to a listed workload"))
    if watts > 0 and (lo < watts or hi > watts):
        # Exported bounds are per node only: workloads inside carry the node's relative bound.
        rel_lo, rel_hi = max(0.0, (watts - lo) / watts), max(0.0, (hi - watts) / watts)
        children = [_relative_bound(c, rel_lo, rel_hi) for c in children]
    src = "prometheus:" + n.exporter
    return Row(level="node", id=safe_id(name), name=name, watts=watts, watts_lo=min(lo, watts),
               watts_hi=max(hi, watts), components=comps or None, sources=(src,), note=note,
               estimated=n.estimated, children=tuple(children))


def _relative_bound(row: Row, rel_lo: float, rel_hi: float) -> Row:
    return replace(row, watts_lo=max(0.0, row.watts * (1 - rel_lo)), watts_hi=row.watts * (1 + rel_hi),
                   children=tuple(_relative_bound(c, rel_lo, rel_hi) for c in row.children))


def _workload_rows(n: _Node) -> list[Row]:
    pods: dict[tuple[str, str], float] = dict(n.pods)
    containers: dict[tuple[str, str], list[Row]] = {}
    for (ns, pod, cname), w in n.containers.items():
        containers.setdefault((ns, pod), []).append(
            Row(level="container", id=safe_id(cname or "(container)"), name=cname or "(container)", watts=w,
                watts_lo=w, watts_hi=w, namespace=ns or None))
    procs: dict[tuple[str, str], list[Row]] = {}
    loose: list[Row] = []
    for (pid, pname, ns, pod), w in n.processes.items():
        row = Row(level="process", id=safe_id(f"pid-{pid}" if pid else pname), name=pname or pid, watts=w,
                  watts_lo=w, watts_hi=w, pid=int(pid) if pid.isdigit() else None)
        if pod:
            procs.setdefault((ns, pod), []).append(row)
        else:
            loose.append(row)
    by_ns: dict[str, list[Row]] = {}
    for key in sorted(set(pods) | set(containers) | set(procs)):
        ns, pod = key
        kids = sorted(containers.get(key, []) + procs.get(key, []), key=lambda r: -r.watts)
        if key in pods:
            w = pods[key]
            row = Row(level="pod", id=safe_id(pod or "(pod)"), name=pod or "(pod)", watts=w, watts_lo=w,
                      watts_hi=w, namespace=ns or None, children=tuple(kids) if abs(sum(k.watts for k in kids) - w) < 1e-6 * max(1.0, w) else ())
        else:
            row = sum_row("pod", pod or "(pod)", pod or "(pod)", kids, namespace=ns or None)
        by_ns.setdefault(ns or "(none)", []).append(row)
    out = [sum_row("namespace", ns, ns, sorted(rows, key=lambda r: -r.watts), namespace=ns)
           for ns, rows in sorted(by_ns.items())]
    if not out:
        for ns, w in sorted(n.namespaces_only.items()):
            out.append(Row(level="namespace", id=safe_id(ns), name=ns, watts=w, watts_lo=w, watts_hi=w, namespace=ns))
    if not out:
        # processes only when no pod tree exists (keck-top's top-N processes may sit inside pods)
        out = sorted(loose, key=lambda r: -r.watts)
    return out
