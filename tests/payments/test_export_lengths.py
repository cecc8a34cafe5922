"""Lengths the ledger holds are checked at the export schema (issue 13, item 8): a
301-character customer_name or a 101-character invoice_number quarantines its line, with
the column named, instead of stopping a PostgreSQL run; the limits are the ledger's."""

from __future__ import annotations

import csv

import pytest
import sqlalchemy as sa

from caselle_ic.config.model import load_config
from caselle_ic.payments.export import read_payment_export
from caselle_ic.schemas.payments import export_columns
from caselle_ic.store import tables
from tests.conftest import SAMPLES

LIMITS = {"account_number": 64, "customer_name": 300, "invoice_number": 100}


def _export(tmp_path, column: str, value: str):
    with (SAMPLES / "payments.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if r["transaction_type"] == "PAYMENT" and r["invoice_number"])
    row[column] = value
    path = tmp_path / "p.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cfg = load_config(SAMPLES / "biller.toml", resolve_secrets=False)
    return read_payment_export(path, cfg), row["payment_guid"]


@pytest.mark.parametrize(("column", "limit"), LIMITS.items())
def test_one_character_too_many_is_quarantined_naming_the_column(tmp_path, column, limit):
    export, guid = _export(tmp_path, column, "7" * (limit + 1))
    q = export.quarantined
    hit = q[q["payment_guid"] == guid]
    assert len(hit) == 1
    assert f"{column}: longer than {limit} characters" in hit["reason"].iloc[0]
    assert guid not in set(export.valid["payment_guid"])


@pytest.mark.parametrize(("column", "limit"), LIMITS.items())
def test_exactly_the_limit_is_accepted(tmp_path, column, limit):
    export, guid = _export(tmp_path, column, "7" * limit)
    assert guid in set(export.valid["payment_guid"])


def test_the_schema_limits_are_the_ledger_column_lengths():
    declared = {c.name: c.max_length for c in export_columns() if c.max_length}
    assert declared == LIMITS
    table = tables.metadata.tables["payments"]
    for name, limit in declared.items():
        column_type = table.c[name].type
        assert isinstance(column_type, sa.String)
        assert column_type.length == limit
