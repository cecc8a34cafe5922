"""The rules of SPEC §3: one test per quarantine rule, and the field rules of the builder.

Each test builds a tiny extract, runs the real pipeline function and reads the invoice
file back with csv.reader (and the rejects file with csv.DictReader).
"""

from __future__ import annotations

import pytest

from caselle_ic.errors import NothingToWriteError
from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.result import RunResult
from caselle_ic.schemas.invoices import record_fields
from tests.invoices.conftest import (
    NOW,
    by_type,
    line,
    read_rejects,
    statement,
    write_config,
    write_extract,
)

IH = {f.ic_field: f.pos - 1 for f in record_fields("IH")}
CR = {f.ic_field: f.pos - 1 for f in record_fields("CR")}
ID = {f.ic_field: f.pos - 1 for f in record_fields("ID")}

GOOD = statement("009001", [line("10/05/2026", "INVOICE", "INV-1", "20.00")])


def quarantined(result, account: str) -> list[dict[str, str]]:
    return [r for r in read_rejects(result) if r["account_number"] == account]


def written_accounts(records) -> list[str]:
    return [r[CR["AccountNumber"]] for r in by_type(records, "CR")]


# -- quarantine rules (SPEC §3.5) ------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("customer_name", "", "customer_name: required value is missing"),
        ("statement_date", "", "statement_date: required value is missing"),
        ("due_date", "2026-02-30", "due_date: is not a date"),
        ("customer_balance", "12.345", "customer_balance: is not an amount"),
        ("last_statement_balance", "", "last_statement_balance: required value is missing"),
        ("past_due", "$1,23.00", "past_due: is not an amount"),
        ("statement_end_date", "Oct 25", "statement_end_date: is not a date"),
    ],
)
def test_missing_or_unparseable_statement_value_quarantines_the_statement(run, column, value, rule):
    bad = statement("001002", [line("10/05/2026", "INVOICE", "INV-2", "5.00")] * 2, **{column: value})
    result, records = run(GOOD, bad)
    assert written_accounts(records) == ["009001"]
    rows = quarantined(result, "001002")
    assert len(rows) == 2 and all(r["reason"].startswith(rule) for r in rows)
    assert result.exit_status == 1 and result.counts["statements_quarantined"] == 1


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("line_date", "", "line_date: required value is missing"),
        ("line_date", "13/01/2026", "line_date: is not a date"),
        ("ref_no", "", "ref_no: required value is missing"),
        ("line_type", "REFUND", "line_type: must be INVOICE, PAYMENT or ADJUSTMENT"),
        ("quantity", "two", "quantity: is not a number"),
        ("charge_amount", "1O.00", "charge_amount: is not an amount"),
        ("line_due_date", "11/31/2026", "line_due_date: is not a date"),
    ],
)
def test_missing_or_unparseable_line_value_quarantines_the_statement(run, field, value, rule):
    lines = [line("10/05/2026", "INVOICE", "INV-2", "5.00"), line("10/06/2026", "INVOICE", "INV-3", "1.00")]
    lines[1] = dict(lines[1], **{field: value})
    result, records = run(GOOD, statement("001002", lines))
    assert written_accounts(records) == ["009001"]
    rows = quarantined(result, "001002")
    assert rows[1]["reason"].startswith(rule) and ";" not in rows[1]["reason"]
    assert rows[0]["reason"] == f"statement quarantined because of line(s) {rows[1]['line']}"


@pytest.mark.parametrize("column", ["charge_amount", "credit_amount"])
def test_negative_charge_or_credit_quarantines_the_statement(run, column):
    bad = statement("001003", [line("10/05/2026", "INVOICE", "INV-3", **{column: "(4.00)"})])
    result, records = run(GOOD, bad)
    assert written_accounts(records) == ["009001"]
    assert [r["reason"] for r in quarantined(result, "001003")] == [f"{column}: must not be negative"]


