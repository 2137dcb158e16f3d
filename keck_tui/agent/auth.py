"""Bearer-token checks for the agent: constant-time compare, tokens never logged."""
from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path


class TokenError(ValueError):
    """The token file is unusable (reported in one line by the command)."""


def load_token(path: str | os.PathLike[str]) -> str:
    """The token in ``path`` (surrounding whitespace stripped); never echoes its content."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenError(f"token file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read token file {p}: {getattr(exc, 'strerror', None) or exc}") from None
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
