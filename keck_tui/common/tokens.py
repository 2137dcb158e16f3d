"""Bearer tokens from files: the agent's own (``serve --token-file``) and the ones clients send
(``attach --token-file``, fleet files). The content is never echoed in a message."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from keck_tui.common.bounded import SMALL_FILE, BoundedInputError, read_file
from keck_tui.common.errors import UsageError


class TokenError(UsageError):
    """The token file is unusable (reported in one line by the command)."""


def load_token(path: str | os.PathLike[str]) -> str:
    """The token in ``path`` (surrounding whitespace stripped); never echoes its content."""
    p = Path(path)
    try:
        text = read_file(p, SMALL_FILE, "token file").decode("utf-8")
    except FileNotFoundError:
        raise TokenError(f"token file {p} does not exist") from None
    except BoundedInputError as exc:
        raise TokenError(str(exc)) from None
    except UnicodeDecodeError:
        raise TokenError(f"token file {p} is not UTF-8 text") from None
    except OSError as exc:
        raise TokenError(f"cannot read token file {p}: {exc.strerror or exc}") from None
    token = text.strip()
    if not token:
        raise TokenError(f"token file {p} is empty")
    if any(c.isspace() for c in token):
        raise TokenError(f"token file {p} holds whitespace inside the token")
    return token


def exposure_warning(path: str | os.PathLike[str], what: str = "token file") -> str | None:
    """A warning when a secret's file (a token, a key, BMC credentials) can be read or
    written by other users, else None (also when it cannot be examined)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"{what} {path} is accessible to other users (mode {stat.S_IMODE(mode):04o}): "
                f"run chmod 600 {path}")
    return None
