"""NVIDIA GPUs through NVML (nvidia-ml-py, ``import pynvml``).

Per device and interval:

- power: from the energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
  the driver loaded; Volta and newer) as Δenergy/Δt over the measured interval, else
  from ``nvmlDeviceGetPowerUsage`` (mW; a 1 s average on Ampere-and-newer except
  GA100, instantaneous before). A counter that goes backwards (driver reload / GPU
  reset) is a reset: that interval falls back to the power reading and is flagged.
- bound: NVML documents the board power reading as "accurate to within +/- 5% of
  current power draw" (nvmlDeviceGetPowerUsage, Fermi/Kepler) and nvidia-smi documents
  ``power.draw`` as "accurate to within +/- 5 watts"; newer boards state nothing
  better, so ``accuracy_w = max(5 W, 5 % of the reading)``.
- per process: ``nvmlDeviceGetProcessUtilization(handle, lastSeenTimeStamp)`` (or, where
  that is not supported, ``nvmlDeviceGetProcessesUtilizationInfo``) returns
  the SM-utilisation samples newer than the last one seen (it raises NotFound until
  any exist). Samples are sparse, so every sample since the last read is integrated
  (Σ smUtil per PID) and a process's ``sm_share`` is its part of the total. An
  interval with no new samples keeps the previous shares for up to ``hold_s``
  seconds for processes still running; one process alone on a device with no
  samples gets share 1. Otherwise the active power stays unattributed.

Trouble the sampler expects becomes the reading's status; anything else it raises
the collector turns into its error status (``samplers.types.safe_sample``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.types import GpuDevice, GpuProcess, GpuReading, safe_sample

#: NVML's stated tolerance of the board power reading (see module docstring).
ACCURACY_REL = 0.05
ACCURACY_ABS_W = 5.0


def nvml_accuracy_w(watts: float) -> float:
    return max(ACCURACY_ABS_W, ACCURACY_REL * abs(watts))


class _NoPower(Exception):
    pass


class UnavailableGpuSampler:
    """A GPU sampler that only reports why there are no GPUs."""

    name = "nvml"

    def __init__(self, detail: str, fix: str = "", status: str = STATUS_UNAVAILABLE) -> None:
        extra = {"fix": fix} if fix else {}
        self._status = SourceStatus("nvml", status, detail, extra=extra)

    def sample(self) -> GpuReading:
        return GpuReading(self._status)

    def close(self) -> None:
        pass


def _why_init_failed(nvml: Any, exc: Exception) -> tuple[str, str]:
    name = type(exc).__name__
    if name == "NVMLError_LibraryNotFound":
        return ("no NVIDIA driver: libnvidia-ml.so.1 not found",
                "install the NVIDIA driver (it ships libnvidia-ml); in a container use the NVIDIA container toolkit")
    if name == "NVMLError_DriverNotLoaded":
        return "NVIDIA driver not loaded", "load the nvidia kernel module (nvidia-smi should work first)"
    if name == "NVMLError_NoPermission":
        return "no permission to use NVML", "run as a user allowed to open /dev/nvidia*"
    if name == "NVMLError_LibRmVersionMismatch":
        return "NVML library and kernel driver versions differ", "reboot or reload the nvidia module after a driver update"
    return f"NVML init failed: {exc}", "check that nvidia-smi works"


def open_nvml_sampler(clock: Clock | None = None, *, nvml: Any = None, hold_s: float = 5.0):
    """An NVML GPU sampler, or one whose readings say why there is none."""
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[no-redef]
        except ImportError:
            return UnavailableGpuSampler("nvidia-ml-py (pynvml) is not installed", "pip install nvidia-ml-py")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        detail, fix = _why_init_failed(nvml, exc)
        return UnavailableGpuSampler(detail, fix)
    except OSError as exc:  # pragma: no cover - defensive: ctypes trouble
        return UnavailableGpuSampler(f"NVML could not be loaded: {exc}", "check the NVIDIA driver install")
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except nvml.NVMLError as exc:
        _shutdown(nvml)
        return UnavailableGpuSampler(f"NVML could not count GPUs: {exc}", "check that nvidia-smi works")
    if count == 0:
        _shutdown(nvml)
        return UnavailableGpuSampler("NVML works but this machine has no NVIDIA GPU")
    return NvmlSampler(nvml, count, clock or SystemClock(), hold_s=hold_s)


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - best effort
        pass


def _not_supported(exc: Exception) -> bool:
    return type(exc).__name__ in ("NVMLError_NotSupported", "NVMLError_FunctionNotFound")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass
class _DeviceState:
    index: int
    handle: Any
    name: str
    uuid: str
    energy_mj: int | None = None  # last counter value
    energy_ok: bool = True  # the counter is supported
    last_ts_us: int = 0  # lastSeenTimeStamp for process utilisation
    shares: dict[int, float] = field(default_factory=dict)  # last computed shares
    shares_at: float | None = None
    # per-process utilisation calls still to try, preferred first (both give pid, timeStamp, smUtil)
    util_calls: tuple[str, ...] = ("nvmlDeviceGetProcessUtilization", "nvmlDeviceGetProcessesUtilizationInfo")
    idle_watts: float | None = None  # lowest interval power seen with nothing running


class NvmlSampler:
    """All NVIDIA GPUs of this machine. See the module docstring for the method."""

    name = "nvml"

    def __init__(self, nvml: Any, count: int, clock: Clock, *, hold_s: float = 5.0) -> None:
        self._nvml = nvml
        self._clock = clock
        self._hold_s = hold_s
        self._count = count
        self._devices: list[_DeviceState] = []
        self._t_prev: float | None = None
        self._init_error: str | None = None
        for i in range(count):
            try:
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                self._devices.append(_DeviceState(i, h, _text(self._try(nvml.nvmlDeviceGetName, h, default=f"GPU {i}")),
                                                  _text(self._try(nvml.nvmlDeviceGetUUID, h, default=f"gpu-{i}"))))
            except nvml.NVMLError as exc:
                self._init_error = f"GPU {i}: {exc}"

    def close(self) -> None:
        _shutdown(self._nvml)

    def _try(self, fn: Any, *args: Any, default: Any = None) -> Any:
        try:
            return fn(*args)
        except self._nvml.NVMLError:
            return default

    def _try_default(self, fn: Any, handle: Any, default: Any) -> Any:
        try:
            return fn(handle)
        except self._nvml.NVMLError:
            return default

    # ---- sampling ----
    def sample(self) -> GpuReading:
        now = self._clock.monotonic()
        if self._t_prev is None:
            for dev in self._devices:
                self._prime(dev)
            self._t_prev = now
            return GpuReading(SourceStatus("nvml", STATUS_OK, "warming up", extra=self._extra()))
        dt = now - self._t_prev
        if dt <= 0:
            return GpuReading(SourceStatus("nvml", STATUS_OK, "no time has passed", extra=self._extra()))
        self._t_prev = now
        devices: list[GpuDevice] = []
        problems: list[str] = [self._init_error] if self._init_error else []
        flags: dict[str, list[str]] = {}
        for dev in self._devices:
            try:
                gd, dev_flags = self._read_device(dev, dt, now)
            except (self._nvml.NVMLError, _NoPower) as exc:
                problems.append(f"GPU {dev.index}: {exc}")
                continue
            devices.append(gd)
            if dev_flags:
                flags[f"gpu-{dev.index}"] = dev_flags
        total = sum(d.watts for d in devices)
        if not devices and problems:
            return GpuReading(SourceStatus("nvml", STATUS_ERROR, "; ".join(problems), extra=self._extra()))
        detail = f"{len(devices)} GPU" + ("s" if len(devices) != 1 else "")
        if problems:
            detail += "; " + "; ".join(problems)
        extra = self._extra()
        if flags:
            extra["flags"] = flags
        return GpuReading(SourceStatus("nvml", STATUS_OK, detail, watts=total, extra=extra), tuple(devices))

    def _extra(self) -> dict[str, Any]:
        return {"accuracy": f"max({ACCURACY_ABS_W:g} W, {ACCURACY_REL:.0%}) (NVML/nvidia-smi stated tolerance)"}

    def _prime(self, dev: _DeviceState) -> None:
        nv = self._nvml
        try:
            dev.energy_mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(dev.handle))
        except nv.NVMLError as exc:
            if _not_supported(exc):
                dev.energy_ok = False
        self._new_util_samples(dev)  # drain the buffer so the first interval starts now

    def _new_util_samples(self, dev: _DeviceState) -> list[Any]:
        """Process-utilisation samples newer than the last seen; [] when none (NotFound)."""
        nv = self._nvml
        while dev.util_calls:
            fn = getattr(nv, dev.util_calls[0], None)
            if fn is None:
                dev.util_calls = dev.util_calls[1:]
                continue
            try:
                samples = list(fn(dev.handle, dev.last_ts_us))
                break
            except nv.NVMLError as exc:
                if _not_supported(exc):  # e.g. MIG mode, vGPU, or an older/newer driver: next API
                    dev.util_calls = dev.util_calls[1:]
                    continue
                return []  # NotFound: no samples since last_ts (normal), others: try again next time
        else:
            return []
        fresh = [s for s in samples if int(s.timeStamp) > dev.last_ts_us]
        if fresh:
            dev.last_ts_us = max(int(s.timeStamp) for s in fresh)
        return fresh

    def _read_device(self, dev: _DeviceState, dt: float, now: float) -> tuple[GpuDevice, list[str]]:
        nv = self._nvml
        h = dev.handle
        flags: list[str] = []
        watts: float | None = None
        joules: float | None = None
        if dev.energy_ok:
            try:
                e = int(nv.nvmlDeviceGetTotalEnergyConsumption(h))
            except nv.NVMLError as exc:
                if not _not_supported(exc):
                    raise  # GPU lost, reset required, ...: this device has no reading now
                dev.energy_ok = False
                e = None
            if e is not None:
                prev, dev.energy_mj = dev.energy_mj, e
                if prev is not None and e >= prev:
                    joules = (e - prev) / 1000.0
                    watts = joules / dt
                elif prev is not None:
                    flags.append("counter-reset")
        power_mw = self._try_default(nv.nvmlDeviceGetPowerUsage, h, None)
        if watts is None:
            if power_mw is None:
                raise _NoPower("neither the energy counter nor the power reading is supported")
            watts = power_mw / 1000.0
            joules = watts * dt
            flags.append("from-power-usage")
        util = self._try_default(nv.nvmlDeviceGetUtilizationRates, h, None)
        util_pct = float(util.gpu) if util is not None else None
        sm_clock = self._try(nv.nvmlDeviceGetClockInfo, h, getattr(nv, "NVML_CLOCK_SM", 1))
        mem = self._try_default(nv.nvmlDeviceGetMemoryInfo, h, None)
        temp = self._try(nv.nvmlDeviceGetTemperature, h, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
        limit_mw = self._try_default(nv.nvmlDeviceGetEnforcedPowerLimit, h, None)
        running = self._running_processes(h)
        processes = self._process_shares(dev, running, now)
        if util_pct == 0.0 and not running:
            dev.idle_watts = watts if dev.idle_watts is None else min(dev.idle_watts, watts)
        return GpuDevice(
            index=dev.index, name=dev.name, uuid=dev.uuid, watts=watts, accuracy_w=nvml_accuracy_w(watts),
            joules=joules, idle_watts=dev.idle_watts, util_pct=util_pct,
            sm_clock_mhz=float(sm_clock) if sm_clock is not None else None,
            mem_used_bytes=int(mem.used) if mem is not None else None,
            temp_c=float(temp) if temp is not None else None,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            processes=processes, mig=self._mig(h),
        ), flags

    def _running_processes(self, h: Any) -> dict[int, int | None]:
        """pid → used GPU memory (bytes or None) from the compute and graphics lists."""
        nv = self._nvml
        out: dict[int, int | None] = {}
        for fn_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nv, fn_name, None)
            if fn is None:
                continue
            try:
                procs = fn(h)
            except nv.NVMLError:
                continue
            for p in procs:
                pid = int(p.pid)
                mem = getattr(p, "usedGpuMemory", None)
                prev = out.get(pid)
                out[pid] = (prev or 0) + int(mem) if mem is not None else prev
        return out

    def _process_shares(self, dev: _DeviceState, running: dict[int, int | None], now: float) -> tuple[GpuProcess, ...]:
        samples = self._new_util_samples(dev)
        weights: dict[int, float] = {}
        for s in samples:
            weights[int(s.pid)] = weights.get(int(s.pid), 0.0) + max(0.0, float(s.smUtil))
        total = sum(weights.values())
        shares: dict[int, float]
        if total > 0:
            shares = {pid: w / total for pid, w in weights.items()}
            dev.shares, dev.shares_at = shares, now
        elif dev.shares_at is not None and now - dev.shares_at <= self._hold_s:
            # No new samples: keep the recent shares of processes still running.
            kept = {pid: s for pid, s in dev.shares.items() if pid in running}
            shares = kept
        else:
            shares = {}
        if not shares and len(running) == 1 and not samples:
            shares = {next(iter(running)): 1.0}
        pids = sorted(set(running) | set(shares))
        return tuple(GpuProcess(pid=pid, sm_share=shares.get(pid, 0.0), mem_bytes=running.get(pid)) for pid in pids)

    def _mig(self, h: Any) -> tuple[dict[str, object], ...]:
        nv = self._nvml
        try:
            current, _pending = nv.nvmlDeviceGetMigMode(h)
        except (nv.NVMLError, AttributeError):
            return ()
        if int(current) != int(getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1)):
            return ()
        try:
            n = int(nv.nvmlDeviceGetMaxMigDeviceCount(h))
        except nv.NVMLError:
            return ()
        out: list[dict[str, object]] = []
        for i in range(n):
            try:
                mh = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
            except nv.NVMLError:
                continue  # NotFound: slot not populated
            mem = self._try_default(nv.nvmlDeviceGetMemoryInfo, mh, None)
            out.append({
                "index": i,
                "uuid": _text(self._try(nv.nvmlDeviceGetUUID, mh, default="")),
                "gpu_instance_id": self._try(nv.nvmlDeviceGetGpuInstanceId, mh),
                "compute_instance_id": self._try(nv.nvmlDeviceGetComputeInstanceId, mh),
                "mem_used_bytes": int(mem.used) if mem is not None else None,
                "pids": sorted(self._running_processes(mh)),
            })
        return tuple(out)


def _main(argv: list[str] | None = None) -> int:
    """``python -m keck_tui.samplers.nvml [SECONDS]``: one interval's reading as JSON (support/debug)."""
    import time

    seconds = float((argv or sys.argv[1:] or ["2"])[0])
    sampler = open_nvml_sampler()
    safe_sample(sampler, GpuReading)
    time.sleep(seconds)
    reading = safe_sample(sampler, GpuReading)
    doc = {"source": reading.source.to_json(), "devices": [asdict(d) for d in reading.devices]}
    print(json.dumps(doc, indent=2, default=str))
    return 0 if reading.source.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
