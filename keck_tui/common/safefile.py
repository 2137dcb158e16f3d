"""Creating files safely as root: never through a symlink, never onto a device or FIFO.

keck-top often runs as root. A recording path, an export file or a state file
that an unprivileged user can point elsewhere (a symlink in /tmp, a dangling
link, a FIFO that blocks the writer, a block device) must be refused, not
followed. Every file keck-top writes is opened here.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import IO

NEW = "new"  # create; refuse if anything (file, link, dangling link) is there
OVERWRITE = "overwrite"  # create or truncate an existing regular file
APPEND = "append"  # create or append to an existing regular file
MODES = (NEW, OVERWRITE, APPEND)


class UnsafeFileError(OSError):
    """The path is a symlink or not a regular file, or it exists and mode is NEW."""


def open_for_writing(path: str | os.PathLike[str], mode: str = NEW, *, perms: int = 0o644) -> IO[bytes]:
    """Open ``path`` for binary writing without following a symlink in its last component.

    ``NEW`` uses O_EXCL (a dangling symlink counts as existing), ``OVERWRITE``
    truncates only after checking that what was opened is a regular file, and
    ``APPEND`` writes at the end. FIFOs are refused without blocking (O_NONBLOCK).
    Raises :class:`UnsafeFileError` with a one-line reason, or the OSError.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if mode == NEW:
        flags |= os.O_EXCL
    elif mode == APPEND:
        flags |= os.O_APPEND
    path = Path(path)
    try:
        fd = os.open(path, flags, perms)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(exc.errno, f"{path} is a symbolic link: refused") from None
        if exc.errno == errno.EEXIST:
            what = "a symbolic link" if path.is_symlink() else "there"
            raise UnsafeFileError(exc.errno, f"{path} exists ({what})") from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader
            raise UnsafeFileError(exc.errno, f"{path} is not a regular file: refused") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(errno.EINVAL, f"{path} is not a regular file: refused")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        if mode == OVERWRITE:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "ab" if mode == APPEND else "wb")
    except BaseException:
        os.close(fd)
        raise


def replace_atomically(path: str | os.PathLike[str], data: bytes, *, perms: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a new temporary file beside it and rename it into place.

    Readers see the old or the new content, never a part. The temporary file is
    created with O_EXCL|O_NOFOLLOW; ``path`` itself, if it is a symlink, is
    replaced by the file (rename does not follow it), never written through.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_for_writing(tmp, NEW, perms=perms) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
