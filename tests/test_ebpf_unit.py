"""The eBPF sampler's arithmetic and the loader's checks, without root or bcc:
a fake probe hands the sampler cumulative map contents."""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field

import pytest

from keck_tui.clock import FakeClock
from keck_tui.model import SourceStatus
from keck_tui.probes import btf, loader
from keck_tui.probes.loader import CpuCounters, ExitInfo, FreqCounters, ProbeRead
from keck_tui.samplers import ebpf
from keck_tui.samplers.ebpf import EbpfSampler
from keck_tui.samplers.types import CoreSample, CpuActivity, ProcessSample

S = 1_000_000_000  # ns per second


@dataclass
class FakeProbe:
    reads: list[ProbeRead]
    map_entries: int = 64
    with_freq: bool = False
    load_s: float = 0.25
    notes: list[str] = field(default_factory=list)
    forgotten: list[list[int]] = field(default_factory=list)
    again: list[tuple[CpuCounters, ...]] = field(default_factory=list)
    closed: bool = False
    _last: ProbeRead | None = None

    def read(self) -> ProbeRead:
        self._last = self.reads.pop(0)
        return self._last

    def cpu_states(self):
        return self.again.pop(0) if self.again else self._last.cpus

    def forget(self, tgids):
        self.forgotten.append(sorted(tgids))

    def close(self):
        self.closed = True


class FakeEnrich:
    """Stands in for ProcfsSampler: fixed processes (their cpu_s is replaced) and cores."""

    name = "procfs"

    def __init__(self, procs=(), cores=()):
        self.procs = tuple(procs)
        self.cores = tuple(cores)

    def sample(self) -> CpuActivity:
        return CpuActivity(SourceStatus("procfs", "ok"), 1.0, self.procs, self.cores)


def cpus(*states, **kw) -> tuple[CpuCounters, ...]:
    """states: (cur_tgid, cur_pid, sum_at_in, switches) per CPU."""
    out = []
    for i, (tgid, pid, at_in, sw) in enumerate(states):
        out.append(CpuCounters(cpu=i, sum_at_in=at_in, switches=sw, resyncs=kw.get("resyncs", (0,) * 9)[i],
                               lost_ns=kw.get("lost_ns", 0) if i == 0 else 0,
                               lost_count=kw.get("lost_count", 0) if i == 0 else 0,
                               cur_pid=pid, cur_tgid=tgid, busy_f3=kw.get("busy_f3", (0,) * 9)[i]))
    return tuple(out)


IDLE2 = ((0, 0, 0, 1), (0, 0, 0, 1))


def pread(oncpu, cpu_states=IDLE2, exited=None, ktime=0, misses=0, exit_lost=0, freq=(), **kw):
    return ProbeRead(ktime_ns=ktime, oncpu=oncpu, cpus=cpus(*cpu_states, **kw),
                     exited=exited or {}, exit_lost=exit_lost, prog_misses=misses, freq=freq,
                     map_entries=64)


def proc(pid, name="work", kernel=False):
    return ProcessSample(pid=pid, name=name, cmd=f"/bin/{name}", cpu_s=0.5, per_cpu_s={0: 0.5},
                         ppid=1, rss_bytes=4096, cgroup="/a", kernel=kernel)


def make(reads, procs=(), cores=(), runtime=None, **kw):
    probe = FakeProbe(list(reads), **kw)
    clock = FakeClock()
    s = EbpfSampler(probe, "/nonexistent", clock, enrich=FakeEnrich(procs, cores),
                    runtime=runtime or (lambda tgid, pid: None), cgroup_root="/nonexistent")
    return s, probe, clock


def by_pid(act):
    return {p.pid: p for p in act.processes}


def test_first_sample_primes_then_interval_deltas_per_core():
    s, _, clock = make([
        pread({100: (7, (2 * S, 1 * S)), 200: (7, (0, 5 * S))}),
        pread({100: (7, (2 * S + 300_000_000, 1 * S + 200_000_000)), 200: (7, (0, 5 * S))}),
    ], procs=[proc(100), proc(200)])
    first = s.sample()
    assert first.source.ok and "warming up" in first.source.detail
    assert all(p.cpu_s == 0 for p in first.processes)
    clock.advance(1.0)
    act = s.sample()
    assert act.per_cpu_exact and act.interval_s == 1.0
    p = by_pid(act)
    assert p[100].per_cpu_s == {0: 0.3, 1: 0.2}
    assert p[100].cpu_s == pytest.approx(0.5, abs=1e-12)
    assert p[100].cmd == "/bin/work" and p[100].rss_bytes == 4096  # enrichment kept
    assert p[200].cpu_s == 0 and p[200].per_cpu_s == {}


