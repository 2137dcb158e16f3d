"""URL checks and origins, one rule for every URL keck-top is given or sent.

A usable URL has an allowed scheme (http or https), a host, a valid port (1–65535)
and no ``user:password@`` part: credentials in a URL would be used, and then show
in ``ps``, in every snapshot's source status and through the agent's API, so they are
refused, and no error message echoes them. Whitespace and control characters are
refused too (``urlsplit`` silently drops some of them).

An *origin* is (scheme, host, port) as in RFC 6454: credentials and tokens are sent
only to the origin the user named; :func:`same_origin` and :func:`resolve_same_origin`
are the checks for URIs a peer hands back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable
from urllib.parse import SplitResult, urljoin, urlsplit

from keck_tui.common.errors import UsageError

HTTP_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
CREDENTIALS_REFUSED = "credentials in the URL are refused (they show in ps and in snapshots)"


class UrlError(UsageError):
    """A URL is unusable; the message is one line and never contains credentials."""


@dataclass(frozen=True)
class Origin:
    """Scheme, host (lower case, IPv6 without brackets) and port (the scheme's default if none)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for messages)."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        return str(url)
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _has_bad_chars(url: str) -> bool:
    return any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url)


def check_url(url: object, what: str = "URL", *, schemes: Iterable[str] = HTTP_SCHEMES,
              default_scheme: str | None = None, example: str = "",
              credentials_hint: str = "") -> str:
    """``url`` if it is usable, else :class:`UrlError`.

    ``what`` names the flag or key in messages (``--kubelet``, ``fleet file f: agent URL``).
    ``default_scheme`` is put in front of a URL without ``://`` (``bmc.example:8443``);
    ``example`` is shown in the error; ``credentials_hint`` says where credentials go instead.
    The URL is returned as given (with the default scheme added), not normalised.
    """
    schemes = tuple(schemes)
    names = " or ".join(f"{s}://" for s in schemes)
    if not isinstance(url, str):
        raise UrlError(f"{what}: not a URL: {url!r} (it must be a string starting with {names})")
    text = url if default_scheme is None or "://" in url else f"{default_scheme}://{url}"
    parts = _split(text)
    if parts is not None and (parts.username is not None or parts.password is not None):
        raise UrlError(f"{what}: {CREDENTIALS_REFUSED}" + (f"; {credentials_hint}" if credentials_hint else ""))
    shown = redact(url)
    eg = f", e.g. {example}" if example else ""
    if parts is None or _has_bad_chars(text) or parts.scheme not in schemes or not parts.hostname:
        raise UrlError(f"{what}: not an http(s) URL: {shown!r} (it must start with {names} and name a host{eg})")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise UrlError(f"{what}: bad port in {shown!r} (a number from 1 to 65535)")
    return text


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises on a bad IPv6 literal in some versions
    except ValueError:
        return None
    return parts


def origin(url: str) -> Origin:
    """The origin of an absolute http(s) URL; :class:`UrlError` for anything else."""
    parts = _split(url)
    if parts is None or parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UrlError(f"not an absolute http(s) URL: {redact(url)!r}")
    try:
        port = parts.port
    except ValueError:
        raise UrlError(f"bad port in {redact(url)!r}") from None
    return Origin(parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme])


def same_origin(a: str, b: str) -> bool:
    """True when both are absolute http(s) URLs with the same scheme, host and port.

    ``https://bmc`` and ``https://BMC:443/x`` are the same origin; ``http://bmc`` and
    ``https://bmc`` are not, nor is anything unparsable or relative.
    """
    try:
        return origin(a) == origin(b)
    except UrlError:
        return False


def resolve_same_origin(base: str, ref: str) -> str:
    """``ref`` (a path or an absolute URL a peer sent) resolved against ``base``.

    Raises :class:`UrlError` when the result is on another origin than ``base``: a peer
    must not be able to send our credentials elsewhere by naming another host.
    """
    if not isinstance(ref, str) or _has_bad_chars(ref):
        raise UrlError(f"not a usable URI: {ref!r}")
    url = urljoin(base, ref)
    if not same_origin(base, url):
        raise UrlError(f"refused: {redact(ref)!r} points to another origin than {origin(base)}")
    return url
