"""scripts/pmu-check.sh runs from a plain copy of the tree with nothing installed, and says
where each process's counters come from (the eBPF probe's, read at every context switch,
when it runs as root with bcc on a machine with a PMU)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def copy_tree(dest: Path) -> Path:
    """The repository's tracked files (what a copy to another machine holds), no .git, no venv."""
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    for name in filter(None, files.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_pmu_check_from_a_copy_says_where_process_counters_come_from(tmp_path):
    python = getattr(sys, "_base_executable", "") or sys.executable  # outside the venv: no installed package
    root = copy_tree(tmp_path / "tree")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHON"] = python
    done = subprocess.run(["bash", str(root / "scripts" / "pmu-check.sh"), "--calibrate-s", "0", "--measure-s", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode in (0, 3), out + done.stderr  # 3: this machine lacks a PMU or RAPL (it says which)
    assert "Traceback" not in done.stderr, done.stderr
    line = next(ln for ln in out.splitlines() if "per-process counters:" in ln)
    activity = next(ln for ln in out.splitlines() if ln.strip().startswith("activity:"))
    if "activity: ebpf" in activity:
        assert ("eBPF probe at every sched_switch: cycles" in line) != ("none: the eBPF probe has no" in line), line
        if "none:" in line:
            assert "no hardware counters: " in activity and "perf_event_open: E" in activity, activity
    else:
        assert "none measured per process (no eBPF probe" in line, line
    if done.returncode == 3:
        assert "this machine lacks" in out


def test_pmu_check_py_runs_directly_from_a_copy(tmp_path):
    """``python3 scripts/pmu_check.py`` (without the shell wrapper's PYTHONPATH) finds its own tree."""
    python = getattr(sys, "_base_executable", "") or sys.executable
    root = copy_tree(tmp_path / "tree")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([python, str(root / "scripts" / "pmu_check.py"), "--probes", "procfs", "--calibrate-s", "0",
                           "--measure-s", "1", "--mem-mb", "8"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert done.stdout.startswith("pmu-check: "), done.stdout
    if done.returncode == 3:  # says which prerequisite is missing, why, and what to do
        assert "MISSING — " in done.stdout and "this machine lacks " in done.stdout, done.stdout


def test_pmu_check_bad_arguments_are_usage_errors(tmp_path):
    python = getattr(sys, "_base_executable", "") or sys.executable
    root = copy_tree(tmp_path / "tree")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHON"] = python
    done = subprocess.run(["bash", str(root / "scripts" / "pmu-check.sh"), "--measure-s", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
