"""NVML sampler against a fake pynvml module: power, energy, process shares, errors."""
from __future__ import annotations

import pytest

from keck_tui.clock import FakeClock
from keck_tui.samplers.nvml import UnavailableGpuSampler, nvml_accuracy_w, open_nvml_sampler
from tests.fakes.fake_nvml import FakeGpu, FakeMig, FakeNvml, NVMLError_DriverNotLoaded, NVMLError_LibraryNotFound

T0 = 1_700_000_000_000_000  # µs, NVML sample timestamps are wall-clock microseconds


def make(gpus, hold_s: float = 5.0):
    clock = FakeClock()
    nv = FakeNvml(gpus)
    return open_nvml_sampler(clock, nvml=nv, hold_s=hold_s), clock, nv


def test_first_call_primes_then_power_from_the_energy_counter():
    gpu = FakeGpu(energy_mj=5_000_000, power_mw=300_000, util=97, processes={4242: 2 * 2**30})
    sampler, clock, _ = make([gpu])
    first = sampler.sample()
    assert first.source.status == "ok" and first.source.detail == "warming up" and first.devices == ()
    clock.advance(2.0)
    gpu.energy_mj += 1_290_000  # 1290 J in 2 s = 645 W (the instantaneous reading says 300 W)
    r = sampler.sample()
    assert r.source.ok and r.source.watts == pytest.approx(645.0)
    d = r.devices[0]
    assert d.watts == pytest.approx(645.0) and d.joules == pytest.approx(1290.0)
    assert d.accuracy_w == pytest.approx(32.25)  # 5 % of 645 W
    assert (d.util_pct, d.sm_clock_mhz, d.temp_c, d.power_limit_w) == (97.0, 1980.0, 35.0, 700.0)
    assert d.mem_used_bytes == 512 * 2**20
    assert d.name == "NVIDIA H100 80GB HBM3" and d.uuid.startswith("GPU-")
    # one process, no utilisation samples yet: it is the only candidate
    assert [(p.pid, p.sm_share, p.mem_bytes) for p in d.processes] == [(4242, 1.0, 2 * 2**30)]


def test_accuracy_is_the_larger_of_5_watts_and_5_percent():
    assert nvml_accuracy_w(60.0) == 5.0
    assert nvml_accuracy_w(100.0) == 5.0
    assert nvml_accuracy_w(700.0) == pytest.approx(35.0)


def test_multi_gpu_and_sparse_samples_integrated_over_the_interval():
    g0 = FakeGpu(uuid="GPU-a", energy_mj=0, processes={100: None, 200: None})
    g1 = FakeGpu(uuid="GPU-b", energy_mj=0, processes={300: None})
    sampler, clock, nv = make([g0, g1])
    g0.add_samples(100, T0 - 10_000_000, 3, 90)  # old samples: drained by the priming call
    sampler.sample()
    # interval: the busy process has 8 samples at 80 %, the 25 %-duty one 3 samples at 80 %
    g0.add_samples(100, T0, 8, 80)
    g0.add_samples(200, T0 + 50_000, 3, 80)
    clock.advance(1.0)
    g0.energy_mj += 400_000
    g1.energy_mj += 75_000
    r = sampler.sample()
    d0, d1 = r.devices
    assert (d0.watts, d1.watts) == (pytest.approx(400.0), pytest.approx(75.0))
    assert r.source.watts == pytest.approx(475.0)
    shares = {p.pid: p.sm_share for p in d0.processes}
    assert shares == {100: pytest.approx(8 / 11), 200: pytest.approx(3 / 11)}
    assert [(p.pid, p.sm_share) for p in d1.processes] == [(300, 1.0)]
    # the next read asks only for samples newer than the newest one seen on that device
    clock.advance(1.0)
    sampler.sample()
    assert nv.calls[-2] == ("util", T0 + 7 * 166_000)
    assert nv.calls[-1] == ("util", 0)


