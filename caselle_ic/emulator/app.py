"""The emulator's ASGI application: GraphQL (ariadne, schema-first), OAuth, admin, faults.

Routes (every one needs credentials):

* ``POST <any prefix>/tp/api/cr0/graphql`` — the API. Bearer token from the token
  endpoint, or HTTP basic with any username and the emulator's secret. A prefix lets one
  emulator serve a primary and a "secondary" endpoint (``/secondary/tp/api/cr0/graphql``)
  with the same data; ``down_prefixes`` makes a prefix answer 503.
* ``POST <any prefix>/oauth/token`` — client credentials (form fields ``client_id`` and
  ``client_secret``, or HTTP basic): ``{"access_token", "token_type": "Bearer", "expires_in"}``.
* ``GET /_admin/state``, ``POST /_admin/faults``, ``POST /_admin/expire-tokens``,
  ``POST /_admin/reset`` (a new database with the start's seed, faults and counters),
  ``GET /_admin/paper-updates``, ``GET /_admin/receipts``, ``POST /_admin/receipts/<op>``
  (hand edits: void, change, duplicate, delete), ``GET /_admin/requests`` — HTTP basic
  with the secret (answered by ``emulator/admin.py``).

The GraphQL schema and its resolvers are in ``emulator/resolvers.py``, the faults in
``emulator/faults.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from ariadne.asgi import GraphQL
from graphql import OperationType
from graphql.language import OperationDefinitionNode

from caselle_ic.emulator import hostile as hostile_mode
from caselle_ic.emulator import http as http_rules
from caselle_ic.emulator.admin import RequestLog, admin_answer, parse_cached, query_parser, query_validator
from caselle_ic.emulator.fastpath import receipts_answer
from caselle_ic.emulator.faults import Faults
from caselle_ic.emulator.resolvers import build_schema, format_error
from caselle_ic.emulator.store import SeedCustomer, Store

GRAPHQL_SUFFIX = "/tp/api/cr0/graphql"
TOKEN_SUFFIX = "/oauth/token"  # noqa: S105 - a path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- the ASGI application -----------------------------------------------------------
async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


async def _respond(
    send: Send, status: int, payload: Any, *, content_type: str = "application/json", headers: Any = ()
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_mutation(body: bytes) -> bool:
    try:
        data = json.loads(body)
        document = parse_cached(data["query"])
    except Exception:
        return False
    name = data.get("operationName")
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name and definition.name.value == name)
        ):
            return definition.operation == OperationType.MUTATION
    return False


class EmulatorApp:
    """The whole emulator as one ASGI callable."""

    def __init__(
        self,
        store: Store,
        secret: str,
        *,
        token_ttl: int = 3600,
        sdl: str | None = None,
        seed: list[SeedCustomer] | None = None,
        faults: dict[str, Any] | None = None,
    ):
        if not secret:
            raise ValueError("the emulator needs a secret")
        self.store = store
        self._secret = secret.encode()
        self._lock = threading.Lock()
        # what POST /_admin/reset returns to: the customers seeded and the faults started with
        self._start_token_ttl = token_ttl
        self._start_seed = list(seed or [])
        self._start_faults = dict(faults or {})
        self._fresh_state()
        self.schema = build_schema(sdl)
        self.graphql = GraphQL(
            self.schema,
            context_value=self._context,
            error_formatter=format_error,
            debug=False,
            introspection=True,
            logger="caselle_ic.emulator.graphql",
            query_parser=query_parser,
            query_validator=query_validator,
        )

    def _fresh_state(self) -> None:
        self.faults = Faults(token_ttl=self._start_token_ttl)
        self.faults.update(self._start_faults)
        with self._lock:
            self._tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.requests = RequestLog()  # GET /_admin/requests: what was asked (audit: no mutation)
        self.counters: dict[str, int] = {
            "graphql_requests": 0,
            "mutation_requests": 0,
            "receipts_created": 0,
            "receipts_voided": 0,
            "paper_updates": 0,
            "tokens_issued": 0,
            "unauthenticated": 0,
            "injected_500": 0,
            "injected_503": 0,
            "dropped_connections": 0,
            "injected_internal": 0,
            "hostile_answers": 0,
        }

    def reset(self) -> None:
        """As if the process had just started on a new database: tests reuse one process
        (starting one costs ~1 s of CPU) and reset it between tests."""
        self.store.reset(self._start_seed)
        self._fresh_state()

    # -- auth --------------------------------------------------------------------------
    def _secret_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._secret)

    def _basic(self, header: str) -> tuple[str, str] | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            with self._lock:
                expiry = self._tokens.get(token)
            return expiry is not None and expiry > time.time()
        basic = self._basic(header)
        return basic is not None and self._secret_ok(basic[1])

    def _admin_authorized(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        basic = self._basic(header)
        return basic is not None and self._secret_ok(basic[1])

    def expire_tokens(self) -> int:
        with self._lock:
            n = len(self._tokens)
            self._tokens.clear()
        return n

    def _context(self, request: Any, _data: Any = None) -> dict[str, Any]:
        return {"store": self.store, "app": self, "request_flags": request.scope.get("caselle_flags", {})}

    # -- ASGI --------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"].rstrip("/") or "/"
        if path.startswith("/_admin/"):
            await self._admin(scope, receive, send, path)
        elif path.endswith(TOKEN_SUFFIX) and self.faults.hostile_for("token"):
            self.counters["hostile_answers"] += 1
            body = await _read_body(receive)
            run = lambda s: self._token(scope, _replay(body), s)  # noqa: E731
            await hostile_mode.answer(self.faults, body, send, run, self.store.all_receipts)
        elif path.endswith(TOKEN_SUFFIX):
            await self._token(scope, receive, send)
        elif path.endswith(GRAPHQL_SUFFIX):
            await self._graphql(scope, receive, send, path)
        else:
            await _respond(send, 404, {"error": "not found"})

    async def _unauthenticated(self, send: Send, *, graphql: bool) -> None:
        self.counters["unauthenticated"] += 1
        body = {
            "data": None,
            "errors": [
                {
                    "message": "missing, invalid or expired credentials",
                    "extensions": {"code": "UNAUTHENTICATED"},
                }
            ],
        }
        if graphql and self.faults.unauthenticated_as == "graphql":
            await _respond(send, 200, body)
        else:
            await _respond(send, 401, body, headers=[(b"www-authenticate", b'Bearer realm="caselle"')])

    async def _graphql(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        body = await _read_body(receive)
        faults = self.faults
        if await self._refused(scope, send, path, faults):
            return
        if scope.get("method") == "GET" and not http_rules.wants_html(scope):
            converted = http_rules.get_as_post(scope)
            if isinstance(converted[0], int):  # 405 for a mutation, 400
                status, payload, extra = converted
                await _respond(send, status, payload, headers=extra)
                return
            scope, body = converted
        elif scope.get("method") == "POST":
            body = http_rules.normalize_body(body)
        self.requests.record(body)
        mutation = scope.get("method") == "POST" and _is_mutation(body)
        flags, drop = self._mutation_faults(mutation, faults)
        scope = dict(scope)
        scope["caselle_flags"] = flags
        if faults.hostile_for("graphql", mutation=mutation):
            self.counters["hostile_answers"] += 1
            await hostile_mode.answer(
                faults, body, send, lambda s: self.graphql(scope, _replay(body), s), self.store.all_receipts
            )
            return
        if drop:
            await self._answer_then_drop(scope, body, send)
            return
        hold, flush = http_rules.shaped(send, scope)  # GraphQL-over-HTTP shape (http.py)
        fast = None if flags else receipts_answer(self.schema, self.store, body)
        if fast is not None:  # aliased receipts queries: same answer, without graphql-core
            await _respond(hold, 200, fast)
        else:
            await self.graphql(scope, _replay(body), hold)
        await flush()

    async def _refused(self, scope: Scope, send: Send, path: str, faults: Faults) -> bool:
        """Latency, then the answers given before any GraphQL runs: an injected 503 (down
        prefix) or 500 (``fail_next``), or no valid credentials. True when answered."""
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        self.counters["graphql_requests"] += 1
        prefix = path[: -len(GRAPHQL_SUFFIX)]
        if any(prefix.startswith(p.rstrip("/")) and p.strip("/") for p in faults.down_prefixes):
            self.counters["injected_503"] += 1
            await _respond(send, 503, b"service unavailable (injected)", content_type="text/plain")
            return True
        if faults.fail_next > 0:
            faults.fail_next -= 1
            self.counters["injected_500"] += 1
            await _respond(send, 500, b"internal server error (injected)", content_type="text/plain")
            return True
        if not self._authorized(scope):
            await self._unauthenticated(send, graphql=True)
            return True
        return False

    def _mutation_faults(self, mutation: bool, faults: Faults) -> tuple[dict[str, bool], bool]:
        """The after-commit faults this request fires, counted down: (flags the resolvers
        read, whether to drop the connection after the commit)."""
        flags: dict[str, bool] = {}
        drop = False
        if mutation:
            self.counters["mutation_requests"] += 1
            if faults.drop_after_commit > 0:
                faults.drop_after_commit -= 1
                drop = True
            elif faults.internal_after_commit > 0:
                faults.internal_after_commit -= 1
                flags["internal_after_commit"] = True
                self.counters["injected_internal"] += 1
        return flags, drop

    async def _answer_then_drop(self, scope: Scope, body: bytes, send: Send) -> None:
        """Runs the request for real (it commits), then breaks the answer off half way."""
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.graphql(scope, _replay(body), capture)
        start = next(m for m in captured if m["type"] == "http.response.start")
        payload = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        self.counters["dropped_connections"] += 1
        await send(start)
        await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
        # Returning without finishing the body makes uvicorn close the connection.

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if scope.get("method") != "POST":
            await _respond(send, 405, {"error": "invalid_request", "error_description": "use POST"})
            return
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        basic = self._basic(header)
        client_id = form.get("client_id") or (basic[0] if basic else "")
        client_secret = form.get("client_secret") or (basic[1] if basic else "")
        if form.get("grant_type") != "client_credentials":
            await _respond(send, 400, {"error": "unsupported_grant_type"})
            return
        if not client_id or not self._secret_ok(client_secret):
            self.counters["unauthenticated"] += 1
            await _respond(send, 401, {"error": "invalid_client"})
            return
        token = secrets.token_urlsafe(32)
        ttl = self.faults.token_ttl
        with self._lock:
            now = time.time()
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + ttl
        self.counters["tokens_issued"] += 1
        await _respond(
            send,
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": ttl},
            headers=[(b"cache-control", b"no-store")],
        )

    async def _admin(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        body = await _read_body(receive)
        if not self._admin_authorized(scope):
            await _respond(send, 401, {"error": "admin endpoints need HTTP basic with the emulator secret"})
            return
        status, payload = admin_answer(self, scope.get("method"), path, body)
        await _respond(send, status, payload)

    def state(self) -> dict[str, Any]:
        with self._lock:
            live = sum(1 for e in self._tokens.values() if e > time.time())
        return {
            "faults": self.faults.as_dict(),
            "counters": dict(self.counters),
            "live_tokens": live,
            **self.store.counts(),
        }
