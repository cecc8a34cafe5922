"""One text rule for the invoice file and the lockbox file (issue 12, items 1-2).

Every Unicode line-break character (all that ``str.splitlines`` splits on, which covers the
Unicode line-break classes BK, CR, LF and NL) and every control character (C0, DEL, C1)
becomes a space in both files; a RUN of them is one space; values are trimmed. Bytes are
asserted, so a name can never be split in two by a line-based reader.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from caselle_ic.config.model import load_config
from caselle_ic.invoices.writer import RecordSet, write_invoice_file
from caselle_ic.payments.lockbox import write_lockbox_files
from caselle_ic.schemas.invoices import record_fields
from caselle_ic.tabular.text import clean_value
from tests.conftest import SAMPLES
from tests.invoices.test_writer_properties import NOW, _records

#: What str.splitlines treats as a line boundary (Python docs): LF VT FF CR FS GS RS NEL LS PS.
LINE_BREAKS = ["\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]
EVERY = sorted(set(LINE_BREAKS + CONTROLS))


def test_the_class_covers_every_line_break_python_knows():
    every_char = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    breaks = {c for c in every_char if len(("a" + c + "b").splitlines()) > 1}
    assert breaks == set(LINE_BREAKS)
    assert breaks <= set(EVERY)


CFG = load_config(SAMPLES / "biller.toml")


def _lockbox_names(tmp_path, names: list[str]) -> list[bytes]:
    """The lockbox lines of one file, one payment per name (one write for all cases)."""
    n = len(names)
    frame = pd.DataFrame(
        {
            "payment_guid": [f"00000000-0000-4000-8000-{i:012d}" for i in range(n)],
            "payment_date": pd.to_datetime(["2026-11-01 10:00:00"] * n).astype("datetime64[s]"),
            "distribution_code": pd.array([300] * n, dtype="Int64"),
            "payment_code": pd.array([97] * n, dtype="Int64"),
            "amount_cents": [1234] * n,
            "account_number": pd.Series(["001001"] * n, dtype="string"),
            "customer_name": pd.Series(names, dtype="string"),
        }
    )
    result = write_lockbox_files(frame, tmp_path, date(2026, 11, 2), CFG)
    return result.paths[0].read_bytes().split(b"\r\n")[:-1]


def _invoice_names(tmp_path, names: list[str]) -> list[bytes]:
    """The quoted CustomerName of each CR record, one statement per name."""
    one = _records({"CustomerName": ""})
    n = len(names)
    ih = pd.concat([one.ih] * n, ignore_index=True)
    cr = pd.concat([one.cr] * n, ignore_index=True)
    cr["CustomerName"] = pd.Series(names, dtype="string")
    fh = one.fh.assign(InvoiceCount=str(n))
    records = RecordSet(fh=fh, ih=ih, cr=cr, id=one.id, lines_per_statement=np.zeros(n, dtype=np.int64))
    path = write_invoice_file(records, tmp_path, NOW)
    i = [f.ic_field for f in record_fields("CR")].index("CustomerName")
    return [r.split(b"|")[i] for r in path.read_bytes().split(b"\r\n") if r.startswith(b'"CR"')]


CASES = [
    case
    for c in EVERY
    for case in (
        (f"A{c}B", "A B"),
        (f"A{c}{c}\r\n{c}B", "A B"),  # a run of breaks is ONE space, whatever the line endings
        (f"{c}A B{c}", "A B"),  # trimmed
    )
]
IDS = [f"U+{ord(c):04X}-{k}" for c in EVERY for k in ("one", "run", "edges")]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text")
    raws = [raw for raw, _ in CASES]
    return _invoice_names(tmp / "inv", raws), _lockbox_names(tmp / "lbx", raws)


@pytest.mark.parametrize("k", range(len(CASES)), ids=IDS)
def test_both_writers_turn_every_break_and_control_into_one_space(written, k):
    raw, expected = CASES[k]
    invoice, lockbox = written
    assert clean_value(raw) == expected
    assert invoice[k] == b'"' + expected.encode() + b'"'
    assert lockbox[k] == b"11/01/2026,300,97,12.34,001001," + expected.encode()


def test_once_upon_a_time_reads_the_same_in_both_files(tmp_path):
    for raw in ("Once upon\r\na time", "Once upon\na time", "Once upon\r\n\r\na time"):
        assert _invoice_names(tmp_path / "i", [raw]) == [b'"Once upon a time"']
        assert _lockbox_names(tmp_path / "l", [raw])[0].endswith(b",Once upon a time")


def test_lockbox_cut_after_cleaning_drops_a_trailing_space(tmp_path):
    raw = "A" * 29 + "\u2028" + "B" * 5
    assert _lockbox_names(tmp_path, [raw])[0].endswith(b"," + b"A" * 29)
