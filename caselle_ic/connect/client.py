"""The Caselle Connect client (SPEC §6, §8, §9), on gql with the requests transport.

Rules this module keeps:

* **Documents** are named module-level constants with variables (``CUSTOMER_QUERY`` ...).
  A batch of several mutations is *one* document of aliased fields (``r0: create_receipt
  (receipt: $r0)``, ...) built from the schema with gql's DSL and cached per size — never
  by formatting strings, never as a JSON array (ariadne rejects batched arrays).
* **Validation**: every document is validated against ``schemas/caselle_connect.graphql``
  before anything is sent; a failure raises :class:`SchemaValidationError`.
* **Auth** is a ``requests.auth.AuthBase`` handed to the transport (never
  ``extra_args={"headers": ...}``, which would drop the Authorization header): OAuth
  client credentials when setting 126 is set — the token is reused until shortly before
  it expires and fetched again once on HTTP 401 / UNAUTHENTICATED — else HTTP basic.
* **Timeouts** on every request (connect, read).
* **Retries**: only where a repeat cannot duplicate. A request that never left (connection
  refused, connect timeout) is retried with backoff. A lost answer (read timeout, dropped
  connection, HTTP 5xx, GraphQL INTERNAL) is retried only for *repeatable* operations:
  queries and ``customer_send_paper_invoice_update`` (it sets a value, so sending it twice
  is harmless). For ``create_receipt`` and ``void_receipt`` it raises
  :class:`OutcomeUnknownError`: the caller settles with ``receipts(confirmationNumber:)``
  before sending again. gql's own ``retries=`` is never used (it re-sends POSTs blindly).
* **Failover**: from the primary endpoint to its secondary (8→88, 14→111) when the primary
  cannot be reached or keeps answering 5xx; the client then stays on the secondary.
* **Errors** are typed (``caselle_ic.errors``), name the operation and the GraphQL code,
  and never contain a secret or a token.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar

import requests
from gql import Client, GraphQLRequest, gql
from gql.dsl import DSLMutation, DSLQuery, DSLSchema, DSLVariableDefinitions, dsl_gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.requests import RequestsHTTPTransport
from graphql import DocumentNode, GraphQLSchema, build_schema, print_ast, validate
from graphql.language import OperationDefinitionNode, OperationType
from pydantic import SecretStr

from caselle_ic.config.model import BillerConfig, Endpoint
from caselle_ic.errors import (
    ERROR_CODES,
    AuthError,
    CaselleAPIError,
    ConfigError,
    CredentialsRejectedError,
    FatalAPIError,
    NotFoundError,
    OutcomeUnknownError,
    SchemaValidationError,
    ServerError,
    TransportError,
)
from caselle_ic.schemas import schema_sdl
from caselle_ic.tabular.values import mask_account_value

log = logging.getLogger(__name__)

Purpose = Literal["rtdr", "payments", "paperless", "ach_rejects"]

#: The local schema every document is validated against.
SCHEMA: GraphQLSchema = build_schema(schema_sdl())

# -- documents ------------------------------------------------------------------------
CUSTOMER_QUERY = gql(
    """
    query Customer($customerNumber: Int!) {
      customer(customerNumber: $customerNumber) {
        id
        customerNumber
        name { fullName }
        balance
        sendPaperStatement
      }
    }
    """
)

RECEIPTS_QUERY = gql(
    """
    query Receipts($confirmationNumber: String!) {
      receipts(confirmationNumber: $confirmationNumber) {
        receiptNumber
        receiptDate
        distributionCode
        paymentCode
        amount
        accountNumber
        confirmationNumber
        voided
        voidDate
      }
    }
    """
)

CREATE_RECEIPT_MUTATION = gql(
    """
    mutation CreateReceipt($receipt: CreateReceiptInput!) {
      create_receipt(receipt: $receipt) {
        receiptNumber
        receiptDate
        distributionCode
        paymentCode
        amount
        accountNumber
        confirmationNumber
        voided
        voidDate
      }
    }
    """
)

VOID_RECEIPT_MUTATION = gql(
    """
    mutation VoidReceipt($receiptNumber: Int!, $date: Date!) {
      void_receipt(receiptNumber: $receiptNumber, date: $date) {
        receiptNumber
        receiptDate
        distributionCode
        paymentCode
        amount
        accountNumber
        confirmationNumber
        voided
        voidDate
      }
    }
    """
)

SEND_PAPER_MUTATION = gql(
    """
    mutation SendPaper($customerNumber: Int!, $sendPaperStatement: Boolean!) {
      customer_send_paper_invoice_update(
        customerNumber: $customerNumber
        sendPaperStatement: $sendPaperStatement
      ) {
        id
        customerNumber
        name { fullName }
        sendPaperStatement
      }
    }
    """
)

RECEIPT_FIELDS = (
    "receiptNumber",
    "receiptDate",
    "distributionCode",
    "paymentCode",
    "amount",
    "accountNumber",
    "confirmationNumber",
    "voided",
    "voidDate",
)
CUSTOMER_FIELDS = ("id", "customerNumber", "balance", "sendPaperStatement")

#: Mutations that set a value: sending one twice leaves the same state.
REPEATABLE_MUTATIONS = frozenset({"customer_send_paper_invoice_update"})

_DSL = DSLSchema(SCHEMA)


def _customer_selection() -> list[Any]:
    return [
        *(getattr(_DSL.Customer, f) for f in CUSTOMER_FIELDS),
        _DSL.Customer.name.select(_DSL.CustomerName.fullName),
    ]


@lru_cache(maxsize=128)
def create_receipts_document(n: int) -> DocumentNode:
    """``mutation CreateReceipts($r0: CreateReceiptInput!, ...) { r0: create_receipt(...) ... }``."""
    var = DSLVariableDefinitions()
    fields = [
        _DSL.Mutation.create_receipt.alias(f"r{i}")
        .args(receipt=getattr(var, f"r{i}"))
        .select(*(getattr(_DSL.Receipt, f) for f in RECEIPT_FIELDS))
        for i in range(n)
    ]
    op = DSLMutation(*fields)
    op.variable_definitions = var
    return dsl_gql(CreateReceipts=op).document


@lru_cache(maxsize=128)
def send_paper_document(n: int) -> DocumentNode:
    """Aliased ``customer_send_paper_invoice_update`` × n (variables ``$c0``, ``$p0``, ...)."""
    var = DSLVariableDefinitions()
    fields = [
        _DSL.Mutation.customer_send_paper_invoice_update.alias(f"r{i}")
        .args(customerNumber=getattr(var, f"c{i}"), sendPaperStatement=getattr(var, f"p{i}"))
        .select(
            _DSL.Customer.id,
            _DSL.Customer.customerNumber,
            _DSL.Customer.sendPaperStatement,
            _DSL.Customer.name.select(_DSL.CustomerName.fullName),
        )
        for i in range(n)
    ]
    op = DSLMutation(*fields)
    op.variable_definitions = var
    return dsl_gql(SendPaperBatch=op).document


@lru_cache(maxsize=128)
def customers_document(n: int) -> DocumentNode:
    """Aliased ``customer(customerNumber:)`` × n (variables ``$c0``, ...)."""
    var = DSLVariableDefinitions()
    fields = [
        _DSL.Query.customer.alias(f"r{i}")
        .args(customerNumber=getattr(var, f"c{i}"))
        .select(*_customer_selection())
        for i in range(n)
    ]
    op = DSLQuery(*fields)
    op.variable_definitions = var
    return dsl_gql(Customers=op).document


@lru_cache(maxsize=128)
def receipts_document(n: int) -> DocumentNode:
    """Aliased ``receipts(confirmationNumber:)`` × n (variables ``$c0``, ...): settles a
    whole batch whose answer was lost in one round trip."""
    var = DSLVariableDefinitions()
    fields = [
        _DSL.Query.receipts.alias(f"r{i}")
        .args(confirmationNumber=getattr(var, f"c{i}"))
        .select(*(getattr(_DSL.Receipt, f) for f in RECEIPT_FIELDS))
        for i in range(n)
    ]
    op = DSLQuery(*fields)
    op.variable_definitions = var
    return dsl_gql(ReceiptsBatch=op).document


# -- validation -------------------------------------------------------------------------
_validated: dict[int, DocumentNode] = {}
_validated_lock = threading.Lock()


def validate_document(document: DocumentNode, operation: str = "document") -> None:
    """Raise SchemaValidationError unless ``document`` validates against the local schema.

    A document that passed is remembered (by identity), so the constants and the cached
    batch documents are validated once per process.
    """
    key = id(document)
    with _validated_lock:
        if _validated.get(key) is document:
            return
    errors = validate(SCHEMA, document)
    if errors:
        detail = "; ".join(e.message for e in errors[:3])
        raise SchemaValidationError(
            f"the {operation} document does not match schemas/caselle_connect.graphql: {detail}; "
            "nothing was sent",
            operation=operation,
        )
    with _validated_lock:
        if len(_validated) > 512:
            _validated.clear()
        _validated[key] = document


_printed: dict[int, tuple[DocumentNode, str]] = {}


class _Request(GraphQLRequest):
    """A GraphQLRequest that prints its (constant or cached) document once per process.

    gql prints the AST on every send; for a 50-alias batch that is ~4 ms a request.
    """

    @property
    def payload(self) -> dict[str, Any]:
        key = id(self.document)
        hit = _printed.get(key)
        if hit is None or hit[0] is not self.document:
            if len(_printed) > 512:
                _printed.clear()
            hit = _printed[key] = (self.document, print_ast(self.document))
        out: dict[str, Any] = {"query": hit[1]}
        if self.operation_name:
            out["operationName"] = self.operation_name
        if self.variable_values:
            out["variables"] = self.variable_values
        if self.extensions:
            out["extensions"] = self.extensions
        return out


def _operation_of(document: DocumentNode) -> tuple[str, bool, bool]:
    """(root field name, is mutation, repeatable) of a single-operation document."""
    op = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fields = [s.name.value for s in op.selection_set.selections if hasattr(s, "name")]
    mutation = op.operation == OperationType.MUTATION
    repeatable = not mutation or all(f in REPEATABLE_MUTATIONS for f in fields)
    return (fields[0] if fields else "document"), mutation, repeatable


# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Customer:
    id: str
    customer_number: int
    name: str | None
    balance: Decimal | None
    send_paper_statement: bool | None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Customer:
        name = d.get("name") or {}
        balance = d.get("balance")
        return cls(
            id=str(d["id"]),
            customer_number=int(d["customerNumber"]),
            name=name.get("fullName"),
            balance=None if balance is None else Decimal(str(balance)),
            send_paper_statement=d.get("sendPaperStatement"),
        )


@dataclass(frozen=True)
class Receipt:
    receipt_number: int
    receipt_date: date
    distribution_code: int
    payment_code: int
    amount: Decimal
    account_number: str
    confirmation_number: str
    voided: bool
    void_date: date | None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Receipt:
        return cls(
            receipt_number=int(d["receiptNumber"]),
            receipt_date=date.fromisoformat(d["receiptDate"]),
            distribution_code=int(d["distributionCode"]),
            payment_code=int(d["paymentCode"]),
            amount=Decimal(str(d["amount"])),
            account_number=str(d["accountNumber"]),
            confirmation_number=str(d["confirmationNumber"]),
            voided=bool(d["voided"]),
            void_date=date.fromisoformat(d["voidDate"]) if d.get("voidDate") else None,
        )


@dataclass(frozen=True)
class ReceiptInput:
    """One ``create_receipt`` (SPEC §6). ``amount`` is an exact Decimal, two decimals."""

    receipt_date: date
    distribution_code: int
    payment_code: int
    amount: Decimal
    account_number: str
    confirmation_number: str
    account_name: str | None = None
    gl_activity_number: int = 0
    allocate_to: str | None = None

    def variables(self) -> dict[str, Any]:
        amount = Decimal(self.amount)
        if amount != amount.quantize(Decimal("0.01")):
            raise ValueError(f"amount {amount} has more than two decimals")
        return {
            "receiptDate": self.receipt_date.isoformat(),
            "distributionCode": int(self.distribution_code),
            "paymentCode": int(self.payment_code),
            "amount": str(amount.quantize(Decimal("0.01"))),
            "accountNumber": self.account_number,
            "accountName": self.account_name,
            "glActivityNumber": int(self.gl_activity_number),
            "allocateTo": self.allocate_to,
            "confirmationNumber": self.confirmation_number,
        }


T = TypeVar("T")


@dataclass(frozen=True)
class ItemOutcome(Generic[T]):
    """The answer for one item of an aliased batch: its value, or its own error."""

    index: int
    value: T | None
    error: CaselleAPIError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def unknown(self) -> bool:
        """The item was sent and its answer lost: settle before sending it again."""
        return isinstance(self.error, OutcomeUnknownError)


# -- auth ---------------------------------------------------------------------------------
class BasicAuth(requests.auth.AuthBase):
    """HTTP basic with the endpoint's username and password (setting 126 unset)."""

    def __init__(self, username: str, password: SecretStr):
        self.username = username
        self._password = password

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        pair = f"{self.username}:{self._password.get_secret_value()}".encode()
        r.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return r


