"""The saved calibration: per-machine file, atomic writes, no symlinks, size caps, validation."""
from __future__ import annotations

import json
import os
import random
import stat

import pytest

from keck_tui.attribution.calibration import Calibrator
from keck_tui.calibration_store import MAX_BYTES, SCHEMA, CalibrationStore, default_state_dir, machine_identity
from test_calibration import HIDDEN, _drive


def _machine(tmp_path, machine_id="0123abcd", model="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", cpus=4, tag=""):
    proc = tmp_path / f"proc-{machine_id}{tag}"
    etc = tmp_path / f"etc-{machine_id}{tag}"
    proc.mkdir()
    etc.mkdir()
    (proc / "cpuinfo").write_text("".join(f"processor\t: {i}\nmodel name\t: {model}\n\n" for i in range(cpus)))
    (etc / "machine-id").write_text(machine_id + "\n")
    return machine_identity(str(proc), str(tmp_path / "nosys"), str(etc))


def _calibrated(n: int = 240) -> Calibrator:
    cal = Calibrator("full")
    _drive(cal, HIDDEN["full"], n, random.Random(21))
    return cal


def test_machine_identity_reads_cpu_model_and_count(tmp_path):
    m = _machine(tmp_path)
    assert m.cpus == 4 and m.cpu_model.startswith("Intel(R) Xeon(R) Gold 6338") and m.machine_id == "0123abcd"
    assert m.key != _machine(tmp_path, machine_id="ffff0000").key
    assert m.key != _machine(tmp_path, model="AMD EPYC 7763", tag="b").key  # same machine-id, other CPU
    assert m.key == _machine(tmp_path, tag="c").key
    bare = machine_identity(str(tmp_path / "none"), str(tmp_path / "none"), str(tmp_path / "none"))
    assert bare.cpu_model == "unknown CPU" and bare.cpus == 0 and len(bare.key) == 20


def test_round_trip_through_the_file_resumes_calibration(tmp_path):
    machine = _machine(tmp_path)
    cal = _calibrated()
    store = CalibrationStore(tmp_path / "state", machine)
    assert "no saved calibration" in store.load()
    assert store.save({"full": cal.to_json()}, wall=1234.0) is None
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600 and stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    again = CalibrationStore(tmp_path / "state", machine)
    assert again.load().startswith("resumed from")
    fresh = Calibrator("full")
    fresh.load_json(again.entries["full"])
    assert fresh.calibrated and fresh.pooled.coef == pytest.approx(cal.pooled.coef, rel=1e-6)
    # another model's entry saved later keeps this one
    again.save({"cpu-time": Calibrator("cpu-time").to_json()}, wall=1235.0)
    doc = json.loads(again.path.read_text())
    assert doc["schema"] == SCHEMA and set(doc["models"]) == {"full", "cpu-time"}
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")]


def test_a_fifo_or_directory_in_its_place_is_refused_without_blocking(tmp_path):
    machine = _machine(tmp_path)
    store = CalibrationStore(tmp_path / "state", machine)
    store.directory.mkdir(mode=0o700)
    os.mkfifo(store.path)
    assert "not a regular file" in store.load()
    os.unlink(store.path)
    store.path.mkdir()
    assert "directory" in store.load()


def test_another_machines_file_is_not_used(tmp_path):
    mine, other = _machine(tmp_path), _machine(tmp_path, machine_id="99999999")
    theirs = CalibrationStore(tmp_path / "state", other)
    theirs.save({"full": _calibrated().to_json()}, wall=1.0)
    # a file copied over under this machine's name (a cloned image) says whose it is
    (tmp_path / "state" / f"calibration-{mine.key}.json").write_bytes(theirs.path.read_bytes())
    store = CalibrationStore(tmp_path / "state", mine)
    msg = store.load()
    assert "another machine" in msg and "Xeon" in msg and store.entries == {}


@pytest.mark.parametrize("content, why", [
    (b"{not json", "not JSON"),
    (b'{"schema": "something/2"}', "not a keck-top-calibration/1 file"),
    (json.dumps({"schema": SCHEMA, "machine": {"key": "x"}}).encode(), "another machine"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[" * 10000 + b"]" * 10000, "nested"),
])
def test_corrupt_files_are_reported_and_ignored(tmp_path, content, why):
    machine = _machine(tmp_path)
    store = CalibrationStore(tmp_path / "state", machine)
    store.directory.mkdir(mode=0o700)
    store.path.write_bytes(content)
    msg = store.load()
    assert why in msg and store.entries == {}


def test_oversized_file_is_refused_not_truncated(tmp_path):
    machine = _machine(tmp_path)
    store = CalibrationStore(tmp_path / "state", machine)
    store.directory.mkdir(mode=0o700)
    store.path.write_bytes(b" " * (MAX_BYTES + 1))
    msg = store.load()
    assert "larger than" in msg and store.entries == {}


def test_a_symlinked_state_file_is_never_read_nor_written_through(tmp_path):
    machine = _machine(tmp_path)
    store = CalibrationStore(tmp_path / "state", machine)
    store.directory.mkdir(mode=0o700)
    secret = tmp_path / "secret"
    secret.write_text("root:$6$hash\n")
    store.path.symlink_to(secret)
    assert "symbolic link: refused" in store.load() and store.entries == {}
    assert store.save({"full": _calibrated().to_json()}, wall=1.0) is None
    assert secret.read_text() == "root:$6$hash\n"  # untouched: the link was replaced, not followed
    assert not store.path.is_symlink() and json.loads(store.path.read_text())["schema"] == SCHEMA


def test_a_symlinked_state_directory_is_refused(tmp_path):
    machine = _machine(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state").symlink_to(elsewhere)
    store = CalibrationStore(tmp_path / "state", machine)
    err = store.save({"full": _calibrated(80).to_json()}, wall=1.0)
    assert err is not None and "symbolic link: refused" in err
    assert list(elsewhere.iterdir()) == []


def test_default_state_dir_follows_xdg():
    assert str(default_state_dir({"XDG_CACHE_HOME": "/var/cache/x", "HOME": "/root"})) == "/var/cache/x/keck-top"
    assert str(default_state_dir({"HOME": "/home/a"})) == "/home/a/.cache/keck-top"
    assert str(default_state_dir({"XDG_CACHE_HOME": "relative", "HOME": "/home/a"})) == "/home/a/.cache/keck-top"
