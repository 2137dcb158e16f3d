"""Per-VM bearer tokens: a directory with one file per VM (``serve --vm-token-dir DIR``).

``DIR/<vm name>`` holds that VM's token (one line, at least 16 characters, no blanks inside).
A request carrying it may read ``/api/v1/vm/<vm name>`` and nothing else. Files are read through
common/bounded (no symlinks, regular files only, a size cap); a bad file is skipped and reported (never its content). The
directory is re-read when its modification time changes, so tokens can be added and revoked
while the agent runs. Every presented token is compared with every VM's token in constant time.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field

from keck_tui.common.bounded import BoundedInputError, read_file

MAX_TOKEN_FILE = 4096
MIN_TOKEN_LEN = 16
MAX_VMS = 4096


@dataclass
class VmTokens:
    directory: str
    tokens: dict[str, bytes] = field(default_factory=dict)  # vm name -> token
    problems: list[str] = field(default_factory=list)  # one line per skipped file (names only)
    _mtime: float | None = None

    def reload(self, force: bool = False) -> None:
        """Re-read the directory when it changed (or when ``force``)."""
        try:
            st = os.stat(self.directory)
        except OSError as exc:
            self.tokens, self.problems = {}, [f"{self.directory}: {exc.strerror or exc}"]
            self._mtime = None
            return
        if not force and self._mtime == st.st_mtime:
            return
        self._mtime = st.st_mtime
        tokens: dict[str, bytes] = {}
        problems: list[str] = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            self.tokens, self.problems = {}, [f"{self.directory}: {exc.strerror or exc}"]
            return
        for name in names[:MAX_VMS]:
            if name.startswith("."):
                continue
            token = self._read(name, problems)
            if token is not None:
                tokens[name] = token
        if len(names) > MAX_VMS:
            problems.append(f"{self.directory}: more than {MAX_VMS} files; the rest are ignored")
        self.tokens, self.problems = tokens, problems

    def _read(self, name: str, problems: list[str]) -> bytes | None:
        path = os.path.join(self.directory, name)
        try:
            data = read_file(path, MAX_TOKEN_FILE, "VM token file", follow_symlinks=False)
        except BoundedInputError as exc:  # a symlink, not a regular file, too large
            problems.append(f"{exc}: skipped")
            return None
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}: skipped")
            return None
        token = data.strip()
        if len(token) < MIN_TOKEN_LEN or any(ch in b" \t\r\n" for ch in token):
            problems.append(f"{path}: not a token (one line, at least {MIN_TOKEN_LEN} characters): skipped")
            return None
        return token

    def vms_for(self, presented: str) -> set[str]:
        """The VMs whose token is ``presented`` — every token compared, in constant time each."""
        value = presented.encode("utf-8")
        granted = set()
        for name, token in self.tokens.items():
            if hmac.compare_digest(value, token):
                granted.add(name)
        return granted


def bearer_value(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
