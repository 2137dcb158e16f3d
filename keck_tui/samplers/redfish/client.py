"""The Redfish HTTP side: one BMC's origin, credentials, sessions, and GETs of JSON objects.

Uses the common HTTP client (:mod:`keck_tui.common.http`: bounded answers, one timeout,
one error mapping). Credentials — the Basic ``Authorization`` header, the session's
``X-Auth-Token``, the user name and password of a login — go only to the origin the user
configured: a URI from the BMC (an ``@odata.id``, ``Links.Sessions``, a session's
``Location``) that names another origin is refused, never followed.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from keck_tui.common import http
from keck_tui.common.errors import SourceConfigError
from keck_tui.common.http import HttpError
from keck_tui.common.urls import UrlError, check_url, resolve_same_origin

if TYPE_CHECKING:
    import aiohttp

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # Redfish resources are kilobytes; a large log collection is not read
LOGOUT_TIMEOUT_S = 2.0
AUTH_MODES = ("basic", "session")


class RedfishError(Exception):
    """One request or one resource failed (the message is shown to the user)."""


class RedfishClient:
    """GETs JSON objects from one BMC, logging in first in session mode.

    ``open``/``close`` must run in the event loop that makes the requests.
    """

    def __init__(self, url: str, *, auth: str = "basic", credentials: tuple[str, str] | None = None,
                 verify_tls: bool = True, timeout: float = 5.0) -> None:
        try:
            checked = check_url(url, "BMC URL", default_scheme="https", credentials_hint=(
                "use --redfish-credentials FILE or KECK_REDFISH_USER/KECK_REDFISH_PASSWORD"))
        except UrlError as exc:
            raise SourceConfigError(str(exc)) from None
        if auth not in AUTH_MODES:
            raise SourceConfigError(f"unknown Redfish auth {auth!r} (basic or session)")
        parts = urlsplit(checked)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        self.root_path = path if path.endswith("/redfish/v1") else "/redfish/v1"
        self.url = self.origin + self.root_path
        self.auth = auth
        self.credentials = credentials
        self.verify_tls = verify_tls
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._session_uri: str | None = None

    # ---- lifetime ----
    async def open(self) -> None:
        if self._session is None:
            self._session = http.client_session(4)

    async def close(self) -> None:
        """Log out (BMCs have few session slots; best effort) and close the connections."""
        try:
            await self.logout()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    # ---- requests ----
    def absolute(self, uri: str) -> str:
        """``uri`` (a path or URL from the BMC) as a URL on our origin; RedfishError if elsewhere."""
        try:
            return resolve_same_origin(self.url, uri)
        except UrlError as exc:
            raise RedfishError(f"{self.url}: {exc}") from None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "OData-Version": "4.0"}
        if self._token:
            headers["X-Auth-Token"] = self._token
        elif self.auth == "basic" and self.credentials:
            user, password = self.credentials
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return headers

    async def _send(self, method: str, url: str, headers: Mapping[str, str], timeout: float,
                    json_body: Any = None) -> http.Answer:
        if self._session is None:
            await self.open()
        assert self._session is not None
        return await http.request(self._session, method, url, headers=headers, json_body=json_body,
                                  timeout=timeout, ssl=None if self.verify_tls else False,
                                  max_bytes=MAX_DOCUMENT_BYTES, peer="BMC")

    async def get(self, uri: str, _retry: bool = True) -> Mapping[str, Any]:
        """The JSON object at ``uri``; RedfishError with a one-line reason otherwise."""
        url = self.absolute(uri)
        try:
            answer = await self._send("GET", url, self._headers(), self.timeout)
        except HttpError as exc:
            raise RedfishError(self._transport_error(exc, uri, url)) from None
        if answer.status == 401 and self.auth == "session" and self._token and _retry:
            self._token = None  # the session expired: log in again, once
            await self.login(None)
            return await self.get(uri, _retry=False)
        if answer.status in (401, 403):
            raise RedfishError(f"HTTP {answer.status} from {uri}: credentials rejected or missing")
        if answer.status != 200:
            raise RedfishError(f"HTTP {answer.status} from {uri}")
        try:
            doc = http.parse_json(answer.body)
        except HttpError as exc:
            raise RedfishError(f"{uri}: the BMC sent malformed JSON ({exc})") from None
        if not isinstance(doc, Mapping):
            raise RedfishError(f"{uri}: expected a JSON object")
        return doc

    @staticmethod
    def _transport_error(exc: HttpError, uri: str, url: str) -> str:
        return f"{uri}: {exc}" if exc.kind == http.TIMEOUT else f"{url}: {exc}"

    # ---- sessions ----
    async def login(self, root: Mapping[str, Any] | None) -> None:
        """Create a session (POST user and password to the service's Sessions collection)."""
        if not self.credentials:
            raise RedfishError("session auth needs credentials (--redfish-credentials FILE or "
                               "KECK_REDFISH_USER/KECK_REDFISH_PASSWORD)")
        sessions = _sessions_link(root) or self.root_path + "/SessionService/Sessions"
        url = self.absolute(sessions)  # the password goes to our origin or nowhere
        user, password = self.credentials
        headers = {"Accept": "application/json", "OData-Version": "4.0"}
        try:
            answer = await self._send("POST", url, headers, self.timeout,
                                      json_body={"UserName": user, "Password": password})
        except HttpError as exc:
            raise RedfishError(f"creating a Redfish session failed: {exc}") from None
        if answer.status not in (200, 201, 204):
            raise RedfishError(f"HTTP {answer.status} creating a Redfish session: credentials rejected?")
        token = _header(answer.headers, "X-Auth-Token")
        if not token:
            raise RedfishError("the BMC created a session but sent no X-Auth-Token")
        self._token = token
        location = _header(answer.headers, "Location")
        try:
            self._session_uri = self.absolute(location) if location else None
        except RedfishError:
            self._session_uri = None  # a Location elsewhere: never send our token there

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    async def logout(self) -> None:
        """Delete our session (best effort)."""
        token, uri = self._token, self._session_uri
        self._token = self._session_uri = None
        if not (token and uri and self._session is not None):
            return
        try:
            await self._send("DELETE", uri, {"X-Auth-Token": token}, min(self.timeout, LOGOUT_TIMEOUT_S))
        except HttpError:
            pass


def _sessions_link(root: Mapping[str, Any] | None) -> str | None:
    links = root.get("Links") if isinstance(root, Mapping) else None
    sessions = links.get("Sessions") if isinstance(links, Mapping) else None
    uri = sessions.get("@odata.id") if isinstance(sessions, Mapping) else None
    return uri if isinstance(uri, str) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None
