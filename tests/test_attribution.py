"""Attribution invariants (hypothesis) and exact numbers for small cases."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings, strategies as st

from attribution_inputs import activity, bmc, gpu, proc, rapl
from keck_tui.attribution.calibration import ModelError, ModelView
from keck_tui.attribution.engine import AttributionConfig, AttributionInput, attribute
from keck_tui.attribution.features import FEATURE_NAMES
from keck_tui.attribution.regression import Fit
from keck_tui.hierarchy.types import GroupLevel
from keck_tui.model import Row, SourceStatus
from keck_tui.samplers.types import (CoreSample, CounterDelta, CpuActivity, CoreFrequency, FrequencyReading,
                                     PowerDomain,
                                     PowerReading, ThreadSample)


def _estimate_data():
    from keck_tui.estimate.data import load_estimate_data
    from keck_tui.estimate.profile import PlatformFacts, choose_cpu_profile, memory_estimate
    from keck_tui.estimate.cpuinfo import CpuIdentity

    data = load_estimate_data()
    facts = PlatformFacts(identity=CpuIdentity("Intel(R) Xeon(R) Processor", "GenuineIntel", 6, 207, 2,
                                               flags=frozenset({"hypervisor"})),
                          logical_cpus=4, virtual=True, virtual_why="test", mem_total_bytes=16 * 1024 ** 3)
    return choose_cpu_profile(facts, data), memory_estimate(facts, data)


PROFILE, MEMORY = _estimate_data()


def host_reading(watts: float, cpu_share: float, dram_share: float) -> PowerReading:
    """What --host-power gives a guest: the host's VM total, with its CPU and DRAM parts."""
    return PowerReading(SourceStatus("host", "ok"), (
        PowerDomain("host-vm", "node", watts, 1.0, 0.05),
        PowerDomain("host-cpu", "package", watts * cpu_share, 1.0, 0.05),
        PowerDomain("host-dram", "dram", watts * dram_share, 1.0, 0.05)))


def check_tree(row: Row) -> None:
    """Conservation at every level, no negative watts, lo ≤ watts ≤ hi."""
    assert row.watts >= 0, row
    assert row.watts_lo <= row.watts + 1e-12 and row.watts <= row.watts_hi + 1e-12, row
    if row.children:
        total = math.fsum(c.watts for c in row.children)
        assert abs(total - row.watts) <= 1e-9 * max(1.0, row.watts), (row.id, total, row.watts)
    for c in row.children:
        check_tree(c)


def rows_by_id(root: Row) -> dict[str, Row]:
    return {r.id: r for _, r in root.walk()}


