"""Wall power from a Redfish BMC, polled slowly on its own thread.

BMCs are slow (hundreds of ms to seconds per request), so the sampler polls on a
background thread with its own asyncio loop every ``interval`` seconds and
``sample()`` only returns the latest reading: it never blocks the collector.

Per chassis, the first of these that the BMC offers is its power:

1. ``EnvironmentMetrics.PowerWatts.Reading`` (Redfish 2020.4+),
2. Σ ``PowerSubsystem/PowerSupplies/<n>/Metrics.InputPowerWatts.Reading``,
3. legacy ``Power.PowerControl[].PowerConsumedWatts`` (the first entry with a value),
4. a ``Sensors`` member with ``ReadingType: Power`` and ``PhysicalContext: Chassis``
   (else Σ of the ``PowerSupply`` input-power sensors).

The accuracy is the ``Accuracy`` (percent) of the sensor a reading names in its
``DataSourceUri`` (or of the sensor itself); without one, ±5 % is assumed
(``DEFAULT_ACCURACY``). A chassis contained in another chassis that has a reading
(``Links.ContainedBy`` / ``Links.Contains``) is not added: its power is inside its
parent's; nor is a card/component-type chassis when a node-type chassis has a reading.
What to read is discovered once and re-discovered after a failure or every
``REDISCOVER_POLLS`` polls, so a steady-state poll is one GET per chassis.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from keck_tui.clock import Clock, SystemClock
from keck_tui.common.errors import SourceConfigError
from keck_tui.common.urls import UrlError, check_url
from keck_tui.model import STATUS_ERROR, STATUS_OK, STATUS_UNAVAILABLE, SourceStatus
from keck_tui.samplers.types import DOMAIN_NODE, PowerDomain, PowerReading

DEFAULT_ACCURACY = 0.05
REDISCOVER_POLLS = 60
STALE_AFTER_POLLS = 3
#: ChassisType values of parts of a node (not added beside a node chassis that has a reading).
COMPONENT_CHASSIS_TYPES = frozenset({"Card", "Component", "Module", "Expansion", "IPBasedDrive",
                                     "StorageEnclosure", "Sidecar"})  # a reading older than this many intervals is not reported


class RedfishError(Exception):
    """One request or one resource failed (message is shown to the user)."""


@dataclass(frozen=True)
class RedfishConfig:
    """Which BMC to read and how (the command line builds it from flags and ``[redfish]``)."""

    url: str
    credentials_file: str | None = None  # "user:password" on its first line; None: the environment
    auth: str = "basic"  # basic | session
    insecure: bool = False  # accept a self-signed certificate
    interval: float = 10.0  # seconds between polls


@dataclass
class _Plan:
    """How to read one chassis's power."""

    chassis_id: str
    name: str
    method: str  # "EnvironmentMetrics.PowerWatts" | "PowerSupplies.InputPowerWatts" | ...
    uris: list[str]
    accuracy: float
    contained_by: set[str] = field(default_factory=set)  # chassis @odata.ids above it


def _norm(uri: str) -> str:
    return uri.split("#", 1)[0].rstrip("/")


def _link(doc: Any, *keys: str) -> str | None:
    """The @odata.id at doc[k1][k2]..., or None."""
    cur = doc
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    if isinstance(cur, Mapping) and isinstance(cur.get("@odata.id"), str):
        return cur["@odata.id"]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and value >= 0 else None  # NaN/negative: no reading


def _enabled(doc: Mapping[str, Any]) -> bool:
    state = (doc.get("Status") or {}).get("State") if isinstance(doc.get("Status"), Mapping) else None
    return state in (None, "Enabled", "StandbyOffline", "StandbySpare", "Deferring")


