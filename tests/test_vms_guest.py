"""Guest side: --host-power makes the host's figure the node total; stale or unreachable → the
labelled estimate with the reason → recovery by itself; bad settings are one-line errors."""
from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pytest

from fakesys import FakeProc
from keck_tui.attribution.engine import AttributionConfig
from keck_tui.clock import FakeClock
from keck_tui.collector import Collector
from keck_tui.hierarchy.grouping import make_grouper
from keck_tui.samplers.hostpower import HostPowerError, HostPowerSampler, HostPowerTarget, parse_target
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.vm.export import SCHEMA
from keck_tui.vm.files import write_vm_file


def _doc(watts: float, seq: int, *, vm: str = "web1", t: float = 1.7e9, estimated: bool = False) -> bytes:
    return json.dumps({"schema": SCHEMA, "vm": vm, "kind": "qemu", "host": "hv1", "time": t + seq,
                       "interval_s": 1.0, "watts": watts, "watts_lo": watts * 0.95, "watts_hi": watts * 1.05,
                       "joules": 100.0 * seq, "components": {"cpu": watts * 0.7, "dram": watts * 0.3},
                       "estimated": estimated, "sources": ["rapl"], "seq": seq}).encode()


def _guest(tmp_path: Path, target: HostPowerTarget) -> tuple[Collector, FakeProc, FakeClock, HostPowerSampler]:
    clock = FakeClock()
    proc = FakeProc(tmp_path / "proc", ncpu=2)
    proc.add_process(100, comm="postgres", cgroup="0::/system.slice/postgresql.service", pss_kb=400_000)
    proc.add_process(200, comm="nginx", cgroup="0::/system.slice/nginx.service", pss_kb=100_000)
    host = HostPowerSampler(target, clock=clock, autostart=False)
    collector = Collector(activity=ProcfsSampler(proc.root, clock=clock), grouper=make_grouper(),
                          host="guest1", power=[host], config=AttributionConfig(model="cpu-time"), clock=clock)
    collector.prime()
    return collector, proc, clock, host


def _tick(proc: FakeProc, clock: FakeClock, n: int) -> None:
    clock.advance(1.0)
    proc.advance(1.0)
    proc.update_process(100, utime=60 * n)
    proc.update_process(200, utime=20 * n)
    proc.set_cpu_times(0, user=60 * n, idle=40 * n)
    proc.set_cpu_times(1, user=20 * n, idle=80 * n)


def _conserved(snap) -> None:
    for _, row in snap.root.walk():
        assert row.watts_lo <= row.watts <= row.watts_hi
        if row.children:
            assert abs(math.fsum(c.watts for c in row.children) - row.watts) <= 1e-9 * max(1.0, row.watts)


def test_host_figure_is_the_node_total_then_stale_then_recovers(tmp_path: Path) -> None:
    export = tmp_path / "share"
    export.mkdir()
    path = write_vm_file(str(export), "web1", _doc(12.5, 1))
    collector, proc, clock, host = _guest(tmp_path, parse_target(f"file://{path}", vm="web1"))
    host.poll_once()
    _tick(proc, clock, 1)
    snap = collector.collect()
    _conserved(snap)
    src = snap.source("host")
    assert src.ok and src.kind == "measured" and src.extra["vm"] == "web1"
    assert abs(snap.root.watts - 12.5) <= 1e-6  # the guest's node total is the host's VM row
    assert not snap.estimated and not snap.root.estimated and snap.source("estimate") is None
    assert snap.root.watts_lo == pytest.approx(12.5 - 0.625) and snap.root.watts_hi == pytest.approx(12.5 + 0.625)
    assert snap.root.components["cpu"] == pytest.approx(8.75) and snap.root.components["dram"] == pytest.approx(3.75)
    assert "host" in snap.root.sources
    pg = snap.root.find(["guest1", "system.slice", "postgresql.service", "pid-100"])
    assert pg is not None and pg.components["cpu"] > 0 and pg.components["dram"] > 0

    # the host's document stops advancing: after the stale limit the guest estimates, and says why
    for n in range(2, 9):
        host.poll_once()
        _tick(proc, clock, n)
        snap = collector.collect()
    assert snap.estimated and snap.root.estimated
    src = snap.source("host")
    assert not src.ok and "has not changed" in src.detail and "estimate" in src.detail
    assert any(w.startswith("host:") for w in snap.warnings)  # the reason reaches the header
    assert snap.source("estimate") is not None
    _conserved(snap)

    # a fresh document: back to the host's figure by itself
    write_vm_file(str(export), "web1", _doc(20.0, 2))
    host.poll_once()
    _tick(proc, clock, 9)
    snap = collector.collect()
    assert snap.source("host").ok and abs(snap.root.watts - 20.0) <= 1e-6 and not snap.estimated


