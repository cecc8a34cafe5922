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
  with the secret (see ``emulator/admin.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from ariadne import MutationType, QueryType, ScalarType, make_executable_schema
from ariadne.asgi import GraphQL
from graphql import GraphQLError, OperationType
from graphql import build_schema as parse_sdl
from graphql.language import OperationDefinitionNode

from caselle_ic.emulator import hostile as hostile_mode
from caselle_ic.emulator import http as http_rules
from caselle_ic.emulator.admin import (
    RequestLog,
    parse_cached,
    query_parser,
    query_validator,
    receipt_operation,
)
from caselle_ic.emulator.fastpath import receipts_answer
from caselle_ic.emulator.store import SeedCustomer, Store, StoreError
from caselle_ic.schemas import schema_sdl

#: ``--schema-variant NAME``: serve a schema that differs from ``schemas/caselle_connect.graphql``
#: in one way a real Caselle might (text replaced once), so ``caselle-ic check --live`` has a
#: difference to find. Any other value is the path of a whole .graphql file to serve.
SCHEMA_VARIANTS: dict[str, tuple[str, str]] = {
    # Customer.balance gone: breaks the RTDR lookup (settings 8/88), nothing else.
    "missing-field": (
        '  "The customer\'s current balance. Causes extra database reads when used in a query."\n'
        "  balance: Decimal\n",
        "",
    ),
    # void_receipt(date:) renamed: breaks voids (settings 11 and 101), nothing else.
    "renamed-arg": (
        "void_receipt(receiptNumber: Int!, date: Date!)",
        "void_receipt(receiptNumber: Int!, voidDate: Date!)",
    ),
}


def variant_sdl(variant: str | None = None) -> str:
    """The SDL to serve: the project's schema, a built-in variant, or a .graphql file."""
    sdl = schema_sdl()
    if not variant:
        return sdl
    if variant in SCHEMA_VARIANTS:
        old, new = SCHEMA_VARIANTS[variant]
        if old not in sdl:
            raise ValueError(f"schema variant {variant!r} no longer applies to caselle_connect.graphql")
        return sdl.replace(old, new, 1)
    try:
        return Path(variant).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        names = ", ".join(SCHEMA_VARIANTS)
        raise ValueError(
            f"--schema-variant {variant!r} is neither a variant ({names}) nor a readable .graphql "
            f"file ({exc})"
        ) from None


log = logging.getLogger("caselle_ic.emulator")

GRAPHQL_SUFFIX = "/tp/api/cr0/graphql"
TOKEN_SUFFIX = "/oauth/token"  # noqa: S105 - a path
_MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- faults -------------------------------------------------------------------------
@dataclass
class Faults:
    """What the emulator does wrong on purpose. Counters count down as they fire."""

    latency_ms: int = 0  # added before every GraphQL and token request
    fail_next: int = 0  # the next N GraphQL requests answer HTTP 500 without processing
    drop_after_commit: int = 0  # the next N mutation requests commit, then the connection drops
    internal_after_commit: int = 0  # the next N mutation requests commit, then answer INTERNAL
    down_prefixes: list[str] = field(default_factory=list)  # GraphQL paths under these answer 503
    unauthenticated_as: str = "http"  # "http": HTTP 401; "graphql": HTTP 200 + UNAUTHENTICATED
    token_ttl: int = 3600  # lifetime of tokens issued from now on, seconds
    # Hostile answers (issue 13, emulator/hostile.py): the next `hostile_next` requests to
    # `hostile_on` ("graphql" or "token") are answered the `hostile` way, with its parameter.
    hostile: str = ""  # one of hostile_mode.MODES
    hostile_next: int = 0
    hostile_on: str = "graphql"  # "mutation": GraphQL requests that are mutations only
    hostile_body: str = ""  # "body": answered instead of the real answer
    hostile_fields: dict[str, Any] = field(default_factory=dict)  # "fields": set in every object
    hostile_size: int = 0  # "huge_error": characters of each error message
    slow_body_s: float = 1.0  # "slow": seconds between two bytes of the answer

    _INT_FIELDS = (
        "latency_ms",
        "fail_next",
        "drop_after_commit",
        "internal_after_commit",
        "token_ttl",
        "hostile_next",
        "hostile_size",
    )
    _CHECKS: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "hostile": (lambda v: v in ("", *hostile_mode.MODES), f"hostile must be one of {hostile_mode.MODES}"),
        "hostile_on": (
            lambda v: v in ("graphql", "mutation", "token"),
            "hostile_on: graphql, mutation or token",
        ),
        "hostile_body": (lambda v: isinstance(v, str), "hostile_body must be a string"),
        "hostile_fields": (lambda v: isinstance(v, dict), "hostile_fields must be an object"),
        "slow_body_s": (
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 60,
            "slow_body_s must be 0-60 seconds",
        ),
    }

    def hostile_for(self, endpoint: str, *, mutation: bool = False) -> bool:
        """Is this request to ``endpoint`` one to answer the hostile way? (counts down)"""
        on = self.hostile_on
        if self.hostile and self.hostile_next > 0 and (on == endpoint or (on == "mutation" and mutation)):
            self.hostile_next -= 1
            return True
        return False

    def update(self, changes: dict[str, Any]) -> None:
        if changes.get("reset"):
            fresh = Faults(token_ttl=self.token_ttl)
            for name, value in asdict(fresh).items():
                setattr(self, name, value)
        for key, value in changes.items():
            if key == "reset":
                continue
            if key in self._INT_FIELDS:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative integer")
                setattr(self, key, value)
            elif key == "down_prefixes":
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise ValueError("down_prefixes must be a list of path prefixes")
                self.down_prefixes = list(value)
            elif key in self._CHECKS:
                ok, message = self._CHECKS[key]
                if not ok(value):
                    raise ValueError(message)
                setattr(self, key, value)
            elif key == "unauthenticated_as":
                if value not in ("http", "graphql"):
                    raise ValueError('unauthenticated_as must be "http" or "graphql"')
                self.unauthenticated_as = value
            else:
                raise ValueError(f"unknown fault {key!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- scalars ------------------------------------------------------------------------
decimal_scalar = ScalarType("Decimal")
date_scalar = ScalarType("Date")


@decimal_scalar.serializer
def _serialize_decimal(value: Any) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


@decimal_scalar.value_parser
def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('Decimal must be a string such as "1234.56" or a number')
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount") from None
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a decimal amount")
    return d


@decimal_scalar.literal_parser
def _parse_decimal_literal(ast: Any, _variables: Any = None) -> Decimal:
    value: Decimal = _parse_decimal(getattr(ast, "value", None))
    return value


@date_scalar.serializer
def _serialize_date(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(str(value)).isoformat()


@date_scalar.value_parser
def _parse_date(value: Any) -> date:
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("Date must be a string YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None


@date_scalar.literal_parser
def _parse_date_literal(ast: Any, _variables: Any = None) -> date:
    value: date = _parse_date(getattr(ast, "value", None))
    return value


# -- resolvers ----------------------------------------------------------------------
def _customer_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "customerNumber": row["customer_number"],
        "customerType": row["customer_type"],
        "name": {"fullName": row["name"]},
        "balance": Decimal(row["balance_cents"]) / 100,
        "sendPaperStatement": bool(row["send_paper"]),
    }


def _receipt_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "receiptNumber": row["receipt_number"],
        "receiptDate": date.fromisoformat(row["receipt_date"]),
        "distributionCode": row["distribution_code"],
        "paymentCode": row["payment_code"],
        "amount": Decimal(row["amount_cents"]) / 100,
        "accountNumber": row["account_number"],
        "confirmationNumber": row["confirmation_number"],
        "voided": bool(row["voided"]),
        "voidDate": date.fromisoformat(row["void_date"]) if row["void_date"] else None,
    }


def _gql_error(exc: StoreError) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": exc.code})


def _bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _store(info: Any) -> Store:
    store: Store = info.context["store"]
    return store


def _after_commit(info: Any, counter: str) -> None:
    """Count a committed mutation; answer INTERNAL if this request was marked for it."""
    info.context["app"].counters[counter] += 1
    if info.context["request_flags"].get("internal_after_commit"):
        raise GraphQLError("internal error (injected after commit)", extensions={"code": "INTERNAL"})


def build_schema(sdl: str | None = None) -> Any:
    """The executable schema of ``sdl`` (default: the project's). Resolvers are bound only to
    the root fields the SDL has, so a variant may lack some."""
    sdl = sdl or schema_sdl()
    query = QueryType()
    mutation = MutationType()

    def resolve_customer(
        _obj: Any,
        info: Any,
        customerNumber: int | None = None,
        id: str | None = None,
        masterContact: int | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        given = [a for a in (customerNumber, id, masterContact, name) if a is not None]
        if len(given) != 1:
            raise _bad_input("give exactly one of customerNumber, id, masterContact, name")
        try:
            if name is not None:
                row = _store(info).customer(name=name)
            elif id is not None:
                row = _store(info).customer(id=id)
            else:  # the emulator's master contact is the customer itself
                row = _store(info).customer(customer_number=customerNumber or masterContact)
        except StoreError as exc:
            raise _gql_error(exc) from None
        return _customer_out(row)

    def resolve_receipts(_obj: Any, info: Any, confirmationNumber: str) -> list[dict[str, Any]]:
        return [_receipt_out(r) for r in _store(info).receipts(confirmationNumber)]

    def resolve_create_receipt(_obj: Any, info: Any, receipt: dict[str, Any]) -> dict[str, Any]:
        amount: Decimal = receipt["amount"]
        if amount != amount.quantize(Decimal("0.01")):
            raise _bad_input(f"amount {amount} has more than two decimals")
        cents = int(amount * 100)
        if cents <= 0:
            raise _bad_input(f"amount {amount} must be greater than 0")
        if cents > _MAX_AMOUNT_CENTS:
            raise _bad_input(f"amount {amount} is too large")
        if receipt["distributionCode"] <= 0:
            raise _bad_input(f"unknown distribution code {receipt['distributionCode']}")
        if receipt["paymentCode"] < 0:
            raise _bad_input(f"unknown payment code {receipt['paymentCode']}")
        if receipt["glActivityNumber"] < 0:
            raise _bad_input("glActivityNumber must not be negative")
        if not receipt["confirmationNumber"].strip():
            raise _bad_input("confirmationNumber must not be empty")
        try:
            row = _store(info).create_receipt(
                receipt_date=receipt["receiptDate"],
                distribution_code=receipt["distributionCode"],
                payment_code=receipt["paymentCode"],
                amount_cents=cents,
                account_number=receipt["accountNumber"],
                account_name=receipt.get("accountName"),
                gl_activity_number=receipt["glActivityNumber"],
                allocate_to=receipt.get("allocateTo"),
                confirmation_number=receipt["confirmationNumber"],
            )
        except StoreError as exc:
            raise _gql_error(exc) from None
        _after_commit(info, "receipts_created")
        return _receipt_out(row)

    def resolve_void_receipt(
        _obj: Any, info: Any, receiptNumber: int, date: date | None = None, voidDate: date | None = None
    ) -> dict[str, Any]:
        when = date if date is not None else voidDate  # voidDate: the renamed-arg schema variant
        assert when is not None  # the schema makes one of them required
        try:
            row = _store(info).void_receipt(receiptNumber, when)
        except StoreError as exc:
            raise _gql_error(exc) from None
        _after_commit(info, "receipts_voided")
        return _receipt_out(row)

    def resolve_send_paper(
        _obj: Any, info: Any, customerNumber: int, sendPaperStatement: bool
    ) -> dict[str, Any]:
        try:
            row = _store(info).set_send_paper(customerNumber, sendPaperStatement)
        except StoreError as exc:
            raise _gql_error(exc) from None
        _after_commit(info, "paper_updates")
        return _customer_out(row)

    served = parse_sdl(sdl)  # GraphQLError when the SDL is not valid
    binds: tuple[tuple[Any, Any, dict[str, Callable[..., Any]]], ...] = (
        (query, served.query_type, {"customer": resolve_customer, "receipts": resolve_receipts}),
        (
            mutation,
            served.mutation_type,
            {
                "create_receipt": resolve_create_receipt,
                "void_receipt": resolve_void_receipt,
                "customer_send_paper_invoice_update": resolve_send_paper,
            },
        ),
    )
    for obj, root, fns in binds:
        for name, fn in fns.items():
            if root is not None and name in root.fields:
                obj.set_field(name, fn)
    return make_executable_schema(sdl, query, mutation, decimal_scalar, date_scalar)


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """Every error carries one of the schema's codes; unexpected exceptions say INTERNAL."""
    code = (error.extensions or {}).get("code")
    message = error.message
    if code is None:
        original = error.original_error
        if not error.path:
            code = "BAD_USER_INPUT"  # parse, validation and variable coercion: nothing executed
        elif original is None or isinstance(original, GraphQLError):
            code = "BAD_USER_INPUT"  # an argument the executor refused
        else:
            code = "INTERNAL"
            message = "internal error"
            log.error("resolver failed: %r", original)
    out: dict[str, Any] = {"message": message, "extensions": {"code": code}}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    return out


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
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        self.counters["graphql_requests"] += 1
        prefix = path[: -len(GRAPHQL_SUFFIX)]
        if any(prefix.startswith(p.rstrip("/")) and p.strip("/") for p in faults.down_prefixes):
            self.counters["injected_503"] += 1
            await _respond(send, 503, b"service unavailable (injected)", content_type="text/plain")
            return
        if faults.fail_next > 0:
            faults.fail_next -= 1
            self.counters["injected_500"] += 1
            await _respond(send, 500, b"internal server error (injected)", content_type="text/plain")
            return
        if not self._authorized(scope):
            await self._unauthenticated(send, graphql=True)
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
        flags: dict[str, bool] = {}
        drop = False
        mutation = scope.get("method") == "POST" and _is_mutation(body)
        if mutation:
            self.counters["mutation_requests"] += 1
            if faults.drop_after_commit > 0:
                faults.drop_after_commit -= 1
                drop = True
            elif faults.internal_after_commit > 0:
                faults.internal_after_commit -= 1
                flags["internal_after_commit"] = True
                self.counters["injected_internal"] += 1
        scope = dict(scope)
        scope["caselle_flags"] = flags
        if faults.hostile_for("graphql", mutation=mutation):
            self.counters["hostile_answers"] += 1
            await hostile_mode.answer(
                faults, body, send, lambda s: self.graphql(scope, _replay(body), s), self.store.all_receipts
            )
            return
        if not drop:
            hold, flush = http_rules.shaped(send, scope)  # GraphQL-over-HTTP shape (http.py)
            fast = None if flags else receipts_answer(self.schema, self.store, body)
            if fast is not None:  # aliased receipts queries: same answer, without graphql-core
                await _respond(hold, 200, fast)
            else:
                await self.graphql(scope, _replay(body), hold)
            await flush()
            return
        # Run the request for real (it commits), then break the answer off half way.
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
        method = scope.get("method")
        if path == "/_admin/state" and method == "GET":
            await _respond(send, 200, self.state())
        elif path == "/_admin/faults" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object")
                self.faults.update(changes)
            except ValueError as exc:
                await _respond(send, 400, {"error": str(exc)})
                return
            await _respond(send, 200, self.faults.as_dict())
        elif path == "/_admin/reset" and method == "POST":
            self.reset()
            await _respond(send, 200, self.state())
        elif path == "/_admin/expire-tokens" and method == "POST":
            await _respond(send, 200, {"expired": self.expire_tokens()})
        elif path == "/_admin/paper-updates" and method == "GET":
            await _respond(send, 200, self.store.paper_updates())
        elif path == "/_admin/receipts" and method == "GET":
            await _respond(send, 200, self.store.all_receipts())
        elif path.startswith("/_admin/receipts/") and method == "POST":  # hand edits (emulator/admin.py)
            status, payload = receipt_operation(self.store, path.rsplit("/", 1)[1], body)
            await _respond(send, status, payload)
        elif path == "/_admin/requests" and method == "GET":
            await _respond(
                send, 200, {"totals": dict(self.requests.totals), "requests": self.requests.entries()}
            )
        else:
            await _respond(send, 404, {"error": f"no admin route {method} {path}"})

    def state(self) -> dict[str, Any]:
        with self._lock:
            live = sum(1 for e in self._tokens.values() if e > time.time())
        return {
            "faults": self.faults.as_dict(),
            "counters": dict(self.counters),
            "live_tokens": live,
            **self.store.counts(),
        }
