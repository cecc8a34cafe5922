"""Aliased batches (SPEC §8, §9): many operations in ONE GraphQL document, one outcome per
item, and what every receipt read back must match.

:class:`AliasedBatches` is the part of :class:`caselle_ic.connect.client.CaselleClient`
that sends batches (``create_receipts``, ``set_send_paper_many``, ``receipts_many``,
``customers``) and remembers what it sent under each confirmation number, so a receipt
listed by ``receipts(confirmationNumber:)`` is checked against the payment.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from caselle_ic.connect.documents import (
    create_receipts_document,
    customers_document,
    receipts_document,
    send_paper_document,
)
from caselle_ic.connect.executor import Executor
from caselle_ic.connect.models import (
    Customer,
    ItemOutcome,
    MalformedAnswerError,
    Receipt,
    ReceiptInput,
    item_outcomes,
    jsonable,
    malformed,
    mismatch_error,
    receipt_list,
    receipt_mismatch,
    same_customer,
)
from caselle_ic.errors import NotFoundError, OutcomeUnknownError, ServerError
from caselle_ic.tabular.values import mask_account_value

# the client's logger: a receipt that is not the payment's is logged under its name
log = logging.getLogger("caselle_ic.connect.client")

_REMEMBERED = 100_000  # receipt inputs kept to check settle answers against


class AliasedBatches(Executor):
    """Batches of one operation in one aliased document, and the receipt checks they share
    with the single operations. ``_sent`` is set up by the client."""

    _sent: OrderedDict[str, ReceiptInput]

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


__all__ = ["AliasedBatches"]
