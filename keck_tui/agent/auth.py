"""Bearer-token checks for the agent: constant-time compare, tokens never logged.

Reading a token file is :func:`keck_tui.common.tokens.load_token` and the warning for one
others can read :func:`keck_tui.common.tokens.exposure_warning` (clients use them too)."""
from __future__ import annotations

import hmac
import ipaddress

from keck_tui.common.tokens import exposure_warning  # noqa: F401 - its home is common.tokens


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
