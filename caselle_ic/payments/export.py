"""Reading the IC payment export (SPEC §2.2) into typed, validated rows.

:func:`read_payment_export` reads every value as text (``csvin.read_text_csv``),
normalises it, validates it with the column rules of ``schemas/payments.py`` (lazy: every
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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.model import BillerConfig
from caselle_ic.schemas.payments import (
    always_required,
    column_names,
    payment_export_schema,
    prepare,
    row_reasons,
)
from caselle_ic.tabular.csvin import LINE, read_text_csv
from caselle_ic.tabular.frames import rows_where
from caselle_ic.tabular.output import REASON
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.rules import failure_cases
from caselle_ic.tabular.strbytes import any_byte_between, byte_lengths, edge_bytes
from caselle_ic.tabular.values import arrow_strings, ascii_only, lstr, string_series, trimmed

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


def _strip_type_id(s: pa.ChunkedArray) -> pa.ChunkedArray:
    """``"07"`` -> ``"7"``, ``"0"`` -> ``"0"``; other text stays (it fails validation)."""
    stripped = pc.utf8_ltrim(s, characters="0")
    return pc.if_else(pc.and_(pc.equal(stripped, ""), pc.not_equal(s, "")), "0", stripped)


def _normalized(column: str, s: pd.Series) -> pd.Series:
    # Arrow kernels on the whole column (they release the GIL: columns run side by side);
    # the same functions pandas' ``.str`` methods call on Arrow strings, without the copies
    text = arrow_strings(s)
    text = trimmed(text.fill_null("") if text.null_count else text)
    # each case changes nothing when no byte could change (the usual export): no copy
    if column in UPPER:
        if not ascii_only(text) or any_byte_between(text, ord("a"), ord("z")):
            text = pc.utf8_upper(text)
    elif column in LOWER:
        # ASCII-only (every valid GUID): the same result, a tenth of the work
        if not ascii_only(text):
            text = pc.utf8_lower(text)
        elif any_byte_between(text, ord("A"), ord("Z")):
            text = pc.ascii_lower(text)
    elif column in ("payment_type_id", "invoice_type_id") and (edge_bytes(text)[0] == ord("0")).any():
        text = _strip_type_id(text)
    return string_series(text, s.index)


def normalize_export(raw: pd.DataFrame) -> pd.DataFrame:
    """Stripped text; enums upper-case; GUIDs lower-case; ``01`` -> ``1`` for type IDs."""
    names = column_names()
    columns = column_map(lambda c: _normalized(c, raw[c]), names)
    return pd.DataFrame(dict(zip(names, columns, strict=True)), index=raw.index, copy=False)


def local_wall_time(wall: pd.Series, offset: pd.Series, tz: str) -> pd.Series:
    """Naive wall times with optional UTC offsets (minutes) -> naive ``datetime64[s]`` wall
    time in ``tz``. A value with an offset (``Z``, ``-07:00``) is converted to ``tz``; one
    without is already ``tz`` time."""
    has_off = offset.notna()
    if not has_off.any():
        return wall
    utc = wall - pd.to_timedelta(offset.fillna(0).astype("int64"), unit="min")
    local = utc.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None).astype("datetime64[s]")
    return wall.where(~has_off, local)


def _typed(checked: pd.DataFrame, lines: pd.Series, tz: str) -> pd.DataFrame:
    out = checked[column_names()]  # a new frame (copy-on-write): its columns are not copied
    out["payment_date"] = local_wall_time(checked["_payment_date_wall"], checked["_payment_date_offset"], tz)
    out["payment_type_id"] = _to_int64(checked["payment_type_id"])
    itype = arrow_strings(checked["invoice_type_id"])
    blank = byte_lengths(itype) == 0
    numbers = _arrow_int64(pc.if_else(pa.array(blank), lstr("0"), itype) if blank.any() else itype)
    out["invoice_type_id"] = pd.Series(pd.arrays.IntegerArray(numbers, blank), index=checked.index)
    out["amount_cents"] = checked["_amount_cents"].astype("int64")
    out = out.drop(columns=["amount"])
    out[LINE] = lines.astype("int64")
    return out


def _to_int64(s: pd.Series) -> np.ndarray:
    return _arrow_int64(arrow_strings(s.fillna("")))


def _arrow_int64(text: pa.ChunkedArray) -> np.ndarray:
    """Validated whole numbers (ASCII digits) -> int64, straight from the Arrow column."""
    return np.asarray(pc.cast(text, pa.int64()).to_numpy(), dtype=np.int64)


def validate_export(raw: pd.DataFrame, tz: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a text frame with the export's columns (+ ``_line``): (valid, quarantined)."""
    checked = prepare(normalize_export(raw))
    fc = failure_cases(payment_export_schema(), checked)  # a frame of the wrong shape raises: a bug
    reasons = row_reasons(fc) if len(fc) else pd.Series(dtype="string")
    bad = raw.index.isin(reasons.index)
    quarantined = rows_where(raw, bad)
    quarantined[REASON] = reasons.reindex(quarantined.index).astype("string")
    good = ~bad
    valid = _typed(rows_where(checked, good), rows_where(raw, good)[LINE], tz)
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
