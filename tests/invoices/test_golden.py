"""The sample extract end to end: exact bytes against the golden files, and an independent
re-derivation of the file from the extract with nothing but the csv module and Decimal."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.schemas.invoices import record_fields
from tests.conftest import run_cli
from tests.invoices.conftest import BILLER, EXPECTED, NOW, SAMPLE_EXTRACT, STAMP, read_records

GOLDEN = EXPECTED / f"{STAMP}.txt"
GOLDEN_REJECTS = EXPECTED / "rejects" / f"{STAMP}.rejects.csv"


def test_cli_writes_the_golden_invoice_file_and_rejects(tmp_path):
    proc = run_cli(
        "invoices", str(SAMPLE_EXTRACT), "--config", str(BILLER), "--out", str(tmp_path), "--now", NOW
    )
    assert proc.returncode == 1, proc.stderr  # written, and some statements quarantined
    assert "statements_quarantined 7" in proc.stderr
    assert f"rejects/{STAMP}.rejects.csv" in proc.stderr
    assert (tmp_path / f"{STAMP}.txt").read_bytes() == GOLDEN.read_bytes()
    assert (tmp_path / "rejects" / f"{STAMP}.rejects.csv").read_bytes() == GOLDEN_REJECTS.read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        f"{STAMP}.rejects.csv",
        f"{STAMP}.txt",
    ]  # nothing half-written left behind


def test_plain_function_writes_the_same_bytes(tmp_path):
    result = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path, now=NOW)
    assert result.outputs == [tmp_path / f"{STAMP}.txt"]
    assert result.outputs[0].read_bytes() == GOLDEN.read_bytes()
    assert result.rejects_path is not None
    assert result.rejects_path.read_bytes() == GOLDEN_REJECTS.read_bytes()
    assert result.kind == "invoice-file" and result.period == "2026-11" and result.exit_status == 1
    assert result.counts == {
        "rows_in": 192,
        "statements_in": 51,
        "statements_written": 44,
        "statements_quarantined": 7,
        "rows_quarantined": 28,
        "records_written": 252,
    }


def test_adjustments_run_writes_the_same_format(tmp_path):
    result = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path, now=NOW, adjustments=True)
    assert result.kind == "adjustments-file"
    assert result.outputs[0].read_bytes() == GOLDEN.read_bytes()


# -- an independent derivation from the extract ----------------------------------------

AMOUNT = re.compile(r"-?\d+\.\d{2}\Z")
DATE = re.compile(r"(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])/\d{4}\Z")


def dec(text: str) -> Decimal:
    t = text.strip().replace("$", "").replace(",", "")
    if t.startswith("(") and t.endswith(")"):
        t = "-" + t[1:-1]
    return Decimal(t or "0")


def extract_rows() -> list[tuple[int, dict[str, str]]]:
    """(physical line, row) of the sample extract, canonical names, via csv.reader."""
    aliases = {"acct no": "account_number", "customer name": "customer_name"}
    with SAMPLE_EXTRACT.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = [aliases.get(h.lower(), h) for h in next(reader)]
        out, start = [], reader.line_num + 1
        for row in reader:
            out.append((start, dict(zip(header, row, strict=True))))
            start = reader.line_num + 1
    return out


@pytest.fixture(scope="module")
def golden() -> list[list[str]]:
    return read_records(GOLDEN)


def test_golden_file_format(golden):
    raw = GOLDEN.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == len(golden)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    # every value quoted, empty ones too
    for text in raw.decode("utf-8").split("\r\n")[:-1]:
        assert text.startswith('"') and text.endswith('"')
    widths = {rec: len(record_fields(rec)) for rec in ("FH", "IH", "CR", "ID")}
    assert all(len(r) == widths[r[0]] for r in golden)
    assert golden[0][0] == "FH" and [r[0] for r in golden].count("FH") == 1


def test_golden_file_agrees_with_an_independent_reading_of_the_extract(golden):
    rows = extract_rows()
    by_account: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for line_no, row in rows:
        by_account[row["account_number"]].append((line_no, row))
    rejected_lines = {
        int(r["line"]) for r in csv.DictReader(GOLDEN_REJECTS.open(encoding="utf-8", newline=""))
    }

    # statements in order of first appearance, minus the quarantined ones
    expected_accounts = [
        re.sub(r"[^A-Za-z0-9]", "", acct)
        for acct, members in by_account.items()
        if not {ln for ln, _ in members} & rejected_lines
    ]
    assert [r[1] for r in golden if r[0] == "CR"] == expected_accounts
    # every input row is either written (as an ID or a no-activity IH) or rejected
    assert rejected_lines <= {ln for ln, _ in rows}
    assert len(rejected_lines) == 28

    fh = golden[0]
    ih = [r for r in golden if r[0] == "IH"]
    assert fh[3] == str(len(ih)) == "44"
    assert Decimal(fh[4]) == sum(Decimal(r[6]) for r in ih)

    # per statement: IH, CR, then its lines in date order with the running balance
    i = 1
    for acct in expected_accounts:
        members = next(m for a, m in by_account.items() if re.sub(r"[^A-Za-z0-9]", "", a) == acct)
        first = members[0][1]
        head, cust = golden[i], golden[i + 1]
        assert head[0] == "IH" and cust[0] == "CR" and cust[1] == acct
        activity = [row for _, row in members if row["line_date"] or row["ref_no"]]
        activity.sort(key=lambda r: tuple(int(x) for x in _ymd(r["line_date"])))
        ids = golden[i + 2 : i + 2 + len(activity)]
        assert all(r[0] == "ID" for r in ids)
        balance = dec(first["last_statement_balance"])
        for src, rec in zip(activity, ids, strict=True):
            balance += dec(src["charge_amount"]) - dec(src["credit_amount"])
            assert rec[5] == f"{balance:.2f}"
            assert rec[9] == src["ref_no"]
            assert rec[7] == ("" if src["line_type"].upper() == "PAYMENT" else src["invoice_category_code"])
        assert balance == dec(first["customer_balance"]) == Decimal(head[6])
        # InvoiceNumber (SPEC 3.2)
        invoices = [r for r in activity if r["line_type"].upper() == "INVOICE"]
        if invoices:
            assert head[3] == invoices[0]["ref_no"]
        elif activity:
            y, m, d = _ymd(activity[0]["line_date"])
            assert head[3] == f"{activity[0]['ref_no']}-{int(m)}/{int(d)}/{y}"
        else:
            y, m, d = _ymd(first["statement_date"])
            assert head[3] == f"{acct}-{int(m)}/{int(d)}/{y}"
        # the names and the message, space-normalised
        assert cust[2] == " ".join(first["customer_name"].split())
        message = re.sub(r"[\r\n\t]+", " ", first["general_message"]).strip()
        parts = [head[14], head[15], head[16], head[18], head[19]]
        assert all(len(p) <= 255 for p in parts)
        assert " ".join(p for p in parts if p) == message or len(message) > 5 * 255
        for value in (head[4], head[5], head[7], head[10], head[11]):
            assert value == "" or DATE.match(value)
        for value in (head[6], head[8], head[9], head[12], head[13], head[17], head[26]):
            assert value == "" or AMOUNT.match(value)
        assert head[24] == "Open Items" and head[1] == "R"
        i += 2 + len(activity)
    assert i == len(golden)


def _ymd(text: str) -> tuple[str, str, str]:
    if "-" in text:
        y, m, d = text.split("-")
        return y, m, d
    m, d, y = text.split("/")
    return y, m, d


def test_rejects_name_the_physical_line_of_each_row(golden):
    """Line numbers count the lines of quoted multi-line values (account 001012)."""
    physical = {ln: row for ln, row in extract_rows()}
    with GOLDEN_REJECTS.open(encoding="utf-8", newline="") as fh:
        for rej in csv.DictReader(fh):
            src = physical[int(rej["line"])]
            assert rej["ref_no"] == src["ref_no"] and rej["customer_name"] == src["customer_name"]
            assert rej["account_number"] == src["account_number"]
            assert rej["reason"]


def test_golden_files_are_committed_with_their_line_endings():
    assert Path(GOLDEN).read_bytes().count(b"\r\n") == 252
    assert GOLDEN_REJECTS.read_bytes().endswith(b"\r\n")
