"""VM detection from real command lines and cgroup paths (../shared/fixtures/vms)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_fixture
from keck_tui.hierarchy.vms import (VCPU_THREAD, VmNames, detect_vm, vm_from_cgroup, vm_from_cmdline,
                                    vm_row_id)


def _data_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.startswith("#")]


def test_qemu_command_lines_from_fixtures() -> None:
    lines = _data_lines(shared_fixture("vms", "qemu-cmdlines.txt"))
    got = [vm_from_cmdline(line, pid=7) for line in lines]
    assert [(v.kind, v.name, v.vm_id, v.namespace) for v in got] == [
        ("qemu", "instance-00000028", None, None),  # Q1 OpenStack nova, guest=
        ("qemu", "yf01", "109", None),  # Q2 Proxmox -id 109 -name yf01
        ("qemu", "win10", "100", None),  # Q3 Proxmox, name,debug-threads=on
        ("qemu", "Win2008x64", "108", None),  # Q4 -name after -smbios
        ("qemu", "pve100-wts1c", "1010", None),  # Q5
        ("qemu", "simple", "8006", None),  # Q6 generator output
        ("kubevirt", "tschnorr-ed25519-performance-test-79cng-1", None, "tnets"),  # Q7 VMI name
        ("kubevirt", "testvm-2", None, "default"),  # Q8
        ("qemu", "fedora40-wor", None, None),  # Q9 GNOME Boxes (libvirt session)
        ("qemu", "Catalina", None, None),  # Q10
    ]


def test_microvm_command_lines_from_fixtures() -> None:
    lines = _data_lines(shared_fixture("vms", "microvm-cmdlines.txt"))
    got = [vm_from_cmdline(line, pid=99) for line in lines]
    assert [(v.kind, v.name) for v in got] == [
        ("firecracker", "551e7604-e35c-42b3-b825-416853441234"),  # jailer --id
        ("firecracker", "551e7604-e35c-42b3-b825-416853441234"),  # firecracker --id=
        ("cloud-hypervisor", "cloud-hypervisor-99"),  # no name argument exists
    ]


def test_cgroup_paths_from_fixtures() -> None:
    lines = _data_lines(shared_fixture("vms", "vm-cgroups.txt"))
    got = [vm_from_cgroup(line) for line in lines]
    assert [(v.kind, v.name, v.vm_id) for v in got] == [
        ("qemu", "rootdefault", "3"), ("qemu", "win10", "1"), ("qemu", "win10", "1"), ("qemu", "vm1", "1"),
        ("qemu", "vm2", "2"), ("qemu", "vm1", "1"), ("qemu", "vm1", None), ("qemu", "100", "100"),
        ("firecracker", "551e7604-e35c-42b3-b825-416853441234", None), ("kata", "9f49ba797580", None),
    ]
    # the scope of the emulator and vCPU sub-cgroups is the VM's scope
    assert got[1].scope == got[2].scope == "/machine.slice/machine-qemu\\x2d1\\x2dwin10.scope"


@pytest.mark.parametrize("cmd", [
    "", "/usr/bin/python3 -m http.server", "/usr/sbin/libvirtd --timeout 120", "qemu-img convert a b",
    "/usr/bin/virtiofsd --socket-path=/run/x.sock", "bash -c qemu-system-x86_64",
])
def test_other_processes_are_no_vm(cmd: str) -> None:
    assert vm_from_cmdline(cmd) is None


@pytest.mark.parametrize("path", ["/", "/system.slice/libvirtd.service", "/machine.slice",
                                  "/kubepods.slice/kubepods-pod1.slice", "/user.slice/user-0.slice/session-1.scope"])
def test_other_cgroups_are_no_vm(path: str) -> None:
    assert vm_from_cgroup(path) is None


def test_name_escapes_and_hostile_names() -> None:
    assert vm_from_cmdline("qemu-system-x86_64 -name guest=a,,b,debug-threads=on").name == "a,b"
    assert vm_from_cmdline("qemu-system-x86_64 -name guest=../../etc").name == "..:..:etc"
    assert vm_from_cmdline("qemu-system-x86_64 -m 1G", pid=5).name == "qemu-5"  # no -name
    assert len(vm_from_cmdline("qemu-system-x86_64 -name guest=" + "x" * 5000).name) == 128


def test_libvirt_scope_and_cmdline_agree_on_one_vm() -> None:
    scope = "/machine.slice/machine-qemu\\x2d4\\x2dverylongdomainnameab.scope"
    names = VmNames()
    qemu = names.resolve(detect_vm("/usr/bin/qemu-system-x86_64 -name guest=verylongdomainnameabcdef,debug-threads=on",
                                   "qemu-system-x86", scope + "/libvirt/emulator"))
    helper = names.resolve(detect_vm("/usr/libexec/virtiofsd --fd=3", "virtiofsd", scope))
    assert qemu.name == helper.name == "verylongdomainnameabcdef"
    assert vm_row_id(qemu) == vm_row_id(helper) == "vm-verylongdomainnameabcdef"
    alone = detect_vm("/usr/libexec/swtpm socket", "swtpm", scope)
    assert alone.truncated and alone.name == "verylongdomainnameab"


def test_vcpu_thread_names() -> None:
    assert VCPU_THREAD.match("CPU 0/KVM") and VCPU_THREAD.match("CPU 12/KVM")
    assert not VCPU_THREAD.match("qemu-system-x86") and not VCPU_THREAD.match("CPU 0/TCG")
