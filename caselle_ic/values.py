"""Vectorized parsing and formatting of the value kinds the inputs carry (SPEC §2).

Money is integer cents (``int64``) from parse to write: exact, never binary float.
An amount with more than two decimals is *invalid*, not rounded: rounding money
silently is how a town's deposit stops balancing.

Every parser returns ``(values, bad)``: ``bad`` is a boolean mask of the non-empty
inputs that could not be parsed, so callers quarantine exactly those rows.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# 1234.5 | 1,234.50 | $1,234.50 | -12.00 | -$12.00 | (12.00) | ($12.00) | .50
_AMOUNT = r"^(?P<neg>-)?\$?(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d{1,2}))?\Z"
_PAREN = r"^\((?P<inner>[^()]*)\)\Z"
_PLAIN = r"^[0-9]{1,13}\.[0-9]{2}$"  # RE2 (Arrow): the form nearly every export uses
_MAX_DIGITS = 15  # 10**15 cents: far beyond any bill, far below int64 overflow
_STRING_TYPES = {pa.large_string(): pd.StringDtype("pyarrow"), pa.string(): pd.StringDtype("pyarrow")}


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.str.strip() == "")


def extract_groups(s: pd.Series, pattern: str) -> tuple[pd.DataFrame, pd.Series]:
    """Regex named groups of every value, in Arrow's RE2 engine (pandas' ``str.extract``
    runs a Python loop per value: ~20x slower).

    Returns ``(groups, matched)``: one ``string`` column per named group, ``""`` where the
    group did not take part or the value did not match; ``matched`` is a boolean mask.
    ``\\Z`` in the pattern (Python's end of text) is read as RE2's ``$`` (the same without
    the multi-line flag). RE2 has no look-around; ``\\d`` is ASCII digits only.
    """
    text = s.astype("string").fillna("")
    arr = pa.array(text, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - pa.array gives an Array
        arr = arr.combine_chunks()
    found = pc.extract_regex(arr, pattern.replace(r"\Z", "$"))
    matched = pd.Series(found.is_valid().to_numpy(zero_copy_only=False), index=s.index)
    groups = {}
    for i in range(found.type.num_fields):
        field = found.field(i)
        col = pc.if_else(found.is_valid(), field, pa.scalar("", pa.large_string()))
        groups[found.type.field(i).name] = (
            col.to_pandas(types_mapper=_STRING_TYPES.get).astype("string").set_axis(s.index)
        )
    return pd.DataFrame(groups, index=s.index), matched


def _digits_to_int64(s: pd.Series) -> np.ndarray:
    """ASCII digit strings (``""`` -> 0) to int64, in Arrow."""
    arr = pa.array(s.astype("string").fillna("").replace("", "0"), type=pa.large_string())
    return np.asarray(pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def parse_cents(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse amounts to nullable Int64 cents. Blank -> <NA> (not bad).

    The common form (``1234.50``: digits, a point, two decimals) is parsed in one Arrow
    cast; every other value goes through the full grammar.
    """
    s = s.astype("string").str.strip()
    arr = pa.array(s.fillna(""), type=pa.large_string())
    plain = pc.match_substring_regex(arr, _PLAIN)
    plain_mask = plain.to_numpy(zero_copy_only=False)
    cents = np.zeros(len(s), dtype=np.int64)
    ok = np.zeros(len(s), dtype=bool)
    bad = np.zeros(len(s), dtype=bool)
    if plain_mask.any():
        digits = pc.replace_substring(pc.filter(arr, plain), ".", "")
        cents[plain_mask] = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
        ok[plain_mask] = True
    rest = ~plain_mask
    if rest.any():
        c, o, b = _parse_cents_general(s[rest])
        cents[rest], ok[rest], bad[rest] = c, o, b
    out = pd.Series(pd.arrays.IntegerArray(cents, ~ok), index=s.index)
    return out, pd.Series(bad, index=s.index)


def _mask(x: pd.Series) -> np.ndarray:
    return x.to_numpy(dtype=bool, na_value=False)


def _parse_cents_general(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every amount form of SPEC §2 -> (cents, ok, bad) arrays."""
    s = s.fillna("")
    blank = _mask(s == "")
    paren, is_paren_s = extract_groups(s, _PAREN)
    is_paren = _mask(is_paren_s)
    body = s.where(~is_paren, paren["inner"].str.strip())
    parts, matched_s = extract_groups(body, _AMOUNT)
    int_part = parts["int"].str.replace(",", "", regex=False)
    frac = parts["frac"]
    negative = _mask(parts["neg"] == "-")
    matched = _mask(matched_s) & (_mask(int_part != "") | _mask(frac != ""))
    # "(-12.00)" is not a thing: a negative sign inside parentheses is rejected
    matched &= ~(is_paren & negative)
    matched &= _mask(int_part.str.len() <= _MAX_DIGITS)
    ok = matched & ~blank
    whole = _digits_to_int64(int_part.where(ok, ""))
    fraction = _digits_to_int64(frac.where(ok, "").str.pad(2, side="right", fillchar="0"))
    cents = whole * 100 + fraction
    cents = np.where(negative | is_paren, -cents, cents)
    return cents, ok, ~blank & ~matched


def cents_to_str(c: pd.Series) -> pd.Series:
    """Int cents -> ``-?\\d+\\.\\d{2}``; <NA> -> empty string."""
    na = c.isna()
    v = c.fillna(0).astype("int64")
    a = v.abs()
    text = (a // 100).astype("string") + "." + (a % 100).astype("string").str.zfill(2)
    text = text.where(v >= 0, "-" + text)
    return text.where(~na, "").astype("string")


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def decimal_to_cents(value: Decimal | str) -> int:
    d = Decimal(str(value))
    q = d.quantize(Decimal("0.01"))
    if q != d:
        raise ValueError(f"{value} has more than two decimals")
    return int(q * 100)


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    a = abs(int(cents))
    return f"{sign}{a // 100}.{a % 100:02d}"


# MM/DD/YYYY, M/D/YYYY | YYYY-MM-DD
_US = r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})\Z"
_ISO = r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\Z"


def parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse dates to ``datetime64[s]`` (NaT for blank). Invalid calendar dates are bad."""
    s = s.astype("string").str.strip()
    blank = s.isna() | (s == "")
    us, is_us = extract_groups(s, _US)
    iso, is_iso = extract_groups(s, _ISO)
    y = us["y"].where(is_us, iso["y"])
    m = us["m"].where(is_us, iso["m"])
    d = us["d"].where(is_us, iso["d"])
    have = (is_us | is_iso) & ~blank
    iso_text = (y + "-" + m.str.zfill(2) + "-" + d.str.zfill(2)).where(have)
    parsed = pd.to_datetime(iso_text, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")
    bad = ~blank & parsed.isna()
    return parsed, bad.fillna(False).astype(bool)


def dates_mdy(d: pd.Series, *, pad: bool = True) -> pd.Series:
    """datetime64 -> ``MM/DD/YYYY`` (pad) or ``M/D/YYYY``; NaT -> empty string."""
    na = d.isna()
    year = d.dt.year.fillna(0).astype("int64").astype("string")
    month = d.dt.month.fillna(0).astype("int64").astype("string")
    day = d.dt.day.fillna(0).astype("int64").astype("string")
    if pad:
        month, day, year = month.str.zfill(2), day.str.zfill(2), year.str.zfill(4)
    return (month + "/" + day + "/" + year).where(~na, "").astype("string")


def digits_only(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("").str.replace(r"\D+", "", regex=True)


def alnum_only(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("").str.replace(r"[^A-Za-z0-9]+", "", regex=True)


def mask_account(s: pd.Series) -> pd.Series:
    """Account numbers masked to their last 4 characters: ``****6789``."""
    s = s.astype("string").fillna("")
    return ("****" + s.str[-4:]).where(s.str.len() > 0, "")


def mask_account_value(value: str | None) -> str:
    v = (value or "").strip()
    return f"****{v[-4:]}" if v else ""


_PLAIN_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)\Z"


def spreadsheet_safe(s: pd.Series) -> pd.Series:
    """Neutralise CSV injection: a value starting with = + - @ that is not a plain
    number gets a leading apostrophe (SPEC §10)."""
    s = s.astype("string")
    risky = s.str.match(r"^[=+\-@]", na=False) & ~s.str.match(_PLAIN_NUMBER, na=False)
    return s.where(~risky, "'" + s)


__all__ = [
    "alnum_only",
    "cents_to_decimal",
    "cents_to_str",
    "dates_mdy",
    "decimal_to_cents",
    "digits_only",
    "extract_groups",
    "format_cents",
    "mask_account",
    "mask_account_value",
    "parse_cents",
    "parse_dates",
    "spreadsheet_safe",
]
