"""Virtual machines on a hypervisor host: which process (or cgroup) is which VM.

From the command line (``/proc/<pid>/cmdline``, arguments joined by single spaces):

* QEMU/KVM (``qemu-system-*``, ``qemu-kvm``, Proxmox's ``kvm``): ``-name guest=NAME,...`` (libvirt
  since 1.3.5) or ``-name NAME[,...]`` (Proxmox, older libvirt; ``,,`` is an escaped comma);
  Proxmox's ``-id VMID``. KubeVirt's virt-launcher names the libvirt domain
  ``<namespace>_<vmi>`` and leaves ``/var/run/kubevirt-private/`` paths or
  ``manufacturer=KubeVirt`` in the arguments: the VM is the VMI.
* Firecracker (and its jailer): ``--id ID`` / ``--id=ID``.
* cloud-hypervisor has no name argument: the API socket's folder (Kata: ``/run/vc/vm/<sandbox>/``)
  or else ``cloud-hypervisor-<pid>``.

From the cgroup path (any process inside the VM's cgroup: QEMU itself, virtiofsd, swtpm):
libvirt's systemd scope ``machine.slice/machine-qemu\\x2d<id>\\x2d<name>.scope`` (the name is
truncated to 20 characters there, so a QEMU command line's full name wins when both are known),
non-systemd ``/machine/qemu-<id>-<name>.libvirt-qemu``, legacy ``/libvirt/qemu/<name>``,
Proxmox ``qemu.slice/<vmid>.scope``, the Firecracker jailer's ``/firecracker/<id>`` and Kata's
``/kata/<ns>/kata_<sandbox>``.

Pure functions, no I/O. Sources for the formats: SOURCE.md of the VM test fixtures (kept outside the
repository, see tests/conftest.py).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

KIND_QEMU = "qemu"
KIND_KUBEVIRT = "kubevirt"
KIND_FIRECRACKER = "firecracker"
KIND_CLOUD_HYPERVISOR = "cloud-hypervisor"
KIND_KATA = "kata"

#: comm of a QEMU vCPU thread: "CPU <n>/KVM" (qemu accel/kvm/kvm-accel-ops.c)
VCPU_THREAD = re.compile(r"^CPU (\d+)/KVM$")
_NAME_MAX = 128


@dataclass(frozen=True)
class VmIdentity:
    kind: str  # qemu | kubevirt | firecracker | cloud-hypervisor | kata
    name: str  # what the host calls the VM (libvirt domain, VMI, Firecracker id, VMID)
    source: str  # "cmdline" | "cgroup"
    vm_id: str | None = None  # libvirt domain id, Proxmox VMID
    namespace: str | None = None  # KubeVirt: the VMI's namespace
    scope: str | None = None  # the cgroup scope/folder that holds the VM, when known
    truncated: bool = False  # the name may be cut (libvirt scope names)

    def to_json(self) -> dict[str, str | bool]:
        out: dict[str, str | bool] = {"kind": self.kind, "name": self.name, "source": self.source}
        for key in ("vm_id", "namespace", "scope"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.truncated:
            out["truncated"] = True
        return out


def _clean(name: str) -> str | None:
    """A VM name fit for a row: printable, no '/', bounded."""
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name or name in (".", ".."):
        return None
    return name.replace("/", ":")[:_NAME_MAX]


def _option(args: list[str], *names: str) -> str | None:
    """The value of ``-name V``/``--name V``/``--name=V`` in an argument list."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
    return None


def _qemu_name(value: str) -> str | None:
    """``guest=web1,debug-threads=on`` → ``web1``; ``yf01`` → ``yf01``; ``a,,b,process=x`` → ``a,b``."""
    parts = re.split(r"(?<!,),(?!,)", value)  # split on single commas; ",," is an escaped comma
    name = None
    for part in parts:
        if part.startswith("guest="):
            name = part[len("guest="):]
            break
    if name is None and parts and "=" not in parts[0]:
        name = parts[0]
    return name.replace(",,", ",") if name else None


def _is_qemu(exe: str) -> bool:
    return exe.startswith("qemu-system-") or exe in ("qemu-kvm", "kvm", "qemu-system")


def vm_from_cmdline(cmd: str, comm: str = "", pid: int | None = None) -> VmIdentity | None:
    """The VM a process runs, from its command line; None for anything else."""
    if not cmd:
        return None
    args = cmd.split()
    exe = os.path.basename(args[0]) if args else ""
    if _is_qemu(exe) or (comm.startswith("qemu-system") and "-name" in args):
        value = _option(args, "-name", "--name")
        vmid = _option(args, "-id")
        name = _qemu_name(value) if value else None
        if name is None and vmid is not None:
            name = vmid
        name = _clean(name or "")
        if name is None:
            name = f"qemu-{pid}" if pid is not None else None
        if name is None:
            return None
        kubevirt = "/var/run/kubevirt-private/" in cmd or "manufacturer=KubeVirt" in cmd
        if kubevirt and "_" in name:
            ns, vmi = name.split("_", 1)
            return VmIdentity(KIND_KUBEVIRT, vmi, "cmdline", namespace=ns)
        return VmIdentity(KIND_KUBEVIRT if kubevirt else KIND_QEMU, name, "cmdline", vm_id=vmid)
    if exe in ("firecracker", "jailer"):
        ident = _clean(_option(args, "--id") or "")
        if ident is None and pid is not None:
            ident = f"firecracker-{pid}"
        return VmIdentity(KIND_FIRECRACKER, ident, "cmdline") if ident else None
    if exe == "cloud-hypervisor":
        sock = _option(args, "--api-socket")
        name = None
        if sock:
            path = sock.split(",")[0]
            path = path[len("path="):] if path.startswith("path=") else path
            folder = os.path.basename(os.path.dirname(path))
            name = _clean(folder) if folder not in ("", "tmp", "run") else None
        if name is None and pid is not None:
            name = f"cloud-hypervisor-{pid}"
        return VmIdentity(KIND_CLOUD_HYPERVISOR, name, "cmdline") if name else None
    return None