class OAuthClientCredentials(requests.auth.AuthBase):
    """OAuth client credentials (SPEC §9): ``POST {126}`` with client id and secret (127).

    The token is cached and reused until ``refresh_margin`` before it expires; ``refresh()``
    fetches a new one (the client calls it once on HTTP 401 / UNAUTHENTICATED).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 4,
        backoff: float = 0.25,
    ):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self._http = requests.Session()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"OAuthClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r

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
        self._http.close()

    def _fetch(self) -> None:
        self._token = None
        last: CaselleAPIError | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                resp = self._http.post(
                    self.token_url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self._secret.get_secret_value(),
                    },
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                last = TransportError(
                    f"cannot reach the OAuth token URL ({_describe(exc)})", operation="oauth-token"
                )
            else:
                if resp.status_code in (400, 401, 403):
                    raise CredentialsRejectedError(
                        "the OAuth token URL (setting 126) refused the client credentials; check the "
                        "endpoint username and the client secret (setting 127)",
                        operation="oauth-token",
                        status=resp.status_code,
                    )
                if resp.status_code >= 500:
                    last = ServerError(
                        "the OAuth token URL failed", operation="oauth-token", status=resp.status_code
                    )
                else:
                    try:
                        body = resp.json()
                        token = str(body["access_token"])
                        expires_in = float(body.get("expires_in") or 3600)
                    except (ValueError, KeyError, TypeError):
                        last = ServerError(
                            "the OAuth token URL did not answer with an access_token",
                            operation="oauth-token",
                            status=resp.status_code,
                        )
                    else:
                        margin = min(60.0, expires_in * 0.1)
                        self._token = token
                        self._refresh_at = time.monotonic() + max(0.0, expires_in - margin)
                        self.fetches += 1
                        return
            if attempt < self._max_attempts:
                time.sleep(_delay(self._backoff, attempt))
        assert last is not None
        raise last


def _delay(base: float, attempt: int, cap: float = 5.0) -> float:
    return float(min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))


# -- transport ----------------------------------------------------------------------------
class _HTTPStatus(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


class _Transport(RequestsHTTPTransport):
    """gql's requests transport, but the HTTP status decides before the body is trusted."""

    def _prepare_result(self, response: requests.Response) -> Any:
        status = response.status_code
        if status == 401 or status >= 500:
            raise _HTTPStatus(status)
        if status >= 400:
            try:
                body = response.json()
            except ValueError:
                raise _HTTPStatus(status) from None
            if not isinstance(body, dict) or "errors" not in body:
                raise _HTTPStatus(status)
        return super()._prepare_result(response)