def test_statement_values_that_differ_between_lines_quarantine_the_statement(run):
    rows = statement(
        "001004", [line("10/05/2026", "INVOICE", "A", "1.00"), line("10/06/2026", "INVOICE", "B", "2.00")]
    )
    rows[1]["customer_name"] = "Ada King"
    rows[1]["email"] = "ada.king@example.com"
    result, records = run(GOOD, rows)
    assert written_accounts(records) == ["009001"]
    reasons = [r["reason"] for r in quarantined(result, "001004")]
    expected = (
        "customer_name: differs between the lines of this statement; "
        "email: differs between the lines of this statement"
    )
    assert reasons == [expected, expected]
    # the rejects hold each input row as it was read, not the first row's values
    assert [r["customer_name"] for r in quarantined(result, "001004")] == ["Ada Lovelace", "Ada King"]


def test_statement_rows_need_not_be_adjacent(run):
    a = statement(
        "001005", [line("10/05/2026", "INVOICE", "A", "1.00"), line("10/06/2026", "INVOICE", "B", "2.00")]
    )
    result, records = run([a[0]], GOOD, [a[1]])
    assert written_accounts(records) == ["001005", "009001"]  # order of first rows
    ids = by_type(records, "ID")
    assert [r[ID["CustomField6"]] for r in ids] == ["A", "B", "INV-1"]
    assert result.exit_status == 0


def test_account_number_empty_once_cleaned_is_quarantined(run):
    result, records = run(GOOD, statement("--", [line("10/05/2026", "INVOICE", "X", "1.00")]))
    assert written_accounts(records) == ["009001"]
    # the rejects file neutralises a value a spreadsheet would run as a formula: '--
    assert quarantined(result, "'--")[0]["reason"] == (
        "account_number: has no letter or digit, so the AccountNumber would be empty"
    )


def test_two_accounts_that_clean_to_the_same_number_are_both_quarantined(run):
    one = statement("00-1006", [line("10/05/2026", "INVOICE", "X", "1.00")])
    two = statement("001.006", [line("10/05/2026", "INVOICE", "Y", "2.00")], customer_name="Other")
    result, records = run(one, GOOD, two)
    assert written_accounts(records) == ["009001"]
    rule = "account_number: cleans to the same AccountNumber as another account number in this extract"
    assert [r["reason"] for r in read_rejects(result)] == [rule, rule]
    assert result.counts["statements_quarantined"] == 2


def test_running_balance_that_does_not_reconcile_is_quarantined_with_the_spec_message(run):
    rows = statement(
        "001007",
        [line("10/05/2026", "INVOICE", "X", "50.00"), line("10/06/2026", "PAYMENT", "P", credit="28.75")],
        balance_forward="60.00",
        customer_balance="91.25",
    )
    result, _records = run(GOOD, rows)
    reasons = {r["reason"] for r in quarantined(result, "001007")}
    assert reasons == {"customer_balance: running balance 81.25 does not reconcile to customer balance 91.25"}


def test_statement_without_lines_must_carry_its_balance_forward(run):
    rows = statement("001008", [], balance_forward="12.00", customer_balance="13.00")
    result, _ = run(GOOD, rows)
    assert quarantined(result, "001008")[0]["reason"] == (
        "customer_balance: running balance 12.00 does not reconcile to customer balance 13.00"
    )


def test_every_statement_quarantined_writes_rejects_only_and_exits_2(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv", statement("001009", [line("10/05/2026", "INVOICE", "X", "-1")])
    )
    with pytest.raises(NothingToWriteError) as err:
        run_invoice_file(extract, write_config(tmp_path / "b.toml"), tmp_path / "out", now=NOW)
    assert err.value.exit_status == 2
    assert "every statement" in str(err.value) and "rejects" in str(err.value)
    assert not list((tmp_path / "out").glob("*.txt"))
    result = err.value.result  # typed object in errors.py
    assert isinstance(result, RunResult) and result.rejects_path is not None
    rejects = result.rejects_path
    assert rejects.exists() and "charge_amount: must not be negative" in rejects.read_text()


