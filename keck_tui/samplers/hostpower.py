"""The guest's power as its host measured it (``keck-top --host-power URL|file:///path``).

A host running ``keck-top serve`` exports each VM's watts and bound (keck_tui/vm/export.py):
over HTTP at ``/api/v1/vm/<name>`` (per-VM token) or as ``<dir>/<name>/power.json`` in a folder
shared with the guest. This sampler polls that document on its own thread and hands the latest
one to the collector as a node total (kind ``node``, source ``host``) with the CPU and DRAM
parts inside it, so the guest's tree splits the host's figure among its processes by the usual
models. ``sample()`` never blocks.

When the host stops answering, answers garbage, or its document stops advancing for
``stale_after`` seconds, the reading carries no domains and a one-line reason: the guest falls
back to its own estimate, labelled, and says why (header, ``doctor``). It recovers by itself at
the next good document. The token (``--token-file``, re-read each poll) goes only to the URL's
origin: redirects are refused.
"""
from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from keck_tui.clock import Clock, SystemClock
from keck_tui.common.bgloop import Poller
from keck_tui.common.bounded import BoundedInputError, read_file
from keck_tui.common.http import HttpError, bearer, client_session, request, status_error
from keck_tui.common.tokens import TokenError, load_token
from keck_tui.common.urls import UrlError, check_url
from keck_tui.model import KIND_ESTIMATED, KIND_MEASURED, STATUS_ERROR, STATUS_OK, SourceStatus
from keck_tui.samplers.types import DOMAIN_DRAM, DOMAIN_NODE, DOMAIN_PACKAGE, PowerDomain, PowerReading
from keck_tui.vm.export import MAX_DOCUMENT_BYTES, VmDocumentError, VmPower, parse_vm_document
from keck_tui.vm.files import FILE_NAME

SOURCE_NAME = "host"
API_PREFIX = "/api/v1/vm/"
FIX = ("check that the host runs `keck-top serve` with this VM (its `vm` rows), that --host-power "
       "points at it (http(s)://HOST:9464 or file:///MOUNT/power.json), --vm names this VM as the host "
       "calls it and --token-file holds this VM's token; until then power is estimated here")


class HostPowerError(ValueError):
    """A --host-power setting is unusable (one line, exit 2)."""


@dataclass(frozen=True)
class HostPowerTarget:
    """Where the host's figure for this VM is: an HTTP(S) endpoint or a file."""

    url: str | None = None  # the full endpoint URL
    path: str | None = None  # the power.json path
    vm: str | None = None  # the VM's name as the host calls it (checked against the document)
    token_file: str | None = None

    def describe(self) -> str:
        return self.url or f"file://{self.path}"


def parse_target(spec: str, vm: str | None = None, token_file: str | None = None) -> HostPowerTarget:
    """``http(s)://HOST[:PORT][/api/v1/vm/NAME]`` or ``file:///path`` (a power.json or its folder)."""
    if not isinstance(spec, str) or not spec or any(ord(c) < 0x20 for c in spec):
        raise HostPowerError("--host-power: give http(s)://HOST:PORT or file:///path/power.json")
    if vm is not None and (not vm or len(vm) > 255 or "/" in vm or not vm.isprintable()):
        raise HostPowerError("--vm: a VM name (no '/', at most 255 characters)")
    if spec.startswith("file://"):
        if token_file:
            raise HostPowerError("--token-file goes with an http(s) --host-power URL, not with file://")
        parts = urlsplit(spec)
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise HostPowerError(f"--host-power {spec!r}: a file URL needs an absolute path (file:///…)")
        if os.path.isdir(path):
            path = os.path.join(path, FILE_NAME)
        return HostPowerTarget(path=path, vm=vm)
    if urlsplit(spec).scheme not in ("http", "https"):
        raise HostPowerError(f"--host-power: not an http(s) or file:// URL: {spec[:80]!r}")
    try:
        check_url(spec, "--host-power", credentials_hint="give this VM's token with --token-file")
    except UrlError as exc:
        raise HostPowerError(str(exc)) from None
    parts = urlsplit(spec)
    path = parts.path.rstrip("/")
    if path.startswith(API_PREFIX.rstrip("/")) and len(path) > len(API_PREFIX):
        named = unquote(path[len(API_PREFIX):])
        if vm is not None and vm != named:
            raise HostPowerError(f"--vm {vm!r} differs from the VM in the URL ({named!r})")
        vm = named
        url = spec
    else:
        if vm is None:
            raise HostPowerError("--host-power URL: say which VM this is with --vm NAME (the host's name for it)")
        base = f"{parts.scheme}://{parts.netloc}{path}"
        url = f"{base}{API_PREFIX}{quote(vm, safe='')}"
    return HostPowerTarget(url=url, vm=vm, token_file=token_file)


