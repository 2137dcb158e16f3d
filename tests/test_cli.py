"""The command line: help, errors in one line with exit 2, --once --json here, doctor."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keck_tui.cli import build_parser, main
from keck_tui.model import Snapshot

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keck_tui", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--once", "--json", "--batch", "--interval", "--sysfs-root", "--procfs-root", "--model",
                 "--idle", "--idle-watts", "--tdp", "--config", "--probes", "--prometheus"):
        assert flag in out
    for command in ("doctor", "serve", "attach", "record", "replay", "report", "demo"):
        assert command in out
    parser = build_parser()
    for action in parser._actions:  # every flag has help text
        if action.option_strings:
            assert action.help, action.option_strings


def test_every_command_has_help(capsys):
    from keck_tui.commands import COMMANDS

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
        out = capsys.readouterr().out
        assert out.startswith(f"usage: keck-top {name}"), out[:200]
        parser = build_parser()._subparsers._group_actions[0].choices[name]
        for action in parser._actions:  # every flag has help text
            if action.option_strings:
                assert action.help, (name, action.option_strings)


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized arguments"),
    (["--interval", "zero"], "not a number"),
    (["--interval", "-1"], "must be positive"),
    (["--model", "magic"], "invalid choice"),
    (["--idle", "sometimes"], "invalid choice"),
    (["--interval", "inf", "--once"], "must be a finite number"),
    (["--tdp", "inf", "--once"], "must be a finite number"),
    (["--idle-watts", "nan", "--once"], "must be a finite number"),
])
def test_bad_flags_give_one_line_and_exit_2(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("content, message", [
    ("interval = 'fast'\n", "interval must be a number"),
    ("modle = 'cpu-time'\n", "unknown key 'modle'"),
    ("idle = 'maybe'\n", "idle must be one of"),
    ("this is not toml", "config file"),
    ("tdp = inf\n", "tdp must be a finite number"),
    ("idle_watts = nan\n", "idle_watts must be a finite number"),
    ("[kubelet]\nrefresh_s = 'x'\n", "[kubelet] refresh_s must be a positive number"),
    ("[redfish]\nurl = 'http://bmc'\npasword = 'x'\n", "unknown key 'pasword' in [redfish]"),
    ("[agent]\nhistory_minutes = 'x'\n", "[agent] history_minutes must be a positive number"),
])
def test_bad_config_gives_one_line_and_exit_2(tmp_path, content, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    r = run_cli("--config", str(cfg), "--once", "--json", "--interval", "0.1")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_missing_explicit_config_is_an_error(tmp_path):
    r = run_cli("--config", str(tmp_path / "nope.toml"), "--once")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_config_file_values_apply_and_flags_override(tmp_path):
    from keck_tui.commands.base import settings_from_args
    cfg = tmp_path / "c.toml"
    cfg.write_text("interval = 2.5\nmodel = 'cpu-time'\nidle = 'proportional'\ntdp = 55\n"
                   "price_per_kwh = 0.3\nco2e_g_per_kwh = 250\n")
    args = build_parser().parse_args(["--config", str(cfg), "--idle", "none"])
    s = settings_from_args(args)
    assert (s.interval, s.model, s.idle, s.tdp, s.price_per_kwh, s.co2e_g_per_kwh) == \
        (2.5, "cpu-time", "none", 55.0, 0.3, 250.0)


def test_once_json_on_this_machine_is_valid_estimated_and_conserved(tmp_path):
    from spinner import HZ, Spinner, cpu_rate_range

    with Spinner(tmp_path) as spinner:
        r = run_cli("--once", "--json", "--interval", "1", "--probes", "procfs")
    assert r.returncode == 0, r.stderr
    snap = Snapshot.loads(r.stdout)
    assert snap.schema == "keck-top/1" and snap.interval_s > 0.9
    machine_has_sensor = any(s.ok and s.name in ("rapl", "hwmon", "nvml") for s in snap.sources)
    if not machine_has_sensor:
        assert snap.estimated and snap.root.estimated
        est = snap.source("estimate")
        assert est is not None and est.kind == "estimated"
    for _, row in snap.root.walk():
        assert row.watts >= 0 and row.watts_lo <= row.watts <= row.watts_hi
        if row.children:
            assert abs(sum(c.watts for c in row.children) - row.watts) <= 1e-9 * max(1.0, row.watts)
    spun = [row for _, row in snap.root.walk() if row.pid == spinner.pid]
    assert spun and spun[0].watts > 0
    # Its CPU share is what it really got over the interval (its own clock, logged as it spun):
    # the window ends at the procfs read, before the snapshot is stamped (10 s: any load).
    # A loaded machine gives it less than a CPU; only the kernel's clock ticks (±2) blur it.
    lo, hi = cpu_rate_range(spinner.samples, snap.interval_s, snap.time - 10.0, snap.time)
    ticks = 2.0 / HZ / snap.interval_s
    assert lo > 0.1 and 100 * (lo - ticks) <= spun[0].cpu_util <= 100 * (hi + ticks), (spun[0].cpu_util, lo, hi)


def test_batch_prints_n_tables():
    r = run_cli("--batch", "-n", "2", "--interval", "0.2", "--probes", "procfs")
    assert r.returncode == 0, r.stderr
    assert sum(line.startswith("keck-top ") for line in r.stdout.splitlines()) == 2 and "WATTS" in r.stdout


def test_tui_without_a_terminal_says_so():
    r = run_cli("--interval", "0.2", stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "needs a terminal" in r.stderr


def test_doctor_explains_each_source_and_exits_0():
    r = run_cli("doctor", "--json", "--probes", "procfs")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    names = {f["source"] for f in data["findings"]}
    assert {"procfs", "rapl", "hwmon", "cpufreq"} <= names
    for f in data["findings"]:
        assert f["state"] in ("found", "missing", "estimated", "error")
        if f["state"] in ("missing", "estimated"):
            assert f["why"] and f["fix"], f
    text = run_cli("doctor", "--probes", "procfs")
    assert text.returncode == 0 and "rapl" in text.stdout and ("ESTIMATED" in text.stdout or "MEASURED" in text.stdout)


def test_once_json_path_does_not_import_textual():
    code = ("import sys; from keck_tui.cli import main; "
            "rc = main(['--once', '--json', '--interval', '0.1', '--probes', 'procfs']); "
            "bad = [m for m in ('textual', 'rich', 'aiohttp') if m in sys.modules]; "
            "sys.stderr.write(repr(bad)); sys.exit(rc or (3 if bad else 0))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_bad_price_schedule_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[price_schedule]]\nfrom = "25:99"\nprice_per_kwh = 0.3\n')
    r = run_cli("--config", str(cfg), "--once", "--json", "--interval", "0.1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "price_schedule" in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--procfs-root", "/nonexistent-procfs"], "--procfs-root /nonexistent-procfs: no /nonexistent-procfs/stat"),
    (["--kubelet", "notaurl"], "--kubelet: not an http(s) URL"),
    (["--kubelet", "http://u:s3cret@127.0.0.1:10255"], "--kubelet: credentials in the URL are refused"),
])
def test_bad_local_source_paths_are_usage_errors(args, message):
    # A mistyped --procfs-root used to fall back silently to psutil over the real /proc.
    r = run_cli("--once", "--json", "--interval", "0.1", "--probes", "procfs", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_batch_skips_missed_ticks_instead_of_bursting(capsys):
    # After a stall (Ctrl-Z then fg, a slow source) --batch used to catch up with a burst of
    # back-to-back samples over intervals of a few milliseconds.
    import argparse

    from keck_tui.clock import FakeClock
    from keck_tui.commands.local import _batch_loop
    from keck_tui.config import Settings
    from keck_tui.model import Row

    clock = FakeClock()
    snap = Snapshot(time=0.0, interval_s=1.0, host="h", model="cpu-time", sources=(),
                    root=Row(level="node", id="h", name="h", watts=1.0, watts_lo=1.0, watts_hi=1.0))
    times: list[float] = []

    class Collector:
        def prime(self) -> None:
            pass

        def collect(self) -> Snapshot:
            times.append(clock.monotonic())
            if len(times) == 2:
                clock.advance(5.0)  # stalled for five intervals
            return snap

    _batch_loop(argparse.Namespace(iterations=5, json=True), Settings(interval=1.0), Collector(), clock)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 5 and min(gaps) >= 1.0 - 1e-9, gaps
    assert len(capsys.readouterr().out.splitlines()) == 5


def _dead_url() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_prometheus_flag_is_attach_prometheus_and_fails_loudly_when_nothing_answers():
    url = _dead_url()
    r = run_cli("--prometheus", url, "--once", "--json", "--interval", "0.2")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("keck-top: error: no source answered") and r.stderr.count("\n") == 1
    assert Snapshot.loads(r.stdout).root.level == "fleet"
    batch = run_cli("--prometheus", url, "--batch", "-n", "1", "--interval", "0.2")
    assert batch.returncode == 0 and "needs a terminal" not in batch.stderr, batch.stderr


def test_attach_once_with_every_agent_dead_exits_1():
    r = run_cli("attach", _dead_url(), "--once", "--json", "--interval", "0.2")
    assert r.returncode == 1 and "no source answered" in r.stderr
    assert Snapshot.loads(r.stdout).root.children[0].children[0].stale is True


def test_once_measures_the_interval_asked_for_even_with_a_slow_bmc(monkeypatch):
    # --once --interval 0.2 with a BMC that needs 0.6 s for its first answer used to average
    # over 0.8 s (prime, then wait for the BMC, then the interval).
    import time as _time

    import keck_tui.wiring as wiring
    from keck_tui.clock import SystemClock
    from keck_tui.collector import Collector
    from keck_tui.commands.local import collect_once
    from keck_tui.config import Settings
    from keck_tui.hierarchy.grouping import KubernetesGrouper
    from keck_tui.model import SourceStatus
    from keck_tui.samplers.types import CpuActivity, PowerReading

    class Activity:
        prev = None

        def sample(self) -> CpuActivity:
            now = _time.monotonic()
            interval = 0.0 if self.prev is None else now - self.prev
            self.prev = now
            return CpuActivity(SourceStatus("procfs", "ok"), interval)

    class SlowBmc:
        name = "redfish"

        def wait_for_first(self, timeout: float) -> bool:
            _time.sleep(min(timeout, 0.6))
            return True

        def sample(self) -> PowerReading:
            return PowerReading(SourceStatus("redfish", "ok", "waiting"))

    def build(settings, sources, clock=None):
        return Collector(activity=Activity(), grouper=KubernetesGrouper(), host="h", power=[SlowBmc()],
                         clock=SystemClock())

    monkeypatch.setattr(wiring, "build_collector", build)
    snap = collect_once(Settings(interval=0.2), wiring.LocalSources())
    assert 0.19 <= snap.interval_s < 0.45, snap.interval_s


def test_config_section_paths_expand_the_home_directory(monkeypatch, tmp_path):
    from keck_tui.config import settings_from_mapping

    monkeypatch.setenv("HOME", str(tmp_path))
    s = settings_from_mapping({"agent": {"token_file": "~/tok", "tls_cert": "~/c.pem", "listen": "~x"},
                               "redfish": {"credentials_file": "~/bmc"}, "kubelet": {"ca_file": "~/ca.crt"}})
    assert s.extra["agent"]["token_file"] == str(tmp_path / "tok")
    assert s.extra["agent"]["tls_cert"] == str(tmp_path / "c.pem") and s.extra["agent"]["listen"] == "~x"
    assert s.extra["redfish"]["credentials_file"] == str(tmp_path / "bmc")
    assert s.extra["kubelet"]["ca_file"] == str(tmp_path / "ca.crt")


def test_unknown_config_table_is_an_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ui]\ntheme = 'light'\n")
    r = run_cli("--config", str(cfg), "--once", "--json", "--interval", "0.1")
    assert r.returncode == 2 and "unknown key 'ui'" in r.stderr, r.stderr