def read_credentials(path: str | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    """``user:password`` from the file (first line), else KECK_REDFISH_USER/PASSWORD, else None."""
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                line = fh.readline().rstrip("\r\n")
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
        try:
            checked = check_url(url, "BMC URL", default_scheme="https", credentials_hint=(
                "use --redfish-credentials FILE or KECK_REDFISH_USER/KECK_REDFISH_PASSWORD"))
        except UrlError as exc:
            raise SourceConfigError(str(exc)) from None
        parts = urlsplit(checked)
        if auth not in ("basic", "session"):
            raise SourceConfigError(f"unknown Redfish auth {auth!r} (basic or session)")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        self.root_path = path if path.endswith("/redfish/v1") else "/redfish/v1"
        self.url = self.origin + self.root_path
        self.auth = auth
        self._credentials = credentials
        self.verify_tls = verify_tls
        self.interval = interval
        self.timeout = timeout
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._latest: PowerReading | None = None
        self._latest_at: float | None = None  # monotonic time of the latest good reading
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_done = threading.Event()  # the first poll finished (either way)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._poll_task: asyncio.Future[None] | None = None
        self._plans: list[_Plan] | None = None
        self._polls = 0
        self._prev_poll_at: float | None = None
        self._token: str | None = None
        self._session_uri: str | None = None
        self._accuracy_cache: dict[str, float | None] = {}

    @classmethod
    def from_config(cls, config: RedfishConfig, clock: Clock | None = None,
                    env: Mapping[str, str] | None = None) -> "RedfishSampler":
        """The sampler ``config`` describes, with the credentials from its file, else from
        ``KECK_REDFISH_USER``/``KECK_REDFISH_PASSWORD`` in ``env``. A bad URL or credentials
        file raises SourceConfigError."""
        creds = read_credentials(config.credentials_file, os.environ if env is None else env)
        return cls(config.url, auth=config.auth, credentials=creds, verify_tls=not config.insecure,
                   interval=config.interval, clock=clock)

    # ---- the collector's side: never blocks ----
    def sample(self) -> PowerReading:
        self._ensure_started()
        now = self._clock.monotonic()
        with self._lock:
            latest, at, error = self._latest, self._latest_at, self._last_error
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
        if "[ssl" in low:
            return f"the TLS handshake with {self.origin} failed: check the URL's scheme (http/https) and port"
        return "check that the BMC answers at " + self.url + " from this machine"

    def _where(self, error: str) -> str:
        """``error`` prefixed with the BMC's URL unless it already names it."""
        return error if error.startswith(self.origin) else f"{self.url}: {error}"

    def stop(self) -> None:
        """Stop polling now: a poll in flight (a slow BMC) is cancelled, not waited for."""
        self._stop.set()
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake_and_cancel)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=self.timeout * 2 + 1)

    close = stop

    def _wake_and_cancel(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._poll_task is not None:
            self._poll_task.cancel()

    def _ensure_started(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="keck-redfish", daemon=True)
            self._thread.start()

    # ---- background thread ----
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        async with self._session() as session:
            while not self._stop.is_set():
                self._poll_task = asyncio.ensure_future(self._poll_and_store(session))
                try:
                    await self._poll_task
                except asyncio.CancelledError:
                    if not self._stop.is_set():
                        raise
                    break
                finally:
                    self._poll_task = None
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
                except asyncio.TimeoutError:
                    pass
            await self._logout(session)

    def _session(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(ssl=self.verify_tls, limit=4)
        headers = {"Accept": "application/json", "OData-Version": "4.0"}
        if self.auth == "basic" and self._credentials:
            user, password = self._credentials
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def _poll_and_store(self, session: Any) -> None:
        reading = await self.poll(session)
        with self._lock:
            if reading.source.ok:
                self._latest, self._latest_at, self._last_error = reading, self._clock.monotonic(), None
            else:
                self._last_error = reading.source.detail
        self._first_done.set()

    def wait_for_first(self, timeout: float) -> bool:
        """Block until the first poll has finished (for one-shot modes like ``--once``).

        Starts the poller if needed; returns False if it did not finish within ``timeout``.
        """
        self._ensure_started()
        return self._first_done.wait(timeout)

    def read_now(self) -> PowerReading:
        """One synchronous poll (for ``doctor`` and tests); does not start the thread."""
        async def once() -> PowerReading:
            async with self._session() as session:
                try:
                    return await self.poll(session)
                finally:
                    await self._logout(session)
        return asyncio.run(once())

    # ---- one poll ----
    async def poll(self, session: Any) -> PowerReading:
        """Read every planned chassis; (re)discover first when needed. Never raises."""
        import aiohttp

        self._polls += 1
        now = self._clock.monotonic()
        interval_s = now - self._prev_poll_at if self._prev_poll_at is not None else self.interval
        try:
            if self._plans is None or self._polls % REDISCOVER_POLLS == 0:
                self._plans = await self._discover(session)
            domains, per_chassis = await self._read_plans(session, self._plans, interval_s)
        except RedfishError as exc:
            self._plans = None
            return PowerReading(SourceStatus("redfish", STATUS_ERROR, str(exc)))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:  # pragma: no cover - _get wraps
            self._plans = None
            return PowerReading(SourceStatus("redfish", STATUS_ERROR, f"{type(exc).__name__}: {exc}"))
        if not domains:
            self._plans = None
            return PowerReading(SourceStatus("redfish", STATUS_ERROR,
                                             f"{self.url}: no chassis reports its power "
                                             "(no EnvironmentMetrics, PowerSubsystem, Power or power Sensors)"))
        self._prev_poll_at = now
        total = sum(d.watts for d in domains)
        detail = ", ".join(f"{c['id']} {c['watts']:.0f} W ({c['from']})" for c in per_chassis)
        return PowerReading(SourceStatus("redfish", STATUS_OK, detail, watts=total,
                                         extra={"chassis": per_chassis, "url": self.url}), tuple(domains))

    async def _read_plans(self, session: Any, plans: list[_Plan],
                          interval_s: float) -> tuple[list[PowerDomain], list[dict[str, Any]]]:
        domains: list[PowerDomain] = []
        per_chassis: list[dict[str, Any]] = []
        for plan in plans:
            watts = await self._read_plan(session, plan)
            if watts is None:
                raise RedfishError(f"chassis {plan.chassis_id}: {plan.method} has no reading any more")
            domains.append(PowerDomain(name=f"chassis-{plan.chassis_id}", kind=DOMAIN_NODE, watts=watts,
                                       interval_s=interval_s, accuracy=plan.accuracy, label=plan.name))
            per_chassis.append({"id": plan.chassis_id, "name": plan.name, "watts": watts,
                                "from": plan.method, "accuracy": plan.accuracy})
        return domains, per_chassis

    async def _read_plan(self, session: Any, plan: _Plan) -> float | None:
        values: list[float] = []
        for uri in plan.uris:
            doc = await self._get(session, uri)
            v = self._value(plan.method, doc)
            if v is not None:
                values.append(v)
        if not values:
            return None
        return sum(values)

    @staticmethod
    def _value(method: str, doc: Mapping[str, Any]) -> float | None:
        if method == "EnvironmentMetrics.PowerWatts":
            pw = doc.get("PowerWatts")
            return _number(pw.get("Reading")) if isinstance(pw, Mapping) else None
        if method == "PowerSupplies.InputPowerWatts":
            ipw = doc.get("InputPowerWatts")
            return _number(ipw.get("Reading")) if isinstance(ipw, Mapping) else None
        if method == "Power.PowerControl":
            for pc in doc.get("PowerControl") or ():
                if isinstance(pc, Mapping) and _number(pc.get("PowerConsumedWatts")) is not None:
                    return _number(pc.get("PowerConsumedWatts"))
            return None
        if method.startswith("Sensors"):
            return _number(doc.get("Reading")) if _enabled(doc) else None
        return None  # pragma: no cover

    # ---- discovery ----
    async def _discover(self, session: Any) -> list[_Plan]:
        root = await self._get(session, self.root_path)
        if self.auth == "session" and self._token is None:
            await self._login(session, root)
        coll_uri = _link(root, "Chassis")
        if not coll_uri:
            raise RedfishError(f"{self.url}: the service root has no Chassis link")
        coll = await self._get(session, coll_uri)
        members = [m.get("@odata.id") for m in coll.get("Members") or () if isinstance(m, Mapping)]
        members = [m for m in members if isinstance(m, str)]
        if not members:
            raise RedfishError(f"{self.url}: the Chassis collection is empty")
        chassis: dict[str, Mapping[str, Any]] = {}
        for uri in members:
            try:
                chassis[_norm(uri)] = await self._get(session, uri)
            except RedfishError:
                continue
        parents: dict[str, set[str]] = {k: set() for k in chassis}
        for key, doc in chassis.items():
            links = doc.get("Links") if isinstance(doc.get("Links"), Mapping) else {}
            up = _link(links, "ContainedBy")
            if up:
                parents[key].add(_norm(up))
            for child in links.get("Contains") or ():
                if isinstance(child, Mapping) and isinstance(child.get("@odata.id"), str):
                    parents.setdefault(_norm(child["@odata.id"]), set()).add(key)
        plans: dict[str, _Plan] = {}
        for key, doc in chassis.items():
            plan = await self._plan_for(session, doc)
            if plan is not None:
                plans[key] = plan

        def has_measured_ancestor(key: str, seen: set[str]) -> bool:
            for p in parents.get(key, ()):
                if p in seen:
                    continue
                if p in plans or has_measured_ancestor(p, seen | {p}):
                    return True
            return False

        top = {key: plan for key, plan in plans.items() if not has_measured_ancestor(key, {key})}
        # Without links, a GPU/card chassis can look top-level: when a node-type chassis
        # reports power, component-type chassis are parts of it, not more nodes.
        kinds = {key: str(chassis[key].get("ChassisType") or "") for key in top}
        if any(kind not in COMPONENT_CHASSIS_TYPES for kind in kinds.values()):
            top = {key: plan for key, plan in top.items() if kinds[key] not in COMPONENT_CHASSIS_TYPES}
        return list(top.values())

    async def _plan_for(self, session: Any, doc: Mapping[str, Any]) -> _Plan | None:
        cid = str(doc.get("Id") or _norm(str(doc.get("@odata.id", "?"))).rsplit("/", 1)[-1])
        name = str(doc.get("Name") or cid)

        async def try_get(uri: str | None) -> Mapping[str, Any] | None:
            if not uri:
                return None
            try:
                return await self._get(session, uri)
            except RedfishError:
                return None

        em_uri = _link(doc, "EnvironmentMetrics")
        em = await try_get(em_uri)
        if em is not None and self._value("EnvironmentMetrics.PowerWatts", em) is not None:
            acc = await self._accuracy(session, em.get("PowerWatts"))
            return _Plan(cid, name, "EnvironmentMetrics.PowerWatts", [em_uri], acc)  # type: ignore[list-item]

        ps = await try_get(_link(doc, "PowerSubsystem"))
        supplies = await try_get(_link(ps, "PowerSupplies")) if ps else None
        if supplies:
            uris: list[str] = []
            accs: list[float] = []
            for m in supplies.get("Members") or ():
                psu = await try_get(m.get("@odata.id") if isinstance(m, Mapping) else None)
                if not psu or not _enabled(psu):
                    continue
                metrics_uri = _link(psu, "Metrics")
                metrics = await try_get(metrics_uri)
                if metrics and self._value("PowerSupplies.InputPowerWatts", metrics) is not None:
                    uris.append(metrics_uri)  # type: ignore[arg-type]
                    accs.append(await self._accuracy(session, metrics.get("InputPowerWatts")))
            if uris:
                return _Plan(cid, name, "PowerSupplies.InputPowerWatts", uris, max(accs))

        power_uri = _link(doc, "Power")
        power = await try_get(power_uri)
        if power is not None and self._value("Power.PowerControl", power) is not None:
            return _Plan(cid, name, "Power.PowerControl", [power_uri], DEFAULT_ACCURACY)  # type: ignore[list-item]

        sensors = await try_get(_link(doc, "Sensors"))
        if sensors:
            chassis_total: list[tuple[str, float]] = []
            psu_inputs: list[tuple[str, float]] = []
            for m in sensors.get("Members") or ():
                uri = m.get("@odata.id") if isinstance(m, Mapping) else None
                s = await try_get(uri)
                if not s or s.get("ReadingType") != "Power" or self._value("Sensors", s) is None:
                    continue
                acc = _accuracy_of(s)
                if s.get("PhysicalContext") == "Chassis":
                    chassis_total.append((uri, acc))  # type: ignore[arg-type]
                elif s.get("PhysicalContext") == "PowerSupply" and "input" in (
                        f"{s.get('Id', '')} {s.get('Name', '')}".lower()):
                    psu_inputs.append((uri, acc))  # type: ignore[arg-type]
            if chassis_total:
                uri, acc = chassis_total[0]
                return _Plan(cid, name, "Sensors.Chassis", [uri], acc)
            if psu_inputs:
                return _Plan(cid, name, "Sensors.PowerSupplyInput", [u for u, _ in psu_inputs],
                             max(a for _, a in psu_inputs))
        return None

    async def _accuracy(self, session: Any, excerpt: Any) -> float:
        """Relative accuracy of a reading from the sensor its DataSourceUri names."""
        uri = excerpt.get("DataSourceUri") if isinstance(excerpt, Mapping) else None
        if not isinstance(uri, str):
            return DEFAULT_ACCURACY
        if uri not in self._accuracy_cache:
            try:
                sensor = await self._get(session, uri)
                self._accuracy_cache[uri] = _accuracy_of(sensor, None)
            except RedfishError:
                self._accuracy_cache[uri] = None
        cached = self._accuracy_cache[uri]
        return DEFAULT_ACCURACY if cached is None else cached

    # ---- HTTP ----
    def _abs(self, uri: str) -> str:
        return uri if "://" in uri else self.origin + uri

    async def _get(self, session: Any, uri: str, _retry: bool = True) -> Mapping[str, Any]:
        import aiohttp

        headers = {"X-Auth-Token": self._token} if self._token else None
        url = self._abs(uri)
        try:
            async with session.get(url, headers=headers) as resp:
                if resp.status == 401 and self.auth == "session" and self._token and _retry:
                    self._token = None
                    await self._login(session, None)
                    return await self._get(session, uri, _retry=False)
                if resp.status in (401, 403):
                    raise RedfishError(f"HTTP {resp.status} from {uri}: credentials rejected or missing")
                if resp.status != 200:
                    raise RedfishError(f"HTTP {resp.status} from {uri}")
                body = await resp.read()
        except RedfishError:
            raise
        except asyncio.TimeoutError:
            raise RedfishError(f"{uri}: timed out after {self.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise RedfishError(f"{url}: TLS certificate not trusted ({exc.certificate_error})") from None
        except aiohttp.ClientError as exc:
            raise RedfishError(f"{url}: {exc or type(exc).__name__}") from None
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RedfishError(f"{uri}: the BMC sent malformed JSON") from None
        if not isinstance(doc, Mapping):
            raise RedfishError(f"{uri}: expected a JSON object")
        return doc

    async def _login(self, session: Any, root: Mapping[str, Any] | None) -> None:
        import aiohttp

        if not self._credentials:
            raise RedfishError("session auth needs credentials (--redfish-credentials FILE or "
                               "KECK_REDFISH_USER/KECK_REDFISH_PASSWORD)")
        sessions = (_link(root, "Links", "Sessions") if root else None) or \
            self.root_path + "/SessionService/Sessions"
        user, password = self._credentials
        try:
            async with session.post(self._abs(sessions), json={"UserName": user, "Password": password}) as resp:
                if resp.status not in (200, 201, 204):
                    raise RedfishError(f"HTTP {resp.status} creating a Redfish session: credentials rejected?")
                token = resp.headers.get("X-Auth-Token")
                if not token:
                    raise RedfishError("the BMC created a session but sent no X-Auth-Token")
                self._token = token
                self._session_uri = resp.headers.get("Location")
        except RedfishError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RedfishError(f"creating a Redfish session failed: {exc or type(exc).__name__}") from None

    async def _logout(self, session: Any) -> None:
        """Delete our session (BMCs have few session slots). Best effort."""
        if not (self._token and self._session_uri):
            return
        try:
            import aiohttp

            async with session.delete(self._abs(self._session_uri), headers={"X-Auth-Token": self._token},
                                      timeout=aiohttp.ClientTimeout(total=min(self.timeout, 2.0))):
                pass
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        self._token = self._session_uri = None


def _accuracy_of(sensor: Mapping[str, Any], default: float | None = DEFAULT_ACCURACY) -> Any:
    """Redfish ``Accuracy`` is "the estimated percent error"; as a fraction."""
    acc = _number(sensor.get("Accuracy"))
    return acc / 100.0 if acc is not None else default
