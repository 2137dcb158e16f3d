"""powermetrics: parser against real M5 Max output, sampler with fake children, the sudoers rule."""
from __future__ import annotations

import fnmatch
import io
import json
import queue
import subprocess
import sys
import time

import pytest

from keck_tui.clock import FakeClock
from keck_tui.samplers.powermetrics import (SUDOERS_LINE, SUDOERS_LINE_WILDCARD, PowermetricsSampler,
                                            open_powermetrics_sampler, powermetrics_argv)
from keck_tui.samplers.powermetrics_parse import PowermetricsParser, parse_lines
from keck_tui.samplers.types import DOMAIN_GPU, DOMAIN_OTHER, DOMAIN_PACKAGE, DOMAIN_PSYS
from tests.conftest import REPO, shared_fixture

CLI = "import sys; from keck_tui.cli import main; sys.exit(main())"
# (cpu, gpu (first of the two lines), ane, combined) in W, elapsed s — from the fixture by eye
FIXTURE_SAMPLES = [
    (0.164, 0.007, 0.0, 0.171, 1.01873), (0.406, 0.021, 0.0, 0.428, 1.02688),
    (0.432, 0.025, 0.0, 0.458, 1.02705), (0.318, 0.038, 0.0, 0.356, 1.02774),
    (0.608, 0.071, 0.0, 0.679, 1.02487), (0.676, 0.058, 0.0, 0.734, 1.02470),
    (0.438, 0.052, 0.0, 0.489, 1.02567),
]


def fixture_text() -> str:
    return shared_fixture("powermetrics", "m5-max-8-samples.txt").read_text()


def test_parser_on_real_output_takes_first_gpu_line_and_drops_the_cut_sample():
    samples = list(parse_lines(fixture_text().splitlines()))
    got = [(s.cpu_watts, s.gpu_watts, s.ane_watts, s.combined_watts, s.elapsed_s) for s in samples]
    assert got == [tuple(pytest.approx(v) for v in row) for row in FIXTURE_SAMPLES]
    # sample 3 prints GPU Power 25 mW then 26 mW; sample 4: 38 then 37; the first is taken
    assert samples[2].gpu_watts == pytest.approx(0.025) and samples[3].gpu_watts == pytest.approx(0.038)


def test_parser_ignores_garbage_and_needs_a_header():
    p = PowermetricsParser()
    lines = ["CPU Power: 5 mW", "Combined Power (CPU + GPU + ANE): 9 mW",  # before any header
             "*** Sampled system activity (x) (500.00ms elapsed) ***", "\x00garbage: 12 mW",
             "CPU Power: abc mW", "CPU Power: 1200 mW", "Combined Power (CPU + GPU + ANE): 1500 mW",
             "Combined Power (CPU + GPU + ANE): 1600 mW"]  # a second Combined in one sample: ignored
    out = [s for s in map(p.feed, lines) if s]
    assert [(s.cpu_watts, s.gpu_watts, s.combined_watts, s.elapsed_s) for s in out] == [(1.2, None, 1.5, 0.5)]


