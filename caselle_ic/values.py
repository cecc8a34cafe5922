"""Vectorized parsing and formatting of the value kinds the inputs carry (SPEC §2).

Money is integer cents (``int64``) from parse to write: exact, never binary float.
An amount with more than two decimals is *invalid*, not rounded: rounding money
silently is how a town's deposit stops balancing.

Every parser returns ``(values, bad)``: ``bad`` is a boolean mask of the non-empty
inputs that could not be parsed, so callers quarantine exactly those rows.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

# 1234.5 | 1,234.50 | $1,234.50 | -12.00 | -$12.00 | (12.00) | ($12.00) | .50
_AMOUNT = r"^(?P<neg>-)?\$?(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d{1,2}))?\Z"
_PAREN = r"^\((?P<inner>[^()]*)\)\Z"
_MAX_DIGITS = 15  # 10**15 cents: far beyond any bill, far below int64 overflow


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.str.strip() == "")


def parse_cents(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse amounts to nullable Int64 cents. Blank -> <NA> (not bad)."""
    s = s.astype("string").str.strip()
    blank = s.isna() | (s == "")
    paren = s.str.extract(_PAREN)["inner"]
    is_paren = paren.notna()
    body = s.where(~is_paren, paren.str.strip())
    parts = body.str.extract(_AMOUNT)
    int_part = parts["int"].str.replace(",", "", regex=False)
    frac = parts["frac"].fillna("")
    matched = parts["int"].notna() & ((int_part != "") | (frac != ""))
    # "(-12.00)" is not a thing: a negative sign inside parentheses is rejected
    matched &= ~(is_paren & parts["neg"].notna())
    matched &= int_part.str.len().fillna(0) <= _MAX_DIGITS
    bad = ~blank & ~matched
    ok = matched & ~blank
    whole = pd.to_numeric(int_part.where(ok & (int_part != ""), "0"), errors="coerce").fillna(0)
    fraction = pd.to_numeric(frac.where(ok, "").str.pad(2, side="right", fillchar="0").where(ok, "0"))
    cents = whole.astype("int64") * 100 + fraction.astype("int64")
    negative = (parts["neg"].notna() | is_paren).fillna(False).astype(bool)
    cents = cents.where(~negative, -cents)
    out = cents.astype("Int64").where(ok, pd.NA)
    return out, bad.fillna(False).astype(bool)


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
    us = s.str.extract(_US)
    iso = s.str.extract(_ISO)
    y = us["y"].fillna(iso["y"])
    m = us["m"].fillna(iso["m"])
    d = us["d"].fillna(iso["d"])
    have = y.notna() & ~blank
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
    "format_cents",
    "mask_account",
    "mask_account_value",
    "parse_cents",
    "parse_dates",
    "spreadsheet_safe",
]
