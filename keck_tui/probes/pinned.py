"""The probe compiled by a short-lived helper and read from bpffs pins: no LLVM in keck-top.

bcc's compiler (LLVM) costs ~140 MiB of resident memory for as long as a process
lives. So a helper process (``python -m keck_tui.probes.pinned DIR ...``) compiles
and attaches the probe with bcc, pins its maps, programs and the raw-tracepoint
links under ``DIR`` (``/sys/fs/bpf/keck-top/<pid>_<n>/``, the n-th probe of process pid), prints the maps' ctypes layouts as
bcc generated them (with the CPUs and sizes) on its standard output and exits; the
pinned links keep the programs attached. The long-lived process opens the pins
with the ``bpf()`` system call (:mod:`keck_tui.probes.bpfsys`) and reads them
through :class:`PinnedTables`, which answers the same calls as bcc's tables, so
:class:`~keck_tui.probes.loader.OnCpuProbe` reads either. ``close()`` removes the
pins (that detaches the programs); pins left by a process that died are removed
by the next start (:func:`remove_stale`).
"""
from __future__ import annotations

import ctypes as ct
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from keck_tui.probes import bpfsys
from keck_tui.probes.loader import (DEFAULT_COUNTER_ENTRIES, SOURCE, OnCpuProbe, ProbeUnavailable,
                                    check_privileges)

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "keck-top"
HELPER_TIMEOUT_S = 120.0
_PROBE_SEQ = itertools.count(1)


class PinningUnavailable(Exception):
    """Pins cannot be used here (no bpf(2) number, no bpffs): load the probe in-process instead."""


# ---- ctypes layouts, as data ------------------------------------------------------------

def describe(t: Any) -> Any:
    """A ctypes type as JSON-able data (what bcc generated from the C source)."""
    if isinstance(t, type) and issubclass(t, ct.Array):
        return {"array": describe(t._type_), "n": t._length_}
    if isinstance(t, type) and issubclass(t, (ct.Structure, ct.Union)):
        return {"union" if issubclass(t, ct.Union) else "struct": [[f[0], describe(f[1])] for f in t._fields_],
                "pack": getattr(t, "_pack_", 0), "size": ct.sizeof(t)}
    name = t.__name__
    if not hasattr(ct, name):
        raise TypeError(f"cannot describe ctypes type {t!r}")
    return name


def build(d: Any, name: str = "T") -> Any:
    """The ctypes type ``describe`` described (checked against the recorded size)."""
    if isinstance(d, str):
        t = getattr(ct, d, None)
        if t is None or not isinstance(t, type) or not issubclass(t, ct._SimpleCData):
            raise ValueError(f"not a ctypes scalar: {d!r}")
        return t
    if "array" in d:
        return build(d["array"], name) * int(d["n"])
    base = ct.Union if "union" in d else ct.Structure
    fields = [(str(f), build(sub, f"{name}_{f}")) for f, sub in d["union" if "union" in d else "struct"]]
    attrs: dict[str, Any] = {"_fields_": fields}
    if d.get("pack"):
        attrs["_pack_"] = int(d["pack"])
    t = type(name, (base,), attrs)
    if ct.sizeof(t) != int(d["size"]):
        raise ValueError(f"layout of {name} is {ct.sizeof(t)} bytes, bcc made it {d['size']}")
    return t


# ---- tables over pinned maps --------------------------------------------------------------

class PinnedTable:
    """One pinned map, answering the calls the loader makes on bcc tables."""

    def __init__(self, fd: int, key: Any, leaf: Any, info: bpfsys.MapInfo, ncpu: int) -> None:
        self.map_fd = fd
        self.Key = key
        self.info = info
        self.percpu = info.percpu
        if self.percpu:
            value = leaf._type_ if issubclass(leaf, ct.Array) else leaf
            self._value = value
            self.Leaf = value * ncpu
            stride = (ct.sizeof(value) + 7) // 8 * 8
            if stride != ct.sizeof(value):
                raise ValueError(f"{info.name}: per-CPU value of {ct.sizeof(value)} bytes is not 8-aligned")
        else:
            self.Leaf = leaf
        if ct.sizeof(self.Key) != info.key_size or (not self.percpu and ct.sizeof(self.Leaf) != info.value_size) \
                or (self.percpu and ct.sizeof(self._value) != info.value_size):
            raise ValueError(f"map {info.name}: sizes differ from the recorded layout")

    def _key(self, key: Any) -> Any:
        if isinstance(key, self.Key):
            return key
        if isinstance(key, ct._SimpleCData):
            return self.Key(key.value)
        return self.Key(key)

    def __getitem__(self, key: Any) -> Any:
        leaf = self.Leaf()
        if not bpfsys.lookup(self.map_fd, self._key(key), leaf):
            raise KeyError(key)
        return leaf

    def __setitem__(self, key: Any, leaf: Any) -> None:
        bpfsys.update(self.map_fd, self._key(key), leaf)

    def __delitem__(self, key: Any) -> None:
        if not bpfsys.delete(self.map_fd, self._key(key)):
            raise KeyError(key)

    def keys(self) -> Iterator[Any]:
        key = None
        while True:
            nxt = self.Key()
            if not bpfsys.next_key(self.map_fd, key, nxt):
                return
            yield nxt
            key = nxt

    def items_lookup_batch(self) -> list[tuple[Any, Any]]:
        """All entries in a few system calls (hash maps); raises where batches don't work."""
        if self.info.type not in (1, 5, 9, 10):  # hash, percpu_hash, lru_hash, lru_percpu_hash
            raise OSError(22, "batch lookups are for hash maps here")
        return bpfsys.lookup_batch(self.map_fd, self.Key, self.Leaf, self.info.max_entries)

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key in list(self.keys()):
            try:
                yield key, self[key]
            except KeyError:  # deleted since the key walk
                continue

    def close(self) -> None:
        if self.map_fd >= 0:
            os.close(self.map_fd)
            self.map_fd = -1