def test_in_flight_time_is_added_once_not_twice():
    # Task 300 runs on CPU 1 since runtime 10 s; at read 2 it has run 0.4 s more
    # (schedstat 10.4 s) without switching; by read 3 it switched out after 0.5 s.
    rt = {300: 10_400_000_000}
    s, _, _ = make([
        pread({300: (1, (0, 10 * S))}, cpu_states=((0, 0, 0, 1), (300, 300, 10 * S, 5))),
        pread({300: (1, (0, 10 * S))}, cpu_states=((0, 0, 0, 1), (300, 300, 10 * S, 5))),
        pread({300: (1, (0, 10 * S + 500_000_000))}, cpu_states=((0, 0, 0, 1), (0, 0, 0, 6))),
    ], procs=[proc(300)], runtime=lambda tgid, pid: rt.get(pid))
    rt[300] = 10 * S  # at priming the task has just been switched in
    s.sample()
    rt[300] = 10_400_000_000
    mid = by_pid(s.sample())[300]
    assert mid.per_cpu_s == {1: 0.4}
    end = by_pid(s.sample())[300]
    assert end.per_cpu_s == {1: pytest.approx(0.1)}  # 0.5 total, 0.4 already reported


def test_in_flight_dropped_when_the_cpu_switched_while_reading():
    probe_reads = [
        pread({300: (1, (0, 0))}, cpu_states=((300, 300, 0, 5), (0, 0, 0, 1))),
        pread({300: (1, (0, 0))}, cpu_states=((300, 300, 0, 5), (0, 0, 0, 1))),
    ]
    s, probe, _ = make(probe_reads, procs=[proc(300)], runtime=lambda t, p: 2 * S)
    s.sample()
    probe.again = [cpus((301, 301, 0, 6), (0, 0, 0, 1))]
    act = s.sample()
    assert by_pid(act)[300].cpu_s == 0


def test_baseline_never_moves_back():
    # An over-read (in-flight) followed by a smaller cumulative: no negative time,
    # and the total over the reads is the true total.
    rt = {"v": None}
    s, _, _ = make([
        pread({5: (1, (1 * S, 0))}),
        pread({5: (1, (1 * S, 0))}, cpu_states=((5, 5, 0, 2), (0, 0, 0, 1))),
        pread({5: (1, (1 * S + 200_000_000, 0))}),
        pread({5: (1, (1 * S + 500_000_000, 0))}),
    ], procs=[proc(5)], runtime=lambda t, p: rt["v"])
    s.sample()
    rt["v"] = 300_000_000  # 0.3 s in flight (tick-fresh runtime)
    a = by_pid(s.sample())[5].cpu_s
    rt["v"] = None
    b = by_pid(s.sample())[5].cpu_s
    c = by_pid(s.sample())[5].cpu_s
    assert (a, b) == (0.3, 0.0)
    assert a + b + c == pytest.approx(0.5)


def test_exited_process_reported_from_exit_record_then_forgotten():
    exit_rec = {400: ExitInfo(ts=5, cgid=0, comm="short", flags=0),
                401: ExitInfo(ts=6, cgid=0, comm="kworker/x", flags=ebpf.PF_KTHREAD)}
    s, probe, _ = make([
        pread({}),
        pread({400: (3, (50_000_000, 0)), 401: (3, (0, 1_000_000))}, exited=exit_rec),
        pread({400: (3, (50_000_000, 0)), 401: (3, (0, 1_000_000))}, exited=exit_rec),
        pread({}),
    ])
    s.sample()
    act = s.sample()
    p = by_pid(act)
    assert p[400].exited and p[400].name == "short" and p[400].cpu_s == 0.05
    assert not p[400].kernel and p[400].per_cpu_s == {0: 0.05}
    assert p[401].kernel and p[401].cmd == "[kworker/x]"
    assert probe.forgotten == []  # its last switch-out may still be on its way
    act = s.sample()
    assert 400 not in by_pid(act)  # nothing new: not reported twice
    assert probe.forgotten == [[400, 401]]


