"""perf_event_open through ctypes: the real system call on this machine, and the reasons.

Where the machine has no PMU (this VM, most cloud VMs) the hardware events must
fail with the exact "no PMU" reason from the kernel's own answer; software events
(cpu-clock) open everywhere perf events exist and exercise the same plumbing.
Only a machine with a PMU confirms the hardware events' counts.
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
import time
from pathlib import Path

import pytest

from keck_tui.probes import perfevent as pe

pytestmark = pytest.mark.skipif(not pe.supported(), reason="perf_event_open number unknown on this architecture")


def _has_cpu_pmu() -> bool:
    return Path("/sys/bus/event_source/devices/cpu").exists() or any(
        Path("/sys/bus/event_source/devices").glob("armv8_*"))


def test_attr_is_the_kernels_ver5_layout() -> None:
    assert ct.sizeof(pe.PerfEventAttr) == 112  # PERF_ATTR_SIZE_VER5
    assert pe.PerfEventAttr.read_format.offset == 32 and pe.PerfEventAttr.config1.offset == 56
    assert pe.LLC_MISSES.config == 0x10002 and pe.LLC_MISSES.type == pe.PERF_TYPE_HW_CACHE
    assert pe.LLC_MISSES.fallback is not None and pe.LLC_MISSES.fallback.config == pe.PERF_COUNT_HW_CACHE_MISSES
    assert [s.name for s in pe.HARDWARE_EVENTS] == ["cycles", "instructions", "llc_misses", "ref_cycles"]


def test_software_event_counts_for_real() -> None:
    try:
        fd = pe.open_counter(pe.CPU_CLOCK, 0)
    except pe.PerfEventError as exc:
        pytest.skip(f"per-CPU events not allowed here: {exc.reason}")
    try:
        v1, e1, r1 = pe.read_counter(fd)
        time.sleep(0.05)
        v2, e2, r2 = pe.read_counter(fd)
    finally:
        pe.close(fd)
    # cpu-clock on a CPU counts wall nanoseconds while enabled: ≈ the enabled time
    assert e2 - e1 >= 45_000_000 and r2 - r1 == pytest.approx(e2 - e1, rel=0.01)
    assert v2 - v1 == pytest.approx(e2 - e1, rel=0.05)
    pe.close(fd)  # closing twice is harmless
    with pytest.raises(pe.PerfEventError):
        pe.read_counter(fd)


@pytest.mark.skipif(_has_cpu_pmu(), reason="this machine has a CPU PMU: the no-PMU failure cannot happen")
def test_no_pmu_is_the_real_kernel_answer() -> None:
    for spec in pe.HARDWARE_EVENTS:
        with pytest.raises(pe.PerfEventError) as info:
            pe.open_counter(spec, 0)
        assert info.value.no_pmu and info.value.errno in (errno.ENOENT, errno.EOPNOTSUPP)
        assert info.value.reason == f"no PMU: this CPU (or VM) exposes no hardware counter {spec.name}"
        assert info.value.cpu == 0


def test_nonexistent_cpu_is_refused() -> None:
    with pytest.raises(pe.PerfEventError) as info:
        pe.open_counter(pe.CPU_CLOCK, 4096)
    assert info.value.errno in (errno.EINVAL, errno.ENODEV) and "cpu" in info.value.reason


@pytest.mark.parametrize("err, words", [
    (errno.EACCES, ["kernel.perf_event_paranoid is 2", "≤ 0", "CAP_PERFMON"]),
    (errno.EPERM, ["kernel.perf_event_paranoid is 2", "CAP_PERFMON"]),
    (errno.EMFILE, ["too many open files", "ulimit -n"]),
    (errno.ENODEV, ["cpu 3 is offline"]),
    (errno.ENOSYS, ["CONFIG_PERF_EVENTS"]),
])
def test_reasons_name_the_fix(err: int, words: list[str]) -> None:
    text = pe.reason_for(err, pe.CYCLES, 3, paranoid_value=2)
    for w in words:
        assert w in text, text


def test_no_pmu_reason_only_for_hardware_events() -> None:
    assert pe.reason_for(errno.ENOENT, pe.INSTRUCTIONS, 0) == \
        "no PMU: this CPU (or VM) exposes no hardware counter instructions"
    assert "no PMU" not in pe.reason_for(errno.ENOENT, pe.CPU_CLOCK, 0)
    assert "unreadable" in pe.reason_for(errno.EACCES, pe.CYCLES, 0, paranoid_value=None)


def test_paranoid_reads_the_setting(tmp_path: Path) -> None:
    f = tmp_path / "p"
    f.write_text("-1\n")
    assert pe.paranoid(f) == -1
    f.write_text("junk")
    assert pe.paranoid(f) is None
    assert pe.paranoid(tmp_path / "missing") is None


def test_short_read_is_an_error() -> None:
    r, w = os.pipe()
    try:
        os.write(w, b"\0" * 8)
        with pytest.raises(pe.PerfEventError, match="short read"):
            pe.read_counter(r)
    finally:
        os.close(r)
        os.close(w)