class _NotSent(Exception):
    """The request never reached the server: repeating it cannot duplicate anything."""

    def __init__(self, reason: str, *, refused: bool):
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class _Lost(Exception):
    """The request was (or may have been) processed and its answer is lost."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _Unauthorized(Exception):
    pass


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a requests failure."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped during the answer"
    if isinstance(exc, requests.ConnectionError):
        text = repr(exc)
        if "NewConnectionError" in text or "Connection refused" in text:
            return "connection refused"
        if "NameResolutionError" in text or "Name or service not known" in text:
            return "host name not found"
        if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text.lower():
            return "connection dropped"
        return "connection error"
    return type(exc).__name__


def _never_sent(exc: BaseException | None) -> tuple[bool, bool]:
    """(surely not sent, refused). Anything we cannot prove unsent counts as sent."""
    if isinstance(exc, requests.ConnectTimeout):
        return True, False
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        text = repr(exc)
        if "NewConnectionError" in text or "NameResolutionError" in text:
            return True, True
    return False, False


@dataclass
class Answer:
    """A GraphQL answer: ``data`` (None when nothing executed) and the raw ``errors``."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]]


class _Target:
    """One endpoint: its transport (with auth and timeout) and gql session."""

    def __init__(self, endpoint: Endpoint, auth: requests.auth.AuthBase, timeout: tuple[float, float]):
        self.endpoint = endpoint
        self.name = endpoint.name
        self.auth = auth
        self.transport = _Transport(url=endpoint.url, auth=auth, retries=0)
        self.transport.default_timeout = timeout  # type: ignore[assignment]  # (connect, read)
        self.client = Client(transport=self.transport)
        self.session = self.client.connect_sync()

    def close(self) -> None:
        try:
            self.client.close_sync()
        finally:
            if isinstance(self.auth, OAuthClientCredentials):
                self.auth.close()

    def execute(self, request: GraphQLRequest) -> Answer:
        if isinstance(self.auth, OAuthClientCredentials):
            self.auth.token()  # fetch outside the HTTP call, so its errors stay typed
        try:
            result = self.session.execute(request, get_execution_result=True)
        except TransportQueryError as exc:
            return Answer(exc.data, list(exc.errors or []))
        except _HTTPStatus as exc:
            if exc.status == 401:
                raise _Unauthorized() from None
            if exc.status >= 500:
                raise _Lost(f"HTTP {exc.status}", exc.status) from None
            raise FatalAPIError(f"{self.name} answered HTTP {exc.status}", status=exc.status) from None
        except TransportConnectionFailed as exc:
            cause = exc.__cause__
            not_sent, refused = _never_sent(cause)
            reason = _describe(cause) if cause is not None else "connection failed"
            if not_sent:
                raise _NotSent(reason, refused=refused) from None
            raise _Lost(reason) from None
        except TransportProtocolError:
            raise _Lost("the answer was not a GraphQL result") from None
        except TransportServerError as exc:
            raise _Lost(f"HTTP {exc.code}", exc.code) from None
        return Answer(result.data, list(result.errors or []))


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Variables as JSON values: Decimal -> "1234.56", date -> "YYYY-MM-DD"."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            value = str(value.quantize(Decimal("0.01")))
        elif isinstance(value, date):
            value = value.isoformat()
        out[key] = value
    return out


