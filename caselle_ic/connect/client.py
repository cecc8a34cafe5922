"""The Caselle Connect client (SPEC §6, §8, §9): validate, send, retry, fail over, check.

Layers (each its own module): :mod:`~caselle_ic.connect.documents` (GraphQL documents),
:mod:`~caselle_ic.connect.models` (strict answer models and checks),
:mod:`~caselle_ic.connect.auth`, :mod:`~caselle_ic.connect.transport` (bounded HTTP and the
error map), and this client. Rules it keeps:

* **Validation**: every document is validated against ``schemas/caselle_connect.graphql``
  before anything is sent; a failure raises :class:`SchemaValidationError`.
* **Retries**: only where a repeat cannot duplicate. A request that never left
  (:class:`NotSent`) is retried with backoff (``max_attempts``, default 4). A lost answer
  (:class:`AnswerLost`, HTTP 5xx, GraphQL INTERNAL) is retried only for *repeatable*
  operations — queries and ``customer_send_paper_invoice_update`` — and, while the server
  keeps answering, for up to ``retry_window`` seconds (a burst of 500s is ridden out,
  issue 13.11). For ``create_receipt`` and ``void_receipt`` it is an
  :class:`OutcomeUnknownError`: the caller settles with ``receipts(confirmationNumber:)``
  before sending again.
* **Failover**: from the primary endpoint to its secondary (8→88, 14→111) when the primary
  refuses connections or keeps failing; the client then stays on the secondary.
* **Every answer is checked**: parsed strictly (:mod:`models`), and every receipt taken from
  an answer must be the payment's — ``create_receipt``'s against what was sent, a void's
  against the receipt voided, ``receipts(confirmationNumber:)`` against the payment (what
  this client sent under that number, or what the caller passes). A mismatch or a
  malformed answer is an outcome-unknown error for that item, never a value.
* **Errors** are typed (``caselle_ic.errors``), name the operation and the GraphQL code,
  carry at most a few KB of server text and never a secret, a token or an account number.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal, TypeVar

from graphql import DocumentNode
from pydantic import SecretStr

from caselle_ic.config.model import BillerConfig, Endpoint
from caselle_ic.connect.auth import BasicAuth, OAuthClientCredentials, auth_for, rejected
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
    operation_of,
    printed,
    receipts_document,
    send_paper_document,
    validate_document,
)
from caselle_ic.connect.models import (
    Answer,
    Customer,
    ItemOutcome,
    MalformedAnswerError,
    Receipt,
    ReceiptInput,
    api_error,
    error_code,
    item_outcomes,
    jsonable,
    malformed,
    mismatch_error,
    receipt_list,
    receipt_mismatch,
    same_customer,
)
from caselle_ic.connect.transport import (
    GraphQLEndpoint,
    HTTPTransport,
    Limits,
    Lost,
    NotSent,
    Transport,
    Unauthorized,
    backoff_delay,
)
from caselle_ic.errors import (
    AuthError,
    CaselleAPIError,
    FatalAPIError,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
    TransportError,
)
from caselle_ic.tabular.values import mask_account_value

log = logging.getLogger(__name__)

Purpose = Literal["rtdr", "payments", "paperless", "ach_rejects"]
T = TypeVar("T")

_NOT_SENT_ATTEMPTS = 4  # default tries when an endpoint cannot be reached at all
_REMEMBERED = 100_000  # receipt inputs kept to check settle answers against


class CaselleClient:
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
        attempts = self.max_attempts or _NOT_SENT_ATTEMPTS
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

    # -- the one place requests are sent ---------------------------------------------------
    def execute(
        self,
        document: DocumentNode,
        variables: Mapping[str, Any] | None = None,
        *,
        operation: str | None = None,
    ) -> Answer:
        """Validate, send, retry and fail over as the module docstring says.

        Returns the checked GraphQL answer (data and errors). Raises OutcomeUnknownError
        when a non-repeatable mutation's answer was lost (MalformedAnswerError when it came
        back unusable); TransportError / ServerError when no endpoint could answer;
        CredentialsRejectedError when auth fails after a refresh.
        """
        root, _mutation, repeatable = operation_of(document)
        operation = operation or root
        validate_document(document, operation)
        payload = json.dumps({"query": printed(document), "variables": dict(variables or {})}).encode()
        started = time.monotonic()
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
                    answer = self._exchange(target, payload, operation, repeatable)
                except Unauthorized:
                    if isinstance(target.auth, OAuthClientCredentials) and not refreshed:
                        log.info("%s: %s refused the token; fetching a new one", operation, target.name)
                        refreshed = True
                        target.auth.refresh()
                        attempt -= 1
                        continue
                    raise rejected(target.name, operation, refreshed) from None
                except NotSent as exc:
                    last = TransportError(
                        f"cannot reach the {target.name} endpoint ({exc.reason})", operation=operation
                    )
                    if exc.refused and has_next:
                        break
                    if self._retry(operation, target.name, exc.reason, attempt, started, answering=False):
                        continue
                    break
                except Lost as exc:
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
                    # With a secondary to go to, a failing primary gets the short budget.
                    if self._retry(
                        operation, target.name, exc.reason, attempt, started, answering=not has_next
                    ):
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

    def _exchange(self, target: GraphQLEndpoint, payload: bytes, operation: str, repeatable: bool) -> Answer:
        try:
            answer = target.execute(payload, operation)
        except Lost as exc:
            if exc.status is not None:  # a 5xx is an answer: the server is there
                self.answers += 1
            raise
        except (MalformedAnswerError, FatalAPIError, Unauthorized):
            self.answers += 1
            raise
        self.answers += 1
        if (
            answer.data is None
            and answer.errors
            and all(error_code(e) == "UNAUTHENTICATED" for e in answer.errors)
        ):
            raise Unauthorized()
        # A repeatable operation is simply asked again; for the others an INTERNAL error
        # becomes OutcomeUnknownError per item (api_error).
        if repeatable and any(error_code(e) == "INTERNAL" for e in answer.errors):
            raise Lost("GraphQL INTERNAL error")
        return answer

    def _retry(
        self, operation: str, endpoint: str, reason: str, attempt: int, started: float, *, answering: bool
    ) -> bool:
        """Sleep and say yes when another attempt is allowed: ``max_attempts`` when given;
        else 4 tries for an endpoint that cannot be reached, and for one that answers
        (5xx, lost answers of repeatable requests) as long as ``retry_window`` lasts."""
        delay = backoff_delay(self.backoff, attempt)
        if self.max_attempts is not None:
            allowed = attempt < self.max_attempts
        elif answering:
            allowed = time.monotonic() + delay - started < self.retry_window
        else:
            allowed = attempt < _NOT_SENT_ATTEMPTS
        if not allowed:
            return False
        log.warning(
            "%s: %s on %s (attempt %d); retrying in %.2f s", operation, reason, endpoint, attempt, delay
        )
        time.sleep(delay)
        return True

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

    # -- what a receipt must match --------------------------------------------------------------
    def _remember(self, inputs: Sequence[ReceiptInput | None]) -> None:
        for r in inputs:
            if r is not None:
                self._sent[r.confirmation_number] = r
                self._sent.move_to_end(r.confirmation_number)
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)

    def _expected(self, item: str | ReceiptInput) -> str | ReceiptInput:
        if isinstance(item, ReceiptInput):
            return item
        return self._sent.get(str(item), str(item))

    def _listed(self, found: list[Receipt], expected: str | ReceiptInput) -> list[Receipt]:
        for r in found:
            wrong = receipt_mismatch(r, expected)
            if wrong:
                error = mismatch_error(r, wrong, "receipts")
                log.error("receipts: %s", error)
                raise error
        return found

    # -- aliased batches ---------------------------------------------------------------------
    def create_receipts(
        self, receipts: Sequence[ReceiptInput | Mapping[str, Any]]
    ) -> list[ItemOutcome[Receipt]]:
        """Send receipts as ONE aliased document; one outcome per input, in order.

        Each outcome has the receipt — checked against its input — or its own error
        (NotFoundError, BadUserInputError, OutcomeUnknownError ...). If the answer to the
        document is lost or unusable, every item is OutcomeUnknownError. Raises (nothing
        was processed) when no endpoint could be reached or the credentials are refused.
        """
        if not receipts:
            return []
        operation = "create_receipt"
        variables = {
            f"r{i}": (r.variables() if isinstance(r, ReceiptInput) else jsonable(r))
            for i, r in enumerate(receipts)
        }
        inputs = [r if isinstance(r, ReceiptInput) else ReceiptInput.from_variables(r) for r in receipts]
        self._remember(inputs)
        try:
            answer = self.execute(create_receipts_document(len(receipts)), variables, operation=operation)
        except OutcomeUnknownError as exc:
            return [ItemOutcome(i, None, exc) for i in range(len(receipts))]

        def parse(i: int, value: Any) -> Receipt:
            r = Receipt.from_api(value, operation)
            expected = inputs[i] or str(variables[f"r{i}"].get("confirmationNumber", ""))
            wrong = receipt_mismatch(r, expected, created=True)
            if wrong:
                log.error("%s: %s", operation, mismatch_error(r, wrong, operation))
                raise mismatch_error(r, wrong, operation)
            return r

        return item_outcomes(
            answer,
            len(receipts),
            parse,
            operation,
            mutation=True,
            missing=lambda i: malformed("no result for this receipt", operation),
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
        return item_outcomes(
            answer,
            len(changes),
            lambda i, v: same_customer(Customer.from_api(v, field), changes[i][0], field),
            field,
            mutation=False,
            missing=lambda i: ServerError("Caselle answered without a result", operation=field),
        )

    def receipts_many(
        self, confirmation_numbers: Sequence[str | ReceiptInput]
    ) -> list[ItemOutcome[list[Receipt]]]:
        """Several ``receipts(confirmationNumber:)`` in one aliased query, one outcome each
        (its list of receipts, possibly empty). A query: retried and failed over freely.

        Each receipt listed must be the payment's: give the payment (a ReceiptInput) or its
        confirmation number (then what this client sent under it, if anything, is the
        reference). A receipt that is not the payment's makes that item a
        ReceiptMismatchError; an unusable answer makes every item a MalformedAnswerError."""
        if not confirmation_numbers:
            return []
        expected = [self._expected(c) for c in confirmation_numbers]
        numbers = [e if isinstance(e, str) else e.confirmation_number for e in expected]
        variables = {f"c{i}": c for i, c in enumerate(numbers)}
        try:
            answer = self.execute(receipts_document(len(numbers)), variables, operation="receipts")
        except MalformedAnswerError as exc:
            return [ItemOutcome(i, None, exc) for i in range(len(numbers))]
        # ``receipts`` answers [] (never null) when nothing matches; null is malformed.
        return item_outcomes(
            answer,
            len(numbers),
            lambda i, v: self._listed(receipt_list(v, "receipts"), expected[i]),
            "receipts",
            mutation=False,
            missing=lambda i: malformed("no receipts list for this confirmation number", "receipts"),
        )

    def customers(self, customer_numbers: Sequence[int]) -> list[ItemOutcome[Customer]]:
        """Several RTDR lookups in one aliased query; NotFoundError per missing customer."""
        if not customer_numbers:
            return []
        variables = {f"c{i}": int(n) for i, n in enumerate(customer_numbers)}
        try:
            answer = self.execute(customers_document(len(customer_numbers)), variables, operation="customer")
        except MalformedAnswerError as exc:
            return [ItemOutcome(i, None, exc) for i in range(len(customer_numbers))]
        return item_outcomes(
            answer,
            len(customer_numbers),
            lambda i, v: same_customer(Customer.from_api(v, "customer"), customer_numbers[i], "customer"),
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