@st.composite
def scenarios(draw):
    n_cores = draw(st.integers(1, 6))
    procs = []
    for pid in range(1, draw(st.integers(0, 12)) + 1):
        per = {c: draw(st.floats(0, 0.3)) for c in draw(st.sets(st.integers(0, n_cores - 1), max_size=n_cores))}
        p = proc(pid, per, kernel=draw(st.booleans()) and pid % 5 == 0,
                 pss=draw(st.none() | st.integers(0, 10**9)))
        if pid % 3 == 0 and not p.kernel:  # a VM process: vCPU threads and others, not always adding up
            p = replace(p, threads=tuple(ThreadSample(pid * 10 + i, name, draw(st.floats(0, 0.3)))
                                         for i, name in enumerate(("CPU 0/KVM", "CPU 1/KVM", "qemu-system-x86"))))
        procs.append(p)
    if draw(st.booleans()):  # hardware counters per (process, core): the full model can run
        procs = [replace(p, counters={c: _counters(draw, s) for c, s in p.per_cpu_s.items()}) for p in procs]
    act = activity(procs, n_cores, extra_busy=draw(st.floats(0, 0.2)), irq=draw(st.floats(0, 0.05)))
    if draw(st.booleans()):
        act = replace(act, cores=tuple(replace(c, counters=_counters(draw, c.busy_s), freq_mhz=draw(st.floats(400, 5000)))
                                       for c in act.cores))
    power = []
    kind = draw(st.sampled_from(["none", "rapl", "rapl+psys", "rapl+bmc", "bmc", "host"]))
    pkg = draw(st.floats(1, 300))
    if kind.startswith("rapl"):
        power.append(rapl(pkg, dram=draw(st.none() | st.floats(0, 40)),
                          psys=pkg * draw(st.floats(0.5, 2.0)) if kind == "rapl+psys" else None,
                          sockets=draw(st.integers(1, 2))))
    if kind.endswith("bmc"):
        power.append(bmc(pkg * draw(st.floats(0.5, 3.0))))
    if kind == "host":
        cpu_share = draw(st.floats(0, 1))
        power.append(host_reading(pkg, cpu_share, draw(st.floats(0, 1 - cpu_share))))
    gpus = ()
    if draw(st.booleans()) and procs:
        shares = {p.pid: draw(st.floats(0, 0.8)) for p in procs[:3]}
        gpus = (gpu(draw(st.floats(0, 700)), shares),)
    groups = {p.pid: (GroupLevel("namespace", f"ns{p.pid % 3}", f"ns{p.pid % 3}"),
                      GroupLevel("pod", f"pod-{p.pid % 2}", f"pod-{p.pid % 2}")) for p in procs if p.pid % 4}
    for p in procs:  # VM processes: machine.slice -> vm (two VMs)
        if p.threads:
            groups[p.pid] = (GroupLevel("slice", "machine.slice", "machine.slice"),
                             GroupLevel("vm", f"vm-{p.pid % 2}", f"web{p.pid % 2}",
                                        extra={"vm": {"kind": "qemu", "name": f"web{p.pid % 2}"}}))
    estimate = draw(st.booleans())
    cfg = AttributionConfig(model=draw(st.sampled_from(["auto", "cpu-time", "frequency-weighted", "full"])),
                            idle=draw(st.sampled_from(["separate", "proportional", "none"])),
                            idle_watts=draw(st.none() | st.floats(0, 100)),
                            cpu_profile=PROFILE if estimate else None, memory=MEMORY if estimate else None)
    inp = AttributionInput(host="node-1", interval_s=1.0, activity=act, power=tuple(power), gpus=gpus,
                           groups=groups)
    if draw(st.booleans()):  # a calibrated model: coefficients, measured error, learned DRAM weight
        model = attribute(inp, cfg).model
        m = len(FEATURE_NAMES[model])
        coef = tuple(draw(st.floats(0, 50)) for _ in range(m))
        cov = tuple(tuple(draw(st.floats(0, 4)) if i == j else 0.0 for j in range(m)) for i in range(m))
        fit = Fit(intercept=draw(st.floats(0, 50)), coef=coef, cov=cov, intercept_se=1.0, sigma=1.0, r2=0.9, n=100)
        err = ModelError(rel_row=draw(st.floats(0, 0.5)), noise_w=draw(st.floats(0, 5)), fit=fit, band=None, samples=60)
        view = ModelView(model, coef, err, None, "calibrated (test)", draw(st.none() | st.floats(0, 1)))
        inp = replace(inp, calibration=view)
    return inp, cfg


def _counters(draw, seconds: float) -> CounterDelta:
    cycles = seconds * draw(st.floats(100e6, 5e9))
    return CounterDelta(cycles=cycles, instructions=cycles * draw(st.floats(0, 4)),
                        llc_misses=draw(st.none() | st.floats(0, 1e8)))


