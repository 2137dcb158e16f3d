"""keck-top run, the pure parts: statistics, the run's energy from intervals, trackers, output file."""
from __future__ import annotations

import math

import pytest

from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.runmeter.meter import Bounded, IntervalEnergy, RunMeter, finish, interval_of
from keck_tui.runmeter.stats import summarise, t975
from keck_tui.runmeter.tracking import CgroupTracker, PpidTracker, TrackingUnavailable, choose_tracker
from keck_tui.samplers.types import CpuActivity, ProcessSample


# ------------------------------------------------------------------ statistics


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423),
                                         (31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799),
                                         (1000, 1.9623)])
def test_t_quantiles_match_the_table(df, expected):
    assert t975(df) == pytest.approx(expected, abs=2e-4)


def test_summary_mean_and_ci():
    s = summarise([10.0, 12.0, 11.0, 13.0, 9.0])
    assert s.mean == pytest.approx(11.0)
    assert s.stdev == pytest.approx(math.sqrt(2.5))
    assert s.ci95 == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    one = summarise([4.0])
    assert one.stdev is None and one.ci95 is None and one.mean == 4.0
    with pytest.raises(ValueError):
        summarise([])


# ------------------------------------------------------------------ energy of a run


def _iv(watts=10.0, cpu_s=0.5, kernel=None, dt=1.0, idle_cpu=6.0, active_cpu=20.0, busy_s=1.0,
        platform=0.0, t=1000.0, pids=(1,), err=0.1) -> IntervalEnergy:
    return IntervalEnergy(time=t, dt=dt, watts=watts, lo=watts * (1 - err), hi=watts * (1 + err),
                          cpu_w=watts, dram_w=0.0, gpu_w=0.0, cpu_s=cpu_s, kernel_cpu_s=kernel,
                          node_w=idle_cpu + active_cpu + platform, node_lo=0.0, node_hi=100.0,
                          idle_cpu_w=idle_cpu, idle_gpu_w=0.0, idle_err_w=1.0, platform_w=platform,
                          platform_err_w=0.0, active_cpu_w=active_cpu, gpu_attributed_w=0.0,
                          busy_s=busy_s, pids=frozenset(pids), pid_cpu_s={p: cpu_s / len(pids) for p in pids})


def test_rows_sum_and_idle_policies():
    e = finish([_iv(t=1.0), _iv(t=2.0, watts=20.0, cpu_s=1.0)])
    assert e.active.value == pytest.approx(30.0)
    assert (e.active.lo, e.active.hi) == (pytest.approx(27.0), pytest.approx(33.0))
    # proportional: idle 6 W × its share of active CPU watts (10/20, then 20/20)
    assert e.idle_proportional.value == pytest.approx(6 * 0.5 + 6 * 1.0)
    assert e.total("proportional").value == pytest.approx(39.0)
    assert e.total("whole").value == pytest.approx(30.0 + 12.0)
    assert e.peak_w.value == pytest.approx(26.0) and e.peak_time == 2.0  # 20 W + 6 W idle share
    assert e.kernel_source == "none" and e.correction_j == 0.0


def test_per_interval_kernel_time_corrects_what_samples_missed():
    # the rows saw 0.5 s at 10 W (20 J/CPU-s); the cgroup says 0.6 s: +0.1 s × 20 J/s
    e = finish([_iv(kernel=0.6), _iv(kernel=0.5, t=2.0)])
    assert e.kernel_source == "cgroup"
    assert e.correction_cpu_s == pytest.approx(0.1)
    assert e.active.value == pytest.approx(22.0)
    assert e.cpu_j == pytest.approx(22.0)
    assert e.kernel_cpu_s == pytest.approx(1.1)
    assert e.peak_w.value >= 12.0  # the corrected interval is in the peak


def test_run_level_rusage_correction_and_processes_still_running():
    # rows: 1 s at 20 J/s; the kernel says 1.5 s for the reaped tree → +10 J
    e = finish([_iv(watts=20.0, cpu_s=1.0)], kernel_total_cpu_s=1.5, kernel_source="rusage")
    assert e.kernel_source == "rusage" and e.active.value == pytest.approx(30.0)
    # a process still running (2) is not in rusage: only the reaped one's 0.5 s is compared
    e2 = finish([_iv(watts=20.0, cpu_s=1.0, pids=(1, 2))], kernel_total_cpu_s=0.4, kernel_source="rusage",
                running_at_end={2})
    assert e2.active.value == pytest.approx(20.0 + (0.4 - 0.5) * 20.0)
    assert e2.correction_cpu_s == pytest.approx(-0.1)


