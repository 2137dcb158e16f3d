"""The few ``bpf(2)`` commands needed to read pinned maps, through ctypes (no bcc, no LLVM).

keck-top's long-lived process reads the probe's maps from bpffs pins
(:mod:`keck_tui.probes.pinned`); this module is the system-call layer:
``obj_get``/``obj_pin``, ``map_info``, and lookup/update/delete/next-key on a
map fd. Errors are ``OSError`` with the kernel's errno.
"""
from __future__ import annotations

import ctypes as ct
import os
import platform
from dataclasses import dataclass
from typing import Any

# bpf(2) system call numbers; other architectures: no pinned maps (the loader falls back).
_SYSCALL = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY = 1, 2, 3, 4
BPF_OBJ_PIN, BPF_OBJ_GET, BPF_OBJ_GET_INFO_BY_FD = 6, 7, 15
BPF_MAP_LOOKUP_BATCH = 24
#: Map types whose values come one per possible CPU.
PERCPU_TYPES = {5: "percpu_hash", 6: "percpu_array", 10: "lru_percpu_hash"}
MAP_TYPES = {1: "hash", 2: "array", 4: "perf_event_array", 9: "lru_hash", **PERCPU_TYPES}

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


def supported() -> bool:
    """Whether this machine's bpf(2) number is known here."""
    return platform.machine() in _SYSCALL


class _Attr(ct.Structure):
    """``union bpf_attr``, as eight u64 words (every command used here fits)."""

    _fields_ = [("w", ct.c_uint64 * 16)]


def _bpf(cmd: int, attr: _Attr) -> int:
    nr = _SYSCALL.get(platform.machine())
    if nr is None:
        raise OSError(38, f"bpf(2) number unknown on {platform.machine()}")  # ENOSYS
    ret = _libc.syscall(ct.c_long(nr), ct.c_int(cmd), ct.byref(attr), ct.c_uint(ct.sizeof(attr)))
    if ret < 0:
        err = ct.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def _u32_pair(lo: int, hi: int) -> int:
    return (lo & 0xFFFFFFFF) | ((hi & 0xFFFFFFFF) << 32)


def obj_get(path: str) -> int:
    """A new fd for the object pinned at ``path``."""
    name = ct.create_string_buffer(os.fsencode(path))
    attr = _Attr()
    attr.w[0] = ct.addressof(name)
    return _bpf(BPF_OBJ_GET, attr)


def obj_pin(fd: int, path: str) -> None:
    """Pin ``fd`` (map, program or link) at ``path`` in a bpffs."""
    name = ct.create_string_buffer(os.fsencode(path))
    attr = _Attr()
    attr.w[0] = ct.addressof(name)
    attr.w[1] = _u32_pair(fd, 0)
    _bpf(BPF_OBJ_PIN, attr)


@dataclass(frozen=True)
class MapInfo:
    type: int
    key_size: int
    value_size: int
    max_entries: int
    name: str

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES


class _MapInfo(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32),
                ("name", ct.c_char * 16), ("rest", ct.c_uint8 * 64)]


def map_info(fd: int) -> MapInfo:
    info = _MapInfo()
    attr = _Attr()
    attr.w[0] = _u32_pair(fd, ct.sizeof(info))
    attr.w[1] = ct.addressof(info)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return MapInfo(info.type, info.key_size, info.value_size, info.max_entries,
                   info.name.decode(errors="replace"))


def _map_op(cmd: int, fd: int, key: object | None, value: object | None = None, flags: int = 0,
            missing: bool | None = None) -> bool:
    """One element command on map ``fd``: ``key`` and ``value`` are ctypes buffers (a None key:
    address 0). ENOENT returns ``missing`` when one is given (no such key, or no next one), else
    raises like every other error; success returns True."""
    attr = _Attr()
    attr.w[0] = fd
    attr.w[1] = 0 if key is None else ct.addressof(key)  # type: ignore[arg-type]
    if value is not None:
        attr.w[2] = ct.addressof(value)  # type: ignore[arg-type]
    attr.w[3] = flags
    try:
        _bpf(cmd, attr)
    except FileNotFoundError:
        if missing is None:
            raise
        return missing
    return True


def lookup(fd: int, key: ct.Array | ct._SimpleCData | ct.Structure, value: object) -> bool:
    """Fill ``value`` (a ctypes buffer) with the value at ``key``; False when there is none."""
    return _map_op(BPF_MAP_LOOKUP_ELEM, fd, key, value, missing=False)


def update(fd: int, key: object, value: object, flags: int = 0) -> None:
    _map_op(BPF_MAP_UPDATE_ELEM, fd, key, value, flags)


def delete(fd: int, key: object) -> bool:
    """Delete ``key``; False when it was not there."""
    return _map_op(BPF_MAP_DELETE_ELEM, fd, key, missing=False)


def next_key(fd: int, key: object | None, out: object) -> bool:
    """Fill ``out`` with the key after ``key`` (the first key when None); False at the end."""
    return _map_op(BPF_MAP_GET_NEXT_KEY, fd, key, out, missing=False)


def lookup_batch(fd: int, key_type: Any, value_type: Any, max_entries: int) -> list[tuple[Any, Any]]:
    """Every (key, value) of a hash map in a few system calls (``BPF_MAP_LOOKUP_BATCH``).

    Raises OSError (e.g. EINVAL on kernels before 5.6 or map types without batches):
    the caller then walks the keys one by one."""
    chunk = max(1, min(max_entries, 4096))
    keys = (key_type * chunk)()
    values = (value_type * chunk)()
    token_in, token_out = ct.c_uint64(0), ct.c_uint64(0)
    out: list[tuple[Any, Any]] = []
    first = True
    while True:
        attr = _Attr()
        attr.w[0] = 0 if first else ct.addressof(token_in)
        attr.w[1] = ct.addressof(token_out)
        attr.w[2] = ct.addressof(keys)
        attr.w[3] = ct.addressof(values)
        attr.w[4] = _u32_pair(chunk, fd)
        done = False
        try:
            _bpf(BPF_MAP_LOOKUP_BATCH, attr)
        except FileNotFoundError:
            done = True  # the last batch (maybe with entries: count says)
        count = attr.w[4] & 0xFFFFFFFF
        ks, vs = ct.sizeof(key_type), ct.sizeof(value_type)
        for i in range(count):
            out.append((key_type.from_buffer_copy(keys, i * ks), value_type.from_buffer_copy(values, i * vs)))
        if done:
            return out
        token_in.value = token_out.value
        first = False