@given(scenarios())
@settings(max_examples=300, deadline=None)
def test_invariants_hold_for_any_input(scenario):
    inp, cfg = scenario
    result = attribute(inp, cfg)
    check_tree(result.root)
    ids = [c.id for c in result.root.children]
    assert len(ids) == len(set(ids))
    if cfg.idle == "separate":
        assert "(idle)" in ids
    host = next((r for r in inp.power if r.source.name == "host"), None)
    if host is not None and not inp.gpus and cfg.idle != "none":
        # a guest's node total is the host's figure for it, measured
        assert abs(result.root.watts - host.domains[0].watts) <= 1e-6 * max(1.0, host.domains[0].watts)
        assert not result.root.estimated and result.node_power.total_source == "host"
    for _, row in result.root.walk():
        if row.level == "vm":
            assert row.extra["vm"]["kind"] == "qemu"
            assert all(c.level == "process" or c.id == "(dram)" for c in row.children)
        if row.level == "vcpu":
            assert row.name.startswith("CPU ") and row.cpu_s is not None


@given(st.floats(0.01, 0.5), st.floats(1, 400), st.floats(0, 50), st.sampled_from(["separate", "proportional"]))
@settings(max_examples=100, deadline=None)
def test_twice_the_cpu_time_gets_twice_the_watts(t, pkg, idle, policy):
    inp = AttributionInput("n", 1.0, activity([proc(1, {0: 2 * t}), proc(2, {1: t})]), (rapl(pkg),))
    r = rows_by_id(attribute(inp, AttributionConfig(model="cpu-time", idle=policy, idle_watts=idle)).root)
    assume(r["pid-2"].watts > 1e-9)
    assert r["pid-1"].watts == pytest.approx(2 * r["pid-2"].watts, rel=1e-9)