class _Prog:
    def __init__(self, fd: int) -> None:
        self.fd = fd


class PinnedTables:
    """``bpf[b"name"]`` and ``bpf.funcs`` over a pin directory; ``cleanup()`` unpins it all."""

    def __init__(self, pin_dir: Path, meta: dict[str, Any]) -> None:
        self.pin_dir = pin_dir
        self.tables: dict[bytes, PinnedTable] = {}
        self.funcs: dict[bytes, _Prog] = {}
        ncpu = int(meta["ncpu"])
        try:
            for name, layout in meta["maps"].items():
                fd = bpfsys.obj_get(str(pin_dir / "maps" / name))
                try:
                    table = PinnedTable(fd, build(layout["key"], f"{name}_key"),
                                        build(layout["leaf"], f"{name}_leaf"), bpfsys.map_info(fd), ncpu)
                except Exception:
                    os.close(fd)
                    raise
                self.tables[name.encode()] = table
            for name in meta["progs"]:
                self.funcs[name.encode()] = _Prog(bpfsys.obj_get(str(pin_dir / "progs" / name)))
        except Exception:
            self.close_fds()
            raise

    def __getitem__(self, name: bytes) -> PinnedTable:
        return self.tables[name]

    def close_fds(self) -> None:
        for table in self.tables.values():
            table.close()
        for prog in self.funcs.values():
            if prog.fd >= 0:
                os.close(prog.fd)
                prog.fd = -1

    def cleanup(self) -> None:
        """Close every fd and remove the pins: the links go, so the programs detach."""
        self.close_fds()
        remove_pins(self.pin_dir)


def remove_pins(pin_dir: Path) -> None:
    """Remove a pin directory (bpffs files are unlinked like any other)."""
    shutil.rmtree(pin_dir, ignore_errors=True)


def remove_stale(root: Path = PIN_ROOT, alive: Any = None) -> list[Path]:
    """Remove pin directories of keck-top processes that are gone; the ones removed."""
    def is_alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    check = alive or is_alive
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for d in entries:
        owner = d.name.split("_", 1)[0]  # <pid>_<n> (<pid> from older versions)
        if owner.isdigit() and not check(int(owner)):
            remove_pins(d)
            removed.append(d)
    return removed