def test_live_process_with_exit_record_is_marked_exited():
    s, _, _ = make([pread({9: (1, (0, 0))}),
                    pread({9: (1, (S, 0))}, exited={9: ExitInfo(1, 1, "x")})],
                   procs=[proc(9)])
    s.sample()
    p = by_pid(s.sample())[9]
    assert p.exited and p.cpu_s == 1.0 and p.cmd == "/bin/work"


def test_vanished_entries_without_exit_record_are_collected():
    reads = [pread({1: (1, (0, 0)), 77: (1, (S, 0))}) for _ in range(25)]
    probe = FakeProbe(reads)
    s = EbpfSampler(probe, "/x", FakeClock(), enrich=FakeEnrich([proc(1)]),
                    runtime=lambda t, p: None, cgroup_root="/x", gc_every=2)
    for _ in range(6):
        s.sample()
    assert [77] in probe.forgotten
    assert all(1 not in f for f in probe.forgotten)


def test_overflow_and_lost_events_are_surfaced():
    s, _, _ = make([
        pread({}, resyncs=(2, 1)),
        pread({}, resyncs=(3, 4), lost_ns=1_500_000_000, lost_count=12, misses=2, exit_lost=5),
    ])
    first = s.sample()
    assert first.source.extra["lost_events"] == 0  # the first switch per CPU resyncs
    act = s.sample()
    x = act.source.extra
    assert (x["map_overflow"], x["map_overflow_s"], x["lost_events"], x["exit_overflow"]) == (12, 1.5, 6, 5)
    assert act.source.ok
    assert "map full: 12 switches (1.500 s) not attributed" in act.source.detail
    assert "6 lost events" in act.source.detail and "exit map full: 5" in act.source.detail
    assert "map_entries above 64" in x["fix"]


def test_frequency_residency_gives_mean_mhz_and_cubed_weight():
    fmax = 4_000_000
    # CPU 0 at 2 GHz for the whole 1 s interval; busy for 0.5 s at (1/2)^3.
    f0 = FreqCounters(0, last=1 * S, f3=0, f1=0, khz=2_000_000, cube=(512 ** 3) >> 10, fmax_khz=fmax)
    r1 = pread({}, ktime=1 * S, freq=(f0,), busy_f3=(0, 0))
    r2 = pread({}, ktime=2 * S, freq=(f0,), busy_f3=(int(0.5 * S * ((512 ** 3) >> 10)), 0))
    cores = [CoreSample(cpu=0, busy_s=0.5, total_s=1.0), CoreSample(cpu=1, busy_s=0.1, total_s=1.0)]
    s, _, _ = make([r1, r2], cores=cores, with_freq=True)
    s.sample()
    act = s.sample()
    c0 = act.cores[0]
    assert c0.freq_mhz == pytest.approx(2000.0)
    assert c0.freq_cubed_weight == pytest.approx(0.5 * 0.125)
    assert not c0.freq_nominal
    assert act.cores[1].freq_mhz is None  # no frequency record for CPU 1


def test_a_failed_read_is_its_error_status_and_it_recovers():
    from keck_tui.samplers.types import error_activity, safe_sample

    class Broken(FakeProbe):
        broken = True

        def read(self):
            if self.broken:
                raise RuntimeError("map gone")
            return super().read()
    probe = Broken([pread({})])
    s = EbpfSampler(probe, "/x", FakeClock(), enrich=FakeEnrich(), runtime=lambda t, p: None)
    act = safe_sample(s, error_activity)
    assert (act.source.name, act.source.status, act.source.detail) == ("ebpf", "error", "RuntimeError: map gone")
    assert act.processes == () and act.cores == ()
    probe.broken = False
    assert safe_sample(s, error_activity).source.ok


