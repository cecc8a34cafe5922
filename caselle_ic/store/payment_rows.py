"""The vocabulary of a ``payments`` row: its states, the typed changes a run writes
(:class:`RowUpdate`, :class:`ReversalDecision`) and the column groups the ledger compares.

Plain values only (no database): the posting engine, the pipeline and the store share them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


# -- states -------------------------------------------------------------------------------
class PaymentState(StrEnum):
    """A ``payments`` row's state (docs/payments.md draws the machine). The stored text is
    the value, unchanged since the first ledger: existing databases keep working."""

    PENDING = "pending"
    SENDING = "sending"
    POSTED = "posted"
    UNKNOWN = "unknown"
    REJECTED = "rejected"
    FILING = "filing"
    FILED = "filed"
    HELD = "held"
    VOID_SENDING = "void_sending"
    VOID_UNKNOWN = "void_unknown"
    VOIDED = "voided"
    MANUAL = "manual"
    REPORTED = "reported"


# the members under their short names, as the queries and the engine use them
PENDING = PaymentState.PENDING
SENDING = PaymentState.SENDING
POSTED = PaymentState.POSTED
UNKNOWN = PaymentState.UNKNOWN
REJECTED = PaymentState.REJECTED
FILING = PaymentState.FILING
FILED = PaymentState.FILED
HELD = PaymentState.HELD
VOID_SENDING = PaymentState.VOID_SENDING
VOID_UNKNOWN = PaymentState.VOID_UNKNOWN
VOIDED = PaymentState.VOIDED
MANUAL = PaymentState.MANUAL
REPORTED = PaymentState.REPORTED


class Keep:
    """The value of a :class:`RowUpdate` field that leaves the column as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(frozen=True)
class RowUpdate:
    """A row this run holds, and the columns to write (:meth:`PaymentBook.apply`). A field
    left :data:`KEEP` is not written; ``claim_owner=None`` releases the row."""

    guid: str
    state: PaymentState | Keep = KEEP
    reason: str | Keep | None = KEEP
    claim_owner: str | Keep | None = KEEP
    done_at: str | Keep | None = KEEP
    in_doubt_until: str | Keep | None = KEEP
    receipt_number: int | Keep | None = KEEP
    receipt_amount_cents: int | Keep | None = KEEP
    receipt_distribution_code: int | Keep | None = KEEP
    receipt_payment_code: int | Keep | None = KEEP
    lockbox_file: str | Keep | None = KEEP
    lockbox_line: int | Keep | None = KEEP

    def columns(self) -> dict[str, Any]:
        """The columns to write (str values: the StrEnum stores its plain text)."""
        out: dict[str, Any] = {}
        for name in _UPDATE_COLUMNS:  # called per receipt: no dataclasses.fields() here
            value = getattr(self, name)
            if not isinstance(value, Keep):
                out[name] = str(value) if isinstance(value, PaymentState) else value
        return out


_UPDATE_COLUMNS = tuple(f.name for f in fields(RowUpdate) if f.name != "guid")


@dataclass(frozen=True)
class ReversalDecision:
    """What a pending REFUND / ACH_REJECT becomes (:meth:`PaymentBook.decide_reversals`):
    ``void_sending`` with the receipt to void, ``pending`` (why it waits), or a final
    ``manual`` / ``reported`` with the reason."""

    guid: str
    state: PaymentState
    reason: str | None
    receipt_number: int | None = None
    in_doubt_until: str | None = None

    def columns(self) -> dict[str, Any]:
        """As a history event's input: guid, state (its text), reason, receipt_number."""
        return {
            "guid": self.guid,
            "state": str(self.state),
            "reason": self.reason,
            "receipt_number": self.receipt_number,
            "in_doubt_until": self.in_doubt_until,
        }


#: Nothing more will happen to these automatically.
TERMINAL = frozenset({POSTED, REJECTED, FILED, VOIDED, MANUAL, REPORTED})
#: Held by a run (claim_owner): something may be on its way.
IN_FLIGHT = frozenset({SENDING, VOID_SENDING, FILING})
#: Released, but the outcome of a request is unknown: settle before anything else.
UNSETTLED = frozenset({UNKNOWN, VOID_UNKNOWN})

PAYMENT = "PAYMENT"
REVERSALS = ("REFUND", "ACH_REJECT")
DATAPUMP, FILE = "DataPump", "File"

#: The columns that make up a payment as IC exported it: a later line with the same
#: payment_guid must carry the same values, else it is a conflict (never overwritten).
CONTENT = (
    "transaction_type",
    "original_guid",
    "payment_date",
    "account_number",
    "customer_name",
    "invoice_number",
    "invoice_type_id",
    "payment_type_id",
    "card_vendor",
    "obd_vendor",
    "amount_cents",
)
ROUTE = ("distribution_code", "payment_code", "gl_activity", "posting_method", "code_rule")


__all__ = [
    "CONTENT",
    "DATAPUMP",
    "FILE",
    "FILED",
    "FILING",
    "HELD",
    "IN_FLIGHT",
    "KEEP",
    "MANUAL",
    "PAYMENT",
    "PENDING",
    "POSTED",
    "REJECTED",
    "REPORTED",
    "REVERSALS",
    "ROUTE",
    "SENDING",
    "TERMINAL",
    "UNKNOWN",
    "UNSETTLED",
    "VOIDED",
    "VOID_SENDING",
    "VOID_UNKNOWN",
    "Keep",
    "PaymentState",
    "ReversalDecision",
    "RowUpdate",
]