def test_interval_of_picks_the_commands_rows_anywhere_in_the_tree():
    def proc(pid, w, cpu=0.5):
        return Row("process", f"pid-{pid}", f"p ({pid})", w, w * 0.9, w * 1.1, pid=pid, cpu_s=cpu,
                   components={"cpu": w})

    group = Row("service", "x.service", "x.service", 7.0, 6.0, 8.0, children=(proc(10, 4.0), proc(11, 3.0)))
    idle = Row("synthetic", "(idle)", "(idle)", 6.0, 5.0, 7.0, components={"cpu": 6.0})
    root = Row("node", "n", "n", 15.0, 14.0, 16.0, cpu_s=1.2, components={"cpu": 15.0},
               children=(group, proc(12, 2.0), idle))
    snap = Snapshot(time=1.0, interval_s=0.5, host="n", model="cpu-time",
                    sources=(SourceStatus("estimate", "ok"),), root=root)
    iv = interval_of(snap, {10, 12, 99})
    assert iv.watts == pytest.approx(6.0) and iv.cpu_s == pytest.approx(1.0)
    assert iv.pids == {10, 12}
    assert iv.idle_cpu_w == 6.0 and iv.active_cpu_w == pytest.approx(9.0) and iv.busy_s == 1.2
    meter = RunMeter()
    meter.start(10.0)
    assert meter.add(snap, {10}, 10.4).kernel_cpu_s == pytest.approx(0.4)


def test_bounded_arithmetic():
    b = Bounded.of(10.0, 15.0)
    assert b.lo == 0.0 and b.hi == 25.0
    assert (b + Bounded(1, 1, 1)).value == 11.0


# ------------------------------------------------------------------ trackers


def _proc(pid, ppid, cgroup="/", start=1.0, exited=False):
    return ProcessSample(pid=pid, name="x", cmd="x", cpu_s=0.0, ppid=ppid, cgroup=cgroup,
                         start_time=start, exited=exited)


def _act(*procs):
    return CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=tuple(procs))


def test_ppid_tracker_follows_descendants_orphans_and_pid_reuse():
    t = PpidTracker(reaper=1000)
    t.adopt(100)
    assert t.members(_act(_proc(100, 1000), _proc(101, 100), _proc(102, 101), _proc(5, 1))) == {100, 101, 102}
    # 101 exited; its child 102 was re-parented to keck-top (the subreaper); 103 is a new orphan
    assert t.members(_act(_proc(100, 1000), _proc(102, 1000), _proc(103, 1000), _proc(5, 1))) == {100, 102, 103}
    # PID 102 reused by an unrelated process (another start time, another parent)
    assert 102 not in t.members(_act(_proc(100, 1000), _proc(102, 1, start=9.0)))
    # an exited process reported by eBPF (no ppid) still counts when it was known
    t.members(_act(_proc(100, 1000), _proc(104, 100, start=3.0)))
    assert 104 in t.members(_act(_proc(100, 1000), _proc(104, 0, start=0.0, exited=True)))


