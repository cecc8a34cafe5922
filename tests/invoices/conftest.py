"""Helpers of the invoice-file tests: small extracts built from rows, configs with overrides."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import pytest

from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.result import RunResult
from caselle_ic.schemas.invoices import extract_names
from caselle_ic.tabular.values import parse_cents
from tests.conftest import SAMPLES

BILLER = SAMPLES / "biller.toml"
SAMPLE_EXTRACT = SAMPLES / "statements.csv"
EXPECTED = SAMPLES / "expected"
NOW = "2026-11-01T06:00:00"
STAMP = "INVCLD_CSLSTMT101_20261101060000"
COLUMNS = extract_names()

#: The statement-level values of an ordinary statement.
STATEMENT = {
    "account_number": "001001",
    "customer_name": "Ada Lovelace",
    "address1": "1 Main St",
    "city": "Springville",
    "state": "UT",
    "zip": "84663",
    "phone": "(801) 555-0101",
    "email": "ada@example.com",
    "statement_date": "10/25/2026",
    "due_date": "11/20/2026",
    "last_statement_date": "09/25/2026",
    "statement_begin_date": "09/26/2026",
    "statement_end_date": "10/25/2026",
}


def cents(text: str) -> int:
    """An amount as the extract accepts it; blank or unparseable counts 0."""
    values, _bad = parse_cents(pd.Series([text], dtype="string"))
    return 0 if pd.isna(values.iloc[0]) else int(values.iloc[0])


def money(c: int) -> str:
    return f"{'-' if c < 0 else ''}{abs(c) // 100}.{abs(c) % 100:02d}"


def line(date: str, kind: str, ref: str, charge: str = "", credit: str = "", **more: str) -> dict[str, str]:
    row = {
        "line_date": date,
        "line_type": kind,
        "ref_no": ref,
        "charge_amount": charge,
        "credit_amount": credit,
    }
    row.setdefault("invoice_category_code", "" if kind == "PAYMENT" else "42")
    row.update(more)
    return row


def statement(
    account: str = "001001",
    lines: Iterable[Mapping[str, str]] = (),
    *,
    balance_forward: str = "10.00",
    **values: str,
) -> list[dict[str, str]]:
    """The rows of one statement; customer_balance reconciles unless given."""
    lines = list(lines) or [{}]
    total = cents(balance_forward) + sum(
        cents(ln.get("charge_amount", "")) - cents(ln.get("credit_amount", "")) for ln in lines
    )
    base = dict(STATEMENT, account_number=account, last_statement_balance=balance_forward)
    base["customer_balance"] = money(total)
    base.update(values)
    return [dict(base, **ln) for ln in lines]


def write_extract(path: Path, *statements: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or COLUMNS
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for rows in statements:
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path


def write_config(path: Path, replace: Mapping[str, str] | None = None, append: str = "") -> Path:
    """biller.toml with some text replaced (``'line_ending = "CRLF"': 'line_ending = "LF"'``)."""
    text = BILLER.read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    # paths relative to the sample config's directory stay valid from a temporary copy
    text = text.replace('"../../data/', f'"{(SAMPLES / "../../data").resolve()}/')
    path.write_text(text + append, encoding="utf-8")
    return path


def read_records(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    """The invoice file through the independent parser the spec names."""
    with path.open(encoding=encoding, newline="") as fh:
        return list(csv.reader(fh, delimiter="|"))


def read_rejects(result: RunResult) -> list[dict[str, str]]:
    assert result.rejects_path is not None
    with result.rejects_path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def run(tmp_path):
    """Run the invoice file on statements (lists of rows); returns (result, records)."""

    def go(*statements: list[dict[str, str]], config: Path = BILLER, **kw):
        extract = write_extract(tmp_path / "extract.csv", *statements)
        result = run_invoice_file(extract, config, tmp_path / "out", now=NOW, **kw)
        return result, read_records(result.outputs[0])

    return go


def by_type(records: list[list[str]], kind: str) -> list[list[str]]:
    return [r for r in records if r[0] == kind]
