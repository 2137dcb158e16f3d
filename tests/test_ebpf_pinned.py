"""The probe compiled by a helper process and read from bpffs pins (keck_tui/probes/pinned.py)."""
from __future__ import annotations

import ctypes as ct
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keck_tui.probes.loader import ProbeUnavailable
from keck_tui.probes.pinned import build, describe, map_names, remove_stale

REPO = Path(__file__).resolve().parents[1]


class Inner(ct.Structure):
    _fields_ = [("ns", ct.c_ulonglong), ("cgid", ct.c_ulonglong)]


class Outer(ct.Structure):
    _fields_ = [("a", ct.c_uint), ("pad", ct.c_uint), ("slots", Inner * 4), ("comm", ct.c_char * 16)]


def test_layouts_survive_json_and_keep_their_bytes():
    d = json.loads(json.dumps(describe(Outer * 2)))
    t = build(d, "outer")
    assert ct.sizeof(t) == ct.sizeof(Outer * 2)
    src = (Outer * 2)()
    src[1].a, src[1].slots[3].ns, src[1].comm = 7, 123456789012, b"sleep"
    got = t.from_buffer_copy(bytes(src))
    assert (got[1].a, got[1].slots[3].ns, got[1].comm) == (7, 123456789012, b"sleep")
    assert build("c_uint") is ct.c_uint
    with pytest.raises(ValueError, match="bytes, bcc made it"):
        build({"struct": [["x", "c_uint"]], "pack": 0, "size": 8})
    with pytest.raises(ValueError, match="not a ctypes scalar"):
        build("system")


def test_map_names_from_the_probe_source():
    src = textwrap.dedent("""
        BPF_PERCPU_ARRAY(state, struct cpu_state, 1);
        BPF_PERCPU_HASH(oncpu, u32, struct ontime, MAP_ENTRIES);
        #ifdef WITH_FREQ
        BPF_ARRAY(freq, struct freq_state, MAX_CPUS);
        #endif
        u64 x = BPF_NOT_A_MAP;
    """)
    assert map_names(src) == ["state", "oncpu", "freq"]


def test_stale_pin_directories_of_dead_processes_are_removed(tmp_path):
    for pid in ("111", "222", "notapid", "333_1", "333_2", "222_4"):
        (tmp_path / pid / "maps").mkdir(parents=True)
    removed = remove_stale(tmp_path, alive=lambda pid: pid == 222)
    assert sorted(p.name for p in removed) == ["111", "333_1", "333_2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["222", "222_4", "notapid"]
    assert remove_stale(tmp_path / "absent") == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="pinning needs root (bpffs, BPF_OBJ_PIN)")


@needs_root
def test_a_helper_that_fails_gives_its_reason(tmp_path):
    from keck_tui.probes.pinned import open_pinned

    fake = tmp_path / "helper.py"
    fake.write_text('import json, sys\nprint(json.dumps({"why": "bcc not installed (apt install '
                    'python3-bpfcc)", "fix": "apt install python3-bpfcc"}))\nsys.exit(3)\n')
    with pytest.raises(ProbeUnavailable) as err:
        open_pinned(map_entries=16, exit_entries=16, freq=False, root=tmp_path / "pins",
                    helper=[sys.executable, str(fake)])
    assert str(err.value) == "bcc not installed (apt install python3-bpfcc)"
    assert err.value.fix == "apt install python3-bpfcc"
    assert list((tmp_path / "pins").iterdir()) == []  # its pin directory is gone


OPEN_AND_REPORT = """
import json, os, sys, time
from keck_tui.samplers.ebpf import open_ebpf_sampler
s, st = open_ebpf_sampler()
if s is None:
    print(json.dumps({"skip": st.detail})); sys.exit(0)
s.sample()
c0 = time.process_time()
end = time.time() + 0.3
while time.time() < end:
    pass
spun = time.process_time() - c0  # the kernel's own account of this process's CPU time
act = s.sample()
me = [p for p in act.processes if p.pid == os.getpid()]
table = s.probe.bpf[b"oncpu"]
# Time reaches the hash when a CPU's few cache slots evict a process: on a quiet machine that may
# not have happened yet, so a few dozen short processes make sure it has (their entries stay
# until the sampler's next read).
for _ in range(8 * os.cpu_count()):
    os.waitpid(os.spawnv(os.P_NOWAIT, "/bin/true", ["true"]), 0)
# Between two reads entries are only added (the sampler deletes exited ones at its own reads):
# the batch read must hold everything a key-by-key walk found before it and nothing a walk after
# it lacks. (This process itself may still sit in a CPU's recent-time cache, not yet in the map.)
# The kernel walks a hash map's buckets without one lock over the whole map, so a walk racing the
# probe's inserts on a busy machine can differ once; a wrong batch reader differs every time.
tries = []
for _ in range(5):
    before = {k.value for k, _ in table.items()}  # one syscall per key ...
    batch = {k.value for k, _ in table.items_lookup_batch()}  # ... or a few
    after = {k.value for k, _ in table.items()}
    ok = bool(batch) and before <= batch <= after
    tries.append({"ok": ok, "before": len(before), "batch": len(batch), "after": len(after),
                  "missed": sorted(before - batch)[:8], "extra": sorted(batch - after)[:8]})
    if ok:
        break
pin_dir = str(s.probe.bpf.pin_dir)
print(json.dumps({
    "status": act.source.status, "own_cpu_s": me[0].cpu_s if me else 0.0, "spun_s": spun, "exact": act.per_cpu_exact,
    "bcc_loaded": any(m == "bcc" or m.startswith("bcc.") for m in sys.modules),
    "rss_mib": int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20,
    "pins": sorted(os.listdir(pin_dir + "/links")), "pin_dir": pin_dir,
    "batch_ok": tries[-1]["ok"], "batch_tries": tries}), flush=True)
if sys.argv[1] == "crash":
    os._exit(1)  # no close(): the pins stay, as after a crash
s.close()
print(json.dumps({"pins_after_close": os.path.exists(pin_dir)}))
"""


def _run(mode: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", OPEN_AND_REPORT, mode], capture_output=True, text=True,
                         cwd=REPO, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr
    if "skip" in lines[0]:
        pytest.skip(f"eBPF unavailable here: {lines[0]['skip']}")
    return lines


@needs_root
def test_pinned_probe_measures_without_bcc_in_the_process_and_unpins_on_close():
    first, last = _run("close")
    assert first["status"] == "ok" and first["exact"]
    # its own spin, read from the pinned maps, against getrusage (a loaded box spins less)
    assert first["spun_s"] > 0 and first["own_cpu_s"] >= 0.9 * first["spun_s"], first
    assert not first["bcc_loaded"]
    assert first["rss_mib"] < 64, first  # no LLVM here (in-process bcc: ~190 MiB)
    assert first["pins"] == ["sched_process_exit", "sched_switch"]
    assert first["batch_ok"], first["batch_tries"]
    assert last == {"pins_after_close": False}


@needs_root
def test_pins_of_a_crashed_process_are_removed_at_the_next_start():
    from keck_tui.probes.pinned import PIN_ROOT

    (crashed,) = _run("crash")
    assert Path(crashed["pin_dir"]).exists()  # left behind, programs still attached
    removed = remove_stale(PIN_ROOT)
    assert Path(crashed["pin_dir"]) in removed and not Path(crashed["pin_dir"]).exists()
