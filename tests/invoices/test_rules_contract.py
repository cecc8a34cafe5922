"""The vectorised rule checks give exactly the reasons the declared pandera schemas give.

The run checks its frames with :mod:`caselle_ic.tabular.rules` (no pandera on the hot
path); the pandera schemas built from the same rules stay the declared contract. These
tests feed both frames full of failures and compare every reason, row by row.
"""

from __future__ import annotations

import pandas as pd
import pytest

from caselle_ic.config.model import load_config, resolve_now
from caselle_ic.invoices.build import build_records
from caselle_ic.invoices.checks import check_extract
from caselle_ic.invoices.extract import read_extract
from caselle_ic.schemas.invoices import (
    line_schema,
    record_fields,
    record_schema,
    statement_schema,
    validate,
    validate_with_pandera,
)
from tests.invoices.conftest import BILLER, NOW, line, statement, write_extract


def _bad_extract(tmp_path):
    return write_extract(
        tmp_path / "bad.csv",
        statement("001001", [line("10/05/2026", "INVOICE", "A1", "2.00")]),
        statement("0010-01", [line("10/05/2026", "INVOICE", "A2", "2.00")]),  # cleans like 001001
        statement("---", [line("13/45/2026", "INVOCE", "", "abc", "-1.00", quantity="1.2.3")]),
        statement("001003", [line("10/05/2026", "PAYMENT", "P", credit="(5.00)")], customer_name=""),
        statement("001004", [line("", "", "", "", "")], statement_date="2026-02-30", due_date=""),
        statement("001005", [line("10/05/2026", "ADJUSTMENT", "J", "1,000.005")], customer_balance="x"),
        statement("001006", [line("10/06/2026", "INVOICE", "K", "$1,234.50", quantity="2.50")]),
    )


def _same(schema, frame, prefix=""):
    fast = validate(schema, frame, prefix=prefix)
    slow = validate_with_pandera(schema, frame, prefix=prefix)
    assert len(fast) > 0
    pd.testing.assert_series_equal(fast, slow, check_names=False)


def test_statement_and_line_rules_match_pandera(tmp_path):
    cfg = load_config(BILLER)
    checked = check_extract(read_extract(_bad_extract(tmp_path), cfg), cfg)
    _same(statement_schema(), checked.statements)
    _same(line_schema(), checked.line_frame)


@pytest.mark.parametrize("record", ["IH", "CR", "ID"])
def test_record_rules_match_pandera(tmp_path, record):
    cfg = load_config(BILLER)
    checked = check_extract(read_extract(_bad_extract(tmp_path), cfg), cfg)
    build = build_records(checked, cfg, resolve_now(NOW, cfg.tz))
    frame = {"IH": build.records.ih, "CR": build.records.cr, "ID": build.records.id}[record].copy()
    # the frames leave out the constants that pass (the writer writes f.const): put them back
    fields = record_fields(record)
    assert [f.ic_field for f in fields if f.const is None] == list(frame.columns)
    frame = pd.DataFrame(
        {f.ic_field: frame[f.ic_field] if f.const is None else f.const for f in fields}, index=frame.index
    ).astype("string[pyarrow]")
    # break every field of the first rows in a different way
    for i, col in enumerate(frame.columns):
        row = frame.index[i % len(frame)]
        frame.loc[row, col] = ["", " x ", "x" * 300, "13/01/2026", "1.5", "a\tb", "ümlaut"][i % 7]
    _same(record_schema(record, 40, "cp1252", check_clean=True), frame, prefix=f"{record}.")
    _same(record_schema(record, 255, "utf-8"), frame, prefix=f"{record}.")


def test_a_frame_without_the_declared_columns_is_a_bug_not_a_reason(tmp_path):
    from caselle_ic.errors import RecordSchemaError

    cfg = load_config(BILLER)
    checked = check_extract(read_extract(_bad_extract(tmp_path), cfg), cfg)
    with pytest.raises(RecordSchemaError, match="shape"):
        validate(statement_schema(), checked.statements.drop(columns=["city"]))
    with pytest.raises(RecordSchemaError, match="shape"):
        validate(line_schema(), checked.line_frame.assign(extra=1))
