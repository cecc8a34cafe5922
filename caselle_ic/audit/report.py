"""The audit's outputs: ``audit-YYYY-MM-DD.csv`` (one row per discrepancy) and
``audit-YYYY-MM-DD.totals.csv``, written like the rejects files (atomic, CSV injection
guarded, account numbers as read: the analyst needs them to find the receipt)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from caselle_ic.audit.discrepancy import COLUMNS, Discrepancy
from caselle_ic.audit.totals import TOTAL_COLUMNS
from caselle_ic.tabular.output import atomic_output
from caselle_ic.tabular.values import mask_account_value, spreadsheet_safe


def discrepancy_frame(found: Sequence[Discrepancy]) -> pd.DataFrame:
    return pd.DataFrame([d.as_dict() for d in found], columns=list(COLUMNS), dtype="string")


def totals_frame(rows: Sequence[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(TOTAL_COLUMNS), dtype="string")


def analyst_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The discrepancies as shown in the Prefect UI: where the account number itself is what
    differs, ``expected`` / ``found`` (and the detail naming them) masked to the last 4 too
    (the ``account_number`` column is masked by :func:`caselle_ic.result.analyst_view`)."""
    out = frame.copy()
    for i in out.index[out["field"] == "account_number"]:
        want, got = str(out.at[i, "expected"]), str(out.at[i, "found"])
        detail = str(out.at[i, "detail"])
        for value in sorted({want, got}, key=len, reverse=True):
            if value:
                detail = detail.replace(value, mask_account_value(value))
        out.at[i, "expected"], out.at[i, "found"] = mask_account_value(want), mask_account_value(got)
        out.at[i, "detail"] = detail
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as text, each value spreadsheet-safe, CRLF, written atomically."""
    safe = frame.copy()
    for c in safe.columns:
        safe[c] = spreadsheet_safe(safe[c].astype("string").fillna(""))
    with atomic_output(path, "w", encoding="utf-8", newline="") as fh:
        safe.to_csv(fh, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    return path


def audit_csv_path(out_dir: str | Path, day: date) -> Path:
    return Path(out_dir) / f"audit-{day.isoformat()}.csv"


def totals_csv_path(out_dir: str | Path, day: date) -> Path:
    return Path(out_dir) / f"audit-{day.isoformat()}.totals.csv"


__all__ = [
    "analyst_frame",
    "audit_csv_path",
    "discrepancy_frame",
    "totals_csv_path",
    "totals_frame",
    "write_csv",
]