def ensure_bpffs(path: Path = BPFFS) -> None:
    """Mount bpffs at ``path`` when nothing is mounted there (like setup-ebpf.sh mounts tracefs)."""
    if os.path.ismount(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "bpf", "bpf", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ProbeUnavailable(f"cannot mount bpffs at {path}: {done.stderr.strip() or done.returncode}",
                               "mount -t bpf bpf /sys/fs/bpf, or use --probes procfs")


# ---- the helper (bcc side) ------------------------------------------------------------------

def pin_probe(probe: OnCpuProbe, pin_dir: Path) -> dict[str, Any]:
    """Pin a loaded probe's maps, programs and raw-tracepoint links; the meta data to read them."""
    bpf: Any = probe.bpf
    for sub in ("maps", "progs", "links"):
        (pin_dir / sub).mkdir(parents=True, exist_ok=True)
    maps: dict[str, Any] = {}
    for name in map_names(SOURCE.read_text()):
        if name in PROGRAM_ONLY_MAPS:
            continue  # the programs hold them; nothing here reads them
        try:
            table = bpf[name.encode()]
        except KeyError:
            continue  # not compiled in (e.g. freq without cpufreq)
        bpfsys.obj_pin(table.map_fd, str(pin_dir / "maps" / name))
        maps[name] = {"key": describe(table.Key), "leaf": describe(table.Leaf)}
    progs = []
    for raw_name, fn in bpf.funcs.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        bpfsys.obj_pin(fn.fd, str(pin_dir / "progs" / name))
        progs.append(name)
    links = []
    for raw_tp, fd in getattr(bpf, "raw_tracepoint_fds", {}).items():
        tp = raw_tp.decode() if isinstance(raw_tp, bytes) else str(raw_tp)
        bpfsys.obj_pin(fd, str(pin_dir / "links" / tp))
        links.append(tp)
    return {"maps": maps, "progs": progs, "links": links, "ncpu": len(probe.cpus), "cpus": probe.cpus,
            "map_entries": probe.map_entries, "exit_entries": probe.exit_entries,
            "with_freq": probe.with_freq, "load_s": probe.load_s, "notes": probe.notes,
            "counter_slots": list(probe.counter_slots), "counter_entries": probe.counter_entries}


#: Maps only the programs use (task storage: the loaded programs keep it alive).
PROGRAM_ONLY_MAPS = frozenset({"accounted"})

_MAP_DECL = re.compile(r"^\s*BPF_[A-Z_]+\(\s*(\w+)\s*,", re.M)


def map_names(source: str) -> list[str]:
    """The maps a probe source declares (``BPF_HASH(name, ...)`` and friends), in order."""
    names: list[str] = []
    for name in _MAP_DECL.findall(source):
        if name not in names:
            names.append(name)
    return names


def helper_main(argv: list[str]) -> int:
    """``python -m keck_tui.probes.pinned DIR MAP_ENTRIES EXIT_ENTRIES FREQ(auto|on|off)
    [COUNTER_SLOTS(comma-separated, '-' for none) COUNTER_ENTRIES]``."""
    pin_dir = Path(argv[0])
    freq = {"auto": None, "on": True, "off": False}[argv[3]]
    slots = [s for s in (argv[4] if len(argv) > 4 else "-").split(",") if s and s != "-"]
    entries = int(argv[5]) if len(argv) > 5 else DEFAULT_COUNTER_ENTRIES
    try:
        probe = OnCpuProbe.open(map_entries=int(argv[1]), exit_entries=int(argv[2]), freq=freq,
                                counter_slots=slots, counter_entries=entries)
    except ProbeUnavailable as exc:
        print(json.dumps({"why": str(exc), "fix": exc.fix}))
        return 3
    try:
        meta = pin_probe(probe, pin_dir)
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        remove_pins(pin_dir)
        print(json.dumps({"why": f"could not pin the probe: {type(exc).__name__}: {exc}",
                          "fix": "use --probes procfs"}))
        return 4
    print(json.dumps({"ok": True, "meta": meta}))  # bpffs holds only pins: the layouts travel here
    return 0


# ---- the long-lived side -------------------------------------------------------------------

def open_pinned(*, map_entries: int, exit_entries: int, freq: bool | None,
                root: Path = PIN_ROOT, timeout: float = HELPER_TIMEOUT_S,
                helper: list[str] | None = None, counter_slots: Sequence[str] = (),
                counter_entries: int = DEFAULT_COUNTER_ENTRIES) -> OnCpuProbe:
    """Compile and attach in a helper process, then read its pins from here.

    ``counter_slots``: compile in these hardware-counter reads; the caller installs the
    perf events afterwards through the maps opened here (probes/counters.py).
    ``helper``: the command before the helper's arguments (default: this Python running
    this module); tests give a stand-in."""
    if not bpfsys.supported():
        raise PinningUnavailable("no bpf(2) number for this architecture")
    check_privileges()
    try:
        ensure_bpffs()
    except ProbeUnavailable as exc:
        raise PinningUnavailable(str(exc)) from None
    remove_stale(root)
    pin_dir = root / f"{os.getpid()}_{next(_PROBE_SEQ)}"  # several probes in one process keep apart
    remove_pins(pin_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    pin_dir.mkdir(mode=0o700)
    arg_freq = "auto" if freq is None else ("on" if freq else "off")
    try:
        command = helper or [sys.executable, "-m", "keck_tui.probes.pinned"]
        args = [str(pin_dir), str(map_entries), str(exit_entries), arg_freq,
                ",".join(counter_slots) or "-", str(counter_entries)]
        done = subprocess.run([*command, *args],
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    except subprocess.TimeoutExpired:
        remove_pins(pin_dir)
        raise ProbeUnavailable(f"the probe helper took over {timeout:.0f} s", "use --probes procfs") from None
    answer: dict[str, Any] = {}
    for line in reversed(done.stdout.splitlines()):
        try:
            answer = json.loads(line)
            break
        except ValueError:
            continue
    if done.returncode != 0 or not answer.get("ok"):
        remove_pins(pin_dir)
        why = answer.get("why") or f"probe helper failed (exit {done.returncode}): {done.stderr.strip()[-200:]}"
        raise ProbeUnavailable(why, answer.get("fix") or "use --probes procfs")
    try:
        meta = answer["meta"]
        tables = PinnedTables(pin_dir, meta)
    except Exception as exc:
        remove_pins(pin_dir)
        raise ProbeUnavailable(f"cannot open the pinned probe: {type(exc).__name__}: {exc}",
                               "use --probes procfs") from exc
    notes = list(meta.get("notes", [])) + [f"compiled by a helper process, pinned in {pin_dir}"]
    return OnCpuProbe(bpf=tables, map_entries=int(meta["map_entries"]), exit_entries=int(meta["exit_entries"]),
                      cpus=[int(c) for c in meta["cpus"]], with_freq=bool(meta["with_freq"]),
                      load_s=float(meta["load_s"]), notes=notes,
                      counter_slots=tuple(meta.get("counter_slots", ())),
                      counter_entries=int(meta.get("counter_entries", 0)))


if __name__ == "__main__":
    sys.exit(helper_main(sys.argv[1:]))
