"""Wall power from a Redfish BMC, polled slowly on its own thread.

BMCs are slow (hundreds of ms to seconds per request), so the sampler polls on a
background thread (:class:`keck_tui.common.bgloop.Poller`) every ``interval`` seconds
and ``sample()`` only returns the latest reading: it never blocks the collector. A poll
that fails, or raises, is kept as the status's error and retried at the next interval.
What to read is discovered once and re-discovered after a failure or every
``REDISCOVER_POLLS`` polls, so a steady-state poll is one GET per planned document.
"""
from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from typing import Mapping

from keck_tui.clock import Clock, SystemClock
from keck_tui.common import bounded
from keck_tui.common.bgloop import Poller
from keck_tui.common.errors import SourceConfigError
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.redfish import schema
from keck_tui.samplers.redfish.client import RedfishClient, RedfishError
from keck_tui.samplers.redfish.discovery import Discovery
from keck_tui.samplers.types import PowerReading

REDISCOVER_POLLS = 60
STALE_AFTER_POLLS = 3  # a reading older than this many intervals (+ the timeout) is not reported


@dataclass(frozen=True)
class RedfishConfig:
    """Which BMC to read and how (the command line builds it from flags and ``[redfish]``)."""

    url: str
    credentials_file: str | None = None  # "user:password" on its first line; None: the environment
    auth: str = "basic"  # basic | session
    insecure: bool = False  # accept a self-signed certificate
    interval: float = 10.0  # seconds between polls