# -- field rules (SPEC §3.1 - §3.4) --------------------------------------------------


def test_invoice_number_is_the_first_invoice_line_in_line_order(run):
    rows = statement(
        "001010",
        [
            line("10/20/2026", "INVOICE", "INV-LATE", "5.00"),
            line("10/02/2026", "PAYMENT", "P-1", credit="1.00"),
            line("10/10/2026", "INVOICE", "INV-EARLY", "2.00", invoice_category_code="300"),
        ],
    )
    _, records = run(rows)
    ih = by_type(records, "IH")[0]
    assert ih[IH["InvoiceNumber"]] == "INV-EARLY"
    assert ih[IH["InvoiceTypeID"]] == "300"
    ids = by_type(records, "ID")
    assert [r[ID["CustomField6"]] for r in ids] == ["P-1", "INV-EARLY", "INV-LATE"]
    assert [r[ID["CustomField2"]] for r in ids] == ["9.00", "11.00", "16.00"]


def test_invoice_number_without_invoice_line_is_ref_dash_date_and_payment_type_is_blank(run):
    rows = statement(
        "001011", [line("01/01/2021", "PAYMENT", "1", credit="3.00", invoice_category_code="42")]
    )
    _, records = run(rows)
    ih = by_type(records, "IH")[0]
    assert ih[IH["InvoiceNumber"]] == "1-1/1/2021"  # the seed's example
    assert ih[IH["InvoiceTypeID"]] == ""  # a PAYMENT line: blank even with a code
    assert by_type(records, "ID")[0][ID["CustomField4"]] == ""


def test_invoice_number_without_any_line_is_account_dash_statement_date(run):
    rows = statement("00-1012", [], balance_forward="4.00", statement_date="2026-10-05")
    _, records = run(rows)
    assert by_type(records, "IH")[0][IH["InvoiceNumber"]] == "001012-10/5/2026"
    assert by_type(records, "CR")[0][CR["AccountNumber"]] == "001012"
    assert by_type(records, "ID") == []


def test_lines_with_equal_dates_keep_extract_order_and_running_balance_accumulates(run):
    rows = statement(
        "001013",
        [
            line("10/05/2026", "INVOICE", "B", "1.10"),
            line("10/01/2026", "ADJUSTMENT", "A", credit="0.10"),
            line("10/05/2026", "INVOICE", "C", "2.00"),
        ],
        balance_forward="-5.00",
    )
    _, records = run(rows)
    ids = by_type(records, "ID")
    assert [r[ID["CustomField6"]] for r in ids] == ["A", "B", "C"]
    assert [r[ID["CustomField2"]] for r in ids] == ["-5.10", "-4.00", "-2.00"]
    assert by_type(records, "IH")[0][IH["TotalAmountDue"]] == "-2.00"


def test_amounts_dates_phone_and_quantity_are_normalised(run):
    rows = statement(
        "001014",
        [line("2026-10-5", "INVOICE", "X", "$1,234.5", quantity="2.500", line_due_date="11/1/2026")],
        balance_forward="(10.00)",
        phone="+1 (801) 555-0199 ext. 2",
        past_due=" 7 ",
    )
    rows[0]["line_date"] = "10/5/2026"
    _, records = run(rows)
    ih, cr, idr = by_type(records, "IH")[0], by_type(records, "CR")[0], by_type(records, "ID")[0]
    assert ih[IH["Custom3"]] == "-10.00" and ih[IH["PastDue"]] == "7.00"
    assert ih[IH["TotalAmountDue"]] == "1224.50" and ih[IH["BalanceDue"]] == "1224.50"
    assert cr[CR["Phone"]] == "18015550199" + "2"
    assert idr[ID["Quantity"]] == "2.5" and idr[ID["LineItemTotal"]] == "1234.50"
    assert idr[ID["CustomField3"]] == "10/05/2026" and idr[ID["CustomField5"]] == "11/01/2026"
    assert idr[ID["CustomField1"]] == ""  # blank credit stays blank