def _code(err: Mapping[str, Any]) -> str | None:
    ext = err.get("extensions") or {}
    code = ext.get("code") if isinstance(ext, Mapping) else None
    return str(code) if code else None


def _request_level(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in errors if not e.get("path")]


def api_error(err: Mapping[str, Any], operation: str, *, mutation: bool) -> CaselleAPIError:
    """The typed error for one GraphQL error. INTERNAL on a mutation = outcome unknown."""
    code = _code(err)
    message = str(err.get("message") or "error")
    if mutation and (code == "INTERNAL" or code not in ERROR_CODES):
        return OutcomeUnknownError(
            f"Caselle answered {message!r}; the outcome is unknown", operation=operation, code=code
        )
    cls = ERROR_CODES.get(code or "", ServerError)
    return cls(f"Caselle refused: {message}", operation=operation, code=code)


# -- the client ---------------------------------------------------------------------------
#: Username / password settings of each endpoint, for messages that say what to fix.
_CREDENTIAL_SETTINGS = {
    "rtdr": ("9", "10"),
    "rtdr-secondary": ("9", "10"),
    "payments": ("12", "13"),
    "paperless": ("15", "16"),
    "paperless-secondary": ("112", "113"),
    "ach-rejects": ("102", "103"),
    "autopay": ("18", "19"),
}


