"""Extract text -> typed columns, as the pandera schemas of ``schemas/statement_extract.csv``
want them: amounts as Int64 cents, dates as datetime64[s] (unparseable values as the
BAD sentinels, so the schema names them), text cleaned. Column-at-a-time, on threads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.invoices.columns import LINE_COLUMNS, SPEC, STATEMENT_COLUMNS, as_numpy
from caselle_ic.schemas.invoices import ACCOUNT_CLEAN, BAD_CENTS, BAD_DATE
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.text import clean_text
from caselle_ic.tabular.values import (
    arrow_strings,
    map_distinct,
    parse_cents,
    parse_dates,
    string_series,
)


def _cents_series(cents: np.ndarray, na: np.ndarray, bad: np.ndarray, index: pd.Index) -> pd.Series:
    """Int64 cents with <NA> for blank and BAD_CENTS for unparseable."""
    values = np.where(bad, BAD_CENTS, np.where(na, 0, cents)).astype(np.int64)
    return pd.Series(pd.arrays.IntegerArray(values, na & ~bad), index=index, copy=False)


def _parsed_amount(raw: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    values, bad = parse_cents(string_series(raw))
    na = values.isna().to_numpy()
    cents = values.to_numpy(dtype="int64", na_value=0)
    return _cents_series(cents, na & ~bad.to_numpy(), bad.to_numpy(), index)


def _parsed_date(raw: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    values, bad = parse_dates(string_series(raw))
    out = values.to_numpy(dtype="datetime64[s]").copy()
    out[bad.to_numpy()] = BAD_DATE
    return pd.Series(out, index=index, copy=False)


def usable_cents(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(cents with blank/bad as 0, mask of values that parsed or are blank)."""
    v = s.to_numpy(dtype="int64", na_value=0)
    ok = v != BAD_CENTS
    return np.where(ok, v, 0), ok


def _parsed(values: pa.ChunkedArray, kind: str, index: pd.Index) -> pd.Series:
    """One extract column as the schema wants it: amounts as Int64 cents, dates as
    datetime64[s] (unparseable values as the BAD sentinels), text cleaned."""
    if kind == "amount":
        return _parsed_amount(values, index)
    if kind == "date":
        return _parsed_date(values, index)
    text = clean_text(values)
    if kind == "line_type":
        text = map_distinct(text, pc.utf8_upper)
    return string_series(text, index)


def statement_frame(raw: pa.Table, index: pd.Index) -> pd.DataFrame:
    """The statement-level columns parsed, defaults applied, the cleaned account added."""
    parsed = column_map(lambda name: _parsed(raw.column(name), SPEC[name].kind, index), STATEMENT_COLUMNS)
    cols: dict[str, pd.Series] = dict(zip(STATEMENT_COLUMNS, parsed, strict=True))
    for name in STATEMENT_COLUMNS:  # defaults: balance_due <- customer_balance
        spec = SPEC[name]
        if spec.default:
            s = cols[name]
            cols[name] = s.where(s.notna(), cols[spec.default])
    account = arrow_strings(cols["account_number"])
    clean = pc.replace_substring_regex(account, "[^A-Za-z0-9]+", "")
    cols[ACCOUNT_CLEAN] = string_series(clean, index)
    return pd.DataFrame(cols, index=index)


def line_frame(raw: pa.Table, index: pd.Index) -> pd.DataFrame:
    """The line-level columns parsed."""
    parsed = column_map(lambda name: _parsed(raw.column(name), SPEC[name].kind, index), LINE_COLUMNS)
    return pd.DataFrame(dict(zip(LINE_COLUMNS, parsed, strict=True)), index=index)


def has_activity(lines: pd.DataFrame) -> np.ndarray:
    """Rows with any line-level column filled (after trimming; an unparseable value counts)."""
    has = np.zeros(len(lines), dtype=bool)
    for name in LINE_COLUMNS:
        col = lines[name]
        if SPEC[name].kind in ("amount", "date"):
            has |= col.notna().to_numpy()
        else:
            has |= as_numpy(pc.greater(pc.binary_length(arrow_strings(col)), 0))
    return has
