"""The fast paths of the CSV reader and the value parsers agree with the exact ones.

Big inputs take shortcuts (line numbers without the csv module, parsing each distinct
value once, a plain-amount fast path); these tests pin that they give the same answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from caselle_ic.tabular.csvin import read_text_csv, read_text_table
from caselle_ic.tabular.values import dates_mdy, parse_cents, parse_dates


def test_blank_lines_inside_the_file_keep_line_numbers_exact(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\r\n1,2\r\n\r\n3,4\r\n5,6\r\n\r\n\r\n")
    df = read_text_csv(p)
    assert list(df["a"]) == ["1", "3", "5"]
    assert list(df["_line"]) == [2, 4, 5]


def test_trailing_blank_lines_and_no_final_newline_use_the_fast_path(tmp_path):
    for content in (b"a,b\n1,2\n3,4\n\n\n", b"a,b\n1,2\n3,4"):
        p = tmp_path / "x.csv"
        p.write_bytes(content)
        assert list(read_text_csv(p)["_line"]) == [2, 3]


def test_carriage_return_inside_a_value_takes_the_exact_path(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b'a,b\n1,"x\ry"\n3,4\n')
    df = read_text_csv(p)
    assert df["b"].iloc[0] == "x\ry"
    assert list(df["_line"]) == [2, 4]


def test_table_reader_keeps_arrow_strings_and_reports_present_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("Acct No,b\n007,x\n", encoding="utf-8")
    t = read_text_table(p, column_map={"acct no": "account_number"}, known=["account_number", "b", "c"])
    assert t.table.column_names == ["account_number", "b", "c"]
    assert t.present == ["account_number", "b"]
    assert t.table.column("account_number").to_pylist() == ["007"]
    assert t.table.column("c").to_pylist() == [""]
    t.drop(["b"])
    assert t.table.column_names == ["account_number", "c"]


amount_text = st.one_of(
    st.integers(-(10**9), 10**9).map(lambda c: f"{c / 100:.2f}"),
    st.sampled_from(["$1,234.50", "(12.00)", "1.5", " 7 ", "", "x", "1.234", "(-1)", ".5", "-$3.10"]),
    st.text(alphabet="0123456789.,$()- ", max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(amount_text, min_size=1, max_size=30), st.integers(1001, 3000))
def test_amounts_parse_the_same_in_bulk_as_one_by_one(values, n):
    bulk = pd.Series([values[i % len(values)] for i in range(n)], dtype="string")
    got, bad = parse_cents(bulk)
    for i, v in enumerate(values[: min(len(values), n)]):
        one, one_bad = parse_cents(pd.Series([v], dtype="string"))
        assert bool(bad.iloc[i]) == bool(one_bad.iloc[0]), v
        if pd.isna(one.iloc[0]):
            assert pd.isna(got.iloc[i]), v
        else:
            assert int(got.iloc[i]) == int(one.iloc[0]), v


def test_many_distinct_amounts_take_the_plain_fast_path():
    rng = np.random.default_rng(3)
    cents = rng.integers(-(10**8), 10**8, size=20_000)
    text = pd.Series([f"{c / 100:.2f}" for c in cents], dtype="string")
    text.iloc[::97] = "$1,000.00"
    got, bad = parse_cents(text)
    expect = cents.copy()
    expect[::97] = 100_000
    assert not bad.any()
    assert (got.to_numpy(dtype="int64") == expect).all()


date_text = st.one_of(
    st.dates().map(lambda d: d.strftime("%m/%d/%Y")),
    st.dates().map(lambda d: f"{d.month}/{d.day}/{d.year:04d}"),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["02/30/2024", "13/01/2024", "2024-1-5", "", "1/1/24", "00/10/2020"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(date_text, min_size=1, max_size=20))
def test_dates_parse_the_same_in_bulk_and_format_back(values):
    n = 1200
    bulk = pd.Series([values[i % len(values)] for i in range(n)], dtype="string")
    got, bad = parse_dates(bulk)
    for i, v in enumerate(values):
        one, one_bad = parse_dates(pd.Series([v], dtype="string"))
        assert bool(bad.iloc[i]) == bool(one_bad.iloc[0]), v
        assert (pd.isna(got.iloc[i]) and pd.isna(one.iloc[0])) or got.iloc[i] == one.iloc[0], v
    formatted = dates_mdy(got)
    for i, v in enumerate(values):
        if not bad.iloc[i] and v:
            assert parse_dates(pd.Series([formatted.iloc[i]]))[0].iloc[0] == got.iloc[i]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=40), st.booleans())
def test_amount_formatting_is_exact_on_every_path(values, repeated):
    from caselle_ic.tabular.values import format_cents, format_cents_array

    data = np.array(values * (60 if repeated else 1), dtype=np.int64)  # > 1000 values: distinct path
    na = np.zeros(len(data), dtype=bool)
    na[::7] = True
    got = format_cents_array(data, na).to_pylist()
    assert got == ["" if m else format_cents(int(v)) for v, m in zip(data, na, strict=True)]


def test_a_record_of_empty_values_is_kept_and_a_blank_line_is_not(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b,c\n1,2,3\n,,\n4,5,6\n")
    df = read_text_csv(p)
    assert df[["a", "b", "c"]].values.tolist() == [["1", "2", "3"], ["", "", ""], ["4", "5", "6"]]
    assert list(df["_line"]) == [2, 3, 4]
    p.write_bytes(b"a,b,c\n1,2,3\n\n4,5,6\n")
    df = read_text_csv(p)
    assert df[["a", "b", "c"]].values.tolist() == [["1", "2", "3"], ["4", "5", "6"]]
    assert list(df["_line"]) == [2, 4]


plain_text = st.one_of(
    st.integers(0, 10**15).map(lambda c: f"{c // 100}.{c % 100:02d}"),
    st.text(alphabet="0123456789.-$,\x00\u0663 ", max_size=18),
    st.sampled_from(["0.00", "0000000000001.00", "1234567890123.45", "12345678901234.45", ".50", "1."]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(plain_text, st.none()), min_size=1, max_size=40), st.integers(0, 3))
def test_plain_amounts_read_from_bytes_agree_with_the_pattern(values, cut):
    """The byte reading of ``\\d{1,13}\\.\\d{2}`` claims only values the pattern matches,
    with their exact cents, and all of them when the column is ASCII of at most 16 bytes
    (else the pattern decides); sliced arrays and nulls included."""
    import re
    from decimal import Decimal

    import pyarrow as pa

    from caselle_ic.tabular.values import _unsigned_plain_cents

    arr = pa.array(["9.99"] * cut + values, type=pa.large_string()).slice(cut)
    ok, cents = _unsigned_plain_cents(arr)
    short_ascii = all(v is None or (v.isascii() and len(v) <= 16) for v in values)
    for i, v in enumerate(values):
        expect = v is not None and re.fullmatch(r"[0-9]{1,13}\.[0-9]{2}", v) is not None
        assert bool(ok[i]) == (expect and short_ascii), v
        if ok[i]:
            assert int(cents[i]) == int(Decimal(v) * 100), v