def test_not_found_until_samples_exist_and_shares_held_briefly():
    gpu = FakeGpu(energy_mj=0, processes={100: None, 200: None})
    sampler, clock, _ = make([gpu], hold_s=3.0)
    sampler.sample()  # NotFound while priming: fine
    clock.advance(1.0)
    r = sampler.sample()  # NotFound again: two processes, no samples -> nothing attributed
    assert {p.pid: p.sm_share for p in r.devices[0].processes} == {100: 0.0, 200: 0.0}
    gpu.add_samples(100, T0, 2, 50)
    gpu.add_samples(200, T0, 2, 150)
    clock.advance(1.0)
    r = sampler.sample()
    assert {p.pid: p.sm_share for p in r.devices[0].processes} == {100: 0.25, 200: 0.75}
    clock.advance(2.0)  # no new samples: shares kept (held for 3 s)
    r = sampler.sample()
    assert {p.pid: p.sm_share for p in r.devices[0].processes} == {100: 0.25, 200: 0.75}
    clock.advance(2.0)  # now 4 s old: dropped
    r = sampler.sample()
    assert {p.pid: p.sm_share for p in r.devices[0].processes} == {100: 0.0, 200: 0.0}


def test_processes_appearing_and_disappearing():
    gpu = FakeGpu(energy_mj=0)
    sampler, clock, _ = make([gpu])
    sampler.sample()
    clock.advance(1.0)
    assert sampler.sample().devices[0].processes == ()
    gpu.processes = {100: 1 << 30, 200: 1 << 20}
    gpu.add_samples(100, T0, 4, 60)
    gpu.add_samples(200, T0, 4, 20)
    clock.advance(1.0)
    shares = {p.pid: p.sm_share for p in sampler.sample().devices[0].processes}
    assert shares == {100: 0.75, 200: 0.25}
    del gpu.processes[200]  # 200 exited; no new samples: its held share is dropped
    clock.advance(1.0)
    shares = {p.pid: p.sm_share for p in sampler.sample().devices[0].processes}
    assert shares == {100: 0.75}
    # a process that exited mid-interval but left samples is still reported
    gpu.add_samples(300, T0 + 10_000_000, 2, 50)
    gpu.add_samples(100, T0 + 10_000_000, 2, 50)
    clock.advance(1.0)
    shares = {p.pid: p.sm_share for p in sampler.sample().devices[0].processes}
    assert shares == {100: 0.5, 300: 0.5}


def test_counter_reset_falls_back_to_the_power_reading_and_is_flagged():
    gpu = FakeGpu(energy_mj=9_000_000, power_mw=120_000)
    sampler, clock, _ = make([gpu])
    sampler.sample()
    clock.advance(2.0)
    gpu.energy_mj = 50_000  # driver reloaded: counter restarted
    r = sampler.sample()
    d = r.devices[0]
    assert d.watts == pytest.approx(120.0) and d.joules == pytest.approx(240.0)
    assert r.source.extra["flags"] == {"gpu-0": ["counter-reset", "from-power-usage"]}
    clock.advance(1.0)
    gpu.energy_mj += 130_000
    r = sampler.sample()
    assert r.devices[0].watts == pytest.approx(130.0) and "flags" not in r.source.extra


def test_no_energy_counter_uses_power_usage():
    gpu = FakeGpu(energy_mj=None, power_mw=61_500)
    sampler, clock, _ = make([gpu])
    sampler.sample()
    clock.advance(0.5)
    d = sampler.sample().devices[0]
    assert d.watts == pytest.approx(61.5) and d.joules == pytest.approx(30.75)
    assert d.accuracy_w == 5.0


def test_lost_gpu_is_reported_the_others_still_read():
    g0, g1 = FakeGpu(energy_mj=0), FakeGpu(energy_mj=0)
    sampler, clock, _ = make([g0, g1])
    sampler.sample()
    g1.lost = True
    clock.advance(1.0)
    g0.energy_mj += 100_000
    r = sampler.sample()
    assert r.source.status == "ok" and [d.index for d in r.devices] == [0]
    assert "GPU 1" in r.source.detail and "lost" in r.source.detail.lower()
    g0.lost = True
    clock.advance(1.0)
    r = sampler.sample()
    assert r.source.status == "error" and r.devices == ()