def test_unreachable_host_and_bad_documents_fall_back_with_a_reason(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    collector, proc, clock, host = _guest(tmp_path, parse_target(f"http://127.0.0.1:{port}", vm="web1"))
    host.poll_once()
    _tick(proc, clock, 1)
    snap = collector.collect()
    src = snap.source("host")
    assert not src.ok and "cannot connect" in src.detail and snap.estimated
    assert "\n" not in src.detail

    bad = tmp_path / "bad.json"
    for body, why in ((b"not json", "not JSON"), (_doc(-3.0, 1), "negative"), (_doc(5.0, 1, vm="db9"), "for VM"),
                      (b"x" * 100_000, "larger")):
        bad.write_bytes(body)
        h = HostPowerSampler(parse_target(f"file://{bad}", vm="web1"), clock=clock, autostart=False)
        h.poll_once()
        reading = h.sample()
        assert not reading.source.ok and why in reading.source.detail and not reading.domains


def test_an_estimated_host_figure_is_labelled(tmp_path: Path) -> None:
    path = tmp_path / "power.json"
    path.write_bytes(_doc(7.0, 1, estimated=True))
    collector, proc, clock, host = _guest(tmp_path, parse_target(f"file://{tmp_path}", vm=None))
    host.poll_once()
    _tick(proc, clock, 1)
    snap = collector.collect()
    assert snap.source("host").kind == "estimated" and "estimated by the host" in snap.source("host").detail
    # the host had no sensor: the guest's figures are estimates, and say so
    assert snap.estimated and snap.root.estimated
    assert all(r.estimated for _, r in snap.root.walk() if r.level == "process")


@pytest.mark.parametrize("spec,vm,token,msg", [
    ("http://hv1:9464", None, None, "--vm"),
    ("http://user:pw@hv1:9464", "web1", None, "credentials"),
    ("ftp://hv1/x", "web1", None, r"not an http\(s\) or file"),
    ("file://relative/path", None, None, "absolute"),
    ("file:///x/power.json", None, "/tok", "--token-file"),
    ("http://hv1:99999", "web1", None, "bad port"),
    ("http://hv1:9464/api/v1/vm/web1", "web2", None, "differs"),
    ("http://hv1:9464", "a/b", None, "--vm"),
])
def test_bad_host_power_settings_are_one_line_errors(spec: str, vm: str | None, token: str | None, msg: str) -> None:
    with pytest.raises(HostPowerError, match=msg):
        parse_target(spec, vm, token)


def test_targets() -> None:
    t = parse_target("https://hv1:9464", "ns.my vm", "/etc/keck/vm.token")
    assert t.url == "https://hv1:9464/api/v1/vm/ns.my%20vm" and t.vm == "ns.my vm"
    t = parse_target("http://[::1]:9464/api/v1/vm/web1")
    assert t.vm == "web1" and t.url == "http://[::1]:9464/api/v1/vm/web1"


async def test_token_goes_only_to_the_origin_and_redirects_are_refused(tmp_path: Path) -> None:
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    seen: list[tuple[str, str | None]] = []

    async def redirect(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        raise web.HTTPFound("http://127.0.0.1:1/elsewhere")

    async def good(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        return web.Response(body=_doc(3.0, 1), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/vm/web1", good)
    app.router.add_get("/api/v1/vm/web2", redirect)
    tok = tmp_path / "tok"
    tok.write_text("web1-token-0123456789\n")
    async with TestServer(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        h = HostPowerSampler(parse_target(base, "web1", str(tok)), autostart=False)
        await asyncio.to_thread(h.poll_once)
        assert h.sample().source.ok and seen[-1] == ("/api/v1/vm/web1", "Bearer web1-token-0123456789")
        h2 = HostPowerSampler(parse_target(base, "web2", str(tok)), autostart=False)
        await asyncio.to_thread(h2.poll_once)
        assert "redirects are refused" in h2.sample().source.detail
        assert [p for p, _ in seen] == ["/api/v1/vm/web1", "/api/v1/vm/web2"]  # never followed
