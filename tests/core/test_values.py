"""Amount and date parsing (SPEC §2): exact cents, every accepted form, nothing rounded."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from caselle_ic.tabular.values import (
    cents_to_str,
    dates_mdy,
    decimal_to_cents,
    format_cents,
    mask_account,
    parse_cents,
    parse_dates,
    spreadsheet_safe,
)


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("1234.5", 123450),
        ("1,234.50", 123450),
        ("$1,234.50", 123450),
        ("-12.00", -1200),
        ("(12.00)", -1200),
        ("($12.00)", -1200),
        ("-$3.10", -310),
        (" 7 ", 700),
        (".5", 50),
        ("0", 0),
        ("999999999.99", 99999999999),
    ],
)
def test_accepted_amount_forms(text, cents):
    values, bad = parse_cents(pd.Series([text], dtype="string"))
    assert not bad.iloc[0]
    assert int(values.iloc[0]) == cents


@pytest.mark.parametrize("text", ["x", "1.234", "1,23", "12,34.00", "(-1)", "1e3", "--1", "$", "."])
def test_rejected_amount_forms_are_bad_not_rounded(text):
    values, bad = parse_cents(pd.Series([text], dtype="string"))
    assert bad.iloc[0]
    assert pd.isna(values.iloc[0])


def test_blank_amount_is_missing_not_bad():
    values, bad = parse_cents(pd.Series(["", None, "  "], dtype="string"))
    assert not bad.any() and values.isna().all()


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_cents_round_trip_exactly(c):
    text = cents_to_str(pd.Series([c], dtype="Int64")).iloc[0]
    assert text == format_cents(c)
    assert decimal_to_cents(Decimal(text)) == c
    back, bad = parse_cents(pd.Series([text], dtype="string"))
    assert not bad.iloc[0] and int(back.iloc[0]) == c


def test_dates_accept_three_forms_and_reject_impossible_days():
    d, bad = parse_dates(pd.Series(["01/02/2024", "1/2/2024", "2024-01-02", "2024-02-30", "13/1/2024", ""]))
    assert list(bad) == [False, False, False, True, True, False]
    assert list(dates_mdy(d)) == ["01/02/2024"] * 3 + ["", "", ""]
    assert list(dates_mdy(d, pad=False))[:1] == ["1/2/2024"]


def test_masking_and_spreadsheet_safety():
    assert list(mask_account(pd.Series(["001001", "12", ""]))) == ["****1001", "****12", ""]
    safe = spreadsheet_safe(pd.Series(["=SUM(A1)", "-12.00", "+1", "@cmd", "-x", "plain"]))
    assert list(safe) == ["'=SUM(A1)", "-12.00", "+1", "'@cmd", "'-x", "plain"]
