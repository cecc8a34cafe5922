"""The HTTP transport to Caselle Connect: bounded requests and ONE error map (SPEC §6, §9).

A transport does one thing: POST bytes to a URL and return the status and the body, or
raise one of two exceptions the client's exactly-once logic rests on:

* :class:`NotSent` — the request never left: the connection could not be opened
  (refused, host not found, connect timeout, TLS handshake). Repeating it cannot
  duplicate anything; ``refused`` says the endpoint is plainly down (fail over now).
* :class:`AnswerLost` — the request was, or may have been, sent and no complete answer
  came back (read timeout, the deadline, a dropped connection, an answer over the size
  cap, broken HTTP). A mutation is then settled before it is ever sent again.

The decision is made by *where* the failure happened (opening the connection, or the
exchange after it was open) and the exception's *type* (:data:`CONNECT_ERRORS`,
:data:`EXCHANGE_ERRORS`) — never by reading an exception's text. Anything not proven
unsent counts as sent.

Bounds (:class:`Limits`), so a slow or hostile server cannot hang or swamp a run:
``connect_timeout`` and ``read_timeout`` per socket operation, an overall ``deadline`` per
request (a watchdog shuts the socket down when it passes, so a server sending one byte
every few seconds cannot stretch a request: the read timeout alone restarts with each
byte), and ``max_body`` bytes per answer (checked against Content-Length and while reading).

:class:`HTTPTransport` is the real one (stdlib ``http.client``, keep-alive, one pool per
transport); :mod:`caselle_ic.connect.fake` has an in-process one for fast tests.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from caselle_ic.config.model import Endpoint
from caselle_ic.connect.models import Answer, MalformedAnswerError, parse_answer
from caselle_ic.errors import FatalAPIError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: the whole request: connecting, sending, the headers and the body
    deadline: float = 60.0
    #: bytes of one answer (a 50-receipt batch answers ~15 KB)
    max_body: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


class NotSent(Exception):
    """The request never reached the server: repeating it cannot duplicate anything."""

    def __init__(self, reason: str, *, refused: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class AnswerLost(Exception):
    """The request was (or may have been) processed and no complete answer came back."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Response: ...

    def close(self) -> None: ...


class _DeadlinePassed(Exception):
    pass


class _TooLarge(Exception):
    pass


# -- the error map -------------------------------------------------------------------------
#: Failures while opening the connection: nothing was sent. (type, reason, refused)
CONNECT_ERRORS: tuple[tuple[type[BaseException], str, bool], ...] = (
    (socket.gaierror, "host name not found", True),
    (ConnectionRefusedError, "connection refused", True),
    (TimeoutError, "connect timeout", False),
    (ssl.SSLError, "TLS handshake failed", False),
    (OSError, "connection error", False),
)
#: Failures once the connection was open: the request may have been processed. The
#: first matching type wins (RemoteDisconnected is a ConnectionResetError, so it is first).
EXCHANGE_ERRORS: tuple[tuple[type[BaseException], str], ...] = (
    (http.client.RemoteDisconnected, "connection dropped before the answer"),
    (http.client.IncompleteRead, "connection dropped during the answer"),
    (TimeoutError, "read timeout"),
    (ConnectionError, "connection dropped"),
    (http.client.HTTPException, "the answer was not valid HTTP"),
    (ssl.SSLError, "TLS error during the exchange"),
    (OSError, "connection error"),
)


def not_sent(exc: BaseException) -> NotSent:
    for kind, reason, refused in CONNECT_ERRORS:
        if isinstance(exc, kind):
            return NotSent(reason, refused=refused)
    raise exc  # not a network failure: a bug, let it surface


def answer_lost(exc: BaseException, limits: Limits) -> AnswerLost:
    if isinstance(exc, _DeadlinePassed):
        return AnswerLost(f"no complete answer within the {limits.deadline:g} s deadline")
    if isinstance(exc, _TooLarge):
        return AnswerLost(f"the answer is larger than {limits.max_body} bytes")
    for kind, reason in EXCHANGE_ERRORS:
        if isinstance(exc, kind):
            return AnswerLost(reason)
    raise exc


#: The jitter's own generator: drawing from the ``random`` module's shared state would
#: shift every other user's sequence (a seeded simulation, Hypothesis) from a posting thread.
_JITTER = random.Random()


def backoff_delay(base: float, attempt: int, cap: float = 5.0) -> float:
    """Exponential backoff with jitter: base, 2·base, 4·base ... capped, times 0.5-1."""
    return float(min(cap, base * 2 ** (attempt - 1)) * (0.5 + _JITTER.random() / 2))


