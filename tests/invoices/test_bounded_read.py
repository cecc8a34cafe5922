"""The extract read a byte range at a time (``tabular/ranges.py``, ``invoices/extract.py``)
writes exactly the bytes the whole-file read writes: invoice file, rejects file, counts
and notes -- with statements cut by range boundaries, rows of one account far apart,
lines of one statement that disagree on both sides of a boundary, and quarantines."""

from __future__ import annotations

import pytest

from caselle_ic.errors import InputError
from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.schemas.invoices import extract_names
from caselle_ic.tabular import ranges
from caselle_ic.tabular.ranges import read_text_ranges
from tests.invoices.conftest import BILLER, COLUMNS, NOW, line, statement, write_extract

SMALL = 2_000  # bytes per range: a few rows each


def _lines(i: int) -> list[dict[str, str]]:
    return [
        line("10/05/2026", "INVOICE", f"R{i}-1", f"{i % 7 + 1}.25"),
        line("10/07/2026", "PAYMENT", f"P{i}", credit="3.00"),
        line("10/09/2026", "ADJUSTMENT", f"A{i}", f"0.{i % 9}0", description=f"fee {i}"),
    ]


def _statements() -> list[list[dict[str, str]]]:
    out = []
    for i in range(60):
        rows = statement(f"{100100 + i:06d}", _lines(i), customer_name=f"Customer {i}")
        if i % 11 == 3:  # a line that disagrees with the others of its statement
            rows[-1] = dict(rows[-1], customer_name=f"Customer {i} JR")
        if i % 13 == 5:  # does not reconcile: quarantined
            rows = [dict(r, customer_balance="1.00") for r in rows]
        out.append(rows)
    return out


def _ungrouped(statements: list[list[dict[str, str]]]) -> list[list[dict[str, str]]]:
    """Every statement's first row moved to the end of the file (SPEC 2.1 allows it)."""
    return [rows[1:] for rows in statements] + [[rows[0]] for rows in statements]


def _interleaved(statements: list[list[dict[str, str]]]) -> list[list[dict[str, str]]]:
    """Statements in pairs A, B written A1 B1 A2 A3 B2 B3: an account's rows on both sides
    of another's, so a range can end inside one account with another account's row
    between."""
    out = []
    for a, b in zip(statements[0::2], statements[1::2], strict=True):
        out.append([a[0], b[0], a[1], a[2], b[1], b[2]])
    return out


ORDERS = {"grouped": lambda s: s, "ungrouped": _ungrouped, "interleaved": _interleaved}


def _run(tmp_path, monkeypatch, extract, name: str, range_bytes: int):
    monkeypatch.setattr(ranges, "RANGE_BYTES", range_bytes)
    result = run_invoice_file(extract, BILLER, tmp_path / name, now=NOW)
    assert result.rejects_path is not None
    return result, result.outputs[0].read_bytes(), result.rejects_path.read_bytes()


def _pieces(extract, monkeypatch, range_bytes: int) -> int:
    monkeypatch.setattr(ranges, "RANGE_BYTES", range_bytes)
    return len(read_text_ranges(extract, lambda t: t.num_rows, known=extract_names()))


@pytest.mark.parametrize("order", ORDERS)
def test_ranges_write_the_bytes_of_the_whole_file_read(tmp_path, monkeypatch, order):
    extract = write_extract(tmp_path / "x.csv", *ORDERS[order](_statements()))
    assert _pieces(extract, monkeypatch, SMALL) > 10  # the test crosses many boundaries
    assert _pieces(extract, monkeypatch, 1 << 30) == 1
    ranged, ranged_file, ranged_rejects = _run(tmp_path, monkeypatch, extract, "ranged", SMALL)
    whole, whole_file, whole_rejects = _run(tmp_path, monkeypatch, extract, "whole", 1 << 30)
    assert ranged_file == whole_file
    assert ranged_rejects == whole_rejects
    assert ranged.counts == whole.counts and ranged.notes == whole.notes
    # the quarantines really happened: 6 disagreeing statements, 5 that do not reconcile
    assert whole.counts["statements_quarantined"] == 11
    assert whole_rejects.count(b"customer_name: differs between the lines of this statement") == 3 * 6


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("range_bytes", [997, 1_301, 4_001])
def test_every_cut_of_a_statement_gives_the_same_bytes(tmp_path, monkeypatch, order, range_bytes):
    """Range sizes that cut statements at each of their rows (rows are ~190 bytes)."""
    extract = write_extract(tmp_path / "x.csv", *ORDERS[order](_statements()))
    _, whole_file, whole_rejects = _run(tmp_path, monkeypatch, extract, "whole", 1 << 30)
    _, ranged_file, ranged_rejects = _run(tmp_path, monkeypatch, extract, "ranged", range_bytes)
    assert (ranged_file, ranged_rejects) == (whole_file, whole_rejects)


def test_a_quoted_line_break_is_read_whole(tmp_path, monkeypatch):
    """A value with a line break cannot be cut at line breaks: the whole file is read."""
    statements = _statements()
    statements[30] = [dict(r, address2="Unit 4\r\nRear") for r in statements[30]]
    extract = write_extract(tmp_path / "x.csv", *statements)
    assert _pieces(extract, monkeypatch, SMALL) == 1
    _, ranged_file, ranged_rejects = _run(tmp_path, monkeypatch, extract, "ranged", SMALL)
    _, whole_file, whole_rejects = _run(tmp_path, monkeypatch, extract, "whole", 1 << 30)
    assert (ranged_file, ranged_rejects) == (whole_file, whole_rejects)
    assert b'"Unit 4 Rear"' in whole_file


def test_a_bad_row_in_a_later_range_is_named_by_its_line(tmp_path, monkeypatch):
    extract = write_extract(tmp_path / "x.csv", *_statements())
    text = extract.read_bytes().split(b"\r\n")
    text[150] += b",extra,fields"  # line 151 of the file
    extract.write_bytes(b"\r\n".join(text))
    monkeypatch.setattr(ranges, "RANGE_BYTES", SMALL)
    with pytest.raises(InputError) as err:
        run_invoice_file(extract, BILLER, tmp_path / "out", now=NOW)
    assert err.value.line == 151
    assert f"has {len(COLUMNS) + 2} fields where the header has {len(COLUMNS)}" in str(err.value)
