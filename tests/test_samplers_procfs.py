"""ProcfsSampler (fake and real /proc) and the psutil fallback."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import pytest

from conftest import shared_fixture
from fakesys import FakeProc, FakeThread
from spinner import cpu_seconds
from keck_tui.clock import FakeClock
from keck_tui.samplers.procfs import (
    ProcfsSampler, PsutilSampler, best_cgroup_path, make_activity_sampler,
)
from keck_tui.samplers.types import ActivitySampler

HZ = 100


def setup(tmp_path, **kw):
    proc = FakeProc(tmp_path / "proc", ncpu=2, clk_tck=HZ)
    clock = FakeClock()
    sampler = ProcfsSampler(proc.root, clock, clock_ticks=HZ, page_size=4096, **kw)
    return proc, clock, sampler


def step(proc: FakeProc, clock: FakeClock, seconds: float = 1.0) -> None:
    proc.advance(seconds)
    clock.advance(seconds)


def by_pid(act):
    return {p.pid: p for p in act.processes}


def test_is_an_activity_sampler(tmp_path):
    s: ActivitySampler = ProcfsSampler(tmp_path)
    assert s.name == "procfs"


def test_cores_busy_irq_total(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.set_cpu_times(0, user=1000, nice=10, system=300, idle=5000, iowait=20, irq=5, softirq=7,
                       steal=50, guest=400)
    proc.set_cpu_times(1, user=2000, idle=9000)
    first = s.sample()
    assert first.cores == () and first.source.detail == "warming up"
    proc.set_cpu_times(0, user=1060, nice=12, system=310, idle=5010, iowait=22, irq=6, softirq=9,
                       steal=60, guest=450)  # guest +50 is inside user +60
    proc.set_cpu_times(1, user=2025, idle=9075)
    step(proc, clock)
    act = s.sample()
    c0, c1 = act.cores
    assert c0.cpu == 0 and c1.cpu == 1
    assert c0.busy_s == pytest.approx((60 + 2 + 10 + 1 + 2) / HZ)  # steal and guest left out
    assert c0.irq_s == pytest.approx(3 / HZ)
    assert c0.total_s == pytest.approx((60 + 2 + 10 + 10 + 2 + 1 + 2 + 10) / HZ)
    assert c1.busy_s == pytest.approx(0.25) and c1.total_s == pytest.approx(1.0)
    assert act.interval_s == pytest.approx(1.0)
    assert act.per_cpu_exact is False


def test_processes_fields_and_deltas(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=1)
    proc.add_process(100, comm="worker", utime=500, stime=100, processor=1, ppid=1, start_time=100,
                     cmdline=["/usr/bin/worker", "--fast", "a b"], uid=1000, rss_pages=256,
                     pss_kb=700, cgroup="0::/system.slice/worker.service")
    proc.add_process(2, comm="kthreadd", kernel=True, ppid=0)
    proc.add_process(15, comm="ksoftirqd/0", kernel=True, utime=0, stime=40)
    s.sample()
    proc.update_process(100, utime=570, stime=130, processor=0)
    proc.update_process(15, stime=45)
    step(proc, clock)
    act = s.sample()
    p = by_pid(act)
    w = p[100]
    assert w.cpu_s == pytest.approx(1.0)
    assert w.per_cpu_s == {0: pytest.approx(1.0)}
    assert w.name == "worker" and w.cmd == "/usr/bin/worker --fast a b"
    assert w.ppid == 1 and w.kernel is False
    assert w.uid == (1000 if os.geteuid() == 0 else os.geteuid())  # chown needs root
    assert w.start_time == pytest.approx(1.0)
    assert w.rss_bytes == 256 * 4096 and w.pss_bytes == 700 * 1024
    assert w.cgroup == "/system.slice/worker.service"
    assert w.cgroup_line == "0::/system.slice/worker.service\n"
    k = p[15]
    assert k.kernel is True and k.cmd == "[ksoftirqd/0]" and k.cpu_s == pytest.approx(0.05)
    assert k.pss_bytes is None
    assert p[2].kernel is True and p[2].cmd == "[kthreadd]" and p[2].cpu_s == 0.0
    assert act.source.status == "ok" and act.source.extra["processes"] == 3


def test_fakeproc_helpers(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.add_process(100, comm="w")
    s.sample()
    proc.run(100, 0.7, system=0.1, processor=1)
    proc.add_core_time(1, busy=0.8, idle=0.2, steal=0.5)
    step(proc, clock)
    act = s.sample()
    assert by_pid(act)[100].per_cpu_s == {1: pytest.approx(0.8)}
    core1 = act.cores[1]
    assert core1.busy_s == pytest.approx(0.8) and core1.total_s == pytest.approx(1.5)


def test_kernel_thread_by_flag_alone(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.add_process(300, comm="kworker/u4:1", kernel=True, ppid=7)  # flag, not ppid 2
    proc.add_process(301, comm="init-child", ppid=7, cmdline=())  # empty cmdline, not kernel
    p = by_pid(s.sample())
    assert p[300].kernel is True and p[300].cmd == "[kworker/u4:1]"
    assert p[301].kernel is False and p[301].cmd == "init-child"


def test_exits_mid_read_are_skipped(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.add_process(100, comm="stays", utime=10)
    proc.add_process(101, comm="goes", utime=10)
    proc.add_process(102, comm="partial", utime=10)
    proc.add_process(103, comm="half-gone", utime=10)
    s.sample()
    proc.remove_process(101)
    (proc.root / "101").mkdir()  # listed, but its files are gone already
    proc.truncate_file(102, "stat", "102 (partial) Z")  # a cut-off line
    (proc.root / "103" / "cmdline").unlink()  # stat was readable, then the process vanished
    proc.add_process(104, comm="new-half-gone", start_time=int(proc.uptime * HZ) + 5)
    (proc.root / "104" / "cgroup").unlink()
    proc.update_process(100, utime=30)
    step(proc, clock)
    act = s.sample()
    assert set(by_pid(act)) == {100, 103}  # 103 was known: its metadata is cached
    assert by_pid(act)[100].cpu_s == pytest.approx(0.2)
    assert act.source.status == "ok" and act.source.extra["skipped"] == 3


def test_new_process_counts_its_whole_time_if_born_in_interval(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.set_uptime(500.0)
    s.sample()
    step(proc, clock, 2.0)  # uptime 502
    proc.add_process(200, comm="short", utime=80, stime=20, start_time=50_100, processor=1)  # 501 s
    proc.add_process(201, comm="old-unseen", utime=900, start_time=10_000)  # 100 s: existed before
    act = s.sample()
    p = by_pid(act)
    assert p[200].cpu_s == pytest.approx(1.0) and p[200].per_cpu_s == {1: pytest.approx(1.0)}
    assert p[201].cpu_s == 0.0 and p[201].per_cpu_s == {}


def test_reused_pid_is_a_new_process(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.set_uptime(500.0)
    proc.add_process(300, comm="first", utime=5000, start_time=1_000)
    s.sample()
    step(proc, clock)
    proc.remove_process(300)
    proc.add_process(300, comm="second", utime=30, start_time=50_050)
    p = by_pid(s.sample())[300]
    assert p.name == "second" and p.cpu_s == pytest.approx(0.3)  # not 30 - 5000, not 0


def test_threads_spread_over_their_cpus(tmp_path):
    proc, clock, s = setup(tmp_path)
    threads = [FakeThread(400, 10, 0, 0), FakeThread(401, 10, 0, 1), FakeThread(402, 0, 0, 1)]
    proc.add_process(400, comm="mt", utime=20, processor=0, threads=threads)
    s.sample()
    # interval 1: first active interval, no per-thread baseline yet -> last CPU of the process
    threads = [FakeThread(400, 30, 0, 0), FakeThread(401, 40, 0, 1), FakeThread(402, 0, 0, 1)]
    proc.update_process(400, utime=70, threads=threads)
    step(proc, clock)
    p = by_pid(s.sample())[400]
    assert p.cpu_s == pytest.approx(0.5) and p.per_cpu_s == {0: pytest.approx(0.5)}
    # interval 2: thread 400 +10 on cpu0, 401 +60 on cpu1, 402 +30 then moved to cpu0,
    # and 20 ticks from a thread that exited (only in the process total) -> last CPU (0)
    threads = [FakeThread(400, 40, 0, 0), FakeThread(401, 100, 0, 1), FakeThread(402, 30, 0, 0)]
    proc.update_process(400, utime=190, threads=threads, processor=0)
    step(proc, clock)
    p = by_pid(s.sample())[400]
    assert p.cpu_s == pytest.approx(1.2)
    assert p.per_cpu_s == {0: pytest.approx(0.4 + 0.2), 1: pytest.approx(0.6)}
    assert sum(p.per_cpu_s.values()) == pytest.approx(p.cpu_s)


def test_thread_baseline_survives_idle_intervals(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.add_process(400, comm="mt", utime=0, threads=[FakeThread(400, 0, 0, 0), FakeThread(401, 0, 0, 1)])
    s.sample()
    proc.update_process(400, utime=10, threads=[FakeThread(400, 10, 0, 0), FakeThread(401, 0, 0, 1)])
    step(proc, clock)
    s.sample()  # active: thread baseline taken
    for _ in range(3):  # idle: nothing read, baseline still valid
        step(proc, clock)
        assert by_pid(s.sample())[400].cpu_s == 0.0
    proc.update_process(400, utime=50, threads=[FakeThread(400, 20, 0, 0), FakeThread(401, 30, 0, 1)])
    step(proc, clock)
    p = by_pid(s.sample())[400]
    assert p.per_cpu_s == {0: pytest.approx(0.1), 1: pytest.approx(0.3)}


def test_thread_split_never_exceeds_process_time(tmp_path):
    proc, clock, s = setup(tmp_path)
    proc.add_process(400, comm="mt", utime=0, threads=[FakeThread(400, 0, 0, 0), FakeThread(401, 0, 0, 1)])
    s.sample()
    proc.update_process(400, utime=10, threads=[FakeThread(400, 5, 0, 0), FakeThread(401, 5, 0, 1)])
    step(proc, clock)
    s.sample()
    # the process total lags its threads by a tick (they were read a moment later)
    proc.update_process(400, utime=40, threads=[FakeThread(400, 25, 0, 0), FakeThread(401, 25, 0, 1)])
    step(proc, clock)
    p = by_pid(s.sample())[400]
    assert p.per_cpu_s == {0: pytest.approx(0.15), 1: pytest.approx(0.15)}


def test_pss_is_cached_between_staggered_reads(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=4, pss_top=1)
    proc.add_process(500, comm="idle", pss_kb=100)
    proc.add_process(501, comm="busy", pss_kb=100)
    s.sample()  # priming reads everybody (cycle 0)
    proc.update_process(500, pss_kb=200)
    proc.update_process(501, pss_kb=200, utime=50)
    seen = []
    for cycle in range(1, 5):
        step(proc, clock)
        proc.update_process(501, utime=50 + 10 * cycle)
        p = by_pid(s.sample())
        seen.append((p[500].pss_bytes // 1024, p[501].pss_bytes // 1024))
    # idle 500 is refreshed when (pid + cycle) % 4 == 0, i.e. cycle 4; busy 501 every cycle
    assert seen == [(100, 200), (100, 200), (100, 200), (200, 200)]


def test_pss_refreshed_when_rss_moves(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=1000, pss_top=0)
    proc.add_process(800, comm="grower", rss_pages=1000, pss_kb=3000)
    s.sample()
    proc.update_process(800, rss_pages=1050, pss_kb=3100)  # +5 %: not worth a read
    step(proc, clock)
    assert by_pid(s.sample())[800].pss_bytes == 3000 * 1024
    proc.update_process(800, rss_pages=1200, pss_kb=3600)  # +20 % since the last read
    step(proc, clock)
    assert by_pid(s.sample())[800].pss_bytes == 3600 * 1024


def test_pss_of_a_process_whose_rss_keeps_moving_is_read_on_its_tier(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=1000, pss_top=0, pss_moved_every=3)
    proc.add_process(810, comm="grower", rss_pages=1000, pss_kb=1000)
    s.sample()  # cycle 0 reads it
    seen = []
    for cycle in range(1, 7):
        proc.update_process(810, rss_pages=1000 * 2 ** cycle, pss_kb=1000 * 2 ** cycle)  # doubles every sample
        step(proc, clock)
        seen.append(by_pid(s.sample())[810].pss_bytes // 1024)
    # re-read 3 samples after the last read (cycles 3 and 6), cached in between
    assert seen == [1000, 1000, 8000, 8000, 8000, 64000]


def test_pss_of_a_process_that_has_not_run_is_read_on_the_idle_tier(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=2, pss_idle_every=6, pss_top=0)
    proc.add_process(820, comm="sleeper", pss_kb=100)
    proc.add_process(821, comm="worker", pss_kb=100)
    s.sample()  # cycle 0 reads both
    seen = []
    for cycle in range(1, 7):
        proc.update_process(820, pss_kb=100 + cycle)  # others map and unmap what it shares
        proc.update_process(821, pss_kb=100 + cycle, utime=10 * cycle)  # it runs
        step(proc, clock)
        p = by_pid(s.sample())
        seen.append((p[820].pss_bytes // 1024, p[821].pss_bytes // 1024))
    # the worker on the slow tier ((pid + cycle) % 2 == 0: cycles 1, 3, 5), the sleeper only
    # when (pid + cycle) % 6 == 0 (cycle 2; on the slow tier it would be 2, 4 and 6)
    assert seen == [(100, 101), (102, 101), (102, 103), (102, 103), (102, 105), (102, 105)]


def test_a_new_process_waits_for_its_first_pss_read(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=1000, pss_new_after=2)
    proc.add_process(830, comm="old", pss_kb=100)
    s.sample()  # the priming sample reads everybody at once
    proc.add_process(831, comm="new", pss_kb=200)
    proc.add_process(832, comm="brief", pss_kb=300)
    seen = []
    for cycle in range(1, 4):
        step(proc, clock)
        if cycle == 2:
            proc.remove_process(832)  # lived two samples: never read
        p = by_pid(s.sample())
        seen.append((p[830].pss_bytes, p[831].pss_bytes, 832 in p and p[832].pss_bytes))
    # first seen in sample 1: read in sample 3, two samples later
    assert seen == [(100 * 1024, None, None), (100 * 1024, None, False), (100 * 1024, 200 * 1024, False)]


def test_pss_reads_stop_at_the_budget(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=1, pss_budget_s=0.0, pss_prime_factor=0.0)
    for pid in range(900, 905):
        proc.add_process(pid, comm="p")
    s.sample()
    step(proc, clock)
    assert all(p.pss_bytes is None for p in s.sample().processes)  # unknown, not 0


def test_idle_unchanged_samples_are_reused(tmp_path):
    proc, clock, s = setup(tmp_path, pss_every=1000, refresh_every=1000)
    proc.add_process(600, comm="sleeper")
    s.sample()
    step(proc, clock)
    a = by_pid(s.sample())[600]
    step(proc, clock)
    b = by_pid(s.sample())[600]
    assert a is b
    proc.update_process(600, rss_pages=999)
    step(proc, clock)
    c = by_pid(s.sample())[600]
    assert c is not b and c.rss_bytes == 999 * 4096


def test_exec_is_noticed_at_once(tmp_path):
    proc, clock, s = setup(tmp_path, refresh_every=1000)
    proc.add_process(710, comm="bash", cmdline=["bash", "-c", "sleep 5"])
    s.sample()
    proc.update_process(710, comm="sleep", cmdline=["sleep", "5"])
    step(proc, clock)
    p = by_pid(s.sample())[710]
    assert (p.name, p.cmd) == ("sleep", "sleep 5")


def test_cgroup_refresh_sees_a_moved_process(tmp_path):
    proc, clock, s = setup(tmp_path, refresh_every=2)
    proc.add_process(700, comm="mover", cgroup="0::/user.slice/a.scope")
    s.sample()
    proc.update_process(700, cgroup="0::/system.slice/b.service")
    results = []
    for _ in range(2):
        step(proc, clock)
        results.append(by_pid(s.sample())[700].cgroup)
    assert "/system.slice/b.service" in results


@pytest.mark.parametrize("text,expected", [
    ("0::/system.slice/ssh.service\n", "/system.slice/ssh.service"),
    ("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/system.slice/docker-abc.scope\n0::/\n", "/docker/abc"),
    ("1:name=systemd:/user.slice/user-0.slice\n2:memory:/x\n", "/user.slice/user-0.slice"),
    ("9:name=systemd:/\n4:memory:/process_api/2bf5\n1:cpu:/\n0::/\n", "/process_api/2bf5"),
    ("9:name=systemd:/\n1:cpu:/\n0::/\n", "/"),
    ("0::/\n", "/"),
    ("", ""),
])
def test_best_cgroup_path(text, expected):
    assert best_cgroup_path(text) == expected


def test_best_cgroup_path_on_real_lines():
    path = shared_fixture("cgroups", "real-lines.tsv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    lines = [r["cgroup_line"] for r in rows if r["cgroup_line"].count(":") >= 2
             and r["cgroup_line"].split(":", 1)[0].isdigit()]
    assert lines
    for line in lines:
        assert best_cgroup_path(line) == line.split(":", 2)[2], line


def test_missing_proc_is_an_error_not_an_exception(tmp_path):
    act = ProcfsSampler(tmp_path / "nope", FakeClock()).sample()
    assert act.source.status == "error" and "cannot list" in act.source.detail


# -- the real /proc of this machine -----------------------------------------------------

BUSY = "import time\nprint('ready', flush=True)\nend = time.time() + 60\nwhile time.time() < end: pass\n"


@pytest.fixture
def busy_child():
    child = subprocess.Popen([sys.executable, "-c", BUSY, "keck-busy-marker"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"  # spinning, however slow its start was
        yield child
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def _bracketed(sample, pid: int) -> tuple[object, float, float]:
    """``sample()`` with the kernel's CPU seconds of ``pid`` read just before and just after it."""
    before = cpu_seconds(pid)
    out = sample()
    return out, before, cpu_seconds(pid)