# -- the deadline watchdog -----------------------------------------------------------------------
class _Watchdog:
    """One thread per process that shuts down the socket of a request past its deadline.

    shutdown() wakes a recv()/send() blocked in another thread; the request then fails
    and is reported as past its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, tuple[socket.socket, list[bool]]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, at: float) -> tuple[int, list[bool]]:
        fired = [False]
        with self._cond:
            key = next(self._ids)
            self._live[key] = (sock, fired)
            heapq.heappush(self._heap, (at, key))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="caselle-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        return key, fired

    def disarm(self, key: int) -> None:
        with self._cond:
            self._live.pop(key, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(30)
                    continue
                at, key = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                sock, fired = self._live.pop(key)
                fired[0] = True
                with contextlib.suppress(OSError):  # already closed: nothing to wake
                    sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


# -- the real transport ---------------------------------------------------------------------------
def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection the server closed (or sent stray bytes on)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HTTPTransport:
    """POST over ``http.client`` with keep-alive connections, bounded by :class:`Limits`."""

    def __init__(self, limits: Limits | None = None, *, ssl_context: ssl.SSLContext | None = None):
        self.limits = limits or Limits()
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HTTPTransport({self.limits!r})"

    def close(self) -> None:
        with self._lock:
            conns = [c for pool in self._idle.values() for c in pool]
            self._idle.clear()
        for c in conns:
            c.close()

    def _connection(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        with self._lock:
            pool = self._idle.get(key, [])
            while pool:
                conn = pool.pop()
                if not _dropped(conn):
                    return conn
                conn.close()
        scheme, host, port = key
        timeout = self.limits.connect_timeout
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Response:
        limits = self.limits
        start = time.monotonic()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotSent(f"not an http(s) URL: {parts.scheme or '?'}://…", refused=True)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise NotSent("the URL's port is not a number", refused=True) from None
        key = (parts.scheme, parts.hostname, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = self._connection(key)
        if conn.sock is None:
            log.debug("connecting to %s://%s:%d", *key)
            try:
                conn.connect()
            except Exception as exc:
                conn.close()
                raise not_sent(exc) from None
        assert conn.sock is not None
        token, fired = _WATCHDOG.arm(conn.sock, start + limits.deadline)
        reusable = False
        try:
            conn.sock.settimeout(limits.read_timeout)
            conn.request("POST", path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            data = self._read(resp)
            if fired[0]:
                raise _DeadlinePassed()
            reusable = not resp.will_close
        except Exception as exc:
            raise answer_lost(_DeadlinePassed() if fired[0] else exc, limits) from None
        finally:
            _WATCHDOG.disarm(token)
            if reusable and not fired[0]:
                with self._lock:
                    self._idle.setdefault(key, []).append(conn)
            else:
                conn.close()
        log.debug("POST %s://%s:%d%s -> HTTP %d, %d bytes", *key, parts.path, resp.status, len(data))
        return Response(resp.status, data, resp.getheader("content-type") or "")

    def _read(self, resp: http.client.HTTPResponse) -> bytes:
        cap = self.limits.max_body
        length = resp.getheader("content-length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            raise _TooLarge()
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise _TooLarge()
            chunks.append(chunk)
        if resp.length:  # http.client's read1 ends quietly on a short Content-Length body
            raise http.client.IncompleteRead(b"", resp.length)
        resp.close()  # complete: frees the connection for the next request (keep-alive)
        return b"".join(chunks)


# -- one GraphQL endpoint: HTTP statuses mapped -----------------------------------------------------
class Lost(Exception):
    """The request was (or may have been) processed and its answer is lost or unusable."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Unauthorized(Exception):
    """HTTP 401 or an answer of UNAUTHENTICATED errors only: nothing was processed."""


class _Headers(Protocol):
    def headers(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class GraphQLEndpoint:
    """One endpoint: its URL, its auth and the (shared) transport. The HTTP status decides
    before the body is trusted: 401 → :class:`Unauthorized`, 5xx → :class:`Lost`, another
    non-2xx → FatalAPIError unless it carries GraphQL errors (nothing executed)."""

    def __init__(self, endpoint: Endpoint, auth: _Headers, transport: Transport):
        self.endpoint = endpoint
        self.name = endpoint.name
        self.auth = auth
        self.transport = transport

    def execute(self, payload: bytes, operation: str) -> Answer:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.auth.headers()}
        try:
            resp = self.transport.post(self.endpoint.url, payload, headers)
        except AnswerLost as exc:
            raise Lost(exc.reason) from None
        status = resp.status
        if status == 401:
            raise Unauthorized()
        if status >= 500:
            raise Lost(f"HTTP {status}", status)
        if not 200 <= status < 300:
            try:
                answer: Answer | None = parse_answer(resp.body, operation)
            except MalformedAnswerError:
                answer = None
            if answer is None or not answer.errors:
                raise FatalAPIError(f"{self.name} answered HTTP {status}", operation=operation, status=status)
            return answer
        return parse_answer(resp.body, operation)


__all__ = [
    "CONNECT_ERRORS",
    "EXCHANGE_ERRORS",
    "AnswerLost",
    "GraphQLEndpoint",
    "HTTPTransport",
    "Limits",
    "Lost",
    "NotSent",
    "Response",
    "Transport",
    "Unauthorized",
    "answer_lost",
    "backoff_delay",
    "not_sent",
]
