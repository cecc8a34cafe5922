"""The audit's decisions, as pure functions over plain values (no I/O): the three sides of
a day in, :class:`~caselle_ic.audit.discrepancy.Discrepancy` rows out (:func:`audit_day`),
the totals table beside them (:mod:`caselle_ic.audit.totals`). See docs/payments.md,
"Auditing a day", for what each kind means to an analyst.

The checks, per kind: :mod:`caselle_ic.audit.receipts` (Data Pump payments and reversals
against Caselle's receipts), :mod:`caselle_ic.audit.lockbox` (File payments against the
files on disk) and :func:`compare_export` here (the export against the ledger).

Inputs (gathered by :mod:`caselle_ic.audit.sources`):

* export rows: dicts with ``payment_guid``, ``transaction_type``, ``account_number``,
  ``amount_cents``, ``export_name``, ``export_line`` and, for payments, the resolved
  ``posting_method``, ``distribution_code``, ``payment_code``;
* ledger rows: the ``payments`` table rows of the day (every column);
* receipts: ``{confirmation number: [Seen, ...]}`` as Caselle answered — for each Data Pump
  payment of the day (its GUID) and for each reversal's original;
* the lockbox side: :class:`~caselle_ic.audit.discrepancy.LockboxSide` (files checked
  against their recorded SHA-256, and every line on disk indexed by its exact text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from caselle_ic.audit.discrepancy import (
    FILE,
    KINDS,
    NEVER_PROCESSED,
    PAYMENT,
    Discrepancy,
    LockboxSide,
    Seen,
    as_text,
    row_discrepancy,
)
from caselle_ic.audit.lockbox import compare_files
from caselle_ic.audit.receipts import compare_receipt, compare_reversal


def compare_export(export_rows: Iterable[Mapping[str, Any]], known_guids: set[str]) -> list[Discrepancy]:
    """Export rows of the day whose GUID the ledger never recorded."""
    return [
        row_discrepancy(
            NEVER_PROCESSED,
            r,
            field="payment_guid",
            expected="recorded in the ledger",
            found="absent",
            detail=f"{as_text(r.get('export_name'))} line {as_text(r.get('export_line'))} "
            "never reached the payments run: "
            "run `caselle-ic payments` on that export (what was already sent is skipped)",
        )
        for r in export_rows
        if as_text(r.get("payment_guid")) not in known_guids
    ]


def audit_day(
    export_rows: Sequence[Mapping[str, Any]],
    ledger_rows: Sequence[Mapping[str, Any]],
    receipts: Mapping[str, Sequence[Seen]],
    reversals_of: Mapping[str, Sequence[Mapping[str, Any]]],
    lockbox: LockboxSide,
    known_guids: set[str] | None = None,
) -> list[Discrepancy]:
    """Every discrepancy of the day, in KINDS order then by GUID.

    ``known_guids``: every GUID the ledger holds among the export's (any date; default:
    the day's ledger rows); ``reversals_of``: original GUID -> its reversal rows (any day).
    """
    out: list[Discrepancy] = []
    files: list[Mapping[str, Any]] = []
    for r in ledger_rows:
        guid = as_text(r.get("payment_guid"))
        if as_text(r.get("transaction_type")) == PAYMENT:
            if as_text(r.get("posting_method")) == FILE:
                files.append(r)
            else:
                out += compare_receipt(r, receipts.get(guid, ()), reversals_of.get(guid, ()))
        else:
            out += compare_reversal(r, receipts.get(as_text(r.get("original_guid")), ()))
    out += compare_files(files, lockbox)
    known = known_guids if known_guids is not None else {as_text(r.get("payment_guid")) for r in ledger_rows}
    out += compare_export(export_rows, known)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(out, key=lambda d: (order[d.kind], d.payment_guid, d.field, d.lockbox_file, d.found))


def count_by_kind(found: Iterable[Discrepancy]) -> dict[str, int]:
    """Discrepancies per kind, every kind listed (zero when none)."""
    counts = dict.fromkeys(KINDS, 0)
    for d in found:
        counts[d.kind] += 1
    return counts
