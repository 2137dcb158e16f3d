"""Host side: VMs as rows (QEMU threads as vCPU rows), their power documents, the token scope and
the file transport — on a fake /proc + powercap tree, then with real processes."""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fakesys import FakeProc, FakeSys, FakeThread
from keck_tui.agent.app import AgentService, build_app
from keck_tui.attribution.engine import AttributionConfig
from keck_tui.clock import FakeClock
from keck_tui.collector import Collector
from keck_tui.feed import StaticFeed
from keck_tui.hierarchy.grouping import make_grouper
from keck_tui.hierarchy.vms import is_vm_process
from keck_tui.model import Snapshot
from keck_tui.samplers.procfs import ProcfsSampler
from keck_tui.samplers.rapl import RaplSampler
from keck_tui.vm.export import SCHEMA, parse_vm_document, vm_documents
from keck_tui.vm.files import ExportError, write_vm_file
from keck_tui.vm.tokens import VmTokens

SCOPE_V1 = "1:cpu:/machine.slice/machine-qemu\\x2d1\\x2dweb1.scope/libvirt/vcpu0\n0::/\n"
QEMU_ARGV = ["/usr/bin/qemu-system-x86_64", "-name", "guest=web1,debug-threads=on", "-m", "2048",
             "-smp", "2", "-machine", "pc-q35-8.2,accel=kvm"]


def _conserved(snap: Snapshot) -> None:
    for _, row in snap.root.walk():
        assert row.watts >= 0 and row.watts_lo <= row.watts <= row.watts_hi
        if row.children:
            assert abs(math.fsum(c.watts for c in row.children) - row.watts) <= 1e-9 * max(1.0, row.watts)


def fake_host(tmp_path: Path) -> tuple[Collector, FakeProc, FakeSys, FakeClock]:
    clock = FakeClock()
    sys_ = FakeSys(tmp_path / "sys")
    sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)
    sys_.add_rapl_zone("intel-rapl:0:0", "dram", energy_uj=0)
    proc = FakeProc(tmp_path / "proc", ncpu=4)
    proc.add_process(500, comm="qemu-system-x86", cmdline=QEMU_ARGV, cgroup=SCOPE_V1, pss_kb=2_000_000,
                     threads=[FakeThread(500, name="qemu-system-x86"), FakeThread(501, name="CPU 0/KVM"),
                              FakeThread(502, name="CPU 1/KVM", processor=1)])
    # a helper in the VM's scope (only the cgroup says which VM) and an unrelated service
    proc.add_process(600, comm="virtiofsd", cmdline=["/usr/libexec/virtiofsd", "--fd=3"],
                     cgroup="1:cpu:/machine.slice/machine-qemu\\x2d1\\x2dweb1.scope\n0::/\n", pss_kb=10_000)
    proc.add_process(700, comm="nginx", cgroup="0::/system.slice/nginx.service", pss_kb=500_000)
    activity = ProcfsSampler(proc.root, clock=clock, thread_detail=is_vm_process)
    collector = Collector(activity=activity, grouper=make_grouper(procfs_root=str(proc.root)),
                          host="hv1", power=[RaplSampler(sys_.root, clock=clock)],
                          config=AttributionConfig(model="cpu-time", idle_watts=10.0), clock=clock)
    collector.prime()
    return collector, proc, sys_, clock


def step(proc: FakeProc, sys_: FakeSys, clock: FakeClock, n: int) -> None:
    """One second: vCPU 0 busy 0.8 s, vCPU 1 0.4 s, QEMU main 0.1 s, virtiofsd 0.05 s, nginx 0.2 s;
    package 60 J, DRAM 6 J."""
    clock.advance(1.0)
    proc.advance(1.0)
    t = 100 * n  # ticks at 100 Hz
    q = proc.procs[500]
    threads = [FakeThread(500, utime=10 * n, name="qemu-system-x86"), FakeThread(501, utime=80 * n, name="CPU 0/KVM"),
               FakeThread(502, utime=40 * n, name="CPU 1/KVM", processor=1)]
    proc.update_process(500, utime=130 * n, threads=threads)
    assert q.pid == 500
    proc.update_process(600, utime=5 * n)
    proc.update_process(700, utime=20 * n, processor=2)
    proc.set_cpu_times(0, user=90 * n, idle=t - 90 * n)
    proc.set_cpu_times(1, user=45 * n, idle=t - 45 * n)
    proc.set_cpu_times(2, user=20 * n, idle=t - 20 * n)
    proc.set_cpu_times(3, idle=t)
    sys_.set_energy("intel-rapl:0", 60_000_000 * n)
    sys_.set_energy("intel-rapl:0:0", 6_000_000 * n)


