"""The daily run's reconciliation report (issue 4): does every export line end somewhere once?

:func:`reconcile` totals (count and exact amount in integer cents) by transaction type,
posting method, distribution code and payment code, for the export and for each outcome
the run reports — typically

* ``posted``      receipts created by the Data Pump (this run or settled from an earlier one),
* ``voided``      reversals whose original receipt was voided,
* ``filed``       payments written to a lockbox file,
* ``quarantined`` lines refused (export rules, lockbox limits, Caselle refusals),
* ``manual``      reversals of File payments, listed for manual handling,
* ``pending``     lines whose outcome is still open (e.g. an outcome-unknown post),
* ``earlier``     lines an earlier run already settled (reruns, overlapping exports),

and flags every key where ``export`` differs from the sum of the outcomes. Each outcome is
an independent frame (from the ledger, the lockbox result, the rejects), so a payment
dropped or counted twice shows as a difference. :func:`guid_differences` checks the same
per payment_guid, which catches a miss and a double that happen to cancel in the totals.

Frames need ``payment_guid`` and ``amount_cents``; the key columns are optional (missing
means blank: lines quarantined while reading have no codes). Pure functions of frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from caselle_ic.payments.export import PaymentExport
from caselle_ic.tabular.output import atomic_output, spreadsheet_frame
from caselle_ic.tabular.values import cents_to_str, parse_cents

KEY = ("transaction_type", "posting_method", "distribution_code", "payment_code")
OK, DIFFERENCE = "ok", "DIFFERENCE"
TOTAL = "TOTAL"


def _keyed(frame: pd.DataFrame | None) -> pd.DataFrame:
    """payment_guid, the key columns as text (blank when absent), amount_cents int64."""
    if frame is None or len(frame) == 0:
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in ("payment_guid", *KEY)}).assign(
            amount_cents=pd.Series([], dtype="int64")
        )
    out = pd.DataFrame(index=frame.index)
    out["payment_guid"] = frame["payment_guid"].astype("string").fillna("")
    for c in KEY:
        if c in frame.columns:
            col = frame[c]
            if c in ("distribution_code", "payment_code"):
                col = pd.to_numeric(col.replace("", pd.NA)).astype("Int64")
            out[c] = col.astype("string").fillna("")
        else:
            out[c] = pd.Series("", index=frame.index, dtype="string")
    out["amount_cents"] = frame["amount_cents"].astype("Int64").fillna(0).astype("int64")
    return out.reset_index(drop=True)


def totals(frame: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """``{name}_count`` and ``{name}_cents`` per key."""
    k = _keyed(frame)
    g = k.groupby(list(KEY), sort=True, dropna=False)["amount_cents"].agg(["size", "sum"])
    return g.rename(columns={"size": f"{name}_count", "sum": f"{name}_cents"})


def reconcile(export: pd.DataFrame, outcomes: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Totals per key for the export and each outcome; ``check`` is ``DIFFERENCE`` where
    export != sum of outcomes (count or amount). The last row, ``TOTAL``, sums every key
    and is flagged when any key or any payment_guid (see :func:`guid_differences`)
    differs; ``note`` says what."""
    names = list(outcomes)
    table = totals(export, "export")
    for name in names:
        table = table.join(totals(outcomes[name], name), how="outer")
    table = table.fillna(0).astype("int64")
    table["accounted_count"] = sum((table[f"{n}_count"] for n in names), start=0 * table["export_count"])
    table["accounted_cents"] = sum((table[f"{n}_cents"] for n in names), start=0 * table["export_cents"])
    table["difference_count"] = table["export_count"] - table["accounted_count"]
    table["difference_cents"] = table["export_cents"] - table["accounted_cents"]
    differs = (table["difference_count"] != 0) | (table["difference_cents"] != 0)
    table["check"] = pd.Series(OK, index=table.index, dtype="string").where(~differs, DIFFERENCE)
    table["note"] = pd.Series("", index=table.index, dtype="string")
    table = table.reset_index()

    total = table.drop(columns=[*KEY, "check", "note"]).sum().to_frame().T.astype("int64")
    for c in KEY:
        total[c] = TOTAL if c == KEY[0] else ""
    guids = guid_differences(export, outcomes)
    notes = []
    if differs.any():
        notes.append(f"{int(differs.sum())} key(s) differ")
    if len(guids):
        notes.append(f"{len(guids)} payment_guid(s) not accounted for exactly once")
    total_differs = bool(notes) or bool((total["difference_count"] != 0).any())
    total["check"] = DIFFERENCE if total_differs else OK
    total["note"] = "; ".join(notes)
    out = pd.concat([table, total[table.columns]], ignore_index=True)
    for c in (*KEY, "check", "note"):
        out[c] = out[c].astype("string")
    return out


