"""Per (process, core) hardware counters from the eBPF probe, without root or bcc: the
arithmetic (samplers/ebpf_counters.py), the sampler over a fake probe's maps, the loader's
reading of the counter maps, and the counter set's reasons (probes/counters.py)."""
from __future__ import annotations

import errno

import pytest

from keck_tui.attribution.features import COUNTERS_PROCESS, counter_source
from keck_tui.clock import FakeClock
from keck_tui.config import Settings
from keck_tui.probes import loader
from keck_tui.samplers.counter_share import with_counters
from keck_tui.wiring import build_counters
from keck_tui.probes.counters import SLOTS, ProbeCounters, mask
from keck_tui.probes.loader import CounterCpu, CounterValue, ProbeRead
from keck_tui.samplers.ebpf_counters import CounterDeltas, add, to_delta
from keck_tui.samplers.types import CoreSample
from tests.test_ebpf_unit import by_pid, cpus, make, proc

S = 1_000_000_000


def cv(count, enabled, running=None):
    return CounterValue(count, enabled, enabled if running is None else running)


def vals(cycles=None, insns=None, llc=None, ref=None):
    return (cycles, insns, llc, ref)


def test_to_delta_scales_for_multiplexing_and_keeps_missing_slots_absent():
    d = to_delta(((1000, 10, 5), (3000, 10, 5), None, (0, 10, 0)))
    assert d.cycles == 2000 and d.instructions == 6000  # x enabled/running = 2
    assert d.llc_misses is None  # not installed: absent, never 0
    assert d.ref_cycles is None  # never ran in the interval: unknown, not 0
    assert d.running_ratio == 0.5 and d.ipc == 3.0
    full = to_delta(((7, 4, 4), None, None, None))
    assert full.cycles == 7 and full.running_ratio == 1.0 and full.instructions is None
    assert to_delta((None, None, None, None)) is None
    assert add(((1, 2, 3), None, None, None), ((10, 20, 30), (5, 5, 5), None, None)) == \
        ((11, 22, 33), (5, 5, 5), None, None)


def test_deltas_between_reads_per_process_and_core_and_in_flight_added_once():
    c = CounterDeltas()
    tot1 = {(100, 0): vals(cv(1_000, 10)), (100, 1): vals(cv(50, 5))}
    assert c.step(tot1, {}, first=True) == {}
    # 100 ran 400 more cycles on CPU 0 (switched out), and runs on CPU 1 now: 30 so far
    tot2 = {(100, 0): vals(cv(1_400, 14)), (100, 1): vals(cv(50, 5))}
    got = c.step(tot2, {(100, 1): ((30, 3, 3), None, None, None)}, first=False)
    assert got[100][0].cycles == 400 and got[100][1].cycles == 30
    # it switched out of CPU 1 after 100 in all: the in-flight 30 is not counted again
    tot3 = {(100, 0): vals(cv(1_400, 14)), (100, 1): vals(cv(150, 15))}
    got = c.step(tot3, {}, first=False)
    assert 0 not in got[100] and got[100][1].cycles == 70
    # a reading behind the baseline (an in-flight read ahead of the map) counts nothing
    assert c.step(tot3, {}, first=False) == {}
    assert c.running_ratio is None


def test_a_forgotten_process_starts_from_zero():
    c = CounterDeltas()
    c.step({(5, 0): vals(cv(900, 9))}, {}, first=True)
    c.forget({5})
    got = c.step({(5, 0): vals(cv(40, 2))}, {}, first=False)  # a reused PID
    assert got[5][0].cycles == 40


def test_core_counters_from_the_cpus_own_events():
    c = CounterDeltas()
    assert c.cores({0: vals(cv(100, 10), cv(300, 10))}, first=True) == {}
    got = c.cores({0: vals(cv(700, 20, 15), cv(900, 20, 15)), 1: None}, first=False)
    assert got[0].cycles == pytest.approx(600 * 10 / 5) and got[0].instructions == pytest.approx(1200)
    assert got[0].running_ratio == 0.5 and 1 not in got


def ctr_read(oncpu, counters, counter_cpus, cpu_states=((0, 0, 0, 1), (0, 0, 0, 1)), slots=("cycles",)):
    return ProbeRead(ktime_ns=0, oncpu=oncpu, cpus=cpus(*cpu_states), exited={}, exit_lost=0, prog_misses=0,
                     map_entries=64, counter_slots=slots, counters=counters, counter_cpus=counter_cpus,
                     counter_entries=32)