def read_credentials(path: str | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    """``user:password`` from the file (first line), else KECK_REDFISH_USER/PASSWORD, else None."""
    if path:
        try:
            data = bounded.read_file(path, bounded.SMALL_FILE, "Redfish credentials file")
            line = data.decode("utf-8").split("\n", 1)[0].rstrip("\r")
        except bounded.BoundedInputError as exc:
            raise SourceConfigError(str(exc)) from None
        except UnicodeDecodeError:
            raise SourceConfigError(f"Redfish credentials file {path}: not UTF-8 text") from None
        except OSError as exc:
            raise SourceConfigError(f"cannot read Redfish credentials file {path}: {exc.strerror}") from None
        user, sep, password = line.partition(":")
        if not sep or not user:
            raise SourceConfigError(f"Redfish credentials file {path}: expected 'user:password' on the first line")
        return user, password
    user, password = env.get("KECK_REDFISH_USER"), env.get("KECK_REDFISH_PASSWORD")
    if user:
        return user, password or ""
    return None


class RedfishSampler:
    """Node wall power from a Redfish BMC (one DOMAIN_NODE domain per top-level chassis)."""

    name = "redfish"

    def __init__(self, url: str, *, auth: str = "basic", credentials: tuple[str, str] | None = None,
                 verify_tls: bool = True, interval: float = 10.0, clock: Clock | None = None,
                 timeout: float = 5.0) -> None:
        self.client = RedfishClient(url, auth=auth, credentials=credentials, verify_tls=verify_tls, timeout=timeout)
        self.url, self.origin, self.auth = self.client.url, self.client.origin, auth
        self.verify_tls = verify_tls
        self.interval = interval
        self.timeout = timeout
        self._clock = clock or SystemClock()
        self._discovery = Discovery(self.client)
        self._lock = threading.Lock()
        self._latest: PowerReading | None = None
        self._latest_at: float | None = None  # monotonic time of the latest good reading
        self._last_error: str | None = None
        self._plans: list[schema.Plan] | None = None
        self._polls = 0
        self._prev_poll_at: float | None = None
        self._poller = Poller("keck-redfish", self._poll_and_store, interval, from_end=True,
                              on_start=self.client.open, on_stop=self.client.close,
                              monotonic=self._clock.monotonic)

    @classmethod
    def from_config(cls, config: RedfishConfig, clock: Clock | None = None,
                    env: Mapping[str, str] | None = None) -> "RedfishSampler":
        """The sampler ``config`` describes, with the credentials from its file, else from
        ``KECK_REDFISH_USER``/``KECK_REDFISH_PASSWORD`` in ``env``. A bad URL or credentials
        file raises SourceConfigError."""
        creds = read_credentials(config.credentials_file, os.environ if env is None else env)
        return cls(config.url, auth=config.auth, credentials=creds, verify_tls=not config.insecure,
                   interval=config.interval, clock=clock)

    @property
    def _credentials(self) -> tuple[str, str] | None:
        return self.client.credentials

    # ---- the collector's side: never blocks ----
    def sample(self) -> PowerReading:
        self._poller.start()
        now = self._clock.monotonic()
        with self._lock:
            latest, at, error = self._latest, self._latest_at, self._last_error or self._poller.error
        if latest is None:
            if error:
                return PowerReading(SourceStatus("redfish", STATUS_UNAVAILABLE if self._polls <= 1 else STATUS_ERROR,
                                                 self._where(error), extra={"fix": self._fix(error)}))
            return PowerReading(SourceStatus("redfish", STATUS_OK, f"waiting for the first reading from {self.url}"))
        age = now - (at or now)
        if age > STALE_AFTER_POLLS * self.interval + self.timeout:
            return PowerReading(SourceStatus("redfish", STATUS_ERROR,
                                             f"no reading from {self.url} for {age:.0f} s: {error or 'no answer'}",
                                             extra={"fix": self._fix(error or "")}))
        detail = latest.source.detail + (f"; reading {age:.0f} s old" if age >= 1 else "")
        if error:
            detail += f"; last poll failed: {error}"
        return PowerReading(SourceStatus("redfish", STATUS_OK, detail, watts=latest.source.watts,
                                         extra=dict(latest.source.extra, age_s=round(age, 3))), latest.domains)

    def _fix(self, error: str) -> str:
        low = error.lower()
        if "401" in error or "403" in error or "credentials" in low:
            return ("check the BMC user/password (--redfish-credentials FILE with user:password, or "
                    "KECK_REDFISH_USER/KECK_REDFISH_PASSWORD)"
                    + ("; try --redfish-auth session" if self.auth == "basic" else ""))
        if "certificate" in low:
            return "pass --redfish-insecure for a BMC with a self-signed certificate"
        if "[ssl" in low or "does not speak tls" in low:
            return f"the TLS handshake with {self.origin} failed: check the URL's scheme (http/https) and port"
        return "check that the BMC answers at " + self.url + " from this machine"

    def _where(self, error: str) -> str:
        """``error`` prefixed with the BMC's URL unless it already names it."""
        return error if error.startswith(self.origin) else f"{self.url}: {error}"

    def stop(self) -> None:
        """Stop polling now: a poll in flight (a slow BMC) is cancelled, not waited for."""
        self._poller.stop(timeout=self.timeout * 2 + 1)

    close = stop

    def wait_for_first(self, timeout: float) -> bool:
        """Block until the first poll has finished (for one-shot modes like ``--once``).

        Starts the poller if needed; returns False if it did not finish within ``timeout``.
        """
        return self._poller.wait_for_first(timeout)

    def read_now(self) -> PowerReading:
        """One synchronous poll (for ``doctor`` and tests); does not start the thread."""
        return asyncio.run(self._one_poll())

    async def _one_poll(self, store: bool = False) -> PowerReading:
        await self.client.open()
        try:
            return await (self._poll_and_store() if store else self.poll())
        finally:
            await self.client.close()

    async def _poll_and_store(self) -> PowerReading:
        reading = await self.poll()
        with self._lock:
            if reading.source.ok:
                self._latest, self._latest_at, self._last_error = reading, self._clock.monotonic(), None
            else:
                self._last_error = reading.source.detail
        return reading

    # ---- one poll ----
    async def poll(self) -> PowerReading:
        """Read every planned chassis; (re)discover first when needed. A BMC's failure is the
        reading's status; anything else raises (the poller keeps it as the error)."""
        self._polls += 1
        now = self._clock.monotonic()
        interval_s = now - self._prev_poll_at if self._prev_poll_at is not None else self.interval
        try:
            if self._plans is None or self._polls % REDISCOVER_POLLS == 0:
                self._plans = await self._discovery.plans()
            found = []
            for plan in self._plans:
                watts = await self._discovery.read(plan)
                if watts is None:
                    raise RedfishError(f"chassis {plan.chassis_id}: {plan.method} has no reading any more")
                found.append(schema.domain(plan, watts, interval_s))
        except RedfishError as exc:
            self._plans = None
            return PowerReading(SourceStatus("redfish", STATUS_ERROR, str(exc)))
        if not found:
            self._plans = None
            return PowerReading(SourceStatus("redfish", STATUS_ERROR,
                                             f"{self.url}: no chassis reports its power "
                                             "(no EnvironmentMetrics, PowerSubsystem, Power or power Sensors)"))
        self._prev_poll_at = now
        per_chassis = [c for _, c in found]
        detail = ", ".join(f"{c['id']} {c['watts']:.0f} W ({c['from']})" for c in per_chassis)
        return PowerReading(SourceStatus("redfish", STATUS_OK, detail, watts=sum(d.watts for d, _ in found),
                                         extra={"chassis": per_chassis, "url": self.url}),
                            tuple(d for d, _ in found))