def guid_differences(export: pd.DataFrame, outcomes: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame:
    """payment_guids whose number of export lines differs from the number of outcome lines
    (a payment missing, or in two outcomes): payment_guid, export_lines, outcome_lines,
    outcomes (which ones)."""
    e = _keyed(export).groupby("payment_guid").size().rename("export_lines")
    parts = []
    for name, frame in outcomes.items():
        k = _keyed(frame)
        parts.append(pd.DataFrame({"payment_guid": k["payment_guid"], "outcome": name}))
    o = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"payment_guid": [], "outcome": []})
    counts = o.groupby("payment_guid").size().rename("outcome_lines")
    which = o.groupby("payment_guid")["outcome"].agg(lambda s: ", ".join(sorted(set(s)))).rename("outcomes")
    both = pd.concat([e, counts, which], axis=1)
    both["export_lines"] = both["export_lines"].fillna(0).astype("int64")
    both["outcome_lines"] = both["outcome_lines"].fillna(0).astype("int64")
    both["outcomes"] = both["outcomes"].astype("string").fillna("")
    bad = both[both["export_lines"] != both["outcome_lines"]]
    return bad.rename_axis("payment_guid").reset_index()


def export_frame(export: PaymentExport, resolved: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every export line for :func:`reconcile`: the valid rows (with their codes when
    ``resolved`` — the valid rows after ``codes_resolve.resolve_codes`` — is given) and the rows
    quarantined while reading (no codes; amount as far as it parses)."""
    valid = resolved if resolved is not None else export.valid
    q = export.quarantined
    quarantined = pd.DataFrame(
        {
            "payment_guid": q["payment_guid"].astype("string").str.strip().str.lower(),
            "transaction_type": q["transaction_type"].astype("string").str.strip().str.upper(),
            "amount_cents": parse_cents(q["amount"])[0] if "amount" in q.columns else pd.NA,
        }
    )
    return pd.concat([valid, quarantined], ignore_index=True)


def read_quarantine_frame(export: PaymentExport) -> pd.DataFrame:
    """The rows quarantined while reading, in :func:`reconcile` form (no codes)."""
    rows = export_frame(export, export.valid.iloc[0:0])
    return rows


def format_reconciliation(table: pd.DataFrame) -> pd.DataFrame:
    """``*_cents`` columns -> ``*_amount`` exact decimal strings (for CSV and artifacts)."""
    out = table.copy()
    for c in list(out.columns):
        if c.endswith("_cents"):
            out[c] = cents_to_str(out[c].astype("Int64"))
            out = out.rename(columns={c: c[: -len("_cents")] + "_amount"})
    return out


def write_reconciliation_csv(table: pd.DataFrame, out_dir: str | Path, stem: str) -> Path:
    """Write ``OUT/<stem>.reconciliation.csv`` atomically (amounts as exact decimals)."""
    path = Path(out_dir) / f"{stem}.reconciliation.csv"
    with atomic_output(path, "w", encoding="utf-8", newline="") as fh:
        # Caselle's messages land here as reasons: guarded like every CSV analysts open.
        spreadsheet_frame(format_reconciliation(table)).to_csv(fh, index=False, lineterminator="\r\n")
    return path
