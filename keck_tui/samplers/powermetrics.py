"""Apple Silicon power via ``powermetrics`` (CPU, GPU, ANE and their combined SoC power).

``powermetrics`` needs root, so keck-top runs it through ``/usr/bin/sudo -n`` with a
pinned argv, as one long-lived child that prints a sample every ``interval_ms``:

    /usr/bin/sudo -n /usr/bin/powermetrics --samplers cpu_power,gpu_power -i <ms>

Security: off unless ``--apple-power`` is given; both paths are absolute and fixed
(a non-default powermetrics path is refused, so a flag cannot widen what sudo runs);
``-n`` makes sudo fail instead of prompting. The sudoers rule that allows it is
``SUDOERS_LINE`` (exact interval, recommended) or ``SUDOERS_LINE_WILDCARD`` (any
interval). Note that in sudoers a ``*`` in arguments also matches spaces, so the
wildcard rule also lets the user append options such as ``-o FILE`` (which
powermetrics would write as root); prefer the exact rule.

Domains: cpu → DOMAIN_PACKAGE, gpu → DOMAIN_GPU, ane → DOMAIN_OTHER, combined →
DOMAIN_PSYS (the SoC total, not added to the parts). powermetrics states no accuracy
for its (model-based) figures; ``ACCURACY`` (±10 %) is our assumption.
"""
from __future__ import annotations

import getpass
import os
import subprocess
import threading
from collections import deque
from typing import Any, Callable

from keck_tui.clock import Clock, SystemClock
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.powermetrics_parse import PowermetricsParser, PowermetricsSample
from keck_tui.samplers.types import (DOMAIN_GPU, DOMAIN_OTHER, DOMAIN_PACKAGE, DOMAIN_PSYS, PowerDomain,
                                     PowerReading)

SUDO = "/usr/bin/sudo"
POWERMETRICS = "/usr/bin/powermetrics"
SAMPLERS = "cpu_power,gpu_power"
ACCURACY = 0.10
#: The sudoers rule (documented in docs/hardware.md); ``<user>`` and ``<ms>`` filled in.
SUDOERS_LINE_WILDCARD = "{user} ALL=(root) NOPASSWD: /usr/bin/powermetrics --samplers cpu_power\\,gpu_power -i [0-9]*"
SUDOERS_LINE = "{user} ALL=(root) NOPASSWD: /usr/bin/powermetrics --samplers cpu_power\\,gpu_power -i {ms}"
RESTART_AFTER_S = 30.0

Runner = Callable[[list[str]], Any]  # argv -> a Popen-like object (stdout/stderr text streams)


def powermetrics_argv(interval_ms: int) -> list[str]:
    """The exact argv keck-top runs (what the sudoers line must allow)."""
    return [SUDO, "-n", POWERMETRICS, "--samplers", SAMPLERS, "-i", str(int(interval_ms))]


def sudoers_fix(interval_ms: int, user: str | None = None) -> str:
    user = user or _user()
    return (f"add with 'sudo visudo -f /etc/sudoers.d/keck-top': "
            f"{SUDOERS_LINE.format(user=user, ms=int(interval_ms))}")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry
        return "USER"


class UnavailablePowerSampler:
    """A power sampler that only reports why it has nothing."""

    def __init__(self, name: str, detail: str, fix: str = "", status: str = STATUS_UNAVAILABLE) -> None:
        self.name = name
        self._status = SourceStatus(name, status, detail, extra={"fix": fix} if fix else {})

    def sample(self) -> PowerReading:
        return PowerReading(self._status)

    def stop(self) -> None:
        pass


def open_powermetrics_sampler(enabled: bool, clock: Clock | None = None, *,
                              powermetrics_path: str = POWERMETRICS, runner: Runner | None = None,
                              interval_ms: int = 1000):
    """The powermetrics sampler, or a no-op one that says why (disabled, refused, not macOS)."""
    if not enabled:
        return UnavailablePowerSampler("powermetrics", "disabled: pass --apple-power",
                                       "keck-top --apple-power (needs the sudoers line in docs/hardware.md)")
    if os.path.normpath(powermetrics_path) != POWERMETRICS:
        return UnavailablePowerSampler(
            "powermetrics", f"refusing powermetrics at {powermetrics_path}: only {POWERMETRICS} is run, "
                            "so that the sudoers rule cannot be widened by a flag")
    if runner is None:
        for path in (POWERMETRICS, SUDO):
            if not os.path.exists(path):
                return UnavailablePowerSampler("powermetrics", f"{path} not found (powermetrics is macOS only)")
    return PowermetricsSampler(interval_ms, clock or SystemClock(), runner=runner)