def test_open_without_root_is_unavailable(monkeypatch):
    monkeypatch.setattr(loader.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(loader, "_cap_effective", lambda: 0)
    sampler, status = ebpf.open_ebpf_sampler()
    assert sampler is None
    assert (status.name, status.status, status.detail) == ("ebpf", "unavailable", "needs root")
    assert "root" in status.extra["fix"]


def test_open_reports_missing_bcc(monkeypatch):
    monkeypatch.setattr(loader, "check_privileges", lambda: None)
    monkeypatch.setattr(loader, "load_bcc", lambda: (None, loader.INSTALL_HINT))
    sampler, status = ebpf.open_ebpf_sampler(pinned=False)  # in this process: the patched load_bcc
    assert sampler is None
    assert status.detail == "bcc not installed (apt install python3-bpfcc)"


def test_lockdown_and_headers_checks(tmp_path):
    lock = tmp_path / "lockdown"
    lock.write_text("none integrity [confidentiality]\n")
    with pytest.raises(loader.ProbeUnavailable, match="locked-down kernel"):
        loader.check_lockdown(str(lock))
    lock.write_text("[none] integrity confidentiality\n")
    loader.check_lockdown(str(lock))
    if not __import__("pathlib").Path("/sys/kernel/kheaders.tar.xz").exists():
        with pytest.raises(loader.ProbeUnavailable, match="kernel headers missing"):
            loader.check_headers("9.9.9-test", str(tmp_path))
    (tmp_path / "9.9.9-test" / "source" / "include" / "linux").mkdir(parents=True)
    (tmp_path / "9.9.9-test" / "source" / "include" / "linux" / "kconfig.h").write_text("")
    loader.check_headers("9.9.9-test", str(tmp_path))


def test_compile_error_summary():
    log = "x.c:3:5: error: use of undeclared identifier 'nope'\n1 error generated."
    assert loader._summarise_compile_error(log) == \
        "probe compile error: use of undeclared identifier 'nope'"
    log = ("Failed to load BPF program b'raw_tracepoint__sched_switch': Permission denied\n"
           "0: (b7) r1 = 0\nR2 invalid mem access 'scalar'\n"
           "processed 12 insns (limit 1000000)\n")
    assert loader._summarise_compile_error(log) == \
        "probe rejected by the kernel verifier: R2 invalid mem access 'scalar'"


class _Bcc:
    """bcc whose compile fails for the cflags ``refuse`` picks (clang's error on fd 2)."""

    def __init__(self, refuse):
        self.refuse, self.tries = refuse, []
        bcc = self

        class BPF:
            def __init__(self, src_file, cflags):
                bcc.tries.append(list(cflags))
                if bcc.refuse(cflags):
                    import os
                    os.write(2, b"x.c:9:1: error: unknown map type task storage\n")
                    raise Exception("Failed to compile BPF module")
        self.BPF = BPF


def test_task_storage_is_asked_for_and_dropped_with_a_note_where_refused():
    ok = _Bcc(lambda flags: False)
    notes: list[str] = []
    loader.compile_with_task_storage(ok, {"SLOTS": 4}, notes)
    assert len(ok.tries) == 1 and "-DTASK_STORAGE=1" in ok.tries[0] and notes == []
    assert any(f.startswith("-DLOADED_NS=") for f in ok.tries[0])

    old = _Bcc(lambda flags: "-DTASK_STORAGE=1" in flags)
    loader.compile_with_task_storage(old, {"SLOTS": 4}, notes)
    assert [("-DTASK_STORAGE=1" in t) for t in old.tries] == [True, False]
    assert len(notes) == 1 and notes[0].startswith("no task storage (probe compile error: unknown map type")

    broken = _Bcc(lambda flags: True)  # fails either way: the first (fuller) error is the one reported
    with pytest.raises(loader.ProbeUnavailable, match="unknown map type task storage"):
        loader.compile_with_task_storage(broken, {"SLOTS": 4}, [])
    assert len(broken.tries) == 2


def _btf_blob(members: dict[str, int], other_first: bool = True) -> bytes:
    """A minimal BTF: an int, an unrelated struct, then struct task_struct."""
    strings = b"\0int\0other\0task_struct\0x\0" + b"".join(m.encode() + b"\0" for m in members)
    off = {name: strings.index(b"\0" + name.encode() + b"\0") + 1
           for name in ["int", "other", "task_struct", "x", *members]}
    types = struct.pack("<III", off["int"], 1 << 24, 4) + struct.pack("<I", 32)
    if other_first:
        types += struct.pack("<III", off["other"], (4 << 24) | 1, 8)
        types += struct.pack("<III", off["x"], 1, 0)
    types += struct.pack("<III", off["task_struct"], (4 << 24) | len(members), 4096)
    for name, byte_off in members.items():
        types += struct.pack("<III", off[name], 1, byte_off * 8)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_btf_member_offsets():
    blob = _btf_blob({"pid": 1264, "tgid": 1268, "flags": 44})
    assert btf.member_offsets(blob, "task_struct", ("pid", "tgid")) == {"pid": 1264, "tgid": 1268}
    with pytest.raises(btf.BtfError, match="no member nope"):
        btf.member_offsets(blob, "task_struct", ("nope",))
    with pytest.raises(btf.BtfError, match="no struct rq"):
        btf.member_offsets(blob, "rq", ("x",))
    with pytest.raises(btf.BtfError):
        btf.member_offsets(b"\0" * 32, "task_struct", ("pid",))


def test_bcc_import_by_path_and_failures(tmp_path, monkeypatch):
    from keck_tui import bcc_import
    monkeypatch.setattr(bcc_import, "_already_importable", lambda: None)
    saved = {k: v for k, v in sys.modules.items() if k == "bcc" or k.startswith("bcc.")}
    for k in saved:
        del sys.modules[k]
    try:
        assert bcc_import.load_bcc((str(tmp_path / "none"),)) == (None, bcc_import.INSTALL_HINT)
        pkg = tmp_path / "good" / "bcc"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("from .lib import BPF\n")
        (pkg / "lib.py").write_text("class BPF: pass\n")
        mod, why = bcc_import.load_bcc((str(tmp_path / "none"), str(tmp_path / "good")))
        assert why == "" and mod.BPF.__name__ == "BPF"
        assert str(tmp_path / "good") not in sys.path  # nothing else becomes importable
        del sys.modules["bcc"], sys.modules["bcc.lib"]
        bad = tmp_path / "bad" / "bcc"
        bad.mkdir(parents=True)
        (bad / "__init__.py").write_text("raise OSError('libbcc.so.0: cannot open')\n")
        mod, why = bcc_import.load_bcc((str(tmp_path / "bad"),))
        assert mod is None and "libbcc failed to load" in why
        assert "bcc" not in sys.modules
    finally:
        for k in [k for k in sys.modules if k == "bcc" or k.startswith("bcc.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_exited_process_still_in_a_cpu_slot_is_forgotten_only_after_the_slot_moves_on():
    rec = {400: ExitInfo(ts=5, cgid=0, comm="short")}
    def r(cached, oncpu=None):
        return ProbeRead(ktime_ns=0, oncpu={400: (0, (S, 0))} if oncpu is None else oncpu,
                         cpus=cpus(*IDLE2), exited=rec if oncpu is None else {},
                         exit_lost=0, prog_misses=0, map_entries=64, cached=frozenset(cached))
    s, probe, _ = make([r({400}), r({400}), r({400}), r(set()), r(set(), oncpu={})])
    for _ in range(3):
        s.sample()
    assert probe.forgotten == []  # a later flush of the slot would revive the entry
    s.sample()
    assert probe.forgotten == [[400]]
    assert sum(p.cpu_s for p in s.sample().processes) == 0


def test_process_born_after_the_procfs_scan_is_read_late_not_called_exited(tmp_path):
    (tmp_path / "500").mkdir()
    (tmp_path / "500" / "stat").write_bytes(
        b"500 (new one) S 42 500 500 0 -1 4194304 0 0 0 0 1 2 0 0 20 0 1 0 12345 0 0")
    (tmp_path / "500" / "cmdline").write_bytes(b"/bin/new\0--flag\0")
    (tmp_path / "500" / "cgroup").write_bytes(b"0::/system.slice/x.service\n")
    probe = FakeProbe([pread({}), pread({500: (9, (S // 10, 0))})])
    s = EbpfSampler(probe, str(tmp_path), FakeClock(), enrich=FakeEnrich(),
                    runtime=lambda t, p: None, cgroup_root="/nonexistent")
    s.sample()
    p = by_pid(s.sample())[500]
    assert (p.name, p.cmd, p.ppid, p.cgroup) == ("new one", "/bin/new --flag", 42, "/system.slice/x.service")
    assert not p.exited and not p.kernel and p.per_cpu_s == {0: 0.1}
    assert p.start_time == pytest.approx(12345 / ebpf._CLK_TCK)


def test_a_fixture_procfs_root_is_not_mixed_with_the_real_kernel(tmp_path):
    sampler, status = ebpf.open_ebpf_sampler(procfs_root=str(tmp_path))
    assert sampler is None and status.status == "unavailable"
    assert "is not this kernel's /proc" in status.detail
    assert ebpf._is_this_kernels_procfs("/proc")


def test_in_flight_time_of_a_task_not_yet_in_the_map_is_counted():
    # Process 600 was switched in (runtime 0) and has never switched out since.
    rt = {600: 0}
    on_cpu1 = ((0, 0, 0, 1), (600, 600, 0, 3))
    s, _, _ = make([pread({}, cpu_states=on_cpu1), pread({}, cpu_states=on_cpu1),
                    pread({600: (2, (0, 700_000_000))})],
                   procs=[proc(600)], runtime=lambda t, p: rt.get(p))
    s.sample()
    rt[600] = 250_000_000
    assert by_pid(s.sample())[600].per_cpu_s == {1: 0.25}
    assert by_pid(s.sample())[600].per_cpu_s == {1: pytest.approx(0.45)}


def test_in_flight_only_time_is_not_counted_again_when_the_task_lands_in_the_map():
    rt = {600: 0}
    on_cpu1 = ((0, 0, 0, 1), (600, 600, 0, 3))
    s, _, _ = make([pread({}, cpu_states=on_cpu1), pread({}, cpu_states=on_cpu1),
                    pread({}, cpu_states=on_cpu1), pread({600: (2, (0, 700_000_000))})],
                   procs=[proc(600)], runtime=lambda t, p: rt.get(p))
    s.sample()
    rt[600] = 250_000_000
    a = by_pid(s.sample())[600].cpu_s
    rt[600] = None  # schedstat unreadable for a moment: no in-flight this time
    b = by_pid(s.sample())[600].cpu_s
    c = by_pid(s.sample())[600].cpu_s
    assert (a, b) == (0.25, 0.0)
    assert a + b + c == pytest.approx(0.7)


class _V:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Key:
    def __init__(self, value):
        self.value = value


class _Hash:
    """A bcc-like per-CPU hash; ``after_batch`` replaces its contents right after a
    batch read (a flush landing while user space reads)."""

    Key = _Key

    def __init__(self, now, after_batch=None):
        self.now = now
        self.after_batch = after_batch

    def items_lookup_batch(self):
        got = [(_Key(t), [_V(ns=ns, cgid=3) for ns in v]) for t, v in self.now.items()]
        if self.after_batch is not None:
            self.now, self.after_batch = self.after_batch, None
        return got

    def __getitem__(self, key):
        if key.value not in self.now:
            raise KeyError(key.value)
        return [_V(ns=ns, cgid=3) for ns in self.now[key.value]]


class _Seq:
    """Returns the next of ``values`` at each lookup (the per-CPU state array)."""

    def __init__(self, values):
        self.values = values

    def __getitem__(self, _key):
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class _Bpf(dict):
    funcs: dict = {}


def _cpu_state(slots, evict):
    pad = loader.SLOTS - len(slots)
    return _V(sum_at_in=0, switches=1, resyncs=0, lost_ns=0, lost_count=0, cur_pid=0,
              cur_tgid=0, evict=evict, slot_tgid=[t for t, _ in slots] + [0] * pad,
              slot_ns=[n for _, n in slots] + [0] * pad, slot_cgid=[3] * loader.SLOTS)


def _probe_reading(before, after, now, after_batch):
    bpf = _Bpf({b"state": _Seq([[before], [after]]), b"oncpu": _Hash(now, after_batch),
                b"exited": _Hash({}), b"exit_lost": _Seq([_V(value=0)])})
    probe = loader.OnCpuProbe(bpf=bpf, map_entries=64, exit_entries=8, cpus=[0],
                              with_freq=False, load_s=0.1)
    return probe.read()


def test_loader_read_recovers_a_slot_flushed_while_the_hash_was_read():
    # CPU 0: X=7 has 5 ns pending in slot 0. Right after the hash is read (X: 10 ns),
    # slot 0 is flushed (X: 15 ns in the hash) and taken by Y=8 (1 ns).
    r = _probe_reading(_cpu_state([(7, 5)], evict=0), _cpu_state([(8, 1)], evict=1),
                       {7: [10]}, {7: [15]})
    assert r.oncpu[7] == (3, (15,))  # not 10: the flushed 5 ns are not lost
    assert r.oncpu[8] == (3, (1,))
    assert r.cached == {8} and r.map_used == 1


def test_loader_read_adds_slots_to_the_hash_when_nothing_moved():
    r = _probe_reading(_cpu_state([(7, 5), (9, 2)], evict=2), _cpu_state([(7, 6), (9, 2)], evict=2),
                       {7: [10]}, None)
    assert r.oncpu == {7: (3, (16,)), 9: (3, (2,))}
