"""What ``keck-top attach`` (and ``record --attach``) reads, as one typed :class:`AttachConfig`,
and the :class:`~keck_tui.sources.fleet.Fleet` it becomes.

The command line builds the config from its flags; everything here raises
:class:`~keck_tui.sources.fleet.FleetError` (or the Prometheus source's
``SourceConfigError``) with a one-line reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keck_tui.common.http import client_tls
from keck_tui.common.ranges import RANGES, RangeError
from keck_tui.common.tokens import TokenError, exposure_warning, load_token
from keck_tui.common.urls import UrlError, check_url
from keck_tui.sources.agents import AgentSource, AgentSpec
from keck_tui.sources.fleet import DEFAULT_TIMEOUT_S, Fleet, FleetConfig, FleetError, load_fleet
from keck_tui.sources.keck import KeckSource

if TYPE_CHECKING:
    from keck_tui.sources.prometheus import PrometheusConfig

#: Keck controllers answer for a whole cluster: they get at least this long.
KECK_MIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class AttachConfig:
    """Remote sources merged into one fleet → cluster → node tree."""

    agent_urls: tuple[str, ...] = ()  # keck-top agents (http[s]://host:9464)
    fleet_file: Path | None = None  # TOML: clusters → agent URLs, token files
    keck_urls: tuple[str, ...] = ()  # Keck controllers' APIs
    prometheus: PrometheusConfig | None = None
    cluster: str | None = None  # cluster of agent_urls and keck_urls (default "default" / the controller's)
    # Bearer tokens, each sent only to the URLs it was given for (tokens are per origin):
    token_file: str | None = None  # agent_urls
    keck_token_file: str | None = None  # keck_urls
    prometheus_token_file: str | None = None  # the Prometheus server
    ca_file: str | None = None  # trust this CA for https:// sources
    insecure_tls: bool = False  # do not verify https:// certificates
    timeout: float = DEFAULT_TIMEOUT_S  # per request, seconds
    depth: int | None = None  # levels fetched below each agent's node (None: all)

    @property
    def empty(self) -> bool:
        return not (self.agent_urls or self.fleet_file is not None or self.keck_urls or self.prometheus)


def _token(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return load_token(path)
    except TokenError as exc:
        raise FleetError(str(exc)) from None


def _check_url(url: str, what: str) -> str:
    try:
        return check_url(url, what)
    except UrlError as exc:
        raise FleetError(str(exc)) from None


def build_fleet(config: AttachConfig) -> Fleet:
    """The fleet ``config`` names; an unusable part raises FleetError before anything is polled.

    The fleet's ``warnings`` say which token files other users can read."""
    token = _token(config.token_file)
    keck_token = _token(config.keck_token_file)
    prometheus_token = _token(config.prometheus_token_file)
    try:
        ssl_setting = client_tls(config.ca_file, config.insecure_tls)
    except ValueError as exc:
        raise FleetError(str(exc)) from None
    try:  # 0 or nan would silently mean "no timeout", 1e308 overflowed it
        timeout = float(RANGES["timeout"].check(config.timeout, "--timeout"))
    except RangeError as exc:
        raise FleetError(str(exc)) from None
    fleet_file = load_fleet(config.fleet_file) if config.fleet_file is not None else FleetConfig()
    agents = list(fleet_file.agents)
    for url in config.agent_urls:
        agents.append(AgentSpec(_check_url(url, "agent URL"), config.cluster or "default", None, token,
                                timeout, ssl_setting))
    keck_timeout = max(timeout, KECK_MIN_TIMEOUT_S)
    others: list[Any] = [KeckSource(u, c, t, timeout=keck_timeout, ssl_setting=ssl_setting)
                         for c, u, t in fleet_file.keck]
    for url in config.keck_urls:
        others.append(KeckSource(_check_url(url, "--keck"), config.cluster, keck_token, timeout=keck_timeout,
                                 ssl_setting=ssl_setting))
    if config.prometheus is not None:
        from keck_tui.sources.prometheus import prometheus_source

        others.append(prometheus_source(config.prometheus, prometheus_token, ssl_setting))
    if not agents and not others:
        raise FleetError("nothing to attach to: give agent URLs, --fleet FILE, --keck URL or --prometheus URL")
    if config.depth is not None and config.depth < 0:
        raise FleetError("--depth must not be negative")
    fleet = Fleet(AgentSource(agents, depth=config.depth) if agents else None, others)
    files = [(config.token_file, "token file"), (config.keck_token_file, "Keck token file"),
             (config.prometheus_token_file, "Prometheus token file")]
    files += [(str(p), "fleet token file") for p in fleet_file.token_files]
    fleet.warnings = [w for w in (exposure_warning(str(p), what) for p, what in files if p) if w]
    return fleet
