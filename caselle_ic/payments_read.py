"""Reading the IC payment export (SPEC §2.2) into typed, validated rows.

:func:`read_payment_export` reads every value as text (``csvin.read_text_csv``),
normalises it, validates it with the pandera schema of ``schemas/payments.py`` (lazy: every
rule of every row at once) and splits the rows into

* ``valid`` — typed: ``amount_cents`` int64, ``payment_date`` datetime64 in biller local
  wall time, ``payment_type_id`` int64, ``invoice_type_id`` Int64, text columns stripped
  (blank optional text is ``""``), GUIDs lower-case;
* ``quarantined`` — the row as read, ``_line``, and ``reason`` (``field: rule; ...``),
  ready for ``output.write_rejects``.

Duplicate payment_guid (decided, see docs/payments.md): lines that repeat an earlier line
exactly (every field equal after normalisation) are quarantined and the first is kept;
when the same GUID appears with different values, every line of that GUID is
quarantined, because nothing says which one is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.errors

from caselle_ic.config import BillerConfig
from caselle_ic.csvin import LINE, read_text_csv
from caselle_ic.output import REASON
from caselle_ic.values import parse_cents
from schemas.payments import (
    always_required,
    column_names,
    payment_export_schema,
    row_reasons,
    split_iso_datetime,
)

UPPER = ("transaction_type", "card_vendor", "obd_vendor")
LOWER = ("payment_guid", "original_payment_guid")


@dataclass
class PaymentExport:
    """One payment export, split into typed valid rows and quarantined rows."""

    source: Path
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def payments(self) -> pd.DataFrame:
        return self.valid[self.valid["transaction_type"] == "PAYMENT"]

    @property
    def reversals(self) -> pd.DataFrame:
        return self.valid[self.valid["transaction_type"] != "PAYMENT"]


def normalize_export(raw: pd.DataFrame) -> pd.DataFrame:
    """Stripped text; enums upper-case; GUIDs lower-case; ``01`` -> ``1`` for type IDs."""
    out = pd.DataFrame(index=raw.index)
    for c in column_names():
        s = raw[c].astype("string").fillna("").str.strip()
        if c in UPPER:
            s = s.str.upper()
        elif c in LOWER:
            s = s.str.lower()
        elif c in ("payment_type_id", "invoice_type_id"):
            digits = s.str.fullmatch(r"\d+", na=False)
            s = s.where(~digits, s.str.lstrip("0").replace("", "0"))
        out[c] = s
    return out


def _duplicate_flags(norm: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(later copy of an identical line, GUID on lines that disagree) — over the file."""
    guid = norm["payment_guid"]
    has_guid = guid != ""
    row_hash = pd.util.hash_pandas_object(norm[column_names()], index=False)
    distinct = row_hash.groupby(guid).transform("nunique")
    conflict = has_guid & (distinct > 1)
    identical_later = has_guid & ~conflict & pd.DataFrame({"g": guid, "h": row_hash}).duplicated(keep="first")
    return identical_later.astype(bool), conflict.astype(bool)


def to_local_datetime(text: pd.Series, tz: str) -> pd.Series:
    """ISO 8601 text -> naive ``datetime64[s]`` wall time in ``tz``. A value with an
    offset (``Z``, ``-07:00``) is converted to ``tz``; one without is taken as ``tz`` time."""
    wall, offset, _bad = split_iso_datetime(text)
    has_off = offset.notna()
    if not has_off.any():
        return wall
    utc = wall - pd.to_timedelta(offset.fillna(0).astype("int64"), unit="min")
    local = utc.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None).astype("datetime64[s]")
    return wall.where(~has_off, local)


def _typed(norm: pd.DataFrame, lines: pd.Series, tz: str) -> pd.DataFrame:
    out = norm.copy()
    out["payment_date"] = to_local_datetime(norm["payment_date"], tz)
    out["payment_type_id"] = pd.to_numeric(norm["payment_type_id"]).astype("int64")
    out["invoice_type_id"] = pd.to_numeric(norm["invoice_type_id"].replace("", pd.NA)).astype("Int64")
    cents, _bad = parse_cents(norm["amount"])
    out["amount_cents"] = cents.astype("int64")
    out = out.drop(columns=["amount"])
    out[LINE] = lines.astype("int64")
    return out


def validate_export(raw: pd.DataFrame, tz: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a text frame with the export's columns (+ ``_line``): (valid, quarantined)."""
    norm = normalize_export(raw)
    dup_identical, dup_conflict = _duplicate_flags(norm)
    checked = norm.assign(_dup_identical=dup_identical, _dup_conflict=dup_conflict)
    try:
        payment_export_schema().validate(checked, lazy=True)
        reasons = pd.Series(dtype="string")
    except pandera.errors.SchemaErrors as exc:
        reasons = row_reasons(exc.failure_cases)
    bad = raw.index.isin(reasons.index)
    quarantined = raw.loc[bad].copy()
    quarantined[REASON] = reasons.reindex(quarantined.index).astype("string")
    valid = _typed(norm.loc[~bad], raw.loc[~bad, LINE], tz)
    return valid.reset_index(drop=True), quarantined.reset_index(drop=True)


def read_payment_export(path: str | Path, cfg: BillerConfig) -> PaymentExport:
    """Read and validate an IC payment export. InputError when the file cannot be used
    at all (missing required columns, wrong encoding, not CSV); bad rows are quarantined."""
    raw = read_text_csv(
        path,
        encoding=cfg.extract.encoding,
        column_map=cfg.extract.columns,
        required=always_required(),
        known=column_names(),
        what="payment export",
    )
    valid, quarantined = validate_export(raw, cfg.timezone)
    return PaymentExport(source=Path(path), valid=valid, quarantined=quarantined, rows=len(raw))