def _unescape_systemd(text: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


_LIBVIRT_SCOPE = re.compile(r"^machine-(qemu|lxc)-(\d+)-(.+)\.scope$")
_LIBVIRT_NOSYSTEMD = re.compile(r"^(qemu|lxc)-(\d+)-(.+)\.libvirt-(qemu|lxc)$")
_PROXMOX = re.compile(r"^(\d+)\.scope$")


def vm_from_cgroup(path: str) -> VmIdentity | None:
    """The VM whose cgroup holds a process, from the cgroup path; None when it is no VM's."""
    parts = [p for p in path.split("/") if p]
    for i, raw in enumerate(parts):
        part = _unescape_systemd(raw)
        m = _LIBVIRT_SCOPE.match(part)
        if m and m.group(1) == "qemu":
            name = _clean(m.group(3))
            scope = "/" + "/".join(parts[: i + 1])
            return VmIdentity(KIND_QEMU, name, "cgroup", vm_id=m.group(2), scope=scope,
                              truncated=len(m.group(3)) >= 20) if name else None
        m = _LIBVIRT_NOSYSTEMD.match(part)
        if m and m.group(1) == "qemu" and i > 0 and parts[i - 1] == "machine":
            name = _clean(m.group(3))
            return VmIdentity(KIND_QEMU, name, "cgroup", vm_id=m.group(2),
                              scope="/" + "/".join(parts[: i + 1])) if name else None
        if part == "qemu" and i >= 1 and parts[i - 1] == "libvirt" and i + 1 < len(parts):
            name = _clean(parts[i + 1])
            return VmIdentity(KIND_QEMU, name, "cgroup", scope="/" + "/".join(parts[: i + 2])) if name else None
        if part == "qemu.slice" and i + 1 < len(parts):
            m = _PROXMOX.match(parts[i + 1])
            if m:
                return VmIdentity(KIND_QEMU, m.group(1), "cgroup", vm_id=m.group(1),
                                  scope="/" + "/".join(parts[: i + 2]))
        if part == "firecracker" and i + 1 < len(parts) and i + 2 == len(parts):
            name = _clean(parts[i + 1])
            return VmIdentity(KIND_FIRECRACKER, name, "cgroup", scope="/" + "/".join(parts[: i + 2])) if name else None
        if part.startswith("kata_") and i >= 1:
            name = _clean(part[len("kata_"):][:12])
            return VmIdentity(KIND_KATA, name, "cgroup", scope="/" + "/".join(parts[: i + 1])) if name else None
    return None


def detect_vm(cmd: str, comm: str, cgroup_path: str, pid: int | None = None) -> VmIdentity | None:
    """A process's VM: its command line's identity (full name), else its cgroup's.

    A QEMU process in a libvirt scope keeps the scope, so that other processes of the same
    scope (virtiofsd, swtpm) can be put under the same VM by :class:`VmNames`.
    """
    by_cmd = vm_from_cmdline(cmd, comm, pid)
    by_cgroup = vm_from_cgroup(cgroup_path) if cgroup_path else None
    if by_cmd is None:
        return by_cgroup
    if by_cgroup is not None and by_cmd.kind in (KIND_QEMU, KIND_FIRECRACKER):
        return VmIdentity(by_cmd.kind, by_cmd.name, "cmdline", vm_id=by_cmd.vm_id or by_cgroup.vm_id,
                          namespace=by_cmd.namespace, scope=by_cgroup.scope)
    return by_cmd


def is_vm_process(comm: str, cmd: str) -> bool:
    """Cheap test for the sampler: does this process run a VM (so its threads are worth reading)?"""
    return vm_from_cmdline(cmd, comm) is not None or comm.startswith("qemu-system")


class VmNames:
    """Full names learned from QEMU command lines, for processes that only have the scope.

    libvirt cuts the name in the scope; the QEMU process in the same scope has the full one.
    Bounded: at most ``limit`` scopes are remembered.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._by_scope: dict[str, VmIdentity] = {}
        self._limit = limit

    def resolve(self, vm: VmIdentity) -> VmIdentity:
        if vm.scope is None:
            return vm
        if vm.source == "cmdline":
            if vm.scope not in self._by_scope and len(self._by_scope) >= self._limit:
                self._by_scope.clear()
            self._by_scope[vm.scope] = vm
            return vm
        return self._by_scope.get(vm.scope, vm)


def vm_row_id(vm: VmIdentity) -> str:
    """Stable row id of a VM: ``vm-<name>`` (KubeVirt: ``vm-<namespace>.<name>``)."""
    name = f"{vm.namespace}.{vm.name}" if vm.namespace else vm.name
    return f"vm-{name}"