def test_vm_rows_vcpu_threads_and_conservation(tmp_path: Path) -> None:
    if os.sysconf("SC_CLK_TCK") != 100:
        pytest.skip("the fake tree's tick arithmetic assumes CLK_TCK 100")
    collector, proc, sys_, clock = fake_host(tmp_path)
    step(proc, sys_, clock, 1)
    snap = collector.collect()
    _conserved(snap)
    vm = snap.root.find(["hv1", "machine.slice", "vm-web1"])
    assert vm is not None and vm.level == "vm" and vm.name == "web1"
    assert vm.extra["vm"]["kind"] == "qemu" and vm.extra["vm"]["name"] == "web1"
    qemu = vm.find(["vm-web1", "pid-500"])
    helper = vm.find(["vm-web1", "pid-600"])
    assert qemu is not None and helper is not None  # virtiofsd joins the VM by its cgroup scope
    assert snap.root.find(["hv1", "system.slice", "nginx.service", "pid-700"]) is not None
    # the libvirt scope itself is not a row: the VM takes its place
    assert snap.root.find(["hv1", "machine.slice", "machine-qemu\\x2d1\\x2dweb1.scope"]) is None
    v0, v1, other = (qemu.find(["pid-500", i]) for i in ("vcpu-0", "vcpu-1", "threads-other"))
    assert v0.level == v1.level == "vcpu" and v0.name == "CPU 0/KVM" and other.level == "thread"
    assert (v0.cpu_s, v1.cpu_s, other.cpu_s) == pytest.approx((0.8, 0.4, 0.1))
    cpu = qemu.components["cpu"]
    assert v0.watts + v1.watts + other.watts == pytest.approx(cpu, abs=1e-12)
    assert v0.watts == pytest.approx(2 * v1.watts) and v0.watts == pytest.approx(8 * other.watts)
    # CPU: (60 - 10 idle) W over 1.55 busy s; the VM's share is 1.35 s of it
    assert cpu + helper.components["cpu"] == pytest.approx(50.0 * 1.35 / 1.55, rel=1e-6)
    # DRAM 6 W by PSS: the guest memory is QEMU's PSS
    pss = {500: 2_000_000, 600: 10_000, 700: 500_000}
    assert qemu.components["dram"] == pytest.approx(6.0 * pss[500] / sum(pss.values()), rel=1e-6)
    assert vm.watts == pytest.approx(qemu.watts + helper.watts)


def test_vm_document_matches_the_vm_row_and_validates(tmp_path: Path) -> None:
    collector, proc, sys_, clock = fake_host(tmp_path)
    step(proc, sys_, clock, 1)
    collector.collect()
    step(proc, sys_, clock, 2)
    snap = collector.collect()
    docs = vm_documents(snap, seq=7)
    assert list(docs) == ["web1"]
    doc = parse_vm_document(docs["web1"].dumps())
    vm = snap.root.find(["hv1", "machine.slice", "vm-web1"])
    assert doc.watts == vm.watts and doc.watts_lo == vm.watts_lo and doc.watts_hi == vm.watts_hi
    assert doc.joules == pytest.approx(vm.joules) and doc.joules == pytest.approx(2 * vm.watts, rel=1e-6)
    assert doc.time == snap.time and doc.interval_s == snap.interval_s and doc.seq == 7
    assert set(doc.components) == {"cpu", "dram"} and not doc.estimated and "rapl" in doc.sources