def test_sampler_gives_process_and_core_counters_and_the_status_says_which():
    cpu0 = lambda v, en, lost=0: CounterCpu(0, vals(cv(0, 0)), lost, vals(cv(v, en)))  # noqa: E731
    s, _, clock = make([
        ctr_read({100: (7, (S, 0))}, {(100, 0): vals(cv(2_000, S))}, (cpu0(10_000, 5 * S),)),
        ctr_read({100: (7, (2 * S, 0))}, {(100, 0): vals(cv(3_000_000_000, 2 * S))},
                 (cpu0(3_500_000_000, 6 * S, lost=3),)),
    ], procs=[proc(100)], cores=[CoreSample(0, 1.0, 1.0)])
    first = s.sample()
    assert first.per_process_counters and by_pid(first)[100].counters is None
    clock.advance(1.0)
    act = s.sample()
    p = by_pid(act)[100]
    assert p.per_cpu_s == {0: 1.0}
    assert p.counters[0].cycles == pytest.approx(3_000_000_000 - 2_000)
    assert p.counters[0].instructions is None  # slot not compiled in
    assert act.cores[0].counters.cycles == pytest.approx(3_500_000_000 - 10_000)
    extra = act.source.extra
    assert extra["counters"] == "cycles" and extra["counter_used"] == 1 and extra["counter_entries"] == 32
    assert extra["counter_overflow"] == 3 and "counter map full: 3 spans" in act.source.detail
    assert extra["counter_running_ratio"] == 1.0
    # the features see per-process counters; the counters source is the probe's own events
    assert counter_source(act) == COUNTERS_PROCESS
    reading = s.counter_sampler().sample()
    assert reading.source.ok and reading.source.name == "counters" and reading.source.extra["per_process"]
    assert reading.cores[0].cycles == pytest.approx(3_500_000_000 - 10_000) and reading.interval_s == 1.0
    merged = with_counters(act, reading)  # what the collector does: processes keep their own
    assert by_pid(merged)[100].counters == p.counters and merged.cores[0].counters == reading.cores[0]


def test_wiring_takes_the_cores_counters_from_the_probe_when_it_counts():
    class Activity:
        def counter_sampler(self):
            return "the probe's"

    assert build_counters(Settings(), FakeClock(), Activity())[0] == "the probe's"
    off, notes = build_counters(Settings(counters="off"), FakeClock(), Activity())
    assert off is None and "turned off" in notes[0].detail


def test_without_counters_the_sampler_says_why_and_processes_carry_none():
    s, _, clock = make([ctr_read({100: (7, (S, 0))}, {}, (), slots=()),
                        ctr_read({100: (7, (2 * S, 0))}, {}, (), slots=())], procs=[proc(100)])
    s.counters_why = "no PMU: this CPU (or VM) exposes no hardware counter cycles (perf_event_open: ENOENT, ...)"
    s.sample()
    clock.advance(1.0)
    act = s.sample()
    assert not act.per_process_counters and by_pid(act)[100].counters is None
    assert by_pid(act)[100].cpu_s == 1.0  # the probe runs on without counters
    assert act.source.ok and act.source.extra["counters"] == "none"
    assert "no hardware counters: no PMU" in act.source.detail and "ENOENT" in act.source.detail


