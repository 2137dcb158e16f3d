"""Builders of synthetic sampler readings for attribution tests."""
from __future__ import annotations

from keck_tui.model import SourceStatus
from keck_tui.samplers.types import (CoreSample, CpuActivity, GpuDevice, GpuProcess, GpuReading,
                                     PowerDomain, PowerReading, ProcessSample)

OK = SourceStatus("procfs", "ok")


def activity(procs: list[ProcessSample], n_cores: int = 2, interval: float = 1.0,
             extra_busy: float = 0.0, irq: float = 0.0, exact: bool = False) -> CpuActivity:
    """Cores whose busy time is exactly what the processes used (+extra_busy on core 0)."""
    busy = {c: 0.0 for c in range(n_cores)}
    for p in procs:
        for c, s in p.per_cpu_s.items():
            busy[c] += s
    cores = tuple(CoreSample(cpu=c, busy_s=busy[c] + (extra_busy + irq if c == 0 else 0.0),
                             total_s=interval, irq_s=irq if c == 0 else 0.0) for c in range(n_cores))
    return CpuActivity(OK, interval, processes=tuple(procs), cores=cores, per_cpu_exact=exact)


def proc(pid: int, per_cpu: dict[int, float], *, kernel: bool = False, pss: int | None = None,
         name: str | None = None, cgroup: str = "") -> ProcessSample:
    return ProcessSample(pid=pid, name=name or f"p{pid}", cmd=name or f"p{pid}",
                         cpu_s=sum(per_cpu.values()), per_cpu_s=per_cpu, kernel=kernel,
                         pss_bytes=pss, cgroup=cgroup)


def rapl(package: float, dram: float | None = None, psys: float | None = None,
         accuracy: float = 0.05, sockets: int = 1) -> PowerReading:
    domains = [PowerDomain(f"package-{s}", "package", package / sockets, 1.0, accuracy, socket=s)
               for s in range(sockets)]
    if dram is not None:
        domains.append(PowerDomain("dram-0", "dram", dram, 1.0, accuracy))
    if psys is not None:
        domains.append(PowerDomain("psys", "psys", psys, 1.0, accuracy))
    return PowerReading(SourceStatus("rapl", "ok"), tuple(domains))


def bmc(watts: float, accuracy: float = 0.02) -> PowerReading:
    return PowerReading(SourceStatus("redfish", "ok"), (PowerDomain("chassis-1", "node", watts, 10.0, accuracy),))


def gpu(watts: float, shares: dict[int, float], accuracy_w: float = 5.0, index: int = 0) -> GpuReading:
    dev = GpuDevice(index=index, name="H100", uuid=f"GPU-{index}", watts=watts, accuracy_w=accuracy_w,
                    processes=tuple(GpuProcess(pid, s) for pid, s in shares.items()))
    return GpuReading(SourceStatus("nvml", "ok"), (dev,))
