"""Credentials for Caselle Connect (SPEC §9): OAuth client credentials or HTTP basic.

An auth object gives the headers of one request (:meth:`headers`). OAuth fetches its token
through the same bounded transport as the API (a slow or endless token endpoint is cut off
the same way), reuses it until shortly before it expires, and fetches a new one on
:meth:`OAuthClientCredentials.refresh` (the client calls it once on HTTP 401 /
UNAUTHENTICATED). Secrets never appear in a repr, a message or a log line.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from decimal import Decimal
from typing import Protocol
from urllib.parse import urlencode

from pydantic import SecretStr

from caselle_ic.config.model import Endpoint
from caselle_ic.connect.transport import AnswerLost, NotSent, Transport, backoff_delay
from caselle_ic.errors import (
    CaselleAPIError,
    ConfigError,
    CredentialsRejectedError,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)


class Auth(Protocol):
    def headers(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class BasicAuth:
    """HTTP basic with the endpoint's username and password (setting 126 unset)."""

    def __init__(self, username: str, password: SecretStr):
        self.username = username
        self._password = password

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r})"

    def headers(self) -> dict[str, str]:
        pair = f"{self.username}:{self._password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def close(self) -> None:
        pass


_MAX_TOKEN = 8192


def _token_of(body: bytes) -> tuple[str, float] | None:
    """(access_token, expires_in) from a token answer, or None when it is not one."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    token = data.get("access_token")
    expires = data.get("expires_in", 3600)
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN or not token.isprintable():
        return None
    if expires is None:
        expires = 3600
    if isinstance(expires, bool) or not isinstance(expires, int | Decimal):
        return None
    seconds = float(expires)
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return token, min(seconds, 86400.0 * 366)


class OAuthClientCredentials:
    """OAuth client credentials (SPEC §9): ``POST {126}`` with client id and secret (127).

    The token is cached and reused until ``refresh_margin`` before it expires; ``refresh()``
    fetches a new one.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        transport: Transport,
        max_attempts: int = 4,
        backoff: float = 0.25,
    ):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._transport = transport
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"OAuthClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def refresh(self) -> None:
        with self._lock:
            self._fetch()

    def close(self) -> None:
        pass  # the transport belongs to the client, which closes it

    def _fetch(self) -> None:
        self._token = None
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret.get_secret_value(),
            }
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        last: CaselleAPIError | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                resp = self._transport.post(self.token_url, form, headers)
            except NotSent as exc:
                last = TransportError(
                    f"cannot reach the OAuth token URL ({exc.reason})", operation="oauth-token"
                )
            except AnswerLost as exc:
                last = ServerError(f"the OAuth token URL failed ({exc.reason})", operation="oauth-token")
            else:
                if resp.status in (400, 401, 403):
                    raise CredentialsRejectedError(
                        "the OAuth token URL (setting 126) refused the client credentials; check the "
                        "endpoint username and the client secret (setting 127)",
                        operation="oauth-token",
                        status=resp.status,
                    )
                got = _token_of(resp.body) if 200 <= resp.status < 300 else None
                if got is not None:
                    token, expires_in = got
                    margin = min(60.0, expires_in * 0.1)
                    self._token = token
                    self._refresh_at = time.monotonic() + max(0.0, expires_in - margin)
                    self.fetches += 1
                    log.debug("OAuth token fetched from %s, valid %.0f s", self.token_url, expires_in)
                    return
                last = ServerError(
                    "the OAuth token URL failed"
                    if resp.status >= 300
                    else "the OAuth token URL did not answer with an access_token",
                    operation="oauth-token",
                    status=resp.status,
                )
            if attempt < self._max_attempts:
                time.sleep(backoff_delay(self._backoff, attempt))
        assert last is not None
        raise last


#: Username / password settings of each endpoint, for messages that say what to fix.
CREDENTIAL_SETTINGS = {
    "rtdr": ("9", "10"),
    "rtdr-secondary": ("9", "10"),
    "payments": ("12", "13"),
    "paperless": ("15", "16"),
    "paperless-secondary": ("112", "113"),
    "ach-rejects": ("102", "103"),
    "autopay": ("18", "19"),
}


def auth_for(
    ep: Endpoint,
    oauth_url: str | None,
    oauth_secret: SecretStr | None,
    *,
    transport: Transport,
    max_attempts: int,
    backoff: float,
) -> Auth:
    """The endpoint's auth: OAuth when setting 126 is set, else HTTP basic; ConfigError
    naming the setting when what it needs is missing."""
    user_setting, pw_setting = CREDENTIAL_SETTINGS.get(ep.name, ("username", "password"))
    if not ep.username:
        raise ConfigError(
            f"setting {user_setting} (username of the {ep.name} endpoint) is not set", setting=user_setting
        )
    if oauth_url:
        if oauth_secret is None or not oauth_secret.get_secret_value():
            raise ConfigError(
                "setting 126 (OAuth URL) is set but setting 127 (client secret) is not", setting="127"
            )
        return OAuthClientCredentials(
            oauth_url,
            ep.username,
            oauth_secret,
            transport=transport,
            max_attempts=max_attempts,
            backoff=backoff,
        )
    if ep.password is None or not ep.password.get_secret_value():
        raise ConfigError(
            f"setting {pw_setting} (password of the {ep.name} endpoint) is not set and setting 126 "
            "(OAuth) is not set either",
            setting=pw_setting,
        )
    return BasicAuth(ep.username, ep.password)


def rejected(endpoint: str, operation: str, refreshed: bool) -> CredentialsRejectedError:
    """The error for an endpoint that refused the credentials (after a fresh token, if OAuth)."""
    user_setting, pw_setting = CREDENTIAL_SETTINGS.get(endpoint, ("username", "password"))
    fix = (
        f"it refused a freshly issued OAuth token: check that the client id (setting "
        f"{user_setting}) may use this endpoint"
        if refreshed
        else f"check settings {user_setting}/{pw_setting}"
    )
    return CredentialsRejectedError(
        f"the {endpoint} endpoint refused the credentials; {fix}", operation=operation, code="UNAUTHENTICATED"
    )


__all__ = ["CREDENTIAL_SETTINGS", "Auth", "BasicAuth", "OAuthClientCredentials", "auth_for", "rejected"]
