"""The audit's vocabulary (SPEC §11): the kinds of discrepancy, the rows of
``audit-YYYY-MM-DD.csv``, a receipt as Caselle holds it, the lockbox side, and the small
helpers every check uses. Plain values, no I/O; the checks are in :mod:`.receipts`,
:mod:`.lockbox` and :mod:`.compare`, the totals in :mod:`.totals`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from caselle_ic.result import AuditCount

# The kinds, in the order the CSV lists them (SPEC §11); each is also a count name of the run.
MISSING_RECEIPT = AuditCount.MISSING_RECEIPT
RECEIPT_DIFFERS = AuditCount.RECEIPT_DIFFERS
DUPLICATE_RECEIPT = AuditCount.DUPLICATE_RECEIPT
VOIDED_WITHOUT_REVERSAL = AuditCount.VOIDED_WITHOUT_REVERSAL
REVERSAL_NOT_VOIDED = AuditCount.REVERSAL_NOT_VOIDED
NOT_IN_ANY_FILE = AuditCount.NOT_IN_ANY_FILE
IN_TWO_FILES = AuditCount.IN_TWO_FILES
FILE_CHANGED = AuditCount.FILE_CHANGED
NEVER_PROCESSED = AuditCount.NEVER_PROCESSED
KINDS: tuple[str, ...] = (
    MISSING_RECEIPT,
    RECEIPT_DIFFERS,
    DUPLICATE_RECEIPT,
    VOIDED_WITHOUT_REVERSAL,
    REVERSAL_NOT_VOIDED,
    NOT_IN_ANY_FILE,
    IN_TWO_FILES,
    FILE_CHANGED,
    NEVER_PROCESSED,
)

PAYMENT = "PAYMENT"
DATAPUMP, FILE = "DataPump", "File"
#: Reversal states in which this integration voided (or is voiding) the original's receipt.
VOIDING = frozenset({"voided", "void_sending", "void_unknown"})


@dataclass(frozen=True)
class Seen:
    """One receipt as Caselle holds it (money in integer cents)."""

    receipt_number: int
    receipt_date: str  # YYYY-MM-DD
    distribution_code: int
    payment_code: int
    amount_cents: int
    account_number: str
    voided: bool
    void_date: str = ""


@dataclass(frozen=True)
class Discrepancy:
    """One row of ``audit-YYYY-MM-DD.csv``: what differs, where, and how to find it."""

    kind: str
    payment_guid: str = ""
    transaction_type: str = ""
    posting_method: str = ""
    account_number: str = ""
    amount: str = ""  # the payment's amount, exact decimal text
    field: str = ""  # what differs: amount, account_number, distribution_code, ...
    expected: str = ""  # what the ledger / export says
    found: str = ""  # what Caselle or the disk holds
    receipt_number: str = ""
    lockbox_file: str = ""
    export_file: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


COLUMNS = tuple(Discrepancy.__dataclass_fields__)


@dataclass(frozen=True)
class FileCheck:
    """A lockbox file the ledger recorded as written, against its bytes on disk now."""

    name: str
    directory: str
    recorded_sha256: str
    actual_sha256: str | None  # None: not on disk


@dataclass
class LockboxSide:
    files: list[FileCheck] = field(default_factory=list)
    #: exact line text (no CRLF) -> [(file name, 1-based line), ...] over every file scanned
    lines: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: payment_guid -> the line its ledger row makes (SPEC §7), for the day's File payments
    expected: dict[str, str] = field(default_factory=dict)


def cents_text(cents: Any) -> str:
    """Integer cents as exact decimal text (blank for none)."""
    if cents is None or cents == "":
        return ""
    c = int(cents)
    sign = "-" if c < 0 else ""
    return f"{sign}{abs(c) // 100}.{abs(c) % 100:02d}"


def as_text(value: Any) -> str:
    """A value as CSV text: None is blank."""
    return "" if value is None else str(value)


def int_or_none(value: Any) -> int | None:
    """An integer, or None for blank or not a number."""
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def row_discrepancy(kind: str, row: Mapping[str, Any], **kw: Any) -> Discrepancy:
    """A discrepancy about one ledger or export row, its identifying columns filled in."""
    return Discrepancy(
        kind=kind,
        payment_guid=as_text(row.get("payment_guid")),
        transaction_type=as_text(row.get("transaction_type")),
        posting_method=as_text(row.get("posting_method")),
        account_number=as_text(row.get("account_number")),
        amount=cents_text(row.get("amount_cents")),
        export_file=as_text(row.get("export_name")),
        **kw,
    )