class HostPowerSampler:
    """PowerSampler over the host's per-VM document; see the module docstring."""

    name = SOURCE_NAME

    def __init__(self, target: HostPowerTarget, *, poll_s: float = 1.0, timeout_s: float = 2.0,
                 stale_after_s: float | None = None, clock: Clock | None = None,
                 autostart: bool = True) -> None:
        self.target = target
        self.poll_s = max(0.05, poll_s)
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._doc: VmPower | None = None
        self._doc_seen: float | None = None  # monotonic time the document last advanced
        self._error: str | None = None
        self._autostart = autostart  # False: the caller drives poll_once() (tests)
        self._session: Any = None
        self._poller = Poller("keck-host-power", self._poll, self.poll_s, on_start=self._open,
                              on_stop=self._close)

    # ---- collector side: never blocks ----
    def sample(self) -> PowerReading:
        if self._autostart:
            self._poller.start()
        with self._lock:
            doc, seen, error = self._doc, self._doc_seen, self._error
        if doc is None:
            detail = error or f"waiting for the first answer from {self.target.describe()}"
            status = STATUS_ERROR if error else STATUS_OK
            return PowerReading(SourceStatus(SOURCE_NAME, status, detail,
                                             extra={"fix": FIX, "fallback": True} if error else {}))
        age = self.clock.monotonic() - (seen or 0.0)
        limit = self.stale_after_s if self.stale_after_s is not None else max(5.0, 3 * doc.interval_s,
                                                                              3 * self.poll_s)
        if error is not None or age > limit:
            why = error or f"the host's figure has not changed for {age:.0f} s (stale after {limit:.0f} s)"
            return PowerReading(SourceStatus(
                SOURCE_NAME, STATUS_ERROR, f"{why}; using the local estimate until the host answers again",
                extra={"fix": FIX, "fallback": True, "vm": doc.vm, "age_s": round(age, 3)}))
        return self.reading_of(doc, age)

    def reading_of(self, doc: VmPower, age: float = 0.0) -> PowerReading:
        w = doc.watts
        rel = (max(w - doc.watts_lo, doc.watts_hi - w) / w) if w > 0 else 0.0
        domains = [PowerDomain(name="host-vm", kind=DOMAIN_NODE, watts=w, interval_s=doc.interval_s,
                               accuracy=rel, label=f"VM {doc.vm} on {doc.host}")]
        cpu, dram = doc.components.get("cpu"), doc.components.get("dram")
        if cpu is not None:
            domains.append(PowerDomain(name="host-cpu", kind=DOMAIN_PACKAGE, watts=cpu,
                                       interval_s=doc.interval_s, accuracy=rel))
        if dram is not None:
            domains.append(PowerDomain(name="host-dram", kind=DOMAIN_DRAM, watts=dram,
                                       interval_s=doc.interval_s, accuracy=rel))
        how = "estimated by the host" if doc.estimated else "measured by the host"
        srcs = ", ".join(doc.sources) or "?"
        detail = (f"VM {doc.vm} on {doc.host}: {w:.2f} W ({doc.watts_lo:.2f}–{doc.watts_hi:.2f}), {how} "
                  f"({srcs}), {age:.1f} s old, from {self.target.describe()}")
        status = SourceStatus(SOURCE_NAME, STATUS_OK, detail, kind=KIND_ESTIMATED if doc.estimated else KIND_MEASURED,
                              watts=w, extra={"vm": doc.vm, "host": doc.host, "host_time": doc.time,
                                              "host_joules": doc.joules, "host_sources": list(doc.sources)})
        return PowerReading(status, tuple(domains))

    def wait_for_first(self, timeout: float) -> bool:
        if not self._autostart:
            return True
        return self._poller.wait_for_first(timeout)

    def stop(self) -> None:
        if self._poller.started:
            self._poller.stop(self.timeout_s + 1)

    # ---- the poller (common/bgloop), or poll_once() from a test's thread ----
    async def _open(self) -> None:
        if self.target.url:
            self._session = client_session(connections=2)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _poll(self) -> None:
        try:
            raw = self._read_file() if self.target.path else await self._fetch_http(self._session)
            doc = parse_vm_document(raw)
            if self.target.vm is not None and doc.vm != self.target.vm:
                raise VmDocumentError(f"the document is for VM {doc.vm!r}, not {self.target.vm!r}")
        except (VmDocumentError, HostPowerError, HttpError, BoundedInputError, TokenError, OSError) as exc:
            message = str(exc) if not isinstance(exc, OSError) or not exc.strerror else \
                f"{exc.strerror}: {exc.filename or self.target.describe()}"
            with self._lock:
                self._error = " ".join(message.split())[:300]
            return
        now = self.clock.monotonic()
        with self._lock:
            old = self._doc
            advanced = old is None or (doc.seq, doc.time) != (old.seq, old.time)
            self._doc = doc
            if advanced:
                self._doc_seen = now
            self._error = None

    def poll_once(self) -> None:
        """Fetch and check the document once, on the calling thread (tests, one-shot use)."""
        async def once() -> None:
            await self._open()
            try:
                await self._poll()
            finally:
                await self._close()
        asyncio.run(once())

    def _read_file(self) -> bytes:
        assert self.target.path is not None
        return read_file(self.target.path, MAX_DOCUMENT_BYTES, what="host power file")

    async def _fetch_http(self, session: Any) -> bytes:
        assert self.target.url is not None and session is not None
        token = load_token(self.target.token_file) if self.target.token_file else None  # re-read: tokens rotate
        headers = {"Accept": "application/json", **bearer(token)}
        answer = await request(session, "GET", self.target.url, headers=headers, timeout=self.timeout_s,
                               max_bytes=MAX_DOCUMENT_BYTES, peer="host agent", redirects=False)
        if 300 <= answer.status < 400:
            raise HostPowerError(f"HTTP {answer.status}: redirects are refused (the token stays with the "
                                 "origin given)")
        if answer.status >= 400:
            raise status_error(answer, frozenset({token}) if token else frozenset())
        return answer.body