@given(st.floats(10, 400), st.floats(0.0, 0.9), st.floats(-1, 1),
       st.lists(st.floats(0.01, 0.45), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_bounds_contain_the_synthetic_truth(p_true, idle_frac, eps_unit, times):
    """Truth: P = idle + k·busy, each process drawing k·cpu_s. The sensor reads P within its accuracy."""
    acc = 0.05
    idle = idle_frac * p_true
    procs = [proc(i + 1, {i % 2: t}) for i, t in enumerate(times)]
    act = activity(procs, 2, exact=True)
    busy = sum(times)
    k = (p_true - idle) / busy
    measured = p_true / (1 + acc * eps_unit)  # the sensor is within ±acc of its own reading
    inp = AttributionInput("n", 1.0, act, (rapl(measured, accuracy=acc),))
    root = attribute(inp, AttributionConfig(model="cpu-time", idle_watts=idle)).root
    by_id = rows_by_id(root)
    for i, t in enumerate(times):
        row = by_id[f"pid-{i + 1}"]
        truth = k * t
        assert row.watts_lo - 1e-9 <= truth <= row.watts_hi + 1e-9, (row, truth)
    assert root.watts_lo - 1e-9 <= p_true <= root.watts_hi + 1e-9


def test_exact_numbers_separate_idle_with_dram_kernel_and_platform():
    procs = [proc(1, {0: 0.5}, pss=100), proc(2, {1: 0.25}, pss=300), proc(3, {0: 0.05}, kernel=True)]
    act = activity(procs, 2, extra_busy=0.05, irq=0.05)
    inp = AttributionInput("h", 1.0, act, (rapl(50.0, dram=8.0, psys=70.0),),
                           groups={1: (GroupLevel("slice", "system.slice", "system.slice"),)})
    res = attribute(inp, AttributionConfig(idle_watts=20.0))
    r = rows_by_id(res.root)
    busy = 0.5 + 0.25 + 0.05 + 0.05 + 0.05
    active = 30.0
    assert res.root.watts == pytest.approx(70.0)
    assert r["pid-1"].watts == pytest.approx(active * 0.5 / busy + 2.0)
    assert r["pid-2"].watts == pytest.approx(active * 0.25 / busy + 6.0)
    assert r["(kernel)"].watts == pytest.approx(active * 0.10 / busy)
    assert r["(idle)"].watts == pytest.approx(20.0)
    assert r["(platform)"].watts == pytest.approx(12.0)
    assert r["(residual)"].watts == pytest.approx(active * 0.05 / busy)
    assert r["system.slice"].watts == pytest.approx(r["pid-1"].watts)
    assert res.root.components == {"cpu": 50.0, "dram": 8.0, "platform": pytest.approx(12.0)}
    assert r["core-0"].cpu == 0
    assert r["pid-2"].sources == ("rapl",)  # cpu and dram both from RAPL: named once
    assert res.root.find(["h", "system.slice", "pid-1", "(dram)"]).watts == pytest.approx(2.0)
    check_tree(res.root)


def test_idle_policies():
    procs = [proc(1, {0: 0.5}), proc(2, {1: 0.5})]
    inp = AttributionInput("h", 1.0, activity(procs), (rapl(40.0),))
    sep = rows_by_id(attribute(inp, AttributionConfig(idle="separate", idle_watts=10)).root)
    prop = rows_by_id(attribute(inp, AttributionConfig(idle="proportional", idle_watts=10)).root)
    none = attribute(inp, AttributionConfig(idle="none", idle_watts=10)).root
    assert sep["pid-1"].watts == pytest.approx(15.0) and sep["(idle)"].watts == pytest.approx(10.0)
    assert prop["pid-1"].watts == pytest.approx(20.0) and "(idle)" not in prop
    assert none.watts == pytest.approx(30.0) and "(idle)" not in {c.id for c in none.children}


def test_proportional_with_no_activity_keeps_idle_in_its_row():
    inp = AttributionInput("h", 1.0, activity([]), (rapl(12.0),))
    r = rows_by_id(attribute(inp, AttributionConfig(idle="proportional", idle_watts=10)).root)
    assert r["(idle)"].watts == pytest.approx(10.0)


def test_frequency_weighted_favours_the_fast_core():
    procs = [proc(1, {0: 0.5}), proc(2, {1: 0.5})]
    act = activity(procs)
    freq = FrequencyReading(SourceStatus("cpufreq", "ok"),
                            (CoreFrequency(0, 3000.0, False, 3000.0), CoreFrequency(1, 1500.0, False, 3000.0)))
    inp = AttributionInput("h", 1.0, act, (rapl(90.0),), frequency=freq)
    res = attribute(inp, AttributionConfig(model="auto", idle_watts=0.0))
    r = rows_by_id(res.root)
    assert res.model == "frequency-weighted"
    # (f/fmax)³: 1 vs 1/8 → 8:1
    assert r["pid-1"].watts == pytest.approx(80.0) and r["pid-2"].watts == pytest.approx(10.0)
    # the spread between models widens the bounds: cpu-time would say 45 W each
    assert r["pid-1"].watts_lo <= 45.0 + 1e-9 and r["pid-2"].watts_hi >= 45.0 - 1e-9
    assert r["core-0"].freq_mhz == 3000.0 and r["core-0"].freq_nominal is False


def test_auto_picks_cpu_time_without_live_frequency_and_full_falls_back():
    inp = AttributionInput("h", 1.0, activity([proc(1, {0: 0.5})]), (rapl(10.0),))
    assert attribute(inp, AttributionConfig(model="auto")).model == "cpu-time"
    full = attribute(inp, AttributionConfig(model="full"))
    assert full.model == "frequency-weighted" and any("hardware" in w for w in full.warnings)


def test_no_sensor_is_estimated_with_wide_bounds():
    act = activity([proc(1, {0: 0.5}), proc(2, {1: 0.5})], exact=True)  # no tick error
    res = attribute(AttributionInput("vm", 1.0, act), AttributionConfig(tdp=40.0))
    root = res.root
    assert res.estimated and root.estimated
    # 30 % idle of 40 W + 70 % × 50 % utilisation
    assert root.watts == pytest.approx(12.0 + 28.0 * 0.5)
    assert (root.watts_hi - root.watts) / root.watts >= 0.3
    for _, row in root.walk():
        if row.watts > 0:
            assert row.estimated
            if row.level == "process":  # tens of percent, from one model: not the sum of two errors
                assert (row.watts_hi - row.watts) / row.watts == pytest.approx(0.40)
    check_tree(root)


def test_gpu_split_by_sm_share_with_idle_remainder():
    act = activity([proc(1, {0: 0.1}), proc(2, {1: 0.1})])
    inp = AttributionInput("g", 1.0, act, (rapl(20.0),), gpus=(gpu(400.0, {1: 0.75, 99: 0.05}),))
    res = attribute(inp, AttributionConfig(idle_watts=0.0))
    r = rows_by_id(res.root)
    assert r["gpu-0"].watts == pytest.approx(300.0)
    assert r["pid-1"].gpu_watts == pytest.approx(300.0)
    assert r["(idle)"].components["gpu"] == pytest.approx(80.0)  # 20 % unused
    assert r["(residual)"].watts == pytest.approx(20.0)  # pid 99 is not visible here
    assert res.root.watts == pytest.approx(420.0)
    check_tree(res.root)


def test_bmc_below_components_is_reported_and_bounds_widen():
    act = activity([proc(1, {0: 0.5})])
    res = attribute(AttributionInput("b", 1.0, act, (rapl(100.0, dram=20.0), bmc(90.0))), AttributionConfig(idle_watts=0))
    assert any("disagree" in w for w in res.warnings)
    assert res.root.watts == pytest.approx(120.0)
    assert res.root.watts_lo <= 90.0 + 1e-9


def test_bmc_total_gives_platform_row():
    act = activity([proc(1, {0: 0.5})])
    res = attribute(AttributionInput("b", 1.0, act, (rapl(100.0, dram=20.0), bmc(200.0))), AttributionConfig(idle_watts=0))
    r = rows_by_id(res.root)
    assert r["(platform)"].watts == pytest.approx(80.0)
    assert res.node_power.total_source == "bmc"


def test_bmc_only_estimates_the_cpu_split_inside_the_measured_total():
    act = activity([proc(1, {0: 1.0}), proc(2, {1: 1.0})])
    res = attribute(AttributionInput("b", 1.0, act, (bmc(300.0),)), AttributionConfig(tdp=100.0, idle_watts=20.0))
    assert not res.estimated
    assert res.root.watts == pytest.approx(300.0)
    r = rows_by_id(res.root)
    assert r["pid-1"].estimated and r["(platform)"].watts == pytest.approx(200.0)
    check_tree(res.root)


def test_rapl_psys_is_not_added_to_packages():
    act = activity([proc(1, {0: 0.5})])
    res = attribute(AttributionInput("p", 1.0, act, (rapl(30.0, dram=5.0, psys=50.0),)), AttributionConfig(idle_watts=0))
    assert res.root.watts == pytest.approx(50.0)
    assert res.node_power.total_source == "psys"


def test_unreadable_sources_are_ignored_not_zero():
    act = activity([proc(1, {0: 0.5})])
    bad = rapl(999.0)
    bad = type(bad)(SourceStatus("rapl", "unavailable", "energy_uj needs root"), bad.domains)
    res = attribute(AttributionInput("u", 1.0, act, (bad,)), AttributionConfig())
    assert res.estimated  # nothing measured: estimate, never 999 W nor 0 W


def test_ebpf_frequency_residency_is_used():
    procs = [proc(1, {0: 0.5}), proc(2, {1: 0.5})]
    cores = (CoreSample(0, 0.5, 1.0, freq_mhz=2000.0, freq_cubed_weight=0.5),
             CoreSample(1, 0.5, 1.0, freq_mhz=1000.0, freq_cubed_weight=0.0625))
    act = CpuActivity(SourceStatus("ebpf", "ok"), 1.0, processes=tuple(procs), cores=cores, per_cpu_exact=True)
    res = attribute(AttributionInput("e", 1.0, act, (rapl(45.0),)), AttributionConfig(idle_watts=0))
    r = rows_by_id(res.root)
    assert res.model == "frequency-weighted"
    assert r["pid-1"].watts == pytest.approx(40.0) and r["pid-2"].watts == pytest.approx(5.0)


def test_gpu_measured_but_no_cpu_sensor_adds_the_cpu_estimate():
    act = activity([proc(1, {0: 0.5}), proc(2, {1: 0.5})])
    res = attribute(AttributionInput("g", 1.0, act, gpus=(gpu(600.0, {1: 1.0}),)), AttributionConfig(tdp=40.0))
    cpu_est = 12.0 + 28.0 * 0.5
    assert res.root.watts == pytest.approx(600.0 + cpu_est)
    assert res.root.estimated and not res.estimated  # the GPU is measured, the CPU part is not
    r = rows_by_id(res.root)
    assert r["pid-1"].gpu_watts == pytest.approx(600.0)
    check_tree(res.root)


def test_float_rounding_makes_no_residual_row():
    # Seen in --once --json on a RAPL node: a "(residual)" row of 4e-16 W.
    import random

    rng = random.Random(1)
    for _ in range(300):
        act = activity([proc(j + 1, {j % 2: rng.random() * 0.3}) for j in range(5)])
        res = attribute(AttributionInput("h", 1.0, act, (rapl(rng.random() * 100),)),
                        AttributionConfig(idle_watts=rng.random() * 5))
        assert "(residual)" not in rows_by_id(res.root), res.root
        check_tree(res.root)


def test_two_wall_meters_are_not_summed():
    # A BMC and an ACPI power meter (hwmon) both read the whole node: 974 + 123 W was reported.
    from keck_tui.samplers.types import PowerDomain, PowerReading

    def meter(watts: float) -> PowerReading:
        return PowerReading(SourceStatus("hwmon", "ok"), (PowerDomain("power1", "node", watts, 1.0, 0.05),))

    act = activity([proc(1, {0: 0.5})])
    agree = attribute(AttributionInput("b", 1.0, act, (meter(295.0), bmc(300.0))), AttributionConfig(idle_watts=0))
    assert agree.root.watts == pytest.approx(300.0) and not agree.warnings  # the BMC is preferred
    check_tree(agree.root)
    apart = attribute(AttributionInput("b", 1.0, act, (bmc(300.0), meter(120.0))), AttributionConfig(idle_watts=0))
    assert apart.root.watts == pytest.approx(300.0)
    assert apart.root.watts_lo <= 120.0 and any("disagree" in w for w in apart.warnings)
    check_tree(apart.root)
    alone = attribute(AttributionInput("b", 1.0, act, (meter(120.0),)), AttributionConfig(idle_watts=0))
    assert alone.root.watts == pytest.approx(120.0)


def test_idle_processes_with_little_memory_are_summed_per_group():
    """With a DRAM figure, a process that used no CPU gets a row of its own only for at least
    0.5 % of the node's DRAM; smaller ones are one (dram) row per group (the tree stays small)."""
    busy = proc(1, {0: 0.5}, pss=10 * 2**20)
    big_idle = proc(2, {}, pss=500 * 2**20)
    tiny = [proc(10 + i, {}, pss=2**20) for i in range(50)]
    groups = {p.pid: (GroupLevel("slice", "system.slice", "system.slice"),) for p in [busy, big_idle] + tiny[:30]}
    inp = AttributionInput(host="h", interval_s=1.0, activity=activity([busy, big_idle, *tiny], 2),
                           power=(rapl(50.0, dram=10.0),), groups=groups)
    res = attribute(inp, AttributionConfig(model="cpu-time", idle_watts=10.0))
    check_tree(res.root)
    total_pss = 10 + 500 + 50
    r = rows_by_id(res.root)
    assert r["pid-2"].watts == pytest.approx(10.0 * 500 / total_pss)  # 89 % of DRAM: its own row
    assert not any(f"pid-{10 + i}" in r for i in range(50))
    in_slice = res.root.find(["h", "system.slice", "(dram)"])
    at_node = res.root.find(["h", "(dram)"])
    assert in_slice.watts == pytest.approx(10.0 * 30 / total_pss) and "30 processes" in in_slice.note
    assert at_node.watts == pytest.approx(10.0 * 20 / total_pss) and "20 processes" in at_node.note
    assert res.root.components["dram"] == pytest.approx(10.0)