def test_line_type_is_case_insensitive_and_whitespace_only_line_columns_mean_no_activity(run):
    rows = statement("001015", [line("10/05/2026", " invoice ", "X", "1.00")])
    blank = statement("001016", [{"description": "   ", "quantity": " "}], balance_forward="3.00")
    result, records = run(rows, blank)
    assert result.exit_status == 0
    assert len(by_type(records, "ID")) == 1


def test_general_message_overflows_into_custom9_at_a_space(tmp_path, run):
    config = write_config(tmp_path / "b.toml", {"message_field_length = 255": "message_field_length = 10"})
    rows = statement("001017", [], general_message="Pay by the\r\n15th\tto avoid a late fee please")
    _, records = run(rows, config=config)
    ih = by_type(records, "IH")[0]
    parts = [ih[IH[f"Custom{i}"]] for i in (8, 9, 10, 11, 12)]
    assert parts == ["Pay by the", "15th to", "avoid a", "late fee", "please"]


def test_message_longer_than_five_fields_is_truncated_and_named_in_the_notes(tmp_path, run):
    config = write_config(tmp_path / "b.toml", {"message_field_length = 255": "message_field_length = 4"})
    rows = statement("001018", [], general_message="abcdefghij klm nopqrstuvwxyz")
    result, records = run(rows, config=config)
    ih = by_type(records, "IH")[0]
    assert [ih[IH[f"Custom{i}"]] for i in (8, 9, 10, 11, 12)] == ["abcd", "efgh", "ij", "klm", "nopq"]
    assert any("truncated" in n and "line 2" in n and "****1018" in n for n in result.notes)
    assert not any("001018" in n for n in result.notes)  # the note is shown in the UI: masked


def test_payment_lines_have_no_category_and_header_counts_add_up(run):
    rows = statement(
        "001019",
        [
            line("10/05/2026", "INVOICE", "I", "10.00"),
            line("10/06/2026", "PAYMENT", "P", credit="4.00", invoice_category_code="42"),
        ],
    )
    result, records = run(rows, GOOD)
    assert [r[ID["CustomField4"]] for r in by_type(records, "ID")] == ["42", "", "42"]
    fh = records[0]
    assert fh[:1] == ["FH"] and fh[3] == "2"
    assert fh[4] == "46.00"  # 16.00 + 30.00
    assert fh[2] == "11/01/2026"
    assert result.totals == {"TotalInvoiceAmount": "46.00"}
    assert [r[0] for r in records] == ["FH", "IH", "CR", "ID", "ID", "IH", "CR", "ID"]


def test_line_ending_lf_and_cp1252_output_encoding(tmp_path, run):
    config = write_config(
        tmp_path / "b.toml",
        {
            'line_ending = "CRLF"': 'line_ending = "LF"',
            'encoding = "utf-8"\n\n[extract]': 'encoding = "cp1252"\n\n[extract]',
        },
    )
    extract = write_extract(tmp_path / "x.csv", statement("001020", [], customer_name="José Peña"))
    result = run_invoice_file(extract, config, tmp_path / "out", now=NOW)
    data = result.outputs[0].read_bytes()
    assert b"\r" not in data and data.endswith(b"\n")
    assert "José Peña".encode("cp1252") in data


def test_a_character_the_output_encoding_cannot_write_quarantines_the_statement(tmp_path, run):
    config = write_config(
        tmp_path / "b.toml", {'encoding = "utf-8"\n\n[extract]': 'encoding = "cp1252"\n\n[extract]'}
    )
    result, records = run(GOOD, statement("001021", [], customer_name="Dvořák"), config=config)
    assert written_accounts(records) == ["009001"]
    assert (
        quarantined(result, "001021")[0]["reason"]
        == "CR.CustomerName: has a character that cp1252 cannot write"
    )
