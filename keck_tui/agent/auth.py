"""Bearer-token checks for the agent: constant-time compare, tokens never logged.

Reading a token file is :func:`keck_tui.common.tokens.load_token` (clients use it too)."""
from __future__ import annotations

import hmac
import ipaddress
import os
import stat


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
