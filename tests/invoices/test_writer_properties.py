"""Properties of the writer and the message split, over generated values (hypothesis).

* Round trip: any text written into the invoice file and read back with
  ``csv.reader(f, delimiter="|")`` equals the original with every run of control
  characters turned into one space and surrounding spaces trimmed
  (:func:`schemas.invoices.clean_value`, the rule of SPEC §3).
* The general-message split of SPEC §3.3: parts fit, nothing but dropped spaces is lost
  unless the message was truncated, and every split is as late as it can be.
"""

from __future__ import annotations

import csv
import itertools
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from caselle_ic.invoices.messages import MESSAGE_FIELDS, split_message
from caselle_ic.invoices.writer import RecordSet, invoice_file_name, write_invoice_file
from caselle_ic.schemas.invoices import clean_value, record_fields

NOW = datetime(2026, 11, 1, 6, 0, 0)
CR_TEXT = [f.ic_field for f in record_fields("CR") if f.format == "text"]

# any text, including quotes, pipes, CR/LF/TAB, other control characters and non-ASCII;
# no surrogates (not encodable in UTF-8, and not text a CSV export can carry)
any_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


def _frame(record: str, values: dict[str, str]) -> pd.DataFrame:
    cols = {}
    for f in record_fields(record):
        value = values.get(f.ic_field, f.const or "")
        cols[f.ic_field] = pd.Series([value], dtype="string")
    return pd.DataFrame(cols)


def _records(cr_values: dict[str, str]) -> RecordSet:
    ih = {
        "InvoiceFormatGuid": "a2ef4f14-d023-4548-9139-02338672fe88",
        "InvoiceNumber": "X-1",
        "InvoiceDate": "10/25/2026",
        "InvoiceDueDate": "11/20/2026",
        "TotalAmountDue": "1.00",
    }
    fh = {"BillerGuid": "5009a105-933f-4e03-98f7-84b417d55d9f", "FileCreationDate": "11/01/2026"}
    fh |= {"InvoiceCount": "1", "TotalInvoiceAmount": "1.00"}
    empty_id = _frame("ID", {}).iloc[0:0]
    return RecordSet(
        fh=_frame("FH", fh),
        ih=_frame("IH", ih),
        cr=_frame("CR", cr_values),
        id=empty_id,
        lines_per_statement=np.zeros(1, dtype=np.int64),
    )


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({name: any_text for name in CR_TEXT}), st.sampled_from(["CRLF", "LF"]))
def test_any_text_round_trips_through_the_file(values, line_ending):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_invoice_file(_records(values), tmp, NOW, line_ending=line_ending)
        assert path == Path(tmp) / invoice_file_name(NOW)
        raw = path.read_bytes()
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="|"))
    newline = b"\r\n" if line_ending == "CRLF" else b"\n"
    assert raw.endswith(newline) and raw.count(newline) == 3 == len(rows)
    cr = dict(zip([f.ic_field for f in record_fields("CR")], rows[2], strict=True))
    for name in CR_TEXT:
        assert cr[name] == clean_value(values[name])
    assert cr["RowType"] == "CR"
    # every value is quoted, empty ones too: the record is '"' + ... + '"'
    text = raw.decode("utf-8").split(newline.decode())[2]
    assert text.startswith('"CR"|"') and text.endswith('"')


@settings(max_examples=50, deadline=None)
@given(any_text)
def test_clean_value_is_what_the_writer_writes_and_is_idempotent(value):
    cleaned = clean_value(value)
    assert clean_value(cleaned) == cleaned
    assert "\r" not in cleaned and "\n" not in cleaned and "\t" not in cleaned
    assert cleaned == cleaned.strip(" ")


words = st.lists(st.text(st.sampled_from("abcdefghij"), min_size=1, max_size=14), max_size=30)


@settings(max_examples=300, deadline=None)
@given(words, st.integers(min_value=1, max_value=20))
def test_message_split_fits_loses_only_spaces_and_splits_as_late_as_possible(ws, width):
    message = " ".join(ws)
    parts, truncated = split_message(message, width)
    assert len(parts) == MESSAGE_FIELDS
    assert all(len(p) <= width for p in parts)
    filled = [p for p in parts if p]
    assert parts[: len(filled)] == filled  # packed from Custom8 on
    squeezed = "".join(filled).replace(" ", "")
    if truncated:
        assert message.replace(" ", "").startswith(squeezed) and squeezed != message.replace(" ", "")
        assert len(filled) == MESSAGE_FIELDS
    else:
        assert squeezed == message.replace(" ", "")
        # a part that ends at a space boundary holds whole words only
        if all(len(w) <= width for w in ws):
            assert " ".join(filled) == message
    for p, q in itertools.pairwise(filled):
        assert len(p) + 1 + len(q.split(" ")[0]) > width  # the next word would not have fit


def test_message_split_examples():
    assert split_message("aaa bbb ccc", 7) == (["aaa bbb", "ccc", "", "", ""], False)
    assert split_message("aaaaaaaaaa", 4) == (["aaaa", "aaaa", "aa", "", ""], False)
    assert split_message("a" * 30, 4) == (["aaaa"] * 5, True)
    assert split_message("", 4) == ([""] * 5, False)
    assert split_message("abc defg", 3) == (["abc", "defg"[:3], "g", "", ""], False)