class Table(dict):
    """A map with bcc's item interface (items_lookup_batch) over ctypes-like rows."""

    def items_lookup_batch(self):
        return list(self.items())

    def __getitem__(self, key):
        return dict.__getitem__(self, getattr(key, "value", key))


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_loader_reads_counter_maps_with_the_groups_times_and_drops_a_member_that_never_counted():
    ctr = Table({Obj(tgid=100, cpu=0): Obj(v=[500, 900, 0, 0], en=[40, 40, 0, 0], run=[20, 20, 0, 0]),
                 Obj(tgid=100, cpu=1): Obj(v=[1, 2, 0, 0], en=[30, 0, 0, 0], run=[30, 0, 0, 0])})
    z4 = [0] * 4
    empty = dict(slot_tgid=[0] * 4, slot_v=z4 * 4, slot_en=z4 * 4, slot_run=z4 * 4)
    # CPU 0's cache slots (flat, slot-major) hold recent counts of 100 (slot 1) and of 200 (slot 3)
    slots0 = dict(slot_tgid=[0, 100, 0, 200], slot_v=z4 + [5, 9, 0, 0] + z4 + [3, 3, 0, 0],
                  slot_en=z4 + [2, 2, 0, 0] + z4 + [6, 6, 0, 0], slot_run=z4 + [1, 1, 0, 0] + z4 + [6, 6, 0, 0])
    state = Table({0: [Obj(v=[7, 8, 0, 0], en=4, run=2, ok=0b11, lost=5, **slots0),
                       Obj(v=[0] * 4, en=0, run=0, ok=0, lost=0, **empty)]})

    class Fds:
        fds = {"cycles": {0: 10}, "instructions": {0: 11}}

        def read(self):  # instructions could not get on the PMU: never ran while the leader did
            return {"cycles": {0: (70, 50, 30)}, "instructions": {0: (0, 50, 0)}}

        def close(self):
            pass

    probe = loader.OnCpuProbe(bpf={b"ctr": ctr, b"ctr_state": state}, map_entries=8, exit_entries=8, cpus=[0, 1],
                              with_freq=False, load_s=0.0, counter_slots=("cycles", "instructions"),
                              counters=Fds())
    totals, per_cpu = probe.read_counters()
    assert totals[(100, 0)] == (CounterValue(505, 42, 21), None, None, None)  # hash + slot
    assert totals[(200, 0)] == (CounterValue(3, 6, 6), None, None, None)  # only in a slot so far
    assert probe.counter_cached == {100, 200}  # not deletable yet
    assert totals[(100, 1)] == (CounterValue(1, 30, 30), None, None, None)  # never read: absent, not 0
    assert per_cpu[0].values == (CounterValue(7, 4, 2), None, None, None) and per_cpu[0].lost == 5
    assert per_cpu[0].now == (CounterValue(70, 50, 30), None, None, None)
    assert per_cpu[1].now is None


def test_counter_set_reason_groups_slots_that_failed_alike_with_the_errno():
    c = ProbeCounters(why={s: f"no PMU: this CPU (or VM) exposes no hardware counter {s}" for s in SLOTS},
                      errnos={s: errno.ENOENT for s in SLOTS})
    assert c.slots == () and c.reason() == ("cycles, instructions, llc_misses, ref_cycles: no PMU: this CPU (or VM) "
                                            "exposes no hardware counter cycles (perf_event_open: ENOENT, "
                                            "No such file or directory)")
    one = ProbeCounters(fds={"cycles": {0: 3}}, why={"ref_cycles": "busy"}, errnos={"ref_cycles": errno.EBUSY})
    assert one.slots == ("cycles",) and one.reason() == "busy (perf_event_open: EBUSY, Device or resource busy)"
    assert mask(("instructions", "cycles")) == 0b11 and mask(("ref_cycles",)) == 0b1000


def test_entries_a_process_no_longer_adds_to_are_collected_and_restart_from_zero():
    c = CounterDeltas()
    tot = {(7, 0): vals(cv(100, 10)), (7, 1): vals(cv(50, 5)), (8, 0): vals(cv(9, 1))}
    c.step(tot, {}, first=True)
    stale = []
    for _ in range(3):  # unchanged for 3 reads; 7 runs on CPU 1 now (in flight), 8 sits in a cache slot
        c.step(tot, {}, first=False)
        stale = c.idle_keys(tot, busy={(7, 1): True}, cached={8}, reads=3)
    assert stale == [] or stale == [(7, 0)]
    assert c.idle_keys(tot, busy={(7, 1): True}, cached={8}, reads=3) == [(7, 0)]
    c.drop([(7, 0)])  # the sampler deleted the entry: the process ran there again, from 0
    got = c.step({(7, 0): vals(cv(30, 2)), (7, 1): vals(cv(50, 5))}, {}, first=False)
    assert got[7][0].cycles == 30 and 1 not in got[7]


def test_sampler_deletes_idle_counter_entries_and_keeps_counting():
    cpu0 = CounterCpu(0, vals(cv(0, 0)), 0, vals(cv(0, 0)))
    same = {(100, 0): vals(cv(2_000, S)), (100, 1): vals(cv(7_000, S))}
    reads = [ctr_read({100: (7, (S, S))}, same, (cpu0,)) for _ in range(3)]
    reads.append(ctr_read({100: (7, (S, 2 * S))}, {(100, 1): vals(cv(500, S // 2))}, (cpu0,)))
    s, probe, clock = make(reads, procs=[proc(100)], cores=[CoreSample(0, 1.0, 1.0)])
    s.gc_every = 2
    dropped = []
    probe.forget_counters = dropped.extend
    for _ in range(3):
        s.sample()
        clock.advance(1.0)
    assert sorted(dropped) == [(100, 0), (100, 1)]  # unchanged for two reads: counted in full
    act = s.sample()  # deleted from the map, (100, 1) restarted from 0 there
    assert by_pid(act)[100].counters[1].cycles == 500
