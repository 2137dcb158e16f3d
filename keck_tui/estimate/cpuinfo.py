"""What ``/proc/cpuinfo`` says about the CPU: model name, cpuid numbers, sockets, flags.

Pure parsing (no I/O). The model name is kept exactly as the kernel prints it (inner runs of
blanks are part of Intel's brand strings). On arm64 there is no ``model name``: the
implementer/part registers identify the core.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Strings hypervisors put in place of the SKU (no digits to look up).
_MASKED = re.compile(r"^(intel\(r\) xeon\(r\) (cpu|processor)|amd epyc processor|common kvm processor|"
                     r"qemu virtual cpu|common 32-bit kvm processor)\b", re.IGNORECASE)


@dataclass(frozen=True)
class CpuIdentity:
    model_name: str = ""
    vendor: str | None = None  # GenuineIntel | AuthenticAMD | ...
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    arm_implementer: int | None = None
    arm_part: int | None = None
    logical_cpus: int = 0  # processors listed
    sockets: int = 1  # distinct physical ids (1 when not listed)
    threads_per_socket: int | None = None  # "siblings"
    cores_per_socket: int | None = None  # "cpu cores"
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def hypervisor_flag(self) -> bool:
        """cpuid leaf 1 ECX bit 31, which every hypervisor sets for its guests."""
        return "hypervisor" in self.flags

    @property
    def masked(self) -> bool:
        """The model name carries no SKU: a hypervisor's generic name, or none at all."""
        name = self.model_name.strip()
        if not name:
            return True
        if _MASKED.match(name) and not re.search(r"\d{3,}", re.sub(r"@.*", "", name)):
            return True
        return False


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as its blank-line-separated blocks of ``key: value`` fields.

    Keys and values are stripped; within a block the first of a repeated key wins. A block
    is a processor's where ``fields["processor"]`` is a number; others are header blocks.
    """
    blocks: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        blocks.append(fields)
    return blocks


def parse_cpuinfo_identity(text: str) -> CpuIdentity:
    """The identity of the first processor, plus counts over all of them."""
    first: dict[str, str] = {}  # the first processor's fields
    header: dict[str, str] = {}  # fields outside any processor block (older Arm kernels)
    processors = 0
    physical: set[str] = set()
    for fields in cpuinfo_blocks(text):
        if not fields.get("processor", "").isdigit():
            for key, value in fields.items():
                header.setdefault(key, value)
            continue
        processors += 1
        if "physical id" in fields:
            physical.add(fields["physical id"])
        if not first:
            first = fields
    first = {**header, **first}
    name = first.get("model name") or first.get("Processor") or first.get("cpu model") or ""
    # The kernel strips only leading blanks: keep inner runs, drop trailing ones.
    name = name.rstrip()
    flags = frozenset((first.get("flags") or first.get("Features") or "").split())
    return CpuIdentity(
        model_name=name,
        vendor=first.get("vendor_id") or None,
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        arm_implementer=_int(first.get("CPU implementer"), 16) if "CPU implementer" in first else None,
        arm_part=_int(first.get("CPU part"), 16) if "CPU part" in first else None,
        logical_cpus=processors,
        sockets=max(1, len(physical)),
        threads_per_socket=_int(first.get("siblings")),
        cores_per_socket=_int(first.get("cpu cores")),
        flags=flags,
    )