def _assert_cpu_is_the_kernels(child_cpu_s: float, first: tuple[float, float], second: tuple[float, float],
                               interval_s: float) -> None:
    """The CPU seconds measured lie between what the kernel charged from the end of the first
    sample to the start of the second and from the start of the first to the end of the second:
    however little CPU a loaded machine gave the child."""
    assert second[0] - first[1] > 0  # it ran
    assert second[0] - first[1] - 1e-9 <= child_cpu_s <= second[1] - first[0] + 1e-9
    assert child_cpu_s <= interval_s + 0.05


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc on this system")
def test_real_proc_finds_our_busy_child(busy_child):
    s = ProcfsSampler("/proc")
    _, a0, a1 = _bracketed(s.sample, busy_child.pid)
    time.sleep(0.6)
    act, b0, b1 = _bracketed(s.sample, busy_child.pid)
    assert act.source.status == "ok"
    me = by_pid(act)
    assert os.getpid() in me
    child = me[busy_child.pid]
    assert "keck-busy-marker" in child.cmd and child.ppid == os.getpid()
    _assert_cpu_is_the_kernels(child.cpu_s, (a0, a1), (b0, b1), act.interval_s)
    assert sum(child.per_cpu_s.values()) == pytest.approx(child.cpu_s)
    assert child.rss_bytes and child.rss_bytes > 1_000_000
    assert child.kernel is False and child.uid == os.geteuid()
    kernel = [p for p in act.processes if p.kernel]
    assert kernel and all(p.cmd.startswith("[") for p in kernel)
    assert len(act.cores) == os.cpu_count()
    assert sum(c.busy_s for c in act.cores) >= child.cpu_s * 0.8


