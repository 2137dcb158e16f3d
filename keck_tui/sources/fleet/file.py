"""The fleet file (TOML): clusters of agents and Keck controllers, with tokens and TLS.

::

    timeout = 2.0                 # seconds per agent request (default 2)
    token_file = "/etc/keck/token"  # default token for every agent (optional)

    [clusters.prod]
    agents = ["https://n1:9464", "https://n2:9464"]
    token_file = "/etc/keck/prod.token"   # overrides the default
    ca_file = "/etc/keck/ca.pem"          # trust a private CA (optional)

    [clusters.lab]
    agents = [{ url = "http://lab1:9464", name = "lab1", token_file = "lab1.token" }]
    keck = "http://keck-controller.keck-system.svc:8080"   # a Keck controller (optional)

Every problem is a :class:`FleetError` naming the file and the key. The file is read
through :mod:`keck_tui.common.bounded` (a regular file, size-capped, nesting-limited).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from ssl import SSLContext
from typing import Any, Mapping

from keck_tui.common import bounded
from keck_tui.common.errors import UsageError
from keck_tui.common.http import client_tls
from keck_tui.common.ranges import RANGES, RangeError
from keck_tui.common.tokens import TokenError, load_token
from keck_tui.common.urls import UrlError, check_url
from keck_tui.sources.agents import AgentSpec

DEFAULT_TIMEOUT_S = 2.0
TOP_KEYS = frozenset({"timeout", "token_file", "ca_file", "insecure_tls", "clusters"})
CLUSTER_KEYS = frozenset({"agents", "token_file", "ca_file", "insecure_tls", "keck", "timeout"})


class FleetError(UsageError):
    """The fleet file or the attach arguments are unusable (one line, exit 2)."""


@dataclass
class FleetConfig:
    agents: list[AgentSpec] = field(default_factory=list)
    keck: list[tuple[str, str, str | None]] = field(default_factory=list)  # (cluster, url, token)
    token_files: list[Path] = field(default_factory=list)  # every token file read (for exposure warnings)


def _token(path: Any, base: Path, where: str, cfg: FleetConfig) -> str | None:
    """The token in ``path`` (relative to the fleet file). Each token goes only to the agents
    and the Keck controller of the table that names it: tokens are per origin."""
    if path is None:
        return None
    if not isinstance(path, str):
        raise FleetError(f"{where}: token_file must be a string")
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = base / p
    try:
        token = load_token(p)
    except TokenError as exc:
        raise FleetError(f"{where}: {exc}") from None
    if p not in cfg.token_files:
        cfg.token_files.append(p)
    return token


def _check_url(url: Any, where: str, what: str = "agent URL") -> str:
    try:
        return check_url(url, f"{where}: {what}")
    except UrlError as exc:
        raise FleetError(str(exc)) from None


def _timeout(value: Any, where: str) -> float:
    try:  # 1e308 passed "positive" and overflowed the request timeout
        return float(RANGES["timeout"].check(value, f"{where}: timeout"))
    except RangeError as exc:
        raise FleetError(str(exc)) from None


def _unknown(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise FleetError(f"{where}: unknown key {unknown[0]!r}")


def _read(path: Path) -> dict[str, Any]:
    try:
        return bounded.parse_toml(bounded.read_file(path, bounded.CONFIG_FILE, "fleet file"),
                                  what=f"fleet file {path}")
    except FileNotFoundError:
        raise FleetError(f"fleet file {path} does not exist") from None
    except bounded.BoundedInputError as exc:
        raise FleetError(str(exc)) from None
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {path}: {exc.strerror or exc}") from None


def load_fleet(path: Path) -> FleetConfig:
    """Parse a fleet file; every problem is a FleetError naming the file and key."""
    data = _read(path)
    _unknown(data, TOP_KEYS, f"fleet file {path}")
    cfg = FleetConfig()
    defaults = {"timeout": _timeout(data.get("timeout", DEFAULT_TIMEOUT_S), f"fleet file {path}"),
                "token": _token(data.get("token_file"), path.parent, str(path), cfg),
                "ca_file": data.get("ca_file"), "insecure_tls": data.get("insecure_tls", False)}
    clusters = data.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        raise FleetError(f"fleet file {path}: needs at least one [clusters.NAME] table")
    for cname, cdata in clusters.items():
        _cluster(cfg, str(cname), cdata, defaults, path)
    return cfg


def _tls(cdata: Mapping[str, Any], defaults: Mapping[str, Any], base: Path, where: str) -> SSLContext | bool | None:
    ca = cdata.get("ca_file", defaults["ca_file"])
    if ca is not None and not isinstance(ca, str):
        raise FleetError(f"{where}: ca_file must be a string")
    if ca is not None:
        ca = str(Path(ca).expanduser() if Path(ca).expanduser().is_absolute() else base / ca)
    insecure = cdata.get("insecure_tls", defaults["insecure_tls"])
    if not isinstance(insecure, bool):  # "false" (a string) must not turn verification off
        raise FleetError(f"{where}: insecure_tls must be true or false, got {insecure!r}")
    try:
        return client_tls(ca, insecure)
    except ValueError as exc:
        raise FleetError(f"{where}: {exc}") from None


def _cluster(cfg: FleetConfig, cname: str, cdata: Any, defaults: Mapping[str, Any], path: Path) -> None:
    """Add one ``[clusters.NAME]`` table's agents and Keck controller to ``cfg``."""
    where = f"fleet file {path}: clusters.{cname}"
    if not isinstance(cdata, dict):
        raise FleetError(f"{where} must be a table")
    _unknown(cdata, CLUSTER_KEYS, where)
    base = path.parent
    token = _token(cdata.get("token_file"), base, where, cfg) or defaults["token"]
    tls = _tls(cdata, defaults, base, where)
    timeout = _timeout(cdata.get("timeout", defaults["timeout"]), where)
    agents = cdata.get("agents", [])
    if not isinstance(agents, list):
        raise FleetError(f"{where}: agents must be a list")
    for i, item in enumerate(agents):
        if isinstance(item, str):
            cfg.agents.append(AgentSpec(_check_url(item, where), cname, None, token, timeout, tls))
        elif isinstance(item, dict):
            url = _check_url(item.get("url"), f"{where}.agents[{i}]")
            atoken = _token(item.get("token_file"), base, f"{where}.agents[{i}]", cfg) or token
            name = item.get("name")
            cfg.agents.append(AgentSpec(url, cname, str(name) if name else None, atoken, timeout, tls))
        else:
            raise FleetError(f"{where}: agents[{i}] must be a URL or a table with url")
    keck = cdata.get("keck")
    if keck is not None:
        cfg.keck.append((cname, _check_url(keck, where, "keck URL"), token))
    if not agents and keck is None:
        raise FleetError(f"{where}: lists no agents and no keck controller")
