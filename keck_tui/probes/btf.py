"""Field offsets of kernel structs from the running kernel's BTF (/sys/kernel/btf/vmlinux).

bcc compiles against kernel headers, which on VMs with custom kernels are the
*nearest* distribution headers: struct layouts there need not match the running
kernel. A raw tracepoint hands us ``struct task_struct *``; the few fields we
read through it are located with the running kernel's own type information.
This is a minimal reader of the BTF format (kernel Documentation/bpf/btf.rst).
"""
from __future__ import annotations

import struct
from pathlib import Path

BTF_MAGIC = 0xEB9F
KIND_STRUCT = 4
KIND_UNION = 5

# Bytes that follow ``struct btf_type`` for each kind (per vlen item where marked).
_EXTRA_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}  # INT, ARRAY, VAR, DECL_TAG
_EXTRA_PER_ITEM = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT, UNION, ENUM, FUNC_PROTO, DATASEC, ENUM64


class BtfError(ValueError):
    """The BTF blob is missing, malformed or lacks the requested member."""


def member_offsets(blob: bytes, struct_name: str, members: tuple[str, ...]) -> dict[str, int]:
    """Byte offsets of direct ``members`` of ``struct struct_name`` in a BTF blob."""
    if len(blob) < 24:
        raise BtfError("BTF blob too short")
    magic, = struct.unpack_from("<H", blob, 0)
    if magic != BTF_MAGIC:
        raise BtfError("not a little-endian BTF blob")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", blob, 4)
    types = hdr_len + type_off
    strings = hdr_len + str_off
    want = struct_name.encode() + b"\0"
    # Find the string offset of the struct's name, then the struct type using it.
    name_offs = set()
    pos = blob.find(b"\0" + want, strings - 1, strings + str_len)
    while pos != -1:
        name_offs.add(pos + 1 - strings)
        pos = blob.find(b"\0" + want, pos + 1, strings + str_len)
    if not name_offs:
        raise BtfError(f"no struct {struct_name} in BTF")

    def name_at(off: int) -> str:
        start = strings + off
        return blob[start:blob.index(b"\0", start)].decode(errors="replace")

    pos, end = types, types + type_len
    unpack = struct.unpack_from
    while pos < end:
        name_off, info, _size = unpack("<III", blob, pos)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        body = pos + 12
        if kind in _EXTRA_PER_ITEM:
            pos = body + vlen * _EXTRA_PER_ITEM[kind]
        else:
            pos = body + _EXTRA_FIXED.get(kind, 0)
        if kind != KIND_STRUCT or name_off not in name_offs or vlen == 0:
            continue
        kflag = info >> 31
        found: dict[str, int] = {}
        for i in range(vlen):
            m_name, _m_type, m_off = unpack("<III", blob, body + 12 * i)
            bits = m_off & 0xFFFFFF if kflag else m_off
            name = name_at(m_name) if m_name else ""
            if name in members and bits % 8 == 0:
                found[name] = bits // 8
        missing = [m for m in members if m not in found]
        if missing:
            raise BtfError(f"struct {struct_name} has no member {', '.join(missing)}")
        return found
    raise BtfError(f"no struct {struct_name} in BTF")


def task_offsets(path: str = "/sys/kernel/btf/vmlinux") -> dict[str, int]:
    """Offsets in the running kernel's task_struct: ``pid``, ``tgid``, ``flags``,
    ``prio``, ``start_time`` (monotonic ns at fork), ``sum`` (se.sum_exec_runtime) and
    ``prev_sum`` (se.prev_sum_exec_runtime)."""
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise BtfError(f"kernel BTF unreadable ({path}: {exc.strerror})") from exc
    task = member_offsets(blob, "task_struct", ("pid", "tgid", "flags", "prio", "start_time", "se"))
    se = member_offsets(blob, "sched_entity", ("sum_exec_runtime", "prev_sum_exec_runtime"))
    return {"pid": task["pid"], "tgid": task["tgid"], "flags": task["flags"],
            "prio": task["prio"], "start_time": task["start_time"], "sum": task["se"] + se["sum_exec_runtime"],
            "prev_sum": task["se"] + se["prev_sum_exec_runtime"]}
