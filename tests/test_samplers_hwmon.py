"""HwmonSampler over fake hwmon trees: power and energy sensors, labels, kinds."""
from __future__ import annotations

import pytest

from fakesys import FakeSys, deny_reads
from keck_tui.clock import FakeClock
from keck_tui.samplers.discovery import REDISCOVER_S, Discovery
from keck_tui.samplers.hwmon import HwmonSampler
from keck_tui.samplers.types import DOMAIN_CORE, DOMAIN_GPU, DOMAIN_NODE, DOMAIN_OTHER, DOMAIN_PACKAGE

REL = 1e-3


def by_name(reading):
    return {d.name: d for d in reading.domains}


def amd_server(sys: FakeSys) -> str:
    return sys.add_hwmon(
        "amd_energy",
        {"energy1_input": 1_000_000_000, "energy2_input": 2_000_000_000,
         "energy3_input": 10_000_000, "energy4_input": 20_000_000},
        {"energy1": "Esocket0", "energy2": "Esocket1", "energy3": "Ecore000", "energy4": "Ecore001"})


def test_amd_energy_counters(tmp_path):
    sys = FakeSys(tmp_path)
    sys.add_hwmon("k10temp", {"temp1_input": 45000})
    hw = amd_server(sys)
    clock = FakeClock()
    hwmon = HwmonSampler(sys.root, clock)
    assert hwmon.sample().source.detail == "warming up"
    sys.set_hwmon(hw, "energy1_input", 1_000_000_000 + 240_000_000)  # 240 J
    sys.set_hwmon(hw, "energy2_input", 2_000_000_000 + 180_000_000)
    sys.set_hwmon(hw, "energy3_input", 10_000_000 + 30_000_000)
    clock.advance(3.0)
    r = hwmon.sample()
    assert r.source.status == "ok"
    d = by_name(r)
    assert set(d) == {"package-0", "package-1", "core-0", "core-1"}
    assert d["package-0"].kind == DOMAIN_PACKAGE and d["package-0"].socket == 0
    assert d["package-0"].watts == pytest.approx(80.0, rel=REL)
    assert d["package-0"].joules == pytest.approx(240.0, rel=REL)
    assert d["package-1"].watts == pytest.approx(60.0, rel=REL) and d["package-1"].socket == 1
    assert d["core-0"].kind == DOMAIN_CORE and d["core-0"].watts == pytest.approx(10.0, rel=REL)
    assert d["core-1"].watts == 0.0
    assert d["package-0"].label == "Esocket0"
    assert r.source.watts == pytest.approx(140.0, rel=REL)  # packages, cores are inside


def test_amd_energy_is_not_summed_when_rapl_reports_the_same(tmp_path):
    sys = FakeSys(tmp_path)
    sys.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    hw = amd_server(sys)
    clock = FakeClock()
    hwmon = HwmonSampler(sys.root, clock)
    hwmon.sample()
    sys.set_hwmon(hw, "energy1_input", 1_000_000_000 + 50_000_000)
    clock.advance(1.0)
    r = hwmon.sample()
    d = by_name(r)
    assert d["package-0"].kind == DOMAIN_OTHER and d["package-0"].watts == pytest.approx(50.0, rel=REL)
    assert d["core-0"].kind == DOMAIN_OTHER
    assert "also in RAPL" in r.source.detail
    assert r.source.watts is None  # nothing summable from hwmon here


def test_energy_counter_reset_drops_the_interval(tmp_path):
    sys = FakeSys(tmp_path)
    hw = amd_server(sys)
    clock = FakeClock()
    hwmon = HwmonSampler(sys.root, clock)
    hwmon.sample()
    sys.set_hwmon(hw, "energy1_input", 5_000)  # driver reloaded
    sys.set_hwmon(hw, "energy2_input", 2_000_000_000 + 50_000_000)
    clock.advance(1.0)
    r = hwmon.sample()
    assert "package-0" not in by_name(r)
    assert by_name(r)["package-1"].watts == pytest.approx(50.0, rel=REL)
    assert "package-0: energy counter went backwards (reset?)" in r.source.detail
    sys.set_hwmon(hw, "energy1_input", 5_000 + 7_000_000)
    clock.advance(1.0)
    assert by_name(hwmon.sample())["package-0"].watts == pytest.approx(7.0, rel=REL)


