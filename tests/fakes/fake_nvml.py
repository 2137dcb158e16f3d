"""A fake ``pynvml`` module at the library boundary: the functions keck-top calls, with the
real pynvml exception classes (importing pynvml needs no driver), driven by test code."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

NVMLError = pynvml.NVMLError
NVMLError_NotFound = pynvml.NVMLError_NotFound
NVMLError_NotSupported = pynvml.NVMLError_NotSupported
NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE


@dataclass
class FakeMig:
    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    mem_used: int
    processes: dict[int, int] = field(default_factory=dict)


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    energy_mj: int | None = 1_000_000  # None: counter not supported (pre-Volta)
    power_mw: int | None = 75_000
    limit_mw: int = 700_000
    util: int = 0
    sm_clock: int = 1980
    mem_used: int = 512 * 2**20
    temp: int = 35
    processes: dict[int, int | None] = field(default_factory=dict)  # compute: pid -> used bytes
    graphics: dict[int, int | None] = field(default_factory=dict)
    util_samples: list[tuple[int, int, int]] = field(default_factory=list)  # (pid, ts_us, smUtil)
    util_supported: bool = True  # nvmlDeviceGetProcessUtilization
    util_info_supported: bool = False  # nvmlDeviceGetProcessesUtilizationInfo (newer drivers)
    lost: bool = False
    mig: list[FakeMig | None] | None = None  # MIG slots (None: empty slot); None: MIG off

    def add_samples(self, pid: int, start_us: int, count: int, sm: int, step_us: int = 166_000) -> None:
        for k in range(count):
            self.util_samples.append((pid, start_us + k * step_us, sm))


class FakeNvml:
    """Use as the ``nvml=`` argument of ``open_nvml_sampler``."""

    NVMLError = NVMLError
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: type[Exception] | None = None) -> None:
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.init_error = init_error
        self.initialised = False
        self.calls: list[tuple[str, object]] = []

    # ---- library ----
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error()
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> object:
        return ("gpu", i)

    def _gpu(self, h: object) -> FakeGpu:
        kind, i = h  # type: ignore[misc]
        if kind != "gpu":
            raise NVMLError_NotSupported()
        gpu = self.gpus[i]
        if gpu.lost:
            raise NVMLError_GpuIsLost()
        return gpu

    # ---- device queries ----
    def nvmlDeviceGetName(self, h: object) -> str:
        return self._gpu(h).name

    def nvmlDeviceGetUUID(self, h: object) -> str:
        if h[0] == "mig":  # type: ignore[index]
            return self._mig(h).uuid
        return self._gpu(h).uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, h: object) -> int:
        g = self._gpu(h)
        if g.energy_mj is None:
            raise NVMLError_NotSupported()
        return g.energy_mj

    def nvmlDeviceGetPowerUsage(self, h: object) -> int:
        g = self._gpu(h)
        if g.power_mw is None:
            raise NVMLError_NotSupported()
        return g.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: object) -> int:
        return self._gpu(h).limit_mw

    def nvmlDeviceGetUtilizationRates(self, h: object) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._gpu(h).util, memory=0)

    def nvmlDeviceGetClockInfo(self, h: object, kind: int) -> int:
        assert kind == NVML_CLOCK_SM
        return self._gpu(h).sm_clock

    def nvmlDeviceGetMemoryInfo(self, h: object) -> SimpleNamespace:
        if h[0] == "mig":  # type: ignore[index]
            return SimpleNamespace(used=self._mig(h).mem_used, total=0, free=0)
        return SimpleNamespace(used=self._gpu(h).mem_used, total=80 * 2**30, free=0)

    def nvmlDeviceGetTemperature(self, h: object, sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return self._gpu(h).temp

    def nvmlDeviceGetComputeRunningProcesses(self, h: object) -> list[SimpleNamespace]:
        if h[0] == "mig":  # type: ignore[index]
            return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self._mig(h).processes.items()]
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self._gpu(h).processes.items()]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: object) -> list[SimpleNamespace]:
        if h[0] == "mig":  # type: ignore[index]
            return []
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self._gpu(h).graphics.items()]

    def nvmlDeviceGetProcessUtilization(self, h: object, last_seen_us: int) -> list[SimpleNamespace]:
        g = self._gpu(h)
        self.calls.append(("util", last_seen_us))
        if not g.util_supported:
            raise NVMLError_NotSupported()
        fresh = [SimpleNamespace(pid=p, timeStamp=t, smUtil=s, memUtil=0, encUtil=0, decUtil=0)
                 for p, t, s in g.util_samples if t > last_seen_us]
        if not fresh:
            raise NVMLError_NotFound()
        return fresh

    def nvmlDeviceGetProcessesUtilizationInfo(self, h: object, last_seen_us: int) -> list[SimpleNamespace]:
        g = self._gpu(h)
        self.calls.append(("util-info", last_seen_us))
        if not g.util_info_supported:
            raise NVMLError_NotSupported()
        fresh = [SimpleNamespace(timeStamp=t, pid=p, smUtil=s, memUtil=0, encUtil=0, decUtil=0, jpgUtil=0, ofaUtil=0)
                 for p, t, s in g.util_samples if t > last_seen_us]
        if not fresh:
            raise NVMLError_NotFound()
        return fresh

    # ---- MIG ----
    def nvmlDeviceGetMigMode(self, h: object) -> list[int]:
        g = self._gpu(h)
        if g.mig is None:
            return [0, 0]
        return [NVML_DEVICE_MIG_ENABLE, NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: object) -> int:
        return len(self._gpu(h).mig or [])

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: object, i: int) -> object:
        g = self._gpu(h)
        slots = g.mig or []
        if i >= len(slots) or slots[i] is None:
            raise NVMLError_NotFound()
        return ("mig", h[1], i)  # type: ignore[index]

    def _mig(self, h: object) -> FakeMig:
        _, gi, mi = h  # type: ignore[misc]
        mig = (self.gpus[gi].mig or [])[mi]
        assert mig is not None
        return mig

    def nvmlDeviceGetGpuInstanceId(self, h: object) -> int:
        return self._mig(h).gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, h: object) -> int:
        return self._mig(h).compute_instance_id
