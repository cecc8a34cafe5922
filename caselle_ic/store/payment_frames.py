"""The export's rows as ledger columns, and the checks made before they are recorded:
texts longer than their column, and lines that differ from what a GUID was first recorded
with (:meth:`caselle_ic.store.payments.PaymentBook.intake`). Frames in, frames out."""

from __future__ import annotations

from typing import Any

import pandas as pd

from caselle_ic.store.columns import LEDGER_COLUMN, PAYMENT_TEXT_LENGTHS
from caselle_ic.store.payment_rows import CONTENT


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain Python values (None for missing) for the database driver."""
    obj = frame.astype(object).where(frame.notna(), None)
    records: list[dict[str, Any]] = obj.to_dict("records")
    return records


def ledger_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The export's valid rows (after ``codes_resolve.resolve_codes``) as ledger columns."""
    n = len(frame)

    def text(col: str) -> pd.Series:
        if col not in frame.columns:
            return pd.Series("", index=frame.index, dtype="string")
        return frame[col].astype("string").fillna("")

    def opt_int(col: str) -> pd.Series:
        if col not in frame.columns:
            return pd.Series([pd.NA] * n, index=frame.index, dtype="Int64")
        return pd.to_numeric(frame[col], errors="coerce").astype("Int64")

    when = pd.to_datetime(frame["payment_date"])
    out = pd.DataFrame(
        {
            "payment_guid": text("payment_guid"),
            "transaction_type": text("transaction_type"),
            "original_guid": text("original_payment_guid"),
            "payment_date": when.dt.strftime("%Y-%m-%dT%H:%M:%S").astype("string"),
            "account_number": text("account_number"),
            "customer_name": text("customer_name"),
            "invoice_number": text("invoice_number"),
            "invoice_type_id": opt_int("invoice_type_id"),
            "payment_type_id": opt_int("payment_type_id"),
            "card_vendor": text("card_vendor"),
            "obd_vendor": text("obd_vendor"),
            "amount_cents": frame["amount_cents"].astype("int64"),
            "export_line": opt_int("_line"),
            "distribution_code": opt_int("distribution_code"),
            "payment_code": opt_int("payment_code"),
            "gl_activity": opt_int("gl_activity"),
            "posting_method": text("posting_method").replace("", pd.NA),
            "code_rule": text("code_rule").replace("", pd.NA),
        },
        index=frame.index,
    )
    return out.reset_index(drop=True)


def too_long(records: pd.DataFrame) -> pd.DataFrame:
    """Rows with a text longer than its ledger column (:mod:`caselle_ic.store.columns`):
    refused on SQLite as on PostgreSQL, never recorded, as ``payment_guid``, ``reason``."""
    reasons = pd.Series("", index=records.index, dtype="string")
    for export_col, limit in PAYMENT_TEXT_LENGTHS.items():
        column = LEDGER_COLUMN.get(export_col, export_col)
        if column not in records.columns:
            continue
        length = records[column].astype("string").fillna("").str.len()
        over = length > limit
        if over.any():
            why = f"{export_col}: longer than {limit} characters ("
            add = why + length[over].astype("string") + ")"
            reasons[over] = reasons[over].where(reasons[over] == "", reasons[over] + "; ") + add
    bad = reasons != ""
    return pd.DataFrame(
        {
            "payment_guid": records.loc[bad, "payment_guid"].astype("string"),
            "reason": reasons[bad] + "; not recorded",
        }
    ).reset_index(drop=True)


_INT_CONTENT = ("invoice_type_id", "payment_type_id", "amount_cents")


def _comparable(s: pd.Series, column: str) -> pd.Series:
    if column in _INT_CONTENT:
        s = pd.to_numeric(s, errors="coerce").astype("Int64")
    return s.astype("string").fillna("")


def conflicts(records: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """GUIDs whose stored content differs from this export's line, with a reason."""
    empty = pd.DataFrame(
        {"payment_guid": pd.Series([], dtype="string"), "reason": pd.Series([], dtype="string")}
    )
    if stored.empty:
        return empty
    both = records.merge(stored, on="payment_guid", suffixes=("", "_stored"), how="inner")
    differs = pd.DataFrame(
        {c: _comparable(both[c], c) != _comparable(both[f"{c}_stored"], c) for c in CONTENT},
        index=both.index,
    )
    bad = differs.any(axis=1).to_numpy()
    if not bad.any():
        return empty
    conflicted = both.loc[bad]
    fields = [", ".join(c for c in CONTENT if flags[c]) for flags in differs.loc[bad].to_dict("records")]
    reasons = [
        f"payment_guid: already recorded with a different {f} (first recorded from "
        f"{name or 'an earlier export'} line {line}, now {state}); the recorded payment is kept "
        "and this line is not posted: check with IC which is right"
        for f, name, line, state in zip(
            fields,
            conflicted["export_name"].tolist(),
            conflicted["export_line_stored"].tolist(),
            conflicted["state"].tolist(),
            strict=True,
        )
    ]
    return pd.DataFrame(
        {
            "payment_guid": conflicted["payment_guid"].astype("string").to_numpy(),
            "reason": pd.Series(reasons, dtype="string").to_numpy(),
        }
    )


__all__ = ["conflicts", "ledger_records", "records_of", "too_long"]