def test_psutil_fallback_finds_our_busy_child(busy_child):
    s = PsutilSampler()
    first, a0, a1 = _bracketed(s.sample, busy_child.pid)
    assert first.source.detail == "warming up"
    time.sleep(0.6)
    act, b0, b1 = _bracketed(s.sample, busy_child.pid)
    child = by_pid(act)[busy_child.pid]
    _assert_cpu_is_the_kernels(child.cpu_s, (a0, a1), (b0, b1), act.interval_s)
    assert "keck-busy-marker" in child.cmd
    assert act.cores and act.cores[0].total_s > 0


def test_make_activity_sampler_picks(tmp_path):
    assert isinstance(make_activity_sampler(tmp_path), PsutilSampler)
    FakeProc(tmp_path / "proc")
    assert isinstance(make_activity_sampler(tmp_path / "proc", FakeClock()), ProcfsSampler)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc on this system")
def test_benchmark_script_runs_small(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sampling.py"
    spec = importlib.util.spec_from_file_location("bench_sampling", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    before = {p.pid for p in ProcfsSampler("/proc").sample().processes}
    rc = bench.main(["--children", "20", "--cycles", "2", "--pause", "0"])
    out = capsys.readouterr().out
    assert "ratio sampler/ps" in out and "ProcfsSampler cycle: median" in out
    # Whether the 30 ms target is met is the benchmark's finding (a loaded CI box may miss it),
    # not this test's: here, that the exit status says what the script printed.
    assert rc == (0 if "ms per cycle: met" in out else 1) and "ms per cycle: " in out
    after = ProcfsSampler("/proc").sample().processes
    assert not [p for p in after if p.pid not in before and p.cmd == "sleep 3600"]  # children reaped


# -- stat files kept open, PSS tiers ------------------------------------------------------

def _sleeper():
    return subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc on this system")
def test_real_proc_keeps_stat_files_open_and_closes_those_of_exited_processes():
    child = _sleeper()
    base = _fd_count()
    s = ProcfsSampler("/proc")
    try:
        assert s.max_open > 0  # the real procfs: files are kept
        first = by_pid(s.sample())
        assert child.pid in first
        held = s._open
        assert held == sum(1 for p in s._procs.values() if p.fd >= 0) == min(len(first), s.max_open)
        assert s._procs[child.pid].fd >= 0
        assert _fd_count() >= base + held - 2
        child.kill()
        child.wait()
        time.sleep(0.05)
        second = by_pid(s.sample())  # the kept file answers ESRCH: closed, process gone
        assert child.pid not in second
        assert s._open == sum(1 for p in s._procs.values() if p.fd >= 0)
        assert child.pid not in s._procs
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        s.close()
    assert s._open == 0
    assert _fd_count() <= base + 2  # every kept file closed (a couple of fds for slack)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc on this system")
def test_kept_files_give_the_same_numbers_as_fresh_reads(busy_child):
    kept, fresh = ProcfsSampler("/proc"), ProcfsSampler("/proc", keep_open=False)
    try:
        kept.sample(), fresh.sample()
        time.sleep(0.5)
        a, b = by_pid(kept.sample()), by_pid(fresh.sample())
        assert fresh.max_open == 0 and fresh._open == 0
        child_a, child_b = a[busy_child.pid], b[busy_child.pid]
        assert kept._procs[busy_child.pid].fd >= 0
        # Read anew each time, never stale: a spinning child always moved (even on a loaded box).
        assert child_a.cpu_s > 0 and child_b.cpu_s > 0
        assert kept._procs[busy_child.pid].ticks > 0
        assert (child_a.start_time, child_a.cmd, child_a.ppid) == (child_b.start_time, child_b.cmd, child_b.ppid)
    finally:
        kept.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc on this system")
def test_max_open_caps_the_kept_files():
    s = ProcfsSampler("/proc", max_open=3)
    try:
        s.sample()
        s.sample()
        assert s._open == 3 == sum(1 for p in s._procs.values() if p.fd >= 0)
        assert len(s._procs) > 3  # the rest are read with open+read+close
    finally:
        s.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/schedstat"), reason="no schedstat on this system")
def test_a_sleeper_whose_run_time_did_not_move_is_not_read_again(busy_child):
    sleeper = _sleeper()
    s = ProcfsSampler("/proc", refresh_every=1000)
    read: list[str] = []
    real_read = s._read_stat

    def counting(p, name):
        read.append(name)
        return real_read(p, name)

    s._read_stat = counting
    try:
        for _ in range(3):  # first sight, schedstat opened, schedstat read before the stat line
            s.sample()
            time.sleep(0.05)
        assert s._procs[sleeper.pid].sfd >= 0 and s._sched_open > 0
        read.clear()
        time.sleep(0.3)
        a = by_pid(s.sample())
        assert str(sleeper.pid) not in read and a[sleeper.pid].cpu_s == 0  # asleep: stat not read
        assert str(busy_child.pid) in read and a[busy_child.pid].cpu_s > 0  # it ran: read, never stale
        sleeper.kill()
        sleeper.wait()
        time.sleep(0.05)
        assert sleeper.pid not in by_pid(s.sample())  # the kept schedstat says ESRCH: gone
        assert sleeper.pid not in s._procs
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        s.close()
    assert s._sched_open == 0 and s._open == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/schedstat"), reason="no schedstat on this system")
def test_a_sleeper_is_read_in_full_on_the_refresh_tier():
    sleeper = _sleeper()
    s = ProcfsSampler("/proc", refresh_every=1)  # every sample is the sleeper's refresh
    try:
        for _ in range(3):
            s.sample()
        p = s._procs[sleeper.pid]
        assert p.sfd >= 0
        p.raw, p.fields = b"", (0, False, 1, 0, 0)  # as if it had reparented and grown meanwhile
        sample = by_pid(s.sample())[sleeper.pid]
        assert sample.ppid == os.getpid() and sample.rss_bytes > 0
    finally:
        sleeper.kill()
        sleeper.wait()
        s.close()


def test_fake_trees_are_never_kept_open(tmp_path):
    """A deleted fake file still reads its old text: only the real procfs says ESRCH."""
    proc, clock, s = setup(tmp_path)
    proc.add_process(700, comm="a", utime=5)
    s.sample()
    assert s.max_open == 0 and s._open == 0
    proc.remove_process(700)
    proc.add_process(700, comm="b", utime=1, start_time=999)  # the pid reused
    step(proc, clock)
    assert by_pid(s.sample())[700].name == "b"


def test_kept_open_fake_file_is_reread_in_place_and_pid_reuse_is_noticed(tmp_path):
    proc, clock, s = setup(tmp_path, keep_open=True, max_open=10)
    proc.add_process(710, comm="a", utime=5)
    s.sample()
    assert s._open == 1
    proc.update_process(710, utime=25)  # rewritten in place: the kept file sees it
    step(proc, clock)
    assert by_pid(s.sample())[710].cpu_s == pytest.approx(0.2)
    proc.remove_process(710)
    step(proc, clock)
    assert 710 not in by_pid(s.sample()) and s._open == 0


def test_pss_default_is_the_slow_tier_and_rss_moves(tmp_path):
    proc, clock, s = setup(tmp_path)
    assert (s.pss_every, s.pss_top) == (30, 0)
    proc.add_process(720, comm="busy", pss_kb=100, rss_pages=1000)
    s.sample()
    proc.update_process(720, pss_kb=200)
    for i in range(5):  # busy, RSS unchanged: the cached PSS stands
        step(proc, clock)
        proc.update_process(720, utime=10 * (i + 1))
        assert by_pid(s.sample())[720].pss_bytes == 100 * 1024
    proc.update_process(720, rss_pages=1500, pss_kb=300)
    step(proc, clock)
    assert by_pid(s.sample())[720].pss_bytes == 300 * 1024


def test_pss_off_reads_no_smaps(tmp_path):
    proc, clock, s = setup(tmp_path, pss=False)
    proc.add_process(730, comm="p", pss_kb=100, rss_pages=10)
    s.sample()
    step(proc, clock)
    p = by_pid(s.sample())[730]
    assert p.pss_bytes is None and p.rss_bytes == 10 * 4096
