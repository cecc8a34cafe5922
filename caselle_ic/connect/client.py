"""The Caselle Connect client (SPEC §6, §8, §9): validate, send, retry, fail over, check.

Layers (each its own module): :mod:`~caselle_ic.connect.documents` (GraphQL documents),
:mod:`~caselle_ic.connect.models` (strict answer models and checks),
:mod:`~caselle_ic.connect.auth`, :mod:`~caselle_ic.connect.transport` (bounded HTTP and the
error map), :mod:`~caselle_ic.connect.executor` (the one place requests are sent),
:mod:`~caselle_ic.connect.batches` (aliased batches and the receipt checks they share),
and this client: its endpoints and options, and the single operations. Rules it keeps:

* **Validation, retries, failover**: :class:`~caselle_ic.connect.executor.Executor`
  (every document validated before anything is sent; a repeat only where it cannot
  duplicate, a lost answer of ``create_receipt``/``void_receipt`` an
  :class:`OutcomeUnknownError`; primary → secondary, then stay there).
* **Every answer is checked**: parsed strictly (:mod:`models`), and every receipt taken from
  an answer must be the payment's — ``create_receipt``'s against what was sent, a void's
  against the receipt voided, ``receipts(confirmationNumber:)`` against the payment (what
  this client sent under that number, or what the caller passes). A mismatch or a
  malformed answer is an outcome-unknown error for that item, never a value.
* **Errors** are typed (``caselle_ic.errors``), name the operation and the GraphQL code,
  carry at most a few KB of server text and never a secret, a token or an account number.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal, TypeVar

from pydantic import SecretStr

from caselle_ic.config.model import BillerConfig, Endpoint
from caselle_ic.connect.auth import BasicAuth, OAuthClientCredentials, auth_for
from caselle_ic.connect.batches import AliasedBatches
from caselle_ic.connect.documents import (
    CREATE_RECEIPT_MUTATION,
    CUSTOMER_QUERY,
    RECEIPTS_QUERY,
    REPEATABLE_MUTATIONS,
    SCHEMA,
    SEND_PAPER_MUTATION,
    VOID_RECEIPT_MUTATION,
    create_receipts_document,
    customers_document,
    receipts_document,
    send_paper_document,
    validate_document,
)
from caselle_ic.connect.executor import NOT_SENT_ATTEMPTS
from caselle_ic.connect.models import (
    Answer,
    Customer,
    ItemOutcome,
    Receipt,
    ReceiptInput,
    api_error,
    malformed,
    mismatch_error,
    receipt_list,
    same_customer,
)
from caselle_ic.connect.transport import GraphQLEndpoint, HTTPTransport, Limits, Transport
from caselle_ic.errors import AuthError, NotFoundError, ServerError
from caselle_ic.tabular.values import mask_account_value

Purpose = Literal["rtdr", "payments", "paperless", "ach_rejects"]
T = TypeVar("T")


class CaselleClient(AliasedBatches):
    """A client for one purpose's endpoint (and its secondary).

    ``timeout`` is (connect, read) seconds per socket operation, ``deadline`` the whole of one
    HTTP request, ``max_body`` the bytes of one answer; ``transport`` replaces the HTTP
    transport (an in-process fake in tests). ``max_attempts`` caps every retry loop when
    given; by default an unreachable endpoint is tried 4 times and one that answers 5xx
    is retried for ``retry_window`` seconds.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        oauth_url: str | None = None,
        oauth_secret: SecretStr | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        deadline: float = 60.0,
        max_body: int = 4 * 1024 * 1024,
        max_attempts: int | None = None,
        retry_window: float = 30.0,
        backoff: float = 0.25,
        transport: Transport | None = None,
    ):
        self.timeout = timeout
        self.limits = Limits(timeout[0], timeout[1], deadline, max_body)
        self.max_attempts = None if max_attempts is None else max(1, max_attempts)
        self.retry_window = retry_window
        self.backoff = backoff
        self.failovers = 0
        self.answers = 0  # HTTP answers received, whatever their status: the server is there
        self._active = 0
        self._owns_transport = transport is None
        self.transport: Transport = transport if transport is not None else HTTPTransport(self.limits)
        self._sent: OrderedDict[str, ReceiptInput] = OrderedDict()
        endpoints = [endpoint] + ([endpoint.secondary] if endpoint.secondary else [])
        attempts = self.max_attempts or NOT_SENT_ATTEMPTS
        self._targets = [
            GraphQLEndpoint(
                ep,
                auth_for(
                    ep,
                    oauth_url,
                    oauth_secret,
                    transport=self.transport,
                    max_attempts=attempts,
                    backoff=backoff,
                ),
                self.transport,
            )
            for ep in endpoints
        ]

    @classmethod
    def for_purpose(cls, cfg: BillerConfig, purpose: Purpose, **kwargs: Any) -> CaselleClient:
        """The client for ``rtdr`` (8/88), ``payments`` (11), ``paperless`` (14/111) or
        ``ach_rejects`` (101, else 11), with the biller's auth (126/127 or basic)."""
        endpoint = cfg.endpoint(purpose)
        oauth_url = cfg.oauth_url
        kwargs.setdefault("retry_window", cfg.connect.retry_window_seconds)
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
            t.auth.close()
        if self._owns_transport:
            self.transport.close()

    @property
    def active_endpoint(self) -> str:
        return self._targets[self._active].name

    @property
    def oauth(self) -> list[OAuthClientCredentials]:
        return [t.auth for t in self._targets if isinstance(t.auth, OAuthClientCredentials)]

    # -- single operations -------------------------------------------------------------------
    def _single(self, answer: Answer, field: str, operation: str, *, mutation: bool) -> Any:
        errors = [e for e in answer.errors if not e.get("path") or e["path"][0] == field]
        if errors:
            raise api_error(errors[0], operation, mutation=mutation)
        value = (answer.data or {}).get(field)
        if value is None and mutation:
            raise malformed(f"no {field} in the answer", operation)
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
        return same_customer(Customer.from_api(value, "customer"), customer_number, "customer")

    def receipts(self, confirmation_number: str | ReceiptInput) -> list[Receipt]:
        """Every receipt carrying this confirmation number (the IC PaymentGUID), each
        checked against the payment (ReceiptMismatchError when one is not its receipt)."""
        expected = self._expected(confirmation_number)
        number = expected if isinstance(expected, str) else expected.confirmation_number
        answer = self.execute(RECEIPTS_QUERY.document, {"confirmationNumber": number})
        value = self._single(answer, "receipts", "receipts", mutation=False)
        return self._listed(receipt_list(value, "receipts"), expected)

    def create_receipt(self, receipt: ReceiptInput | Mapping[str, Any]) -> Receipt:
        """One receipt; raises the item's error (OutcomeUnknownError: settle first)."""
        outcome = self.create_receipts([receipt])[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.value is not None
        return outcome.value

    def void_receipt(self, receipt_number: int, void_date: date) -> Receipt:
        """Void a receipt. AlreadyVoidedError / NotFoundError / OutcomeUnknownError (also
        when the answer is not that receipt, voided)."""
        operation = "void_receipt"
        answer = self.execute(
            VOID_RECEIPT_MUTATION.document,
            {"receiptNumber": int(receipt_number), "date": void_date.isoformat()},
        )
        r = Receipt.from_api(self._single(answer, "void_receipt", operation, mutation=True), operation)
        wrong = [
            n
            for n, bad in (
                ("receiptNumber", r.receipt_number != int(receipt_number)),
                ("voided", not r.voided),
            )
            if bad
        ]
        if wrong:
            raise mismatch_error(r, wrong, operation)
        return r

    def set_send_paper(self, customer_number: int, send_paper: bool) -> Customer:
        """``customer_send_paper_invoice_update``: True = paper, False = paperless."""
        field = "customer_send_paper_invoice_update"
        answer = self.execute(
            SEND_PAPER_MUTATION.document,
            {"customerNumber": int(customer_number), "sendPaperStatement": bool(send_paper)},
        )
        value = self._single(answer, field, field, mutation=False)
        if value is None:
            raise ServerError("Caselle answered without a result", operation=field)
        return same_customer(Customer.from_api(value, field), customer_number, field)


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
    "Purpose",
    "Receipt",
    "ReceiptInput",
    "api_error",
    "create_receipts_document",
    "customers_document",
    "receipts_document",
    "send_paper_document",
    "validate_document",
]
