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
import math
import threading
import time
from decimal import Decimal
from typing import Protocol
from urllib.parse import urlencode

from pydantic import SecretStr

from caselle_ic.connect.transport import AnswerLost, NotSent, Transport, backoff_delay
from caselle_ic.errors import CaselleAPIError, CredentialsRejectedError, ServerError, TransportError


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


__all__ = ["Auth", "BasicAuth", "OAuthClientCredentials"]
