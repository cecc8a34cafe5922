"""The byte-level column tests agree with the plain Python answer."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caselle_ic.tabular.strbytes import (
    any_byte_between,
    byte_lengths,
    edge_bytes,
    fixed_width_rows,
    form_matches,
    holding_any,
    may_repeat,
)
from caselle_ic.tabular.values import trimmed

G = "0f8fad5b-d9cb-469f-a165-70867728950e"


def chunked(values: list[str | None], size: int = 2) -> pa.ChunkedArray:
    """Several chunks, one of them a slice, as the CSV reader hands columns over."""
    arr = pa.array(["pad", *values], type=pa.large_string()).slice(1)
    return pa.chunked_array([arr.slice(i, size) for i in range(0, len(values), size)] or [arr])


@pytest.mark.parametrize(
    ("values", "repeats"),
    [
        ([G, G.replace("0f", "1f"), "", ""], False),  # blanks repeat: not a GUID repeat
        ([G, "x", G.replace("0f", "1f"), G], True),
        ([G, "short", "short"], True),  # a repeat among the other widths
        (["a", "b", "c", "d", "é"], False),
        ([None, G, None], False),
        ([], False),
    ],
)
def test_may_repeat(values, repeats):
    assert may_repeat(chunked(values)) is repeats
    non_blank = [v for v in values if v]
    assert (len(set(non_blank)) < len(non_blank)) is repeats


def test_lengths_rows_and_edges():
    values = ["abc", "", None, "xyz", "ab", "é!"]
    arr = chunked(values, size=4)
    assert byte_lengths(arr).tolist() == [len((v or "").encode()) for v in values]
    mask, rows = fixed_width_rows(arr, 3)
    assert mask.tolist() == [True, False, False, True, False, True]
    assert [bytes(r) for r in rows] == [b"abc", b"xyz", "é!".encode()]
    first, last = edge_bytes(arr)
    assert bytes(first) == b"axa\xc3" and bytes(last) == b"czb!"
    assert any_byte_between(arr, ord("x"), ord("z"))
    assert not any_byte_between(pa.array(["ABC", "D"], pa.large_string()), ord("a"), ord("z"))


@pytest.mark.parametrize(
    "values",
    [["a b", "c"], [" a", "b"], ["a\t", "b"], ["\u00a0a", "b"], ["a\u3000", "b"], ["", "x"]],
)
def test_trimmed_is_utf8_trim_whitespace(values):
    arr = chunked(values)
    assert trimmed(arr).to_pylist() == [v.strip() for v in values]


def test_form_matches_per_value_and_per_chunk():
    classes = bytes(ord("x") if chr(b) in "0123456789abcdef" else b for b in range(256))
    values = ["ab-12", "ff-00", "", "AB-12", "ab-123", None, "a\u00e9-1"]
    got = form_matches(chunked(values), classes, b"xx-xx")
    assert got.tolist() == [True, True, False, False, False, False, False]
    # a chunk of only matching values is decided in one comparison
    assert form_matches(pa.array(["ab-12", "cd-34"], pa.large_string()), classes, b"xx-xx").all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet='ab,"é\n ', max_size=6), st.none()), max_size=30))
def test_holding_any_is_a_substring_test(values):
    arr = pa.array([',"x', *values], type=pa.large_string()).slice(1)
    expect = [v is not None and ("," in v or '"' in v) for v in values]
    assert holding_any(arr, b',"').tolist() == expect
    assert holding_any(chunked(values), b',"').tolist() == expect


@pytest.mark.parametrize("all_one_width", [True, False])
def test_form_matches_in_blocks_past_a_block(all_one_width):
    # more rows than one block (65,536), a mismatch in each block: both the one-width
    # matrix path and the row-by-row gather are cut in blocks and must agree with a
    # plain per-value test
    import re

    classes = bytes(ord("x") if chr(b).isalnum() else b for b in range(256))
    base = ["ab-12", "cd-3!", "zz-99", "q-123" if all_one_width else "q-1234", ""]
    values = [base[i % 5] if i % 7 else "ee-55" for i in range(150_001)]
    if all_one_width:
        values = [v if v else "aa-aa" for v in values]
    got = form_matches(pa.array(values, pa.large_string()).slice(1), classes, b"xx-xx")
    want = [bool(re.fullmatch(r"[A-Za-z0-9]{2}-[A-Za-z0-9]{2}", v)) for v in values[1:]]
    assert got.tolist() == want