def test_cgroup_tracker_on_a_fake_hierarchy(tmp_path):
    mount = tmp_path / "cg"
    (mount / "user.slice").mkdir(parents=True)
    (mount / "user.slice" / "cgroup.procs").write_text("")
    t = CgroupTracker.create(str(mount), "/user.slice", "keck-top-run-1-0")
    assert t.path == "/user.slice/keck-top-run-1-0" and t.dir.is_dir()
    t.adopt(4242)
    assert (t.dir / "cgroup.procs").read_text() == "4242\n"
    (t.dir / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    assert t.cpu_usage_s() == pytest.approx(1.5)
    act = _act(_proc(4242, 1, "/user.slice/keck-top-run-1-0"), _proc(4243, 4242, "/user.slice/keck-top-run-1-0/sub"),
               _proc(7, 1, "/user.slice"), _proc(8, 1, "/user.slice/keck-top-run-1-01"))
    assert t.members(act) == {4242, 4243}
    # a process still running when CMD exits is moved back to keck-top's cgroup
    (t.dir / "cgroup.procs").write_text("4243\n")
    for f in ("cpu.stat", "cgroup.procs"):  # a real cgroupfs has no removable files
        (t.dir / f).unlink()
    (t.dir / "cgroup.procs").write_text("4243\n")
    left = t.leftovers()
    assert left == [4243]


def test_choose_tracker_explains_why_not_cgroup(tmp_path):
    mounts = tmp_path / "self"
    mounts.mkdir()
    (mounts / "mounts").write_text("proc /proc proc rw 0 0\n")
    (mounts / "cgroup").write_text("0::/\n")
    choice = choose_tracker("auto", "x", euid=1000, env={"PATH": str(tmp_path)}, procfs_root=str(tmp_path),
                            ebpf_opener=lambda: (_ for _ in ()).throw(TrackingUnavailable("needs root")))
    assert choice.tracker.method == "ppid"
    text = " | ".join(choice.notes)
    assert "cgroup v2: not mounted" in text and "systemd-run not found" in text and "needs root" in text
    with pytest.raises(TrackingUnavailable):
        choose_tracker("cgroup", "x", euid=1000, procfs_root=str(tmp_path))


def test_work_counted_on_the_commands_rows_gives_joules_per_unit_of_the_run():
    from keck_tui.runmeter.meter import interval_of

    work = {"name": "vllm", "unit": "token", "units": 300.0,
            "also": [{"unit": "prompt token", "units": 100.0}]}
    server = Row("process", "pid-10", "python3 (10)", 20.0, 18.0, 22.0, pid=10, cpu_s=1.0,
                 components={"cpu": 20.0}, extra={"work": work})
    root = Row("node", "n", "n", 20.0, 18.0, 22.0, cpu_s=1.0, components={"cpu": 20.0}, children=(server,))
    snap = Snapshot(time=1.0, interval_s=1.0, host="n", model="cpu-time", sources=(), root=root)
    e = finish([interval_of(snap, {10}), interval_of(snap, {10})])
    assert e.work == {("vllm", "token"): 600.0, ("vllm", "prompt token"): 200.0}
    assert finish([interval_of(snap, {99})]).work == {}  # another tree's server does not count
    from keck_tui.cost import Tariff
    from keck_tui.runmeter.output import run_json
    from keck_tui.runmeter.session import RunOutcome

    run = RunOutcome(index=0, exit_status=0, signal=None, wall_s=2.0, start=0.0, end=2.0, energy=e, user_s=None,
                     system_s=None, tracking="ppid", tracking_detail="", leftover=0, interrupted=False,
                     own_cpu_s=0.0, snapshot=snap)
    got = {w["unit"]: w for w in run_json(run, "active", Tariff())["work"]}
    assert got["token"]["units"] == 600.0
    assert got["token"]["j_per_unit"]["value"] == pytest.approx(40.0 / 600.0)


def test_a_user_scope_that_does_not_work_is_not_used(tmp_path):
    """A systemd-run that fails must not run in CMD's place: the probe says why and ppid is used."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "systemd-run"
    fake.write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    fake.chmod(0o755)
    runtime = tmp_path / "run"
    (runtime / "systemd").mkdir(parents=True)
    (runtime / "systemd" / "private").write_text("")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text(f"cgroup2 {tmp_path}/cg cgroup2 rw 0 0\n")
    (proc / "self" / "cgroup").write_text("0::/user.slice\n")
    (tmp_path / "cg" / "user.slice").mkdir(parents=True)
    import os as _os
    from keck_tui.runmeter.tracking import probe_user_scope
    env = {"PATH": f"{bindir}:{_os.environ.get('PATH', '')}", "XDG_RUNTIME_DIR": str(runtime)}
    old = _os.environ["PATH"]
    _os.environ["PATH"] = env["PATH"]
    try:
        choice = choose_tracker("auto", "x", euid=1000, env=env, procfs_root=str(proc),
                                probe_scope=probe_user_scope)
    finally:
        _os.environ["PATH"] = old
    assert choice.tracker.method == "ppid"
    assert any("No medium found" in n for n in choice.notes), choice.notes
    ok = tmp_path / "ok"
    ok.mkdir()
    good = ok / "systemd-run"
    good.write_text("#!/bin/sh\nexit 0\n")
    good.chmod(0o755)
    _os.environ["PATH"] = f"{ok}:{old}"
    try:
        chosen = choose_tracker("auto", "keck-top-run-1-0", euid=1000, env={"PATH": _os.environ["PATH"],
                                "XDG_RUNTIME_DIR": str(runtime)}, procfs_root=str(proc), probe_scope=probe_user_scope)
    finally:
        _os.environ["PATH"] = old
    assert chosen.tracker.method == "systemd-scope"
    assert chosen.tracker.wrap(["make"]) == ["systemd-run", "--user", "--scope", "--quiet", "--collect",
                                             "--unit=keck-top-run-1-0.scope", "--", "make"]
