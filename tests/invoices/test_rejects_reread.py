"""The rejects of an extract read in ranges are read again from the file, from where each
row starts (``tabular/ranges.read_rows``), instead of the run holding every row's text to
the end. They must be the bytes the whole-file read writes: CRLF or LF, a byte-order mark,
no line break after the last row, rejects in many ranges; and a file read whole
(cp1252) keeps its text and writes the same rejects."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from caselle_ic.config.model import load_config
from caselle_ic.errors import InputError
from caselle_ic.invoices.checks import check_extract
from caselle_ic.invoices.extract import read_extract
from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.schemas.invoices import extract_names
from caselle_ic.tabular import ranges
from caselle_ic.tabular.csvin import read_text_table
from caselle_ic.tabular.ranges import read_text_ranges
from tests.invoices.conftest import BILLER, NOW, write_config, write_extract
from tests.invoices.test_bounded_read import ORDERS, SMALL, _statements

CP1252 = {'encoding = "utf-8"\ncolumns': 'encoding = "cp1252"\ncolumns'}


def _extract(tmp_path, order: str, *, newline: bytes = b"\r\n", bom: bool = False, last_break: bool = True):
    statements = _statements()
    statements[-1] = [dict(r, customer_name="Zoë Müller", customer_balance="1.00") for r in statements[-1]]
    statements[5] = [dict(r, address1='12 "Old" Mill, Rear') for r in statements[7]]
    path = write_extract(tmp_path / "x.csv", *ORDERS[order](statements))
    data = path.read_bytes().replace(b"\r\n", newline)
    if not last_break:
        data = data.removesuffix(newline)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def _outputs(tmp_path, monkeypatch, extract, name: str, range_bytes: int, config=BILLER):
    monkeypatch.setattr(ranges, "RANGE_BYTES", range_bytes)
    result = run_invoice_file(extract, config, tmp_path / name, now=NOW)
    assert result.rejects_path is not None
    return result.outputs[0].read_bytes(), result.rejects_path.read_bytes()


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("newline", "bom", "last_break"),
    [(b"\r\n", False, True), (b"\n", False, True), (b"\r\n", True, True), (b"\n", True, False)],
)
def test_rejects_read_again_are_the_bytes_of_the_whole_read(
    tmp_path, monkeypatch, order, newline, bom, last_break
):
    extract = _extract(tmp_path, order, newline=newline, bom=bom, last_break=last_break)
    cfg = load_config(BILLER)
    monkeypatch.setattr(ranges, "RANGE_BYTES", SMALL)
    text = read_extract(extract, cfg)
    assert text.reread is not None  # the ranged read, which lets go of the text once parsed
    check_extract(text, cfg)
    assert text.line_table.num_rows == 0 and text.statements.num_rows == 0

    whole = _outputs(tmp_path, monkeypatch, extract, "whole", 1 << 30)
    ranged = _outputs(tmp_path, monkeypatch, extract, "ranged", SMALL)
    assert ranged == whole
    # the rejects come from many ranges, the last row of the file among them
    monkeypatch.setattr(ranges, "RANGE_BYTES", SMALL)
    spans = read_text_ranges(extract, lambda t: (int(t.lines[0]), int(t.lines[-1])), known=extract_names())
    rows = list(csv.DictReader(io.StringIO(whole[1].decode("utf-8"))))
    reject_lines = {int(r["line"]) for r in rows}
    assert len(rows) == len(reject_lines) > 30
    assert len({i for i, (a, b) in enumerate(spans) for n in reject_lines if a <= n <= b}) > 8
    assert "Zoë Müller".encode() in whole[1] and b'"12 ""Old"" Mill, Rear"' in whole[1]


def test_read_rows_gives_the_text_of_the_whole_read(tmp_path, monkeypatch):
    extract = _extract(tmp_path, "ungrouped", newline=b"\n", last_break=False)
    cfg = load_config(BILLER)
    monkeypatch.setattr(ranges, "RANGE_BYTES", SMALL)
    text = read_extract(extract, cfg)
    assert text.reread is not None and text.starts is not None
    assert len(text.starts) == text.num_rows + 1 and text.starts[-1] == extract.stat().st_size
    whole = read_text_table(extract, column_map=cfg.extract.columns, known=extract_names()).table
    n = whole.num_rows
    for rows in ([0], [0, 1, 2, 3], [5, 9, 10, 11, 60, n - 2, n - 1], list(range(n)), []):
        idx = np.array(rows, dtype=np.int64)
        assert text.reread(idx).to_pylist() == whole.take(idx).to_pylist()
    monkeypatch.setattr(ranges, "RANGE_BYTES", 1_000)  # read again in several batches
    assert text.reread(np.arange(n)).to_pylist() == whole.to_pylist()


def test_a_file_changed_before_its_rejects_are_read_is_refused(tmp_path, monkeypatch):
    extract = _extract(tmp_path, "grouped")
    cfg = load_config(BILLER)
    monkeypatch.setattr(ranges, "RANGE_BYTES", SMALL)
    text = read_extract(extract, cfg)
    assert text.reread is not None
    extract.write_bytes(extract.read_bytes() + b"more\r\n")
    with pytest.raises(InputError, match="changed while it was being processed"):
        text.reread(np.array([0, 1]))


def test_a_cp1252_extract_is_read_whole_and_writes_the_same_rejects(tmp_path, monkeypatch):
    """cp1252 is read whole (its text kept for the rejects); the same extract in UTF-8 is
    read in ranges (its rejects read again): the two runs write the same bytes."""
    utf8 = _extract(tmp_path, "ungrouped")
    cp1252 = tmp_path / "cp1252.csv"
    cp1252.write_bytes(utf8.read_bytes().decode("utf-8").encode("cp1252"))
    config = write_config(tmp_path / "b.toml", CP1252)
    monkeypatch.setattr(ranges, "RANGE_BYTES", SMALL)
    assert read_extract(cp1252, load_config(config)).reread is None
    from_cp1252 = _outputs(tmp_path, monkeypatch, cp1252, "cp1252", SMALL, config)
    from_utf8 = _outputs(tmp_path, monkeypatch, utf8, "utf8", SMALL)
    assert from_cp1252 == from_utf8
    assert "Zoë Müller".encode() in from_cp1252[1]
