"""CpufreqSampler: live cpufreq values, nominal /proc/cpuinfo fallback."""
from __future__ import annotations

import pytest

from fakesys import FakeProc, FakeSys
from keck_tui.samplers.cpufreq import CpufreqSampler, parse_cpuinfo


def test_live_cpufreq(tmp_path):
    sys = FakeSys(tmp_path / "sys")
    sys.add_cpu(0, 1_200_000, max_khz=3_500_000)
    sys.add_cpu(1, 3_400_000, scaling_max_khz=3_000_000)
    sys.add_cpu(2, 2_000_000, max_khz=3_500_000, online=False)
    r = CpufreqSampler(sys.root, tmp_path / "proc").sample()
    assert r.source.status == "ok" and r.source.detail == ""
    assert [(c.cpu, c.mhz, c.nominal, c.max_mhz) for c in r.cores] == [
        (0, 1200.0, False, 3500.0), (1, 3400.0, False, 3000.0)]
    sys.set_cpu_freq(0, 2_800_000)
    r = CpufreqSampler(sys.root, tmp_path / "proc").sample()
    assert r.cores[0].mhz == 2800.0


def test_nominal_from_cpu_mhz(tmp_path):
    sys = FakeSys(tmp_path / "sys")
    sys.add_cpu(0)
    sys.add_cpu(1)
    proc = FakeProc(tmp_path / "proc", ncpu=2)
    proc.set_cpuinfo("Intel(R) Xeon(R) CPU E5-2650 v4 @ 2.20GHz", mhz=[2199.998, 2300.0])
    r = CpufreqSampler(sys.root, proc.root).sample()
    assert r.source.status == "ok"
    assert r.source.detail == "frequencies are nominal (from /proc/cpuinfo: no cpufreq)"
    assert "fix" in r.source.extra
    assert [(c.cpu, c.mhz, c.nominal, c.max_mhz) for c in r.cores] == [
        (0, 2199.998, True, 2200.0), (1, 2300.0, True, 2200.0)]


def test_nominal_from_model_name(tmp_path):
    proc = FakeProc(tmp_path / "proc", ncpu=4)
    proc.set_cpuinfo("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", mhz=None)
    r = CpufreqSampler(tmp_path / "sys", proc.root).sample()  # no sysfs cpu folders at all
    assert [(c.cpu, c.mhz, c.nominal) for c in r.cores] == [(i, 1900.0, True) for i in range(4)]


def test_mixed_live_and_nominal(tmp_path):
    sys = FakeSys(tmp_path / "sys")
    sys.add_cpu(0, 1_000_000)
    sys.add_cpu(1)
    sys.add_cpu(2)
    proc = FakeProc(tmp_path / "proc", ncpu=3)
    proc.set_cpuinfo(mhz=2500.0)
    r = CpufreqSampler(sys.root, proc.root).sample()
    assert [(c.mhz, c.nominal) for c in r.cores] == [(1000.0, False), (2500.0, True), (2500.0, True)]
    assert r.source.detail == "frequencies are nominal for cpus 1-2 (from /proc/cpuinfo: no cpufreq)"


def test_nothing_known(tmp_path):
    sys = FakeSys(tmp_path / "sys")
    sys.add_cpu(0)
    proc = FakeProc(tmp_path / "proc", ncpu=1)
    proc.set_cpuinfo("ARMv8 Processor rev 1 (v8l)", mhz=None)
    r = CpufreqSampler(sys.root, proc.root).sample()
    assert r.source.status == "unavailable" and r.cores == ()
    assert r.source.detail.startswith("no cpufreq in ")


def test_parse_cpuinfo_ignores_junk():
    text = "processor\t: 0\ncpu MHz\t\t: bogus\nmodel name\t: X @ 3.0GHz\n\nHardware\t: BCM2835\n"
    assert parse_cpuinfo(text) == {0: (3000.0, 3000.0)}


def test_this_machine():
    r = CpufreqSampler("/sys", "/proc").sample()
    assert r.source.status in ("ok", "unavailable")
    if r.source.status == "ok":
        assert r.cores and all(c.mhz > 0 for c in r.cores)
        assert len({c.cpu for c in r.cores}) == len(r.cores)
    else:
        pytest.skip(f"no frequency on this machine: {r.source.detail}")