@pytest.mark.parametrize("change,why", [
    ({"schema": "keck-top/1"}, "schema"), ({"watts": -1.0}, "negative"), ({"watts": 1e999}, "not finite"),
    ({"watts": "12"}, "not a number"), ({"watts_lo": 13.0}, "bound"), ({"watts_hi": 1.0}, "bound"),
    ({"interval_s": 0}, "interval"), ({"vm": "x" * 500}, "vm"), ({"components": {"cpu": 1e9}}, "components"),
    ({"sources": ["x"] * 100}, "sources"), ({"estimated": "no"}, "estimated"), ({"seq": -1}, "seq"),
])
def test_bad_documents_fail_with_one_line(change: dict, why: str) -> None:
    import json

    good = {"schema": SCHEMA, "vm": "web1", "kind": "qemu", "host": "hv1", "time": 1.7e9, "interval_s": 1.0,
            "watts": 12.0, "watts_lo": 11.0, "watts_hi": 13.0, "joules": 100.0, "components": {"cpu": 10.0},
            "estimated": False, "sources": ["rapl"], "seq": 3}
    parse_vm_document(json.dumps(good))
    with pytest.raises(ValueError) as info:
        parse_vm_document(json.dumps({**good, **change}))
    assert why in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError):
        parse_vm_document("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError):
        parse_vm_document(b"{" + b" " * (70 * 1024) + b"}")


def test_file_transport_is_atomic_and_never_follows_links(tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    path = write_vm_file(str(out), "web1", b'{"a":1}')
    assert Path(path).read_bytes() == b'{"a":1}'
    assert stat.S_IMODE(os.stat(out / "web1").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    write_vm_file(str(out), "web1", b'{"a":2}')
    assert Path(path).read_bytes() == b'{"a":2}' and sorted(os.listdir(out / "web1")) == ["power.json"]
    # power.json as a symlink: replaced by the file, the target untouched
    victim = tmp_path / "victim"
    victim.write_text("secret")
    os.unlink(path)
    os.symlink(victim, path)
    write_vm_file(str(out), "web1", b'{"a":3}')
    assert victim.read_text() == "secret" and not os.path.islink(path)
    # the VM's folder as a symlink: refused
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "web2")
    with pytest.raises(ExportError, match="refused"):
        write_vm_file(str(out), "web2", b"{}")
    assert os.listdir(elsewhere) == []
    # hostile names stay inside the folder
    p = write_vm_file(str(out), "../../etc/passwd", b"{}")
    assert Path(p).parent.parent == out
    with pytest.raises(ExportError):
        write_vm_file(str(tmp_path / "missing"), "web1", b"{}")


def _service(snap: Snapshot, tokens: VmTokens | None, export: str | None = None) -> AgentService:
    service = AgentService(StaticFeed([snap]), vm_tokens=tokens, vm_export_dir=export)
    service.ingest()
    return service


async def test_vm_endpoint_and_token_scope(tmp_path: Path) -> None:
    collector, proc, sys_, clock = fake_host(tmp_path)
    step(proc, sys_, clock, 1)
    snap = collector.collect()
    tdir = tmp_path / "tokens"
    tdir.mkdir()
    (tdir / "web1").write_text("web1-token-0123456789\n")
    (tdir / "web2").write_text("web2-token-0123456789\n")
    (tdir / "short").write_text("abc\n")
    os.symlink(tmp_path / "nowhere", tdir / "linked")
    tokens = VmTokens(str(tdir))
    tokens.reload(force=True)
    assert set(tokens.tokens) == {"web1", "web2"}
    assert len(tokens.problems) == 2 and not any("abc" in p for p in tokens.problems)  # never the content
    export = tmp_path / "export"
    export.mkdir()
    service = _service(snap, tokens, str(export))
    app = build_app(service, "host-token-0123456789", ingest=False)
    async with TestClient(TestServer(app)) as client:
        def auth(t: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {t}"}

        r = await client.get("/api/v1/vm/web1", headers=auth("web1-token-0123456789"))
        assert r.status == 200
        body = await r.read()
        doc = parse_vm_document(body)
        assert doc.vm == "web1" and doc.watts == snap.root.find(["hv1", "machine.slice", "vm-web1"]).watts
        assert (export / "web1" / "power.json").read_bytes() == body  # the file transport, same bytes
        # a VM's token reads that VM only: not another VM, not the host tree
        for path in ("/api/v1/vm/web2", "/api/v1/snapshot", "/api/v1/history", "/metrics", "/api/v1/vm/nope"):
            r = await client.get(path, headers=auth("web1-token-0123456789"))
            assert r.status == 403 and "error" in await r.json(), path
        r = await client.get("/api/v1/vm/web1")
        assert r.status == 401
        r = await client.get("/api/v1/vm/web1", headers=auth("wrong-token-0123456789"))
        assert r.status == 401
        # the host's token reads everything; a VM that is not running is a 404
        r = await client.get("/api/v1/vm/web1", headers=auth("host-token-0123456789"))
        assert r.status == 200 and await r.read() == body
        r = await client.get("/api/v1/vm/web2", headers=auth("host-token-0123456789"))
        assert r.status == 404 and "no VM" in (await r.json())["error"]
        r = await client.get("/api/v1/snapshot", headers=auth("host-token-0123456789"))
        assert r.status == 200
        r = await client.get("/api/v1/vm/web1?x=1", headers=auth("host-token-0123456789"))
        assert r.status == 400
        # revoking a token: the directory is re-read when it changes
        os.unlink(tdir / "web1")
        service.vm_tokens.reload(force=True)
        r = await client.get("/api/v1/vm/web1", headers=auth("web1-token-0123456789"))
        assert r.status == 401


async def test_open_agent_still_scopes_a_vm_token(tmp_path: Path) -> None:
    collector, proc, sys_, clock = fake_host(tmp_path)
    step(proc, sys_, clock, 1)
    tdir = tmp_path / "tokens"
    tdir.mkdir()
    (tdir / "web1").write_text("web1-token-0123456789")
    tokens = VmTokens(str(tdir))
    tokens.reload(force=True)
    app = build_app(_service(collector.collect(), tokens), None, ingest=False)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/v1/snapshot")).status == 200  # loopback agent without a token
        r = await client.get("/api/v1/snapshot", headers={"Authorization": "Bearer web1-token-0123456789"})
        assert r.status == 403
        r = await client.get("/api/v1/vm/web1", headers={"Authorization": "Bearer web1-token-0123456789"})
        assert r.status == 200


def test_vm_tokens_compare_every_token_in_constant_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import hmac

    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(f"token-of-{name}-0123456789")
    tokens = VmTokens(str(tmp_path))
    tokens.reload(force=True)
    calls = []
    real = hmac.compare_digest

    def spy(x: bytes, y: bytes) -> bool:
        calls.append(1)
        return real(x, y)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert tokens.vms_for("token-of-a-0123456789") == {"a"}
    assert len(calls) == 3  # no early exit on the first match


def test_vm_metrics_family(tmp_path: Path) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from keck_tui.agent.metrics import MetricsState, make_registry

    collector, proc, sys_, clock = fake_host(tmp_path)
    step(proc, sys_, clock, 1)
    snap = collector.collect()
    state = MetricsState()
    state.update(snap)
    text = generate_latest(make_registry(state)).decode()
    samples = {(s.name, s.labels.get("vm")): s.value for fam in text_string_to_metric_families(text)
               for s in fam.samples if s.name.startswith("keck_vm_")}
    vm = snap.root.find(["hv1", "machine.slice", "vm-web1"])
    assert samples[("keck_vm_power_watts", "web1")] == pytest.approx(vm.watts)
    assert samples[("keck_vm_joules_total", "web1")] == pytest.approx(vm.watts * snap.interval_s)


def test_a_vgpu_used_by_the_vm_lands_in_its_row(tmp_path: Path) -> None:
    """NVML lists the VM's QEMU process on a vGPU: its GPU watts are the VM's."""
    from keck_tui.model import SourceStatus
    from keck_tui.samplers.types import GpuDevice, GpuProcess, GpuReading

    class FakeGpu:
        name = "nvml"

        def sample(self) -> GpuReading:
            dev = GpuDevice(index=0, name="A100", uuid="GPU-0", watts=200.0, accuracy_w=5.0,
                            processes=(GpuProcess(500, 0.6),))
            return GpuReading(SourceStatus("nvml", "ok"), (dev,))

    collector, proc, sys_, clock = fake_host(tmp_path)
    collector.gpus = [FakeGpu()]
    step(proc, sys_, clock, 1)
    snap = collector.collect()
    _conserved(snap)
    vm = snap.root.find(["hv1", "machine.slice", "vm-web1"])
    assert vm.gpu_watts == pytest.approx(120.0) and vm.components["gpu"] == pytest.approx(120.0)
    assert parse_vm_document(vm_documents(snap)["web1"].dumps()).components["gpu"] == pytest.approx(120.0)


def test_host_power_and_vm_export_settings_from_the_config(tmp_path: Path) -> None:
    import argparse

    from keck_tui.commands.base import local_sources_from_args
    from keck_tui.config import ConfigError, settings_from_mapping

    s = settings_from_mapping({"host_power": {"url": "http://hv1:9464", "vm": "web1", "token_file": "~/vm.tok",
                                              "stale_after_s": 7},
                               "agent": {"vm_token_dir": "~/tokens", "vm_export_dir": "/srv/keck"}})
    hp = local_sources_from_args(argparse.Namespace(command=None), s).host_power
    assert (hp.url, hp.vm, hp.stale_after_s) == ("http://hv1:9464", "web1", 7)
    assert hp.token_file == os.path.expanduser("~/vm.tok") and not hp.token_file.startswith("~")
    assert s.extra["agent"]["vm_token_dir"] == os.path.expanduser("~/tokens")
    # the flags win; `serve --token-file` (the agent's own token) is never the VM's token
    args = argparse.Namespace(command="serve", host_power="file:///mnt/keck", vm=None, token_file="/agent.tok",
                              host_power_token=None)
    hp = local_sources_from_args(args, s).host_power
    assert hp.url == "file:///mnt/keck" and hp.token_file == os.path.expanduser("~/vm.tok")
    with pytest.raises(ConfigError, match="unknown key"):
        settings_from_mapping({"host_power": {"ur1": "http://x"}})
    with pytest.raises(ConfigError):
        settings_from_mapping({"host_power": {"stale_after_s": -1}})