def _popen(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", errors="replace", bufsize=1)


class PowermetricsSampler:
    """Runs powermetrics as a child, parses its stream on a thread; ``sample()`` never blocks."""

    name = "powermetrics"

    def __init__(self, interval_ms: int, clock: Clock, *, runner: Runner | None = None) -> None:
        self.interval_ms = int(interval_ms)
        self.argv = powermetrics_argv(self.interval_ms)
        self._clock = clock
        self._runner = runner or _popen
        self._lock = threading.Lock()
        self._pending: list[PowermetricsSample] = []
        self._stderr: deque[str] = deque(maxlen=20)
        self._proc: Any = None
        self._exit: str | None = None  # why the child ended
        self._ever_sampled = False
        self._started_at: float | None = None
        self._last: PowerReading | None = None
        self._last_at: float | None = None
        self._stopped = False

    # ---- child process ----
    def _start(self) -> None:
        self._exit = None
        self._started_at = self._clock.monotonic()
        try:
            self._proc = self._runner(list(self.argv))
        except OSError as exc:
            self._exit = f"cannot run {self.argv[0]}: {exc.strerror or exc}"
            self._proc = None
            return
        threading.Thread(target=self._read_stdout, args=(self._proc,), name="keck-powermetrics", daemon=True).start()
        if getattr(self._proc, "stderr", None) is not None:
            threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True).start()

    def _read_stdout(self, proc: Any) -> None:
        parser = PowermetricsParser()
        try:
            for line in proc.stdout:
                sample = parser.feed(line)
                if sample is not None:
                    with self._lock:
                        self._pending.append(sample)
                        self._ever_sampled = True
        except (OSError, ValueError):
            pass
        try:
            rc = proc.wait()
        except Exception:  # noqa: BLE001
            rc = None
        with self._lock:
            if not self._stopped:
                self._exit = self._why_exited(rc)

    def _read_stderr(self, proc: Any) -> None:
        try:
            for line in proc.stderr:
                if line.strip():
                    with self._lock:
                        self._stderr.append(line.strip())
        except (OSError, ValueError):
            pass

    def _why_exited(self, rc: int | None) -> str:
        err = " ".join(self._stderr)
        if "password" in err.lower() or "a terminal is required" in err.lower():
            return f"sudo -n needs a password for powermetrics ({err})"
        if "not allowed" in err.lower() or "not in the sudoers" in err.lower():
            return f"sudo refused powermetrics ({err})"
        return f"powermetrics exited with status {rc}" + (f": {err}" if err else "")

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout=2)
            except Exception:  # noqa: BLE001
                try:
                    proc.kill()
                except Exception:  # noqa: BLE001
                    pass

    close = stop

    # ---- the collector's side ----
    def sample(self) -> PowerReading:
        now = self._clock.monotonic()
        if self._proc is None and self._exit is None:
            self._start()
            if self._exit is None:
                return PowerReading(SourceStatus("powermetrics", STATUS_OK, "warming up"))
        with self._lock:
            pending, self._pending = self._pending, []
            exit_why, ever = self._exit, self._ever_sampled
        if pending:
            reading = self._reading(pending)
            self._last, self._last_at = reading, now
            return reading
        if exit_why is not None:
            if ever and self._started_at is not None and now - self._started_at >= RESTART_AFTER_S \
                    and not self._stopped:
                self._proc = None
                self._start()
            fix = sudoers_fix(self.interval_ms) if "sudo" in exit_why else ""
            return PowerReading(SourceStatus("powermetrics", STATUS_UNAVAILABLE if not ever else STATUS_ERROR,
                                             exit_why, extra={"fix": fix} if fix else {}))
        # Running, no new sample yet (powermetrics' cadence drifts against ours): repeat the
        # latest reading while it is fresh.
        if self._last is not None and self._last_at is not None and \
                now - self._last_at <= 3 * self.interval_ms / 1000.0:
            last = self._last
            return PowerReading(SourceStatus("powermetrics", STATUS_OK, "no new sample this interval (held)",
                                             watts=last.source.watts, extra={"held": True}), last.domains)
        return PowerReading(SourceStatus("powermetrics", STATUS_OK, "waiting for powermetrics' first sample"))

    @staticmethod
    def _reading(samples: list[PowermetricsSample]) -> PowerReading:
        """Energy-weighted means over the samples that arrived since the last call."""
        span = sum(s.elapsed_s for s in samples)

        def mean(attr: str) -> tuple[float, float] | None:
            values = [(getattr(s, attr), s.elapsed_s) for s in samples if getattr(s, attr) is not None]
            if not values:
                return None
            joules = sum(v * dt for v, dt in values)
            seconds = sum(dt for _, dt in values)
            return joules / seconds, joules

        domains: list[PowerDomain] = []
        for attr, name, kind in (("cpu_watts", "cpu", DOMAIN_PACKAGE), ("gpu_watts", "gpu", DOMAIN_GPU),
                                 ("ane_watts", "ane", DOMAIN_OTHER), ("combined_watts", "soc", DOMAIN_PSYS)):
            m = mean(attr)
            if m is None:
                continue
            watts, joules = m
            domains.append(PowerDomain(name=name, kind=kind, watts=watts, interval_s=span, accuracy=ACCURACY,
                                       joules=joules, socket=0 if kind == DOMAIN_PACKAGE else None,
                                       label=f"powermetrics {name}"))
        total = next(d.watts for d in domains if d.kind == DOMAIN_PSYS)
        return PowerReading(SourceStatus("powermetrics", STATUS_OK, f"{len(samples)} sample(s) over {span:.2f} s",
                                         watts=total), tuple(domains))