def test_debug_parse_powermetrics_json_end_to_end():
    path = shared_fixture("powermetrics", "m5-max-8-samples.txt")
    proc = subprocess.run([sys.executable, "-c", CLI, "debug", "parse-powermetrics", str(path), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(o["cpu_watts"], o["gpu_watts"], o["ane_watts"], o["combined_watts"]) for o in objs] == \
        [tuple(pytest.approx(v) for v in row[:4]) for row in FIXTURE_SAMPLES]
    table = subprocess.run([sys.executable, "-c", CLI, "debug", "parse-powermetrics", str(path)],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert table.returncode == 0 and table.stdout.splitlines()[-1] == "7 complete samples"
    missing = subprocess.run([sys.executable, "-c", CLI, "debug", "parse-powermetrics", "/nonexistent", "--json"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "cannot read" in missing.stderr


def _sudoers_matches(line: str, argv: list[str]) -> bool:
    """sudo's rule: the command must equal the path; the args (joined by spaces) fnmatch the pattern,
    where '\\,' is an escaped comma."""
    spec = line.split("NOPASSWD: ", 1)[1]
    cmd, _, args = spec.partition(" ")
    args = args.replace("\\,", ",")
    return argv[0] == cmd and fnmatch.fnmatchcase(" ".join(argv[1:]), args)


def test_argv_is_pinned_and_matches_the_documented_sudoers_lines():
    argv = powermetrics_argv(1000)
    assert argv == ["/usr/bin/sudo", "-n", "/usr/bin/powermetrics", "--samplers", "cpu_power,gpu_power",
                    "-i", "1000"]
    inner = argv[2:]  # what sudo matches against the rule
    assert _sudoers_matches(SUDOERS_LINE_WILDCARD.format(user="me"), inner)
    assert _sudoers_matches(SUDOERS_LINE.format(user="me", ms=1000), inner)
    assert not _sudoers_matches(SUDOERS_LINE.format(user="me", ms=1000), powermetrics_argv(500)[2:])
    # the docs carry the same lines
    doc = (REPO / "docs" / "hardware.md").read_text()
    assert SUDOERS_LINE_WILDCARD.format(user="<user>") in doc
    assert SUDOERS_LINE.format(user="<user>", ms=1000) in doc


def test_disabled_refused_and_not_macos():
    r = open_powermetrics_sampler(False).sample()
    assert r.source.status == "unavailable" and r.source.detail == "disabled: pass --apple-power"
    r = open_powermetrics_sampler(True, powermetrics_path="/tmp/powermetrics", runner=lambda a: None).sample()
    assert r.source.status == "unavailable" and "refusing powermetrics at /tmp/powermetrics" in r.source.detail
    r = open_powermetrics_sampler(True).sample()  # this Linux box has no /usr/bin/powermetrics
    assert r.source.status == "unavailable" and "macOS only" in r.source.detail


class FakeChild:
    """A Popen-like child whose stdout lines the test pushes."""

    def __init__(self, stderr: str = "", rc: int = 0) -> None:
        self._q: queue.Queue[str | None] = queue.Queue()
        self.stderr = io.StringIO(stderr)
        self.rc = rc
        self.returncode: int | None = None
        self.terminated = False

    @property
    def stdout(self):
        while True:
            line = self._q.get()
            if line is None:
                return
            yield line

    def push(self, text: str) -> None:
        for line in text.splitlines(keepends=True):
            self._q.put(line)

    def end(self) -> None:
        self._q.put(None)

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = self.rc
        return self.rc

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.end()


def _until(cond, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_sampler_streams_samples_and_averages_them_by_energy():
    child = FakeChild()
    argvs: list[list[str]] = []
    clock = FakeClock()
    s = open_powermetrics_sampler(True, clock, runner=lambda argv: (argvs.append(argv), child)[1])
    assert isinstance(s, PowermetricsSampler)
    first = s.sample()
    assert first.source.detail == "warming up" and argvs == [powermetrics_argv(1000)]
    text = fixture_text()
    cut = text.index("*** Sampled system activity (Sat Apr 25 10:34:39")
    child.push(text[:cut])  # two complete samples
    _until(lambda: len(s._pending) == 2)
    clock.advance(1.0)
    r = s.sample()
    by_name = {d.name: d for d in r.domains}
    e_cpu = 0.164 * 1.01873 + 0.406 * 1.02688
    span = 1.01873 + 1.02688
    assert by_name["cpu"].watts == pytest.approx(e_cpu / span) and by_name["cpu"].joules == pytest.approx(e_cpu)
    assert by_name["soc"].watts == pytest.approx((0.171 * 1.01873 + 0.428 * 1.02688) / span)
    assert {d.name: d.kind for d in r.domains} == {"cpu": DOMAIN_PACKAGE, "gpu": DOMAIN_GPU, "ane": DOMAIN_OTHER,
                                                   "soc": DOMAIN_PSYS}
    assert r.source.watts == by_name["soc"].watts and all(d.interval_s == pytest.approx(span) for d in r.domains)
    # no new sample in the next interval: the last reading is held
    clock.advance(1.0)
    held = s.sample()
    assert held.source.extra == {"held": True} and held.domains == r.domains
    # the rest of the file: five more complete samples, the cut one never appears
    child.push(text[cut:])
    _until(lambda: len(s._pending) == 5)
    clock.advance(1.0)
    r = s.sample()
    assert "5 sample(s)" in r.source.detail
    s.stop()
    assert child.terminated


def test_sudo_asking_for_a_password_is_unavailable_with_the_sudoers_line():
    child = FakeChild(stderr="sudo: a password is required\n", rc=1)
    s = open_powermetrics_sampler(True, FakeClock(), runner=lambda argv: child)
    s.sample()
    child.end()
    r = _until(lambda: (lambda x: x if x.source.status != "ok" else None)(s.sample()))
    assert r.source.status == "unavailable"
    assert "needs a password" in r.source.detail
    assert r.source.extra["fix"].endswith(
        "ALL=(root) NOPASSWD: /usr/bin/powermetrics --samplers cpu_power\\,gpu_power -i 1000")


def test_runner_oserror_is_a_status():
    def boom(argv):
        raise FileNotFoundError(2, "No such file or directory")
    r = open_powermetrics_sampler(True, FakeClock(), runner=boom).sample()
    assert r.source.status == "unavailable" and "cannot run /usr/bin/sudo" in r.source.detail


def test_with_a_real_child_process_and_pipes():
    path = shared_fixture("powermetrics", "m5-max-8-samples.txt")
    script = f"import sys,time; sys.stdout.write(open({str(path)!r}).read()); sys.stdout.flush(); time.sleep(30)"

    def runner(argv):
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, bufsize=1)
    s = open_powermetrics_sampler(True, FakeClock(), runner=runner)
    s.sample()
    _until(lambda: len(s._pending) == 7, timeout=10)
    r = s.sample()
    assert r.source.ok and "7 sample(s)" in r.source.detail
    s.stop()
    assert s._proc.poll() is not None
