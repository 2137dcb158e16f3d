"""Small state files that keck-top writes for itself: atomic, never through a symlink, size-capped.

keck-top runs as root beside secrets, so a file it keeps (the calibrated model)
must not become a way to overwrite or disclose another file:

* writing creates a new file next to the target (``O_CREAT|O_EXCL|O_NOFOLLOW``,
  mode 0600), fsyncs it and renames it over the target; a rename replaces a
  symlink at the target instead of following it, so nothing is written through
  one. keck-top's own directory is created 0700 and must not be a symlink.
* reading opens with ``O_NOFOLLOW`` (a symlink is refused), requires a regular
  file and reads at most ``max_bytes`` (a bigger file is refused, not truncated).
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class StateFileError(Exception):
    """A state file could not be read or written; the message says why, in one line."""


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_dir(directory: Path, create: bool) -> int:
    if create:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateFileError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    try:
        return os.open(directory, _DIR_FLAGS)
    except OSError as exc:
        if directory.is_symlink():
            raise StateFileError(f"{directory} is a symlink: refused") from exc
        raise StateFileError(f"cannot open {directory}: {exc.strerror or exc}") from exc


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (readers see the old or the new file, never half)."""
    path = Path(path)
    dfd = _open_dir(path.parent, create=True)
    tmp = f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, mode, dir_fd=dfd)
        except OSError as exc:
            raise StateFileError(f"cannot write in {path.parent}: {exc.strerror or exc}") from exc
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            raise StateFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            raise StateFileError(f"cannot replace {path}: {exc.strerror or exc}") from exc
        tmp = ""
        try:
            os.fsync(dfd)
        except OSError:
            pass  # some filesystems cannot fsync a directory; the rename is done
    finally:
        if tmp:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
        os.close(dfd)


def read_capped(path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes; None when it does not exist. Symlinks, non-regular and oversized files raise."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise StateFileError(f"{path} is a symlink: refused") from exc
        raise StateFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateFileError(f"{path} is not a regular file: refused")
        if st.st_size > max_bytes:
            raise StateFileError(f"{path} is {st.st_size} bytes, over the {max_bytes}-byte limit: refused")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise StateFileError(f"{path} grew over the {max_bytes}-byte limit while read: refused")
        return data
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
