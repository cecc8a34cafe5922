"""The Arrow fast paths this area added to shared modules (values.parse_cents, csvin line
numbers, the ISO date-time split) agree with independent, slow references."""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caselle_ic.schemas.payments import split_iso_datetime
from caselle_ic.tabular.csvin import read_text_csv
from caselle_ic.tabular.values import parse_cents

_AMOUNT = re.compile(r"(-)?\$?(\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d{1,2}))?")


def reference_cents(text: str | None) -> tuple[int | None, bool]:
    """SPEC §2 amounts, one value at a time with Decimal: (cents or None, bad)."""
    if text is None or not text.strip():
        return None, False
    t = text.strip()
    paren = t.startswith("(") and t.endswith(")") and "(" not in t[1:-1] and ")" not in t[1:-1]
    body = t[1:-1].strip() if paren else t
    m = _AMOUNT.fullmatch(body)
    if not m or not (m.group(2) or m.group(3)) or (paren and m.group(1)):
        return None, True
    digits = m.group(2).replace(",", "")
    if not digits.isascii() or (not digits.isdigit() and digits != ""):
        return None, True
    if len(digits) > 15:
        return None, True
    value = Decimal(digits or "0") + Decimal("0." + (m.group(3) or "0"))
    cents = int(value * 100)
    return (-cents if (m.group(1) or paren) else cents), False


_chars = st.sampled_from(list("0123456789,.$-() a"))
_amounts = st.one_of(
    st.text(_chars, max_size=14),
    st.from_regex(r"\A[0-9]{1,13}\.[0-9]{2}\Z"),  # the fast path's form
    st.from_regex(r"\A\(?-?\$?[0-9]{1,3}(,[0-9]{3}){0,4}(\.[0-9]{1,3})?\)?\Z"),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_amounts, min_size=1, max_size=25))
def test_parse_cents_matches_the_decimal_reference(values):
    cents, bad = parse_cents(pd.Series(values, dtype="string"))
    for v, c, b in zip(values, cents.astype(object), bad, strict=True):
        expected, expected_bad = reference_cents(v)
        assert (None if pd.isna(c) else int(c), bool(b)) == (expected, expected_bad), v


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a,b\r\n1,2\r\n3,4\r\n", [2, 3]),
        ("a,b\n1,2\n3,4", [2, 3]),
        ('a,b\n"x\ny",2\n3,4', [2, 4]),  # a quoted line break, no final newline
        ('a,b\n"x\ny",2\n3,4\n', [2, 4]),
        ("a,b\n1,2\n\n3,4\n", [2, 4]),  # a blank line
        ("a,b\r1,2\r3,4\r", [2, 3]),  # old Mac line ends
        ('a,b\r\n"x\ry",2\r\n3,4\r\n', [2, 4]),
    ],
)
def test_record_lines_agree_with_csv_reader(tmp_path: Path, text, lines):
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    assert read_text_csv(path)["_line"].tolist() == lines
    # the same numbers the csv module gives
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        starts, start = [], reader.line_num + 1
        for row in reader:
            if row:
                starts.append(start)
            start = reader.line_num + 1
    assert starts == lines


@pytest.mark.parametrize(
    ("text", "wall", "offset", "bad"),
    [
        ("2026-11-01T09:30:00", "2026-11-01 09:30:00", None, False),
        ("2026-02-28T23:59:59", "2026-02-28 23:59:59", None, False),
        ("2024-02-29T00:00:00", "2024-02-29 00:00:00", None, False),
        ("2026-02-29T00:00:00", None, None, True),  # not a leap year
        ("2026-04-31T09:30:00", None, None, True),
        ("2026-11-01T09:30:60", None, None, True),
        ("2026-11-01T24:00:00", None, None, True),
        ("0000-11-01T09:30:00", None, None, True),
        ("2026-11-01T09:30:00Z", "2026-11-01 09:30:00", 0, False),
        ("2026-11-01T09:30-07:00", "2026-11-01 09:30:00", -420, False),
        ("2026-11-01 09:30:00+0530", "2026-11-01 09:30:00", 330, False),
        ("2026-11-01T09:30:00+15:00", None, None, True),
        ("", None, None, False),
    ],
)
def test_iso_datetime_split(text, wall, offset, bad):
    w, o, b = split_iso_datetime(pd.Series([text, "2026-11-01T08:00:00"], dtype="string"))
    assert (None if pd.isna(w[0]) else str(w[0])) == wall
    assert (None if pd.isna(o[0]) or bad else int(o[0])) == offset
    assert bool(b[0]) is bad
    assert not b[1]
