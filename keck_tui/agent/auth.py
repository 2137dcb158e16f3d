"""Bearer-token checks for the agent: constant-time compare, tokens never logged."""
from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from pathlib import Path

from keck_tui.common.bounded import SMALL_FILE, BoundedInputError, read_file


class TokenError(ValueError):
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


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``, compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # hmac.compare_digest looked up at call time so tests can observe that it is used.
    return hmac.compare_digest(value.strip().encode("utf-8"), token.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the agent on this machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(path: str | os.PathLike[str], what: str = "token file") -> str | None:
    """A warning when a secret's file can be read or written by other users, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"{what} {path} is accessible to other users (mode {stat.S_IMODE(mode):04o}): "
                f"run chmod 600 {path}")
    return None
