"""The ledger's text column lengths, decided once (issue 13.8).

PostgreSQL enforces ``VARCHAR(n)`` (a longer value is ``StringDataRightTruncation`` and
stops the run) while SQLite stores any length: the two backends must not disagree. So the
lengths live here, public, and are used by

* the table definitions in :mod:`caselle_ic.store.migrations` (``sa.String(n)``);
* :meth:`caselle_ic.store.payments.PaymentBook.intake`, which refuses a longer value on
  both backends alike (the line is quarantined, never half-recorded);
* the payment export schema, which can quarantine such a line at read time naming the
  column (``from caselle_ic.store.columns import PAYMENT_TEXT_LENGTHS``).

Changing a length needs a numbered migration (the columns of existing ledgers keep the
length they were created with).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: export column (as named in ``schemas/payments``) -> most characters the ledger stores
PAYMENT_TEXT_LENGTHS: Mapping[str, int] = MappingProxyType(
    {
        "payment_guid": 64,
        "original_payment_guid": 64,
        "account_number": 64,
        "customer_name": 300,
        "invoice_number": 100,
        "card_vendor": 20,
        "obd_vendor": 20,
    }
)

#: the ledger column of each export column whose name differs
LEDGER_COLUMN = MappingProxyType({"original_payment_guid": "original_guid"})

#: an export file's name as recorded (``payments.export_name``, ``runs.input_name``)
INPUT_NAME_LENGTH = 500


def ledger_length(column: str) -> int:
    """The length of a ``payments`` ledger column that holds an export column."""
    for export, ledger in LEDGER_COLUMN.items():
        if ledger == column:
            return PAYMENT_TEXT_LENGTHS[export]
    return PAYMENT_TEXT_LENGTHS[column]


__all__ = ["INPUT_NAME_LENGTH", "LEDGER_COLUMN", "PAYMENT_TEXT_LENGTHS", "ledger_length"]