def test_power_sensors_average_input_and_kinds(tmp_path):
    sys = FakeSys(tmp_path)
    meter = sys.add_hwmon("acpi_power_meter", {"power1_average": 350_000_000})
    (sys.root / "class" / "hwmon" / meter / "power1_accuracy").write_text("98.5%\n")
    gpu = sys.add_hwmon("amdgpu", {"power1_average": 40_000_000, "power1_input": 1},
                        {"power1": "PPT"})
    rails = sys.add_hwmon("zenpower", {"power1_input": 20_000_000, "power2_input": 5_000_000},
                          {"power1": "SVI2_P_Core", "power2": "SVI2_P_SoC"})
    clock = FakeClock()
    hwmon = HwmonSampler(sys.root, clock)
    hwmon.sample()
    sys.set_hwmon(meter, "power1_average", 370_000_000)
    sys.set_hwmon(gpu, "power1_average", 60_000_000)
    clock.advance(2.0)
    r = hwmon.sample()
    d = by_name(r)
    assert d["node"].kind == DOMAIN_NODE
    assert d["node"].watts == pytest.approx(360.0, rel=REL)  # mean of both ends
    assert d["node"].accuracy == pytest.approx(0.015)
    assert d["node"].joules is None and d["node"].interval_s == pytest.approx(2.0)
    g = d[f"amdgpu/{gpu}/power1"]
    assert g.kind == DOMAIN_GPU and g.label == "PPT"
    assert g.watts == pytest.approx(50.0, rel=REL)  # power1_average preferred over power1_input
    core = d[f"zenpower/{rails}/power1"]
    assert core.kind == DOMAIN_OTHER and core.label == "SVI2_P_Core"
    assert core.watts == pytest.approx(20.0, rel=REL)
    assert d[f"zenpower/{rails}/power2"].watts == pytest.approx(5.0, rel=REL)
    assert r.source.watts == pytest.approx(360.0, rel=REL)  # the node meter


def test_sensors_on_the_device_folder(tmp_path):
    sys = FakeSys(tmp_path)
    hw = sys.add_hwmon("old", {})
    dev = sys.root / "class" / "hwmon" / hw / "device"
    dev.mkdir()
    (dev / "power1_input").write_text("12000000\n")
    clock = FakeClock()
    hwmon = HwmonSampler(sys.root, clock)
    hwmon.sample()
    clock.advance(1.0)
    assert [d.watts for d in hwmon.sample().domains] == [pytest.approx(12.0)]


def test_no_hwmon_power_sensors(tmp_path):
    sys = FakeSys(tmp_path)
    sys.add_hwmon("coretemp", {"temp1_input": 40000})
    sys.add_hwmon("nvme", {"temp1_input": 35000})
    r = HwmonSampler(sys.root, FakeClock()).sample()
    assert r.source.status == "unavailable"
    assert r.source.detail == "no hwmon power or energy sensors (devices: coretemp, nvme)"
    assert "fix" in r.source.extra


def test_sensors_of_a_driver_loaded_later_are_found_at_the_next_search(tmp_path):
    """Not searched for at every sample (a VM has no sensors): again every REDISCOVER_S."""
    sys = FakeSys(tmp_path)
    sys.add_hwmon("coretemp", {"temp1_input": 40000})
    clock = FakeClock()
    hwmon = HwmonSampler(sys.root, clock)
    first = hwmon.sample().source
    assert first.detail == "no hwmon power or energy sensors (devices: coretemp)"
    sys.add_hwmon("amd_energy", {"energy1_input": 5_000_000}, {"energy1": "Esocket0"})
    clock.advance(REDISCOVER_S - 1)
    assert hwmon.sample().source == first  # the same why, without a search
    clock.advance(1)
    assert hwmon.sample().source.detail == "warming up"


def test_no_hwmon_folder(tmp_path):
    r = HwmonSampler(tmp_path, FakeClock()).sample()
    assert r.source.status == "unavailable"
    assert r.source.detail == f"no hwmon: {tmp_path}/class/hwmon does not exist"


def test_energy_needs_root(tmp_path):
    sys = FakeSys(tmp_path)
    amd_server(sys)
    r = HwmonSampler(sys.root, FakeClock(), read_file=deny_reads("_input")).sample()
    assert r.source.status == "unavailable"
    assert r.source.detail == "energy*_input needs root"
    assert r.domains == ()


def test_real_sysfs_does_not_raise():
    r = HwmonSampler("/sys").sample()
    assert r.source.status in ("ok", "unavailable", "error")


def test_discovery_searches_once_when_found_and_every_interval_when_not():
    clock = FakeClock()
    results = [(), (), ("zone",), ("other",)]
    calls = []

    def find():
        calls.append(clock.monotonic())
        return results[len(calls) - 1]

    d = Discovery(find, clock, every_s=10.0)
    assert d.get() == () and d.searches == 1
    clock.advance(9.9)
    assert d.get() == () and d.searches == 1
    clock.advance(0.1)
    assert d.get() == () and d.searches == 2
    clock.advance(10.0)
    assert d.get() == ("zone",) and d.searches == 3
    clock.advance(100.0)
    assert d.get() == ("zone",) and d.searches == 3  # found: never searched again


def test_discovery_says_why_once_per_search():
    clock = FakeClock()
    d = Discovery(lambda: (), clock, every_s=5.0)
    asked = []

    def why():
        asked.append(d.searches)
        return f"none at search {d.searches}"

    d.get()
    assert d.absent(why) == "none at search 1" and d.absent(why) == "none at search 1"
    clock.advance(5.0)
    d.get()
    assert d.absent(why) == "none at search 2"
    assert asked == [1, 2]
