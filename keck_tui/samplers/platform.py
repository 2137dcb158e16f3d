"""What the machine says about its CPU, memory and virtualisation (for the estimate).

Read once at start-up through re-rootable roots (tests use fake trees):

* ``<procfs>/cpuinfo`` (model name, cpuid family/model, sockets, the ``hypervisor`` flag) and
  ``<procfs>/meminfo`` (``MemTotal``);
* ``<sysfs>/hypervisor/type`` (Xen guests), ``<sysfs>/class/dmi/id/{sys_vendor,product_name,
  bios_vendor,board_vendor}`` (the cloud's name: "Amazon EC2", "Google Compute Engine",
  "Microsoft Corporation"/"Virtual Machine", "QEMU", "KVM" …);
* the number of online CPUs from ``<sysfs>/devices/system/cpu/online``, else cpuinfo.

The hypervisor's own cpuid leaf (0x40000000) needs the cpuid instruction or the ``cpuid``
kernel module; keck-top reads ``<dev>/cpu/0/cpuid`` when that module is loaded and readable and
otherwise relies on the flag and DMI. Every read is size-capped; a missing file is no error.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from keck_tui.common.bounded import BoundedInputError, read_file
from keck_tui.estimate.cpuinfo import parse_cpuinfo_identity
from keck_tui.estimate.profile import PlatformFacts
from keck_tui.samplers.fileio import parse_cpu_list

CPUINFO_LIMIT = 8 * 1024 * 1024  # 512 logical CPUs × ~1.5 KiB, with room
SMALL_LIMIT = 4096

# (field, substring in lower case) -> provider
_PROVIDERS = (
    ("sys_vendor", "amazon", "aws"), ("bios_vendor", "amazon", "aws"), ("product_name", "amazon ec2", "aws"),
    ("sys_vendor", "google", "gcp"), ("product_name", "google compute engine", "gcp"),
    ("sys_vendor", "microsoft corporation", "azure"),
)
_VIRTUAL_VENDORS = ("qemu", "kvm", "xen", "vmware", "innotek", "virtualbox", "microsoft corporation", "amazon ec2",
                    "google", "openstack", "parallels", "bochs", "red hat", "nutanix", "cloud-hypervisor",
                    "firecracker", "alibaba cloud", "hetzner")
_HYPERVISOR_SIGNATURES = {b"KVMKVMKVM\0\0\0": "KVM", b"Microsoft Hv": "Hyper-V", b"VMwareVMware": "VMware",
                          b"XenVMMXenVMM": "Xen", b"TCGTCGTCGTCG": "QEMU TCG", b"ACRNACRNACRN": "ACRN",
                          b"bhyve bhyve ": "bhyve", b" lrpepyh  vr": "Parallels"}


def _read_capped(path: Path, limit: int) -> str | None:
    """A small pseudo-file as text (common/bounded: regular files only, capped), None if unreadable."""
    try:
        return read_file(path, limit, "platform file").decode("utf-8", "replace")
    except (OSError, BoundedInputError):
        return None


def _online_cpus(text: str | None) -> int | None:
    """``0-3,8-11`` → 8."""
    return len(parse_cpu_list(text or "")) or None


def _mem_total(text: str | None) -> int | None:
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def hypervisor_from_cpuid_device(dev_root: Path | str = "/dev") -> str | None:
    """The hypervisor vendor from cpuid leaf 0x40000000 via the ``cpuid`` module's device."""
    try:
        fd = os.open(Path(dev_root, "cpu", "0", "cpuid"), os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, 16, 0x40000000)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != 16:
        return None
    _eax, ebx, ecx, edx = struct.unpack("<4I", data)
    return _HYPERVISOR_SIGNATURES.get(struct.pack("<3I", ebx, ecx, edx))


def read_platform_facts(procfs_root: Path | str = "/proc", sysfs_root: Path | str = "/sys",
                        dev_root: Path | str | None = "/dev") -> PlatformFacts:
    proc, sys_ = Path(procfs_root), Path(sysfs_root)
    identity = parse_cpuinfo_identity(_read_capped(proc / "cpuinfo", CPUINFO_LIMIT) or "")
    online = _online_cpus(_read_capped(sys_ / "devices" / "system" / "cpu" / "online", SMALL_LIMIT))
    logical = online or identity.logical_cpus or os.cpu_count() or 1
    dmi = {name: (_read_capped(sys_ / "class" / "dmi" / "id" / name, SMALL_LIMIT) or "").strip()
           for name in ("sys_vendor", "product_name", "bios_vendor", "board_vendor")}
    xen = (_read_capped(sys_ / "hypervisor" / "type", SMALL_LIMIT) or "").strip()
    reasons: list[str] = []
    if identity.hypervisor_flag:
        reasons.append("cpuinfo flag 'hypervisor'")
    if xen:
        reasons.append(f"{sys_ / 'hypervisor' / 'type'} = {xen[:40]}")
    vendor_text = " ".join(v for v in dmi.values() if v).lower()
    vendor_hit = next((v for v in _VIRTUAL_VENDORS if v in vendor_text), None)
    if vendor_hit and not (vendor_hit == "microsoft corporation" and "virtual machine" not in dmi["product_name"].lower()):
        reasons.append(f"DMI {dmi['sys_vendor'] or dmi['bios_vendor']!r} {dmi['product_name']!r}".strip())
    hv = hypervisor_from_cpuid_device(dev_root) if dev_root is not None and identity.hypervisor_flag else None
    if hv:
        reasons.append(f"cpuid leaf 0x40000000: {hv}")
    provider, provider_why = None, ""
    for name, needle, which in _PROVIDERS:
        if needle in dmi[name].lower():
            if which == "azure" and "virtual machine" not in dmi["product_name"].lower():
                continue
            provider, provider_why = which, f"DMI {name} {dmi[name]!r}"
            break
    return PlatformFacts(identity=identity, logical_cpus=logical, virtual=bool(reasons),
                         virtual_why="; ".join(reasons), provider=provider, provider_why=provider_why,
                         mem_total_bytes=_mem_total(_read_capped(proc / "meminfo", 65536)))
