"""The demo simulator: synthetic sampler readings → the real Collector → the real fleet merge.

Each simulated node has fake samplers that return the reading types real
samplers return (CpuActivity, PowerReading, GpuReading, FrequencyReading)
from a seeded random process over a daily load curve. Everything after the
samplers is the production code: ``keck_tui.collector.Collector`` (attribution
engine, idle learner, energy ledger) builds each node's snapshot, and
``keck_tui.sources.fleet.Fleet`` merges the node rows into fleet → cluster →
node exactly as ``keck-top attach`` does. Same seed, same start → same snapshots.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Iterator

from keck_tui.attribution.engine import AttributionConfig
from keck_tui.clock import FakeClock
from keck_tui.collector import Collector
from keck_tui.demo.fleet import DAY, NIGHT, OFFICE, SPIKY, NodeSpec, ProcSpec, demo_nodes
from keck_tui.hierarchy.types import GroupPath
from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.samplers.types import (DOMAIN_DRAM, DOMAIN_GPU, DOMAIN_NODE, DOMAIN_OTHER, DOMAIN_PACKAGE,
                                     DOMAIN_PSYS, CoreFrequency, CoreSample, CpuActivity, FrequencyReading,
                                     GpuDevice, GpuProcess, GpuReading, PowerDomain, PowerReading,
                                     ProcessSample)

WARMING = "warming up"


def load_factor(profile: str, hour: float, rng: random.Random) -> float:
    """0..~1.5: how busy a process with ``profile`` is at local ``hour`` (0–24)."""
    if profile == DAY:
        base = 0.12 + 0.88 * max(0.0, math.sin(math.pi * (hour - 6.5) / 15.0)) ** 1.5
    elif profile == NIGHT:
        base = 0.95 if 1.0 <= hour < 5.0 else (0.3 if 5.0 <= hour < 5.5 else 0.01)
    elif profile == OFFICE:
        work = 8.5 <= hour < 18.5
        base = (0.7 if work else 0.05) * (0.45 if 12.0 <= hour < 13.0 else 1.0)
    elif profile == SPIKY:
        base = 0.9 if rng.random() < 0.18 else 0.04
    else:  # FLAT
        base = 1.0
    return max(0.0, base * rng.uniform(0.8, 1.2))


@dataclass
class _Step:
    interval: float
    activity: CpuActivity
    power: tuple[PowerReading, ...]
    gpus: tuple[GpuReading, ...]
    freq: FrequencyReading


class _Sampler:
    """A fake sampler: returns what the node simulation prepared for this interval."""

    def __init__(self, sim: "NodeSim", what: str, name: str) -> None:
        self.sim = sim
        self.what = what
        self.name = name

    def sample(self):  # noqa: ANN201 - returns the reading type of ``what``
        return self.sim.reading(self.what, self.name)


class _Grouper:
    def __init__(self, groups: dict[int, GroupPath]) -> None:
        self.groups = groups

    def group_of(self, process: ProcessSample) -> GroupPath:
        return self.groups.get(process.pid, ())


class NodeSim:
    """One simulated node and the real Collector reading its fake samplers."""

    def __init__(self, spec: NodeSpec, seed: int, clock: FakeClock, tz: tzinfo | None) -> None:
        self.spec = spec
        self.clock = clock
        self.tz = tz
        self.rng = random.Random(f"{seed}:{spec.name}")
        self._step: _Step | None = None
        self._cpu_s = {p.pid: 0.0 for p in spec.procs}
        activity = _Sampler(self, "activity", "procfs")
        power: list[_Sampler] = []
        if spec.kind == "apple":
            power.append(_Sampler(self, "apple", "powermetrics"))
        else:
            power.append(_Sampler(self, "rapl", "rapl"))
            if spec.bmc:
                power.append(_Sampler(self, "bmc", "redfish"))
        gpus = [_Sampler(self, "gpu", "nvml")] if spec.gpus else []
        self.collector = Collector(
            activity=activity, grouper=_Grouper({p.pid: p.group for p in spec.procs}), host=spec.name,
            power=power, gpus=gpus, frequency=_Sampler(self, "freq", "cpufreq"),
            config=AttributionConfig(), clock=clock)

    # ---- the samplers' side -------------------------------------------
    def reading(self, what: str, name: str):  # noqa: ANN201
        step = self._step
        if step is None:  # priming: real samplers return no values on their first call
            ok = SourceStatus(name, "ok", WARMING)
            if what == "activity":
                return CpuActivity(ok, 0.0)
            if what == "gpu":
                return GpuReading(ok)
            if what == "freq":
                return FrequencyReading(ok)
            return PowerReading(ok)
        if what == "activity":
            return step.activity
        if what == "freq":
            return step.freq
        if what == "gpu":
            return step.gpus[0]
        return next(r for r in step.power if r.source.name == name)

    # ---- the simulation -------------------------------------------------
    def advance(self, t_end: float, interval: float) -> None:
        """Prepare the readings for the interval ending at wall time ``t_end``."""
        spec, rng = self.spec, self.rng
        local = datetime.fromtimestamp(t_end, self.tz) if self.tz else datetime.fromtimestamp(t_end)
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        capacity = [interval] * spec.cores
        procs: list[ProcessSample] = []
        gpu_load = [0.0] * spec.gpus
        gpu_procs: list[list[GpuProcess]] = [[] for _ in range(spec.gpus)]
        for p in spec.procs:
            load = load_factor(p.profile, hour, rng)
            want = min(spec.cores, p.cores * load) * interval
            per_cpu = self._place(p, want, capacity, interval)
            used = sum(per_cpu.values())
            self._cpu_s[p.pid] += used
            procs.append(ProcessSample(
                pid=p.pid, name=p.name, cmd=p.cmd, cpu_s=used, per_cpu_s=per_cpu, ppid=1,
                pss_bytes=p.pss_mb << 20, rss_bytes=int(p.pss_mb * 1.2) << 20, kernel=p.kernel,
                start_time=float(p.pid)))
            if p.gpu is not None and p.gpu < spec.gpus:
                share = min(1.0, p.gpu_share * min(1.0, load))
                if share > 0.005:
                    gpu_procs[p.gpu].append(GpuProcess(p.pid, share, (p.pss_mb // 2) << 20))
                    gpu_load[p.gpu] += share
        irq = interval * 0.004
        cores = []
        freqs = []
        total_busy = 0.0
        for c in range(spec.cores):
            busy = min(interval, interval - capacity[c] + (irq if c == 0 else 0.0))
            total_busy += busy
            util = busy / interval
            mhz = spec.base_mhz + (spec.max_mhz - spec.base_mhz) * (0.35 + 0.65 * util) * rng.uniform(0.97, 1.0)
            cores.append(CoreSample(cpu=c, busy_s=busy, total_s=interval, irq_s=irq if c == 0 else 0.0,
                                    freq_mhz=round(mhz, 1)))
            freqs.append(CoreFrequency(cpu=c, mhz=round(mhz, 1), nominal=False, max_mhz=spec.max_mhz))
        util = total_busy / (interval * spec.cores)
        ok = SourceStatus
        activity = CpuActivity(ok("procfs", "ok", f"{len(procs)} processes"), interval,
                               processes=tuple(procs), cores=tuple(cores))
        cpu_w = (spec.idle_w + (spec.max_w - spec.idle_w) * util ** 0.85) * rng.uniform(0.985, 1.015)
        gpu_devices = tuple(
            GpuDevice(index=g, name="NVIDIA H100 80GB HBM3", uuid=f"GPU-demo-{spec.name}-{g}",
                      watts=round(spec.gpu_idle_w + (spec.gpu_max_w - spec.gpu_idle_w) * min(1.0, gpu_load[g])
                                  * rng.uniform(0.95, 1.02), 3),
                      accuracy_w=5.0, idle_watts=spec.gpu_idle_w, util_pct=round(100 * min(1.0, gpu_load[g]), 1),
                      sm_clock_mhz=1980.0 if gpu_load[g] > 0.05 else 345.0, temp_c=round(34 + 40 * gpu_load[g], 1),
                      power_limit_w=700.0, processes=tuple(gpu_procs[g]))
            for g in range(spec.gpus))
        gpu_w = sum(d.watts for d in gpu_devices)
        power: list[PowerReading] = []
        if spec.kind == "apple":
            gpu_soc = 0.05 + 6.0 * max(0.0, util - 0.2) * rng.uniform(0.5, 1.0)
            ane = 0.0 if rng.random() < 0.9 else 1.2
            soc = cpu_w + gpu_soc + ane + 0.9
            power.append(PowerReading(ok("powermetrics", "ok", "1 sample(s)", watts=soc), (
                PowerDomain("cpu", DOMAIN_PACKAGE, cpu_w, interval, 0.05, cpu_w * interval, socket=0),
                PowerDomain("gpu", DOMAIN_GPU, gpu_soc, interval, 0.05, gpu_soc * interval),
                PowerDomain("ane", DOMAIN_OTHER, ane, interval, 0.05, ane * interval),
                PowerDomain("soc", DOMAIN_PSYS, soc, interval, 0.05, soc * interval))))
        else:
            domains = [PowerDomain(f"package-{s}", DOMAIN_PACKAGE, cpu_w / spec.sockets, interval, 0.03,
                                   cpu_w / spec.sockets * interval, socket=s) for s in range(spec.sockets)]
            dram_w = 0.0
            if spec.dram_w is not None:
                dram_w = spec.dram_w * (1.0 + 0.8 * util) * rng.uniform(0.99, 1.01)
                domains.append(PowerDomain("dram-0", DOMAIN_DRAM, dram_w, interval, 0.05, dram_w * interval))
            power.append(PowerReading(ok("rapl", "ok", f"{len(domains)} domains"), tuple(domains)))
            if spec.bmc:
                wall = (cpu_w + dram_w + gpu_w) * 1.08 + 55.0 + 25.0 * util
                power.append(PowerReading(ok("redfish", "ok", "Chassis 1 PowerControl", watts=wall), (
                    PowerDomain("chassis-1", DOMAIN_NODE, wall, interval, 0.02, wall * interval),)))
        gpus = (GpuReading(ok("nvml", "ok", f"{spec.gpus} device(s)"), gpu_devices),) if spec.gpus else ()
        self._step = _Step(interval, activity, tuple(power), gpus,
                           FrequencyReading(ok("cpufreq", "ok", "scaling_cur_freq"), tuple(freqs)))

    def _place(self, p: ProcSpec, want: float, capacity: list[float], interval: float) -> dict[int, float]:
        """Spread ``want`` CPU seconds over cores with spare capacity, starting at a pid-based core."""
        n = len(capacity)
        out: dict[int, float] = {}
        start = (p.pid * 7) % n
        left = want
        # use at most ceil(want/interval)+1 cores, like a process with that many busy threads
        for k in range(n):
            if left <= 1e-9:
                break
            c = (start + k) % n
            take = min(left, capacity[c], interval * 0.98)
            if take > 1e-9:
                out[c] = round(take, 6)
                capacity[c] -= out[c]
                left -= out[c]
        return out

    def prime(self) -> None:
        self._step = None
        self.collector.prime()

    def collect(self, t_end: float, interval: float) -> Snapshot:
        self.advance(t_end, interval)
        return self.collector.collect()


class _DemoCluster:
    """A ClusterSource (as a Keck controller or Prometheus would be) over simulated nodes."""

    def __init__(self, name: str, nodes: list[NodeSim]) -> None:
        self.name = name
        self.nodes = nodes
        self.rows: list[Row] = []
        self.snapshots: list[Snapshot] = []

    async def poll(self, session) -> None:  # noqa: ANN001 - never called: the demo has no network
        return None

    def update(self, snaps: list[Snapshot]) -> None:
        from dataclasses import replace

        from keck_tui.sources.tree import sum_row

        self.snapshots = snaps
        nodes = [replace(s.root, labels={**(s.root.labels or {}), "demo": "simulated"}) for s in snaps]
        self.rows = [sum_row("cluster", self.name, self.name, nodes)]

    def cluster_rows(self) -> list[Row]:
        return self.rows

    def statuses(self) -> list[SourceStatus]:
        out = []
        for s in self.snapshots:
            measured = [src.name for src in s.sources if src.ok and src.kind == "measured"
                        and src.name not in ("procfs", "cpufreq")]
            out.append(SourceStatus(name=s.host, status="ok", kind="estimated" if s.estimated else "measured",
                                    watts=round(s.root.watts, 3),
                                    detail=f"simulated node: {', '.join(measured) or 'estimate'}; model {s.model}"))
        return out


class DemoFleet:
    """The whole simulated fleet: ``step()`` returns the next fleet snapshot."""

    def __init__(self, seed: int = 1, start_time: float | None = None, interval: float = 1.0,
                 tz: tzinfo | None = None) -> None:
        if not interval > 0:
            raise ValueError("interval must be positive")
        from keck_tui.sources.fleet import Fleet

        self.seed = seed
        self.interval = float(interval)
        self.start_time = float(start_time if start_time is not None else _default_start())
        self.clock = FakeClock(now=self.start_time, wall_offset=0.0)
        self.tz = tz
        self.nodes = [NodeSim(spec, seed, self.clock, tz) for spec in demo_nodes()]
        clusters: dict[str, list[NodeSim]] = {}
        for n in self.nodes:
            clusters.setdefault(n.spec.cluster, []).append(n)
        self.clusters = [_DemoCluster(name, nodes) for name, nodes in clusters.items()]
        self.fleet = Fleet(None, list(self.clusters), name="demo-fleet", wall=self.clock.wall)
        self.fleet.interval = self.interval
        for n in self.nodes:
            n.prime()
        self.steps = 0

    @property
    def now(self) -> float:
        return self.clock.wall()

    def step(self, interval: float | None = None) -> Snapshot:
        dt = self.interval if interval is None else float(interval)
        self.clock.advance(dt)
        t = self.clock.wall()
        for cluster in self.clusters:
            cluster.update([n.collect(t, dt) for n in cluster.nodes])
        self.steps += 1
        snap = self.fleet.snapshot()
        return snap

    def node_snapshot(self, name: str) -> Snapshot | None:
        for c in self.clusters:
            for s in c.snapshots:
                if s.host == name:
                    return s
        return None


def _default_start() -> float:
    """A fixed, daytime start (2026-06-15 14:00 UTC) so screenshots look alive."""
    return datetime(2026, 6, 15, 14, 0, tzinfo=timezone.utc).timestamp()


def iter_demo_snapshots(seed: int = 1, start_time: float | None = None, interval: float = 1.0,
                        tz: tzinfo | None = timezone.utc) -> Iterator[Snapshot]:
    """An endless deterministic stream of fleet snapshots."""
    fleet = DemoFleet(seed, start_time, interval, tz)
    while True:
        yield fleet.step()


def demo_snapshots(seed: int = 1, count: int = 10, start_time: float | None = None,
                   interval: float = 1.0, tz: tzinfo | None = timezone.utc) -> list[Snapshot]:
    """``count`` deterministic fleet snapshots, the first ending at ``start_time + interval``.

    The daily load curve follows ``tz`` (UTC by default, so results do not depend
    on the machine's time zone).
    """
    if count < 0:
        raise ValueError("count must not be negative")
    gen = iter_demo_snapshots(seed, start_time, interval, tz)
    return [next(gen) for _ in range(count)]
