"""keck-top run through the command line: exit statuses, stdout untouched, Ctrl-C, --repeat, --json, sudo."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keck_tui.runmeter.stats import t975

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# ------------------------------------------------------------------ through the command line


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(REPO))
    e.pop("SUDO_UID", None)
    e.pop("SUDO_GID", None)
    e.update(env or {})
    return subprocess.run([PY, "-m", "keck_tui.cli", "run", "--probes", "procfs", *args], env=e,
                          capture_output=True, text=True, timeout=120, **kw)


def test_exit_status_is_passed_through_and_stdout_is_untouched():
    r = _cli("--", "sh", "-c", "cat; echo out; echo err >&2; exit 3", input="from stdin\n")
    assert r.returncode == 3
    assert r.stdout == "from stdin\nout\n"  # keck-top writes nothing to stdout
    assert r.stderr.startswith("err\n") and "keck-top run: sh -c" in r.stderr
    assert "exit status         3" in r.stderr
    r = _cli("--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM
    assert "killed by signal 15" in r.stderr


def test_not_found_and_not_executable_are_one_line_errors(tmp_path):
    r = _cli("--", "no-such-command-keck", "x")
    assert r.returncode == 127
    assert r.stderr == "keck-top: run: no-such-command-keck: command not found\n"
    f = tmp_path / "not-exec"
    f.write_text("#!/bin/sh\n")
    f.chmod(0o644)
    r = _cli("--", str(f))
    assert r.returncode == 126 and r.stderr.count("\n") == 1 and "Permission denied" in r.stderr
    r = _cli()
    assert r.returncode == 2 and "no command given" in r.stderr


def test_ctrl_c_reaches_the_command_and_the_report_is_still_printed():
    e = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([PY, "-m", "keck_tui.cli", "run", "--probes", "procfs", "--json", "--",
                          "sleep", "30"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until sleep runs (keck-top has started it)
            kids = subprocess.run(["pgrep", "-g", str(p.pid), "-x", "sleep"], capture_output=True, text=True)
            if kids.stdout.strip():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(p.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole process group
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 128 + signal.SIGINT
    doc = json.loads(err)
    run = doc["runs"][0]
    assert run["signal"] == signal.SIGINT and run["interrupted"] is True
    assert 0.4 < run["wall_s"] < 25


def test_repeat_gives_mean_and_t_confidence_interval_in_the_json_schema(tmp_path):
    out = tmp_path / "report.json"
    r = _cli("--repeat", "3", "--json", "--output", str(out), "--interval", "0.05", "--",
             PY, "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.15: pass")
    assert r.returncode == 0, r.stderr
    assert "keck-top" not in r.stderr  # the report went to the file
    doc = json.loads(out.read_text())
    assert doc["schema"] == "keck-top-run/1"
    for key in ("command", "host", "interval_s", "resolution", "idle_policy", "estimated", "model", "sources",
                "tracking", "currency", "price_per_kwh", "co2e_g_per_kwh", "exit_status", "stopped", "runs",
                "summary"):
        assert key in doc, key
    assert doc["idle_policy"] == "active" and doc["estimated"] is True
    runs = doc["runs"]
    assert [x["run"] for x in runs] == [1, 2, 3]
    for x in runs:
        for key in ("energy_j", "energy_wh", "mean_watts", "peak_watts", "node_energy_j"):
            assert set(x[key]) == {"value", "lo", "hi"} and x[key]["lo"] <= x[key]["value"] <= x[key]["hi"]
        assert set(x["energy_by_policy_j"]) == {"active", "proportional", "whole"}
        assert x["energy_by_policy_j"]["active"]["value"] == pytest.approx(x["energy_j"]["value"])
        assert x["cpu_s"] >= 0.15 and x["exit_status"] == 0
        assert x["energy_wh"]["value"] == pytest.approx(x["energy_j"]["value"] / 3600)
    energies = [x["energy_j"]["value"] for x in runs]
    s = doc["summary"]["energy_j"]
    mean = sum(energies) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in energies) / 2)
    assert s["n"] == 3 and s["mean"] == pytest.approx(mean) and s["stdev"] == pytest.approx(sd)
    assert s["ci95"] == pytest.approx(t975(2) * sd / math.sqrt(3))
    # the text form of the same
    r = _cli("--repeat", "2", "--interval", "0.05", "--", "true")
    assert "mean ± 95 % confidence interval" in r.stderr and "runs                2" in r.stderr


def test_repeat_stops_at_a_failing_run():
    r = _cli("--repeat", "3", "--json", "--", "sh", "-c", "exit 4")
    assert r.returncode == 4
    doc = json.loads(r.stderr)
    assert len(doc["runs"]) == 1 and doc["stopped"] == "run 1 exited with status 4"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change users")
def test_under_sudo_the_command_runs_as_the_invoking_user(tmp_path):
    r = _cli("--", "sh", "-c", "id -u; id -g; id -G", env={"SUDO_UID": "65534", "SUDO_GID": "65534"},
             cwd="/")
    assert r.returncode == 0, r.stderr
    uid, gid, groups = r.stdout.split("\n")[:3]
    assert (uid, gid) == ("65534", "65534")
    assert "0" not in groups.split()  # no supplementary group of root's
    r = _cli("--as-root", "--", "id", "-u", env={"SUDO_UID": "65534", "SUDO_GID": "65534"}, cwd="/")
    assert r.stdout.strip() == "0"


def test_output_through_a_symlink_is_refused_before_anything_runs(tmp_path):
    target = tmp_path / "t"
    target.write_text("")
    (tmp_path / "l").symlink_to(target)
    marker = tmp_path / "ran"
    r = _cli("--output", str(tmp_path / "l"), "--", "touch", str(marker))
    assert r.returncode == 2 and "symbolic link" in r.stderr
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file away")
def test_output_created_under_sudo_belongs_to_the_invoking_user(tmp_path):
    out = tmp_path / "r.json"
    r = _cli("--output", str(out), "--json", "--", "true", env={"SUDO_UID": "65534", "SUDO_GID": "65534"},
             cwd="/")
    assert r.returncode == 0, r.stderr
    st = out.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert json.loads(out.read_text())["schema"] == "keck-top-run/1"
