"""A hypervisor host and a guest, as processes: `keck-top serve` on a fake powercap tree with a
REAL process whose argv is QEMU's (threads named "CPU n/KVM"), in a libvirt-style cgroup when
one can be made; a guest `keck-top --once --json --host-power …` reading that host's agent."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fakesys import FakeSys
from keck_tui.model import Snapshot
from keck_tui.vm.export import parse_vm_document

REPO = Path(__file__).resolve().parents[1]
SPIN_C = REPO / "tests" / "vmfakes" / "spin_vcpus.c"
HOST_TOKEN = "host-token-0123456789abcdef"
VM_TOKEN = "web1-token-0123456789abcdef"

pytestmark = pytest.mark.slow


def _build_spinner(tmp: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the QEMU stand-in (tests/vmfakes/spin_vcpus.c)")
    exe = tmp / "qemu-system-x86_64"
    subprocess.run([cc, "-O1", "-pthread", "-o", str(exe), str(SPIN_C)], check=True, capture_output=True)
    return exe


def _libvirt_cgroup(pid: int) -> Path | None:
    """Put ``pid`` in a real cgroup named like libvirt's scope (cgroup v1 cpu or v2), when root can."""
    scope = f"machine-qemu\\x2d{os.getpid()}\\x2dweb1.scope"
    for base in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        procs = base / "cgroup.procs"
        if not procs.exists():
            continue
        target = base / "machine.slice" / scope
        try:
            target.mkdir(parents=True, exist_ok=True)
            (target / "cgroup.procs").write_text(str(pid))
            return target
        except OSError:
            try:
                target.rmdir()
            except OSError:
                pass
    return None


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _listening(serve: subprocess.Popen) -> str:
    """The agent's URL from its "listening on" line (warnings may come first)."""
    seen = []
    for _ in range(20):
        line = serve.stderr.readline()
        seen.append(line)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            assert not any("warning" in ln for ln in seen), seen
            return m.group(1)
        if not line:
            break
    raise AssertionError(f"no 'listening on' line: {seen}")


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keck_tui", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_host_agent_and_guest(tmp_path: Path) -> None:
    exe = _build_spinner(tmp_path)
    qemu = subprocess.Popen(["qemu-system-x86_64", "-name", "guest=web1,debug-threads=on", "-smp", "2",
                             "-m", "1024", "-machine", "q35,accel=kvm"], executable=str(exe),
                            env={"SPIN_THREADS": "2", "SPIN_SECONDS": "90", "SPIN_DUTY": "30"})
    cgroup = None
    serve = None
    stop = threading.Event()
    try:
        for _ in range(100):  # until the child has exec'd
            if Path(f"/proc/{qemu.pid}/cmdline").read_bytes():
                break
            time.sleep(0.02)
        assert Path(f"/proc/{qemu.pid}/cmdline").read_bytes().split(b"\0")[:3] == \
            [b"qemu-system-x86_64", b"-name", b"guest=web1,debug-threads=on"]
        cgroup = _libvirt_cgroup(qemu.pid) if os.geteuid() == 0 else None
        sys_ = FakeSys(tmp_path / "sys")
        sys_.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=0)

        energy = sys_.zone_path("intel-rapl:0") / "energy_uj"

        def meter() -> None:  # 40 W into the package counter, each value written whole (rename)
            uj = 0
            while not stop.wait(0.02):
                uj += 800_000
                tmp = energy.with_name("energy_uj.tmp")
                tmp.write_text(f"{uj}\n")
                os.replace(tmp, energy)

        threading.Thread(target=meter, daemon=True).start()
        (tmp_path / "host.token").write_text(HOST_TOKEN)
        (tmp_path / "host.token").chmod(0o600)  # serve warns about a token file others can read
        tokens = tmp_path / "vm-tokens"
        tokens.mkdir()
        (tokens / "web1").write_text(VM_TOKEN + "\n")
        (tokens / "web1").chmod(0o600)
        export = tmp_path / "export"
        export.mkdir()
        serve = subprocess.Popen(
            [sys.executable, "-m", "keck_tui", "serve", "--listen", "127.0.0.1:0", "--sysfs-root", str(sys_.root),
             "--probes", "procfs", "--interval", "0.5", "--host-name", "hv1", "--no-gpu",
             "--token-file", str(tmp_path / "host.token"), "--vm-token-dir", str(tokens),
             "--vm-export-dir", str(export)],
            stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        base = _listening(serve)
        deadline = time.monotonic() + 30
        while True:
            status, body = _get(f"{base}/api/v1/vm/web1", VM_TOKEN)
            if status == 200:
                break
            assert time.monotonic() < deadline, (status, body)
            time.sleep(0.2)
        doc = parse_vm_document(body)
        assert doc.vm == "web1" and doc.kind == "qemu" and not doc.estimated and "rapl" in doc.sources

        # the host's tree: the VM row, its QEMU process and the vCPU threads under it
        status, body = _get(f"{base}/api/v1/snapshot", HOST_TOKEN)
        host_snap = Snapshot.loads(body)
        vm = next(r for _, r in host_snap.root.walk() if r.level == "vm" and r.name == "web1")
        qemu_row = next(c for c in vm.children if c.pid == qemu.pid)
        if cgroup is not None:  # the libvirt-style scope is where the VM sits: machine.slice -> vm
            assert host_snap.root.find([host_snap.root.id, "machine.slice", vm.id]) is not None
        vcpus = {c.name for c in qemu_row.children if c.level == "vcpu"}
        assert vcpus and vcpus <= {"CPU 0/KVM", "CPU 1/KVM"}, [c.name for c in qemu_row.children]
        assert abs(sum(c.watts for c in qemu_row.children) - qemu_row.watts) <= 1e-9 * max(1.0, qemu_row.watts)

        # token scope over real HTTP
        assert _get(f"{base}/api/v1/snapshot", VM_TOKEN)[0] == 403
        assert _get(f"{base}/api/v1/vm/other", VM_TOKEN)[0] == 403
        assert _get(f"{base}/api/v1/vm/web1", "nope-nope-nope-nope")[0] == 401

        # the guest: its node total is the host's VM row for the same interval
        (tmp_path / "vm.token").write_text(VM_TOKEN)
        empty_sys = tmp_path / "guest-sys"
        empty_sys.mkdir()
        r = _run("--once", "--json", "--interval", "0.5", "--probes", "procfs", "--no-gpu", "--sysfs-root",
                 str(empty_sys), "--host-name", "guest1", "--host-power", base, "--vm", "web1",
                 "--token-file", str(tmp_path / "vm.token"))
        assert r.returncode == 0, r.stderr
        assert VM_TOKEN not in r.stdout + r.stderr
        guest = Snapshot.loads(r.stdout)
        src = guest.source("host")
        assert src is not None and src.ok and src.kind == "measured", src
        assert not guest.estimated and "host" in (guest.root.sources or ())
        status, body = _get(f"{base}/api/v1/history?path={vm_path(host_snap, vm.id)}", HOST_TOKEN)
        points = json.loads(body)["points"]
        same = [p for p in points if p["time"] == src.extra["host_time"]]
        assert same, (src.extra["host_time"], [p["time"] for p in points][-5:])
        assert abs(guest.root.watts - same[0]["watts"]) <= 1e-6

        # the file transport gives the same document to a guest that mounts the folder
        doc_file = export / "web1" / "power.json"
        assert parse_vm_document(doc_file.read_bytes()).vm == "web1"
        r = _run("--once", "--json", "--interval", "0.3", "--probes", "procfs", "--no-gpu", "--sysfs-root",
                 str(empty_sys), "--host-power", f"file://{export / 'web1'}")
        assert r.returncode == 0, r.stderr
        guest = Snapshot.loads(r.stdout)
        assert guest.source("host").ok and abs(guest.root.watts - guest.source("host").watts) <= 1e-9

        # the host goes away: the guest estimates, labelled, with the reason in warnings and doctor
        serve.terminate()
        serve.wait(timeout=10)
        r = _run("--once", "--json", "--interval", "0.3", "--probes", "procfs", "--no-gpu", "--sysfs-root",
                 str(empty_sys), "--host-power", base, "--vm", "web1", "--token-file", str(tmp_path / "vm.token"))
        guest = Snapshot.loads(r.stdout)
        assert guest.estimated and not guest.source("host").ok
        assert "cannot connect" in guest.source("host").detail and any("host:" in w for w in guest.warnings)
        r = _run("doctor", "--probes", "procfs", "--no-gpu", "--sysfs-root", str(empty_sys), "--host-power", base,
                 "--vm", "web1", "--host-power-token", str(tmp_path / "vm.token"))
        assert r.returncode == 0 and "host" in r.stdout and "cannot connect" in r.stdout
        assert VM_TOKEN not in r.stdout + r.stderr
    finally:
        stop.set()
        if serve is not None and serve.poll() is None:
            serve.terminate()
            serve.wait(timeout=10)
        qemu.kill()
        qemu.wait()
        if cgroup is not None:
            for _ in range(50):
                try:
                    cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
            try:
                cgroup.parent.rmdir()  # machine.slice, when this test made it and nothing else is in it
            except OSError:
                pass


def vm_path(snap: Snapshot, vm_id: str) -> str:
    from urllib.parse import quote

    path = next(p for p, r in snap.root.walk() if r.id == vm_id)
    return quote("/".join(path), safe="")


def test_guest_serve_and_record_say_their_total_came_from_the_host(tmp_path: Path) -> None:
    """`serve` and `record` in a guest use --host-power too: their snapshots name the host source."""
    from keck_tui.recording import read_recording
    from keck_tui.vm.export import SCHEMA
    from keck_tui.vm.files import write_vm_file

    doc = {"schema": SCHEMA, "vm": "web1", "kind": "qemu", "host": "hv1", "time": time.time(), "interval_s": 1.0,
           "watts": 11.25, "watts_lo": 10.0, "watts_hi": 12.5, "joules": 50.0, "components": {"cpu": 8.0, "dram": 3.0},
           "estimated": False, "sources": ["rapl"], "seq": 1}
    share = tmp_path / "share"
    share.mkdir()
    path = write_vm_file(str(share), "web1", json.dumps(doc).encode())
    empty_sys = tmp_path / "sys"
    empty_sys.mkdir()
    common = ["--probes", "procfs", "--no-gpu", "--sysfs-root", str(empty_sys), "--host-power", f"file://{path}",
              "--vm", "web1"]
    rec = tmp_path / "guest.jsonl"
    r = _run("record", str(rec), "--count", "2", "--interval", "0.3", *common)
    assert r.returncode == 0, r.stderr
    snaps, _ = read_recording(rec)
    assert len(snaps) == 2
    for snap in snaps:
        assert snap.source("host").ok and snap.source("host").extra["vm"] == "web1"
        assert abs(snap.root.watts - 11.25) <= 1e-6 and not snap.estimated

    serve = subprocess.Popen([sys.executable, "-m", "keck_tui", "serve", "--listen", "127.0.0.1:0", "--interval", "0.3",
                              *common], stderr=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        base = _listening(serve)
        deadline = time.monotonic() + 30
        while True:
            status, body = _get(f"{base}/api/v1/snapshot", None)
            if status == 200:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        snap = Snapshot.loads(body)  # what attach decodes
        assert snap.source("host").ok and abs(snap.root.watts - 11.25) <= 1e-6
        assert "host" in (snap.root.sources or ())
    finally:
        serve.terminate()
        serve.wait(timeout=10)


@pytest.mark.root
def test_vcpu_threads_with_ebpf_probes(tmp_path: Path) -> None:
    """With --probes ebpf (root + bcc), the VM's process time is eBPF's and its threads still come
    from procfs, scaled to that exact total."""
    if os.geteuid() != 0:
        pytest.skip("eBPF needs root")
    exe = _build_spinner(tmp_path)
    qemu = subprocess.Popen(["qemu-system-x86_64", "-name", "guest=web3,debug-threads=on"], executable=str(exe),
                            env={"SPIN_THREADS": "2", "SPIN_SECONDS": "30", "SPIN_DUTY": "40"})
    try:
        time.sleep(0.3)
        r = _run("--once", "--json", "--probes", "ebpf", "--interval", "1.5", "--no-gpu", timeout=120)
        assert r.returncode == 0, r.stderr
        snap = Snapshot.loads(r.stdout)
        ebpf = snap.source("ebpf")
        if ebpf is None or not ebpf.ok or snap.source("procfs") is not None and "procfs instead" in (
                ebpf.detail if ebpf else ""):
            pytest.skip(f"eBPF not available here: {ebpf.detail if ebpf else 'no ebpf source'}")
        vm = next(r for _, r in snap.root.walk() if r.level == "vm" and r.name == "web3")
        proc = next(c for c in vm.children if c.pid == qemu.pid)
        vcpus = [c for c in proc.children if c.level == "vcpu"]
        assert {c.name for c in vcpus} == {"CPU 0/KVM", "CPU 1/KVM"}
        assert sum(c.cpu_s for c in proc.children if c.cpu_s) == pytest.approx(proc.cpu_s, rel=1e-9)
        assert abs(sum(c.watts for c in proc.children) - proc.watts) <= 1e-9 * max(1.0, proc.watts)
    finally:
        qemu.kill()
        qemu.wait()