def test_learned_idle_power():
    gpu = FakeGpu(energy_mj=0, util=0)
    sampler, clock, _ = make([gpu])
    sampler.sample()
    for joules in (80_000, 75_000, 77_000):
        clock.advance(1.0)
        gpu.energy_mj += joules
        d = sampler.sample().devices[0]
    assert d.idle_watts == pytest.approx(75.0)
    gpu.util, gpu.processes = 100, {1: None}
    clock.advance(1.0)
    gpu.energy_mj += 600_000
    assert sampler.sample().devices[0].idle_watts == pytest.approx(75.0)


def test_mig_instances_listed():
    gpu = FakeGpu(energy_mj=0, util_supported=False,
                  mig=[FakeMig("MIG-1", 1, 0, 3 << 30, {500: 3 << 30}), None, FakeMig("MIG-2", 2, 0, 0)])
    sampler, clock, _ = make([gpu])
    sampler.sample()
    clock.advance(1.0)
    d = sampler.sample().devices[0]
    assert [dict(m) for m in d.mig] == [
        {"index": 0, "uuid": "MIG-1", "gpu_instance_id": 1, "compute_instance_id": 0,
         "mem_used_bytes": 3 << 30, "pids": [500]},
        {"index": 2, "uuid": "MIG-2", "gpu_instance_id": 2, "compute_instance_id": 0,
         "mem_used_bytes": 0, "pids": []},
    ]


@pytest.mark.parametrize("error, words", [(NVMLError_LibraryNotFound, "libnvidia-ml.so.1 not found"),
                                          (NVMLError_DriverNotLoaded, "driver not loaded")])
def test_no_library_or_driver_is_unavailable_with_a_fix(error, words):
    sampler = open_nvml_sampler(FakeClock(), nvml=FakeNvml(init_error=error))
    assert isinstance(sampler, UnavailableGpuSampler) and sampler.name == "nvml"
    r = sampler.sample()
    assert r.source.status == "unavailable" and words in r.source.detail and r.source.extra["fix"]


def test_no_gpu_is_unavailable():
    r = open_nvml_sampler(FakeClock(), nvml=FakeNvml([])).sample()
    assert r.source.status == "unavailable" and "no NVIDIA GPU" in r.source.detail


def test_real_pynvml_on_this_machine_never_raises():
    """On a machine without the driver the real module gives a clear unavailable status."""
    r = open_nvml_sampler(FakeClock()).sample()
    assert r.source.name == "nvml"
    assert r.source.status in ("ok", "unavailable")


def test_the_fake_matches_the_real_pynvml_api():
    """Every call the fake offers exists in pynvml with the same required parameters."""
    import inspect

    import pynvml
    for name in dir(FakeNvml):
        if name.startswith("nvml"):
            real = getattr(pynvml, name)
            fake = getattr(FakeNvml([]), name)
            params = inspect.signature(getattr(real, "__wrapped__", real)).parameters.values()
            required = [p for p in params if p.default is inspect.Parameter.empty]
            assert len(required) == len(inspect.signature(fake).parameters), name


def test_falls_back_to_processes_utilization_info_when_the_old_call_is_unsupported():
    gpu = FakeGpu(energy_mj=0, processes={100: None, 200: None}, util_supported=False, util_info_supported=True)
    sampler, clock, nv = make([gpu])
    sampler.sample()
    gpu.add_samples(100, T0, 3, 40)
    gpu.add_samples(200, T0, 3, 120)
    clock.advance(1.0)
    shares = {p.pid: p.sm_share for p in sampler.sample().devices[0].processes}
    assert shares == {100: 0.25, 200: 0.75}
    assert [c[0] for c in nv.calls] == ["util", "util-info", "util-info"]  # the old call is not retried


def test_no_utilisation_api_at_all_leaves_several_processes_unattributed():
    gpu = FakeGpu(energy_mj=0, processes={100: None, 200: None}, util_supported=False)
    sampler, clock, nv = make([gpu])
    sampler.sample()
    clock.advance(1.0)
    shares = {p.pid: p.sm_share for p in sampler.sample().devices[0].processes}
    assert shares == {100: 0.0, 200: 0.0}
    assert [c[0] for c in nv.calls] == ["util", "util-info"]
