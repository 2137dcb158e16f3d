"""The file transport: ``<dir>/<vm>/power.json``, written atomically, never through symlinks.

For hosts that share a folder with each guest (virtiofs, 9p), as Scaphandre does: the host's
agent (``serve --vm-export-dir DIR``) writes every VM's document each interval; the guest reads
``file:///<mount>/power.json`` (``keck-top --host-power``).

Writing: ``DIR`` must exist and be a real directory; ``DIR/<vm>`` is created (mode 0755) when
missing and refused when it is a symlink or not a directory; the document goes to a fresh temp
file opened with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (mode 0644) inside it, is flushed and renamed over
``power.json`` relative to the directory's file descriptor, so a reader sees the old or the new
document, whole, and no path component is ever followed through a symlink. (This is
common/safefile's ``replace_atomically`` done relative to directory file descriptors, because
here the VM's folder is created too and must not be swapped for a link between check and use.)
Reading is common/bounded's ``read_file`` (size cap, regular files only).
"""
from __future__ import annotations

import os
import re
import secrets
import stat

FILE_NAME = "power.json"
DIR_MODE = 0o755
FILE_MODE = 0o644
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class ExportError(OSError):
    """Writing one VM's file failed (one line; the other VMs go on)."""


def safe_file_name(name: str) -> str:
    """A VM name as one safe path component: ``[A-Za-z0-9._-]``, no leading dot, ≤ 128 chars."""
    text = _SAFE.sub("_", name)[:128]
    if not text or text.startswith("."):
        text = "_" + text[:127]
    return text


def _open_dir(path: str | int, name: str | None = None) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    if name is None:
        return os.open(path, flags)  # type: ignore[arg-type]
    return os.open(name, flags, dir_fd=path)  # type: ignore[arg-type]


def write_vm_file(export_dir: str, vm_name: str, body: bytes) -> str:
    """Write ``body`` to ``<export_dir>/<safe vm>/power.json`` atomically; returns the path."""
    sub = safe_file_name(vm_name)
    try:
        root_fd = _open_dir(export_dir)
    except OSError as exc:
        raise ExportError(f"{export_dir}: not a usable directory ({exc.strerror or exc})") from None
    try:
        try:
            os.mkdir(sub, DIR_MODE, dir_fd=root_fd)
        except FileExistsError:
            pass
        try:
            st = os.stat(sub, dir_fd=root_fd, follow_symlinks=False)
        except OSError as exc:
            raise ExportError(f"{export_dir}/{sub}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ExportError(f"{export_dir}/{sub}: not a directory (a symlink or a file): refused")
        vm_fd = _open_dir(root_fd, sub)
        try:
            tmp = f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                         FILE_MODE, dir_fd=vm_fd)
            try:
                try:
                    os.fchmod(fd, FILE_MODE)  # whatever the umask
                    view = memoryview(body)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, FILE_NAME, src_dir_fd=vm_fd, dst_dir_fd=vm_fd)
            except OSError:
                try:
                    os.unlink(tmp, dir_fd=vm_fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(vm_fd)
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(f"{export_dir}/{sub}/{FILE_NAME}: {exc.strerror or exc}") from None
    finally:
        os.close(root_fd)
    return os.path.join(export_dir, sub, FILE_NAME)