class CaselleClient:
    """A client for one purpose's endpoint (and its secondary)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        oauth_url: str | None = None,
        oauth_secret: SecretStr | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 4,
        backoff: float = 0.25,
    ):
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.failovers = 0
        self._active = 0
        endpoints = [endpoint] + ([endpoint.secondary] if endpoint.secondary else [])
        self._targets = [
            _Target(ep, self._auth_for(ep, oauth_url, oauth_secret), timeout) for ep in endpoints
        ]

    def _auth_for(
        self, ep: Endpoint, oauth_url: str | None, oauth_secret: SecretStr | None
    ) -> requests.auth.AuthBase:
        user_setting, pw_setting = _CREDENTIAL_SETTINGS.get(ep.name, ("username", "password"))
        if not ep.username:
            raise ConfigError(
                f"setting {user_setting} (username of the {ep.name} endpoint) is not set",
                setting=user_setting,
            )
        if oauth_url:
            if oauth_secret is None or not oauth_secret.get_secret_value():
                raise ConfigError(
                    "setting 126 (OAuth URL) is set but setting 127 (client secret) is not", setting="127"
                )
            return OAuthClientCredentials(
                oauth_url, ep.username, oauth_secret, timeout=self.timeout, backoff=self.backoff
            )
        if ep.password is None or not ep.password.get_secret_value():
            raise ConfigError(
                f"setting {pw_setting} (password of the {ep.name} endpoint) is not set and setting 126 "
                "(OAuth) is not set either",
                setting=pw_setting,
            )
        return BasicAuth(ep.username, ep.password)

    @classmethod
    def for_purpose(cls, cfg: BillerConfig, purpose: Purpose, **kwargs: Any) -> CaselleClient:
        """The client for ``rtdr`` (8/88), ``payments`` (11), ``paperless`` (14/111) or
        ``ach_rejects`` (101, else 11), with the biller's auth (126/127 or basic)."""
        endpoint = cfg.endpoint(purpose)
        oauth_url = cfg.oauth_url
        return cls(
            endpoint, oauth_url=oauth_url, oauth_secret=cfg.oauth_secret if oauth_url else None, **kwargs
        )

    def __repr__(self) -> str:
        return (
            f"CaselleClient(endpoints={[t.name for t in self._targets]!r}, active={self.active_endpoint!r})"
        )

    def __enter__(self) -> CaselleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for t in self._targets:
            t.close()

    @property
    def active_endpoint(self) -> str:
        return self._targets[self._active].name

    @property
    def oauth(self) -> list[OAuthClientCredentials]:
        return [t.auth for t in self._targets if isinstance(t.auth, OAuthClientCredentials)]

    # -- the one place requests are sent ---------------------------------------------------
    def execute(
        self,
        document: DocumentNode,
        variables: Mapping[str, Any] | None = None,
        *,
        operation: str | None = None,
    ) -> Answer:
        """Validate, send, retry and fail over as the module docstring says.

        Returns the GraphQL answer (data and errors). Raises OutcomeUnknownError when a
        non-repeatable mutation's answer was lost; TransportError / ServerError when no
        endpoint could answer; CredentialsRejectedError when auth fails after a refresh.
        """
        root, _mutation, repeatable = _operation_of(document)
        operation = operation or root
        validate_document(document, operation)
        request = _Request(document, variable_values=dict(variables or {}))
        last: CaselleAPIError | None = None
        order = list(range(self._active, len(self._targets))) + list(range(self._active))
        for position, index in enumerate(order):
            target = self._targets[index]
            has_next = position + 1 < len(order)
            refreshed = False
            attempt = 0
            while True:
                attempt += 1
                try:
                    answer = target.execute(request)
                    if (
                        answer.data is None
                        and answer.errors
                        and all(_code(e) == "UNAUTHENTICATED" for e in answer.errors)
                    ):
                        raise _Unauthorized()
                    # A repeatable operation is simply asked again; for the others an
                    # INTERNAL error becomes OutcomeUnknownError per item (api_error).
                    if repeatable and any(_code(e) == "INTERNAL" for e in answer.errors):
                        raise _Lost("GraphQL INTERNAL error")
                except _Unauthorized:
                    if isinstance(target.auth, OAuthClientCredentials) and not refreshed:
                        log.info("%s: %s refused the token; fetching a new one", operation, target.name)
                        refreshed = True
                        target.auth.refresh()
                        attempt -= 1
                        continue
                    user_setting, pw_setting = _CREDENTIAL_SETTINGS.get(target.name, ("username", "password"))
                    fix = (
                        f"it refused a freshly issued OAuth token: check that the client id (setting "
                        f"{user_setting}) may use this endpoint"
                        if refreshed
                        else f"check settings {user_setting}/{pw_setting}"
                    )
                    raise CredentialsRejectedError(
                        f"the {target.name} endpoint refused the credentials; {fix}",
                        operation=operation,
                        code="UNAUTHENTICATED",
                    ) from None
                except _NotSent as exc:
                    last = TransportError(
                        f"cannot reach the {target.name} endpoint ({exc.reason})", operation=operation
                    )
                    if exc.refused and has_next:
                        break
                    if attempt < self.max_attempts:
                        self._sleep(operation, target.name, exc.reason, attempt)
                        continue
                    break
                except _Lost as exc:
                    if not repeatable:
                        raise OutcomeUnknownError(
                            f"the {target.name} endpoint took the request and the answer was lost "
                            f"({exc.reason}); settle with receipts(confirmationNumber:) before sending again",
                            operation=operation,
                            status=exc.status,
                        ) from None
                    last = ServerError(
                        f"the {target.name} endpoint failed ({exc.reason})",
                        operation=operation,
                        status=exc.status,
                    )
                    if attempt < self.max_attempts:
                        self._sleep(operation, target.name, exc.reason, attempt)
                        continue
                    break
                if index != self._active:
                    log.warning(
                        "%s: failed over from %s to %s; staying there for this client",
                        operation,
                        self._targets[self._active].name,
                        target.name,
                    )
                    self._active = index
                    self.failovers += 1
                return answer
            if has_next:
                log.warning(
                    "%s: giving up on %s (%s); trying %s",
                    operation,
                    target.name,
                    last,
                    self._targets[order[position + 1]].name,
                )
        assert last is not None
        raise last

    def _sleep(self, operation: str, endpoint: str, reason: str, attempt: int) -> None:
        delay = _delay(self.backoff, attempt)
        log.warning(
            "%s: %s on %s (attempt %d of %d); retrying in %.2f s",
            operation,
            reason,
            endpoint,
            attempt,
            self.max_attempts,
            delay,
        )
        time.sleep(delay)

    # -- single operations -------------------------------------------------------------------
    def _single(self, answer: Answer, field: str, operation: str, *, mutation: bool) -> Any:
        errors = [e for e in answer.errors if not e.get("path") or e["path"][0] == field]
        if errors:
            raise api_error(errors[0], operation, mutation=mutation)
        value = (answer.data or {}).get(field)
        if value is None and mutation:
            raise OutcomeUnknownError("Caselle answered without a result", operation=operation)
        return value

    def customer(self, customer_number: int) -> Customer:
        """RTDR lookup (SPEC §8). NotFoundError when Caselle has no such customer."""
        answer = self.execute(CUSTOMER_QUERY.document, {"customerNumber": int(customer_number)})
        value = self._single(answer, "customer", "customer", mutation=False)
        if value is None:
            raise NotFoundError(
                f"Caselle has no customer {mask_account_value(str(customer_number))}",
                operation="customer",
                code="NOT_FOUND",
            )
        return Customer.from_api(value)

    def receipts(self, confirmation_number: str) -> list[Receipt]:
        """Every receipt carrying this confirmation number (the IC PaymentGUID)."""
        answer = self.execute(RECEIPTS_QUERY.document, {"confirmationNumber": confirmation_number})
        value = self._single(answer, "receipts", "receipts", mutation=False) or []
        return [Receipt.from_api(v) for v in value]

    def create_receipt(self, receipt: ReceiptInput | Mapping[str, Any]) -> Receipt:
        """One receipt; raises the item's error (OutcomeUnknownError: settle first)."""
        outcome = self.create_receipts([receipt])[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.value is not None
        return outcome.value

    def void_receipt(self, receipt_number: int, void_date: date) -> Receipt:
        """Void a receipt. AlreadyVoidedError / NotFoundError / OutcomeUnknownError."""
        answer = self.execute(
            VOID_RECEIPT_MUTATION.document,
            {"receiptNumber": int(receipt_number), "date": void_date.isoformat()},
        )
        return Receipt.from_api(self._single(answer, "void_receipt", "void_receipt", mutation=True))

    def set_send_paper(self, customer_number: int, send_paper: bool) -> Customer:
        """``customer_send_paper_invoice_update``: True = paper, False = paperless."""
        answer = self.execute(
            SEND_PAPER_MUTATION.document,
            {"customerNumber": int(customer_number), "sendPaperStatement": bool(send_paper)},
        )
        field = "customer_send_paper_invoice_update"
        return Customer.from_api(self._single(answer, field, field, mutation=False))

    # -- aliased batches ---------------------------------------------------------------------
    def _items(
        self,
        answer: Answer,
        n: int,
        parse: Callable[[Mapping[str, Any]], T],
        operation: str,
        *,
        mutation: bool,
        missing: Callable[[int], CaselleAPIError],
    ) -> list[ItemOutcome[T]]:
        request_errors = _request_level(answer.errors)
        by_alias: dict[str, dict[str, Any]] = {}
        for e in answer.errors:
            path = e.get("path")
            if path:
                by_alias.setdefault(str(path[0]), e)
        data = answer.data or {}
        out: list[ItemOutcome[T]] = []
        for i in range(n):
            alias = f"r{i}"
            value = data.get(alias)
            err = by_alias.get(alias)
            if err is None and value is None and request_errors:
                err = request_errors[0]
            if err is not None:
                out.append(ItemOutcome(i, None, api_error(err, operation, mutation=mutation)))
            elif value is None:
                out.append(ItemOutcome(i, None, missing(i)))
            else:
                out.append(ItemOutcome(i, parse(value)))
        return out

    def create_receipts(
        self, receipts: Sequence[ReceiptInput | Mapping[str, Any]]
    ) -> list[ItemOutcome[Receipt]]:
        """Send receipts as ONE aliased document; one outcome per input, in order.

        Each outcome has the receipt or its own error (NotFoundError, BadUserInputError,
        OutcomeUnknownError ...). If the answer to the document is lost, every item is
        OutcomeUnknownError. Raises (nothing was processed) when no endpoint could be
        reached or the credentials are refused.
        """
        if not receipts:
            return []
        variables = {
            f"r{i}": (r.variables() if isinstance(r, ReceiptInput) else _jsonable(r))
            for i, r in enumerate(receipts)
        }
        try:
            answer = self.execute(
                create_receipts_document(len(receipts)), variables, operation="create_receipt"
            )
        except OutcomeUnknownError as exc:
            return [ItemOutcome(i, None, exc) for i in range(len(receipts))]
        return self._items(
            answer,
            len(receipts),
            Receipt.from_api,
            "create_receipt",
            mutation=True,
            missing=lambda i: OutcomeUnknownError(
                "Caselle answered without a result for this receipt", operation="create_receipt"
            ),
        )

    def set_send_paper_many(self, changes: Sequence[tuple[int, bool]]) -> list[ItemOutcome[Customer]]:
        """Several ``customer_send_paper_invoice_update`` in one aliased document."""
        if not changes:
            return []
        variables: dict[str, Any] = {}
        for i, (number, paper) in enumerate(changes):
            variables[f"c{i}"] = int(number)
            variables[f"p{i}"] = bool(paper)
        field = "customer_send_paper_invoice_update"
        answer = self.execute(send_paper_document(len(changes)), variables, operation=field)
        return self._items(
            answer,
            len(changes),
            Customer.from_api,
            field,
            mutation=False,
            missing=lambda i: ServerError("Caselle answered without a result", operation=field),
        )

    def receipts_many(self, confirmation_numbers: Sequence[str]) -> list[ItemOutcome[list[Receipt]]]:
        """Several ``receipts(confirmationNumber:)`` in one aliased query, one outcome each
        (its list of receipts, possibly empty). A query: retried and failed over freely."""
        if not confirmation_numbers:
            return []
        variables = {f"c{i}": str(c) for i, c in enumerate(confirmation_numbers)}
        answer = self.execute(receipts_document(len(confirmation_numbers)), variables, operation="receipts")

        def parse(value: Any) -> list[Receipt]:
            return [Receipt.from_api(v) for v in value]

        outcomes = self._items(
            answer,
            len(confirmation_numbers),
            parse,
            "receipts",
            mutation=False,
            missing=lambda i: ServerError("Caselle answered without a result", operation="receipts"),
        )
        # ``receipts`` answers [] (never null) when nothing matches; _items only calls
        # ``missing`` for null, so an empty list arrives here as a value.
        return outcomes

    def customers(self, customer_numbers: Sequence[int]) -> list[ItemOutcome[Customer]]:
        """Several RTDR lookups in one aliased query; NotFoundError per missing customer."""
        if not customer_numbers:
            return []
        variables = {f"c{i}": int(n) for i, n in enumerate(customer_numbers)}
        answer = self.execute(customers_document(len(customer_numbers)), variables, operation="customer")
        return self._items(
            answer,
            len(customer_numbers),
            Customer.from_api,
            "customer",
            mutation=False,
            missing=lambda i: NotFoundError(
                f"Caselle has no customer {mask_account_value(str(customer_numbers[i]))}",
                operation="customer",
                code="NOT_FOUND",
            ),
        )


__all__ = [
    "CREATE_RECEIPT_MUTATION",
    "CUSTOMER_QUERY",
    "RECEIPTS_QUERY",
    "REPEATABLE_MUTATIONS",
    "SCHEMA",
    "SEND_PAPER_MUTATION",
    "VOID_RECEIPT_MUTATION",
    "Answer",
    "AuthError",
    "BasicAuth",
    "CaselleClient",
    "Customer",
    "ItemOutcome",
    "OAuthClientCredentials",
    "Receipt",
    "ReceiptInput",
    "api_error",
    "create_receipts_document",
    "customers_document",
    "receipts_document",
    "send_paper_document",
    "validate_document",
]
