"""Bounded reading of documents from outside: files, then JSON or TOML.

Everything keck-top reads from outside (config and fleet files, token and
credential files, recordings' lines, peers' answers) goes through a size cap
and a nesting limit before anything interprets it: ``/dev/zero`` as a config
file, a FIFO nobody writes, a 200 MB answer or ``[[[[…]]]]`` nested 100,000
deep are one-line errors, not a MemoryError, a hang or a RecursionError.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tomllib
from typing import IO, Any

#: Default caps (bytes) by kind of file.
SMALL_FILE = 64 * 1024  # tokens, credentials
CONFIG_FILE = 4 * 1024 * 1024  # config and fleet files
DATA_FILE = 256 * 1024 * 1024  # files read whole for a tool or a demo (saved powermetrics output, serve --from-file)
MAX_NESTING = 64  # lists/objects inside each other in any document keck-top reads


class BoundedInputError(ValueError):
    """A document is too large, too deep, not a regular file, or not parseable (one line)."""


def read_file(path: str | os.PathLike[str], limit: int, what: str = "file", *,
              follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Symlinks are followed (a Kubernetes ConfigMap is one), but what they lead to
    must be a regular file: FIFOs, sockets and devices are refused without
    blocking (O_NONBLOCK); only the null device is read, as empty.
    ``follow_symlinks=False`` refuses a symlink (O_NOFOLLOW): for files keck-top
    wrote itself, which are never links. A file that grows past ``limit`` while
    read is refused too. OSErrors other than these propagate (FileNotFoundError …).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise BoundedInputError(f"{what} {path} is a symbolic link: refused") from None
        raise
    try:
        info = os.fstat(fd)
        if _is_null_device(info):  # `--config /dev/null`: the usual way to say "nothing"
            return b""
        if not stat.S_ISREG(info.st_mode):
            raise BoundedInputError(f"{what} {path} is not a regular file")
        if info.st_size > limit:
            raise BoundedInputError(f"{what} {path} is larger than {_size(limit)}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise BoundedInputError(f"{what} {path} is larger than {_size(limit)}")
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise BoundedInputError(f"{what} {path} is a directory") from None
        raise
    finally:
        os.close(fd)


def open_regular(path: str | os.PathLike[str], what: str = "file") -> IO[bytes]:
    """``path`` opened for binary reading if it is a regular file (a recording to stream).

    FIFOs, sockets and devices are refused without blocking (``/dev/zero`` as a recording
    would be read for ever, a FIFO nobody writes would hang); OSErrors propagate.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BoundedInputError(f"{what} {path} is not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_stream(stream: IO[bytes], limit: int, what: str = "input") -> bytes:
    """At most ``limit`` bytes of a stream (stdin), or BoundedInputError when it holds more."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise BoundedInputError(f"{what} is larger than {_size(limit)}")
    return data


def _is_null_device(info: os.stat_result) -> bool:
    if not stat.S_ISCHR(info.st_mode):
        return False
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(null.st_mode) and info.st_rdev == null.st_rdev


def parse_json(data: bytes | str, *, max_depth: int = MAX_NESTING, what: str = "document") -> Any:
    """``json.loads`` that turns deep nesting and bad text into :class:`BoundedInputError`."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BoundedInputError(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BoundedInputError(f"{what} is not JSON: {_one_line(exc)}") from None
    check_depth(value, max_depth, what)
    return value


def parse_toml(data: bytes, *, max_depth: int = MAX_NESTING, what: str = "document") -> dict[str, Any]:
    """``tomllib.loads`` of UTF-8 bytes with the same guarantees as :func:`parse_json`."""
    try:
        value = tomllib.loads(data.decode("utf-8"))
    except RecursionError:
        raise BoundedInputError(f"{what} is nested too deeply") from None
    except UnicodeDecodeError:
        raise BoundedInputError(f"{what} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise BoundedInputError(f"{what}: {_one_line(exc)}") from None
    check_depth(value, max_depth, what)
    return value


def check_depth(value: Any, max_depth: int, what: str = "document") -> None:
    """Raise if lists/objects nest deeper than ``max_depth`` (iterative: no recursion).

    Level by level, holding only the containers of one level: every answer an agent sends
    goes through here, and pushing every scalar too made this cost more than the parse.
    """
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        if depth >= max_depth:
            raise BoundedInputError(f"{what} is nested more than {max_depth} deep")
        below = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, (dict, list)):
                    below.append(child)
        level = below
        depth += 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"
