"""Start-up warnings about how keck-top is exposed (issue 12).

A secret's file (a bearer token, a TLS key, BMC credentials) that other users can
read, an agent listening beyond loopback without a token, and a TLS certificate
that has expired or expires within 14 days are said on stderr when a command starts
(``keck-top serve: warning: …``) and listed by ``keck-top doctor``. Nothing here
reads a secret's content; only its file's mode and a certificate's dates.
"""
from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from keck_tui.common.tokens import exposure_warning

if TYPE_CHECKING:
    from keck_tui.wiring import LocalSources


def secret_file_warnings(files: Iterable[tuple[Any, str]]) -> list[str]:
    """One warning per (path, what) whose file others can read or write; None paths are skipped."""
    out = []
    for path, what in files:
        if path:
            warning = exposure_warning(str(path), what)
            if warning and warning not in out:
                out.append(warning)
    return out


def local_source_secrets(sources: LocalSources) -> list[tuple[Any, str]]:
    """The secret files this node's sources read: BMC credentials, kubelet and host tokens."""
    files: list[tuple[Any, str]] = []
    if sources.redfish is not None:
        files.append((sources.redfish.credentials_file, "Redfish credentials file"))
    files.append((sources.kubelet.token_file, "kubelet token file"))
    host_power = getattr(sources, "host_power", None)
    if host_power is not None:
        files.append((host_power.token_file, "host-power token file"))
    return files


def listener_warnings(host: str, port: int, *, token: bool, tls_cert: str | None, tls_key: str | None,
                      token_file: str | None, now: dt.datetime | None = None) -> list[str]:
    """What an agent listening on ``host:port`` should say before it starts."""
    from keck_tui.agent.auth import is_loopback
    from keck_tui.agent.certs import certificate_warnings

    out = []
    if not token and not is_loopback(host):
        out.append(f"listening on {host}:{port} without a token (--insecure-no-auth): anyone who can reach "
                   "it can read this node's processes, pods and power; give --token-file FILE")
    out += secret_file_warnings([(token_file, "token file"), (tls_key, "TLS key")])
    if tls_cert:
        out += certificate_warnings(tls_cert, now or dt.datetime.now(dt.timezone.utc))
    return out


def agent_section_warnings(section: Mapping[str, Any], now: dt.datetime | None = None) -> list[str]:
    """``listener_warnings`` for the config file's ``[agent]`` table (for ``doctor``)."""
    from keck_tui.agent.server import DEFAULT_HOST, DEFAULT_PORT, parse_listen

    try:
        host, port = parse_listen(str(section.get("listen") or f"{DEFAULT_HOST}:{DEFAULT_PORT}"))
    except ValueError:
        host, port = DEFAULT_HOST, DEFAULT_PORT
    token_file = section.get("token_file")
    insecure = bool(section.get("insecure_no_auth"))
    return listener_warnings(host, port, token=bool(token_file) or not insecure, tls_cert=section.get("tls_cert"),
                             tls_key=section.get("tls_key"), token_file=token_file, now=now)


def print_warnings(prog: str, warnings: Iterable[str]) -> None:
    for warning in warnings:
        print(f"{prog}: warning: {warning}", file=sys.stderr, flush=True)
