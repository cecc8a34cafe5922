"""SPEC §2.2: the IC payment export — one test per rule, plus the sample file."""
# ruff: noqa: F811  (make_cfg is a fixture imported from paykit)

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from caselle_ic.config.model import load_config
from caselle_ic.errors import InputError
from caselle_ic.payments.export import PaymentExport, read_payment_export
from caselle_ic.schemas.payments import column_names, export_columns
from tests.conftest import SAMPLES
from tests.payments.paykit import make_cfg  # noqa: F401  (a fixture)

G1 = "0f8fad5b-d9cb-469f-a165-70867728950e"
G2 = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
G3 = "3b241101-e2bb-4255-8caf-4136c566a962"

GOOD = {
    "payment_guid": G1,
    "transaction_type": "PAYMENT",
    "original_payment_guid": "",
    "payment_date": "2026-11-01T09:30:00",
    "account_number": "001007",
    "customer_name": "GARCIA LUIS",
    "invoice_number": "261007",
    "invoice_type_id": "42",
    "payment_type_id": "1",
    "card_vendor": "VISA",
    "obd_vendor": "",
    "amount": "98.76",
}


def write_export(tmp_path: Path, rows: list[dict[str, str]], name: str = "export.csv", header=None) -> Path:
    buf = io.StringIO()
    cols = header or column_names()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\r\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in cols})
    path = tmp_path / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def row(**changes: str) -> dict[str, str]:
    return {**GOOD, **changes}


@pytest.fixture
def read(tmp_path, make_cfg):
    cfg = make_cfg()

    def go(*rows: dict[str, str]):
        return read_payment_export(write_export(tmp_path, list(rows)), cfg)

    return go


def reasons(export: PaymentExport) -> list[str]:
    found: list[str] = export.quarantined["reason"].tolist()
    return found


# -- schema as data ----------------------------------------------------------------------------


def test_schema_csv_lists_the_spec_columns():
    assert column_names() == [
        "payment_guid",
        "transaction_type",
        "original_payment_guid",
        "payment_date",
        "account_number",
        "customer_name",
        "invoice_number",
        "invoice_type_id",
        "payment_type_id",
        "card_vendor",
        "obd_vendor",
        "amount",
    ]
    required = {c.name: c.required for c in export_columns()}
    assert required["original_payment_guid"] == "reversal"
    assert required["card_vendor"] == "card" and required["obd_vendor"] == "obd"


def test_good_row_is_typed(read):
    e = read(row())
    assert e.quarantined.empty and len(e.valid) == 1
    v = e.valid.iloc[0]
    assert v["amount_cents"] == 9876 and str(e.valid["amount_cents"].dtype) == "int64"
    assert v["payment_date"] == pd.Timestamp("2026-11-01 09:30:00")
    assert v["payment_type_id"] == 1 and v["invoice_type_id"] == 42
    assert v["account_number"] == "001007"  # leading zeros kept
    assert v["_line"] == 2


# -- whole-file errors --------------------------------------------------------------------------


def test_missing_required_column_is_input_error(tmp_path, make_cfg):
    header = [c for c in column_names() if c != "amount"]
    path = write_export(tmp_path, [row()], header=header)
    with pytest.raises(InputError) as err:
        read_payment_export(path, make_cfg())
    assert "amount" in str(err.value) and err.value.line == 1


def test_optional_columns_may_be_absent(tmp_path, make_cfg):
    header = [c for c in column_names() if c not in ("invoice_number", "invoice_type_id", "obd_vendor")]
    e = read_payment_export(write_export(tmp_path, [row()], header=header), make_cfg())
    assert e.quarantined.empty and e.valid["invoice_type_id"].isna().all()


def test_header_aliases_from_extract_columns(tmp_path):
    text = (
        (SAMPLES / "biller.toml")
        .read_text(encoding="utf-8")
        .replace(
            'columns = { "Acct No" = "account_number", "Customer Name" = "customer_name" }',
            'columns = { "PaymentGUID" = "payment_guid", "Amount Paid" = "amount" }',
        )
    )
    (tmp_path / "b.toml").write_text(text, encoding="utf-8")
    header = [
        "PaymentGUID" if c == "payment_guid" else "Amount Paid" if c == "amount" else c
        for c in column_names()
    ]
    r = {
        ("PaymentGUID" if k == "payment_guid" else "Amount Paid" if k == "amount" else k): v
        for k, v in GOOD.items()
    }
    e = read_payment_export(write_export(tmp_path, [r], header=header), load_config(tmp_path / "b.toml"))
    assert e.valid["payment_guid"].tolist() == [G1] and e.valid["amount_cents"].tolist() == [9876]


# -- one rule each -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column",
    [
        "payment_guid",
        "transaction_type",
        "payment_date",
        "account_number",
        "customer_name",
        "payment_type_id",
        "amount",
    ],
)
def test_required_field(read, column):
    e = read(row(**{column: "  "}))
    assert e.valid.empty
    assert reasons(e)[0].split("; ")[0] == f"{column}: required"


def test_payment_guid_must_be_a_uuid(read):
    e = read(row(payment_guid="12345"))
    assert reasons(e) == ["payment_guid: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"]


def test_payment_guid_upper_case_is_normalised(read):
    e = read(row(payment_guid=G1.upper()))
    assert e.valid["payment_guid"].tolist() == [G1]


def test_transaction_type_must_be_known(read):
    e = read(row(transaction_type="CHARGEBACK"))
    assert reasons(e) == ["transaction_type: not one of PAYMENT, REFUND, ACH_REJECT"]
    assert read(row(transaction_type=" payment ")).valid["transaction_type"].tolist() == ["PAYMENT"]


@pytest.mark.parametrize("ttype", ["REFUND", "ACH_REJECT"])
def test_original_payment_guid_required_for_reversals(read, ttype):
    e = read(row(transaction_type=ttype, payment_guid=G2))
    assert reasons(e) == ["original_payment_guid: required for REFUND and ACH_REJECT"]
    ok = read(row(transaction_type=ttype, payment_guid=G2, original_payment_guid=G1))
    assert ok.quarantined.empty and ok.valid["original_payment_guid"].tolist() == [G1]


def test_original_payment_guid_must_be_a_uuid_and_not_itself(read):
    e = read(row(transaction_type="REFUND", original_payment_guid="abc"))
    assert reasons(e) == ["original_payment_guid: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"]
    e = read(row(transaction_type="REFUND", original_payment_guid=G1))
    assert reasons(e) == ["original_payment_guid: must not be the row's own payment_guid"]


@pytest.mark.parametrize(
    "value", ["11/01/2026 09:30", "2026-11-01", "2026-02-30T10:00:00", "2026-11-01T25:00:00", "yesterday"]
)
def test_payment_date_must_be_iso_datetime(read, value):
    e = read(row(payment_date=value))
    assert reasons(e) == ["payment_date: not an ISO 8601 date-time such as 2026-11-01T14:05:00"]


@pytest.mark.parametrize(
    ("value", "local"),
    [
        ("2026-11-01T09:30:00", "2026-11-01 09:30:00"),
        ("2026-11-01 09:30", "2026-11-01 09:30:00"),
        ("2026-11-01T09:30:00.123", "2026-11-01 09:30:00"),
        ("2026-11-01T03:30:00Z", "2026-10-31 21:30:00"),  # MDT: UTC-6 until 2 am Nov 1
        ("2026-11-02T03:30:00+00:00", "2026-11-01 20:30:00"),  # MST: UTC-7 after
        ("2026-11-01T09:30:00-0500", "2026-11-01 07:30:00"),
    ],
)
def test_payment_date_forms_and_offsets_to_biller_local(read, value, local):
    e = read(row(payment_date=value))
    assert e.quarantined.empty, reasons(e)
    assert e.valid["payment_date"].tolist() == [pd.Timestamp(local)]


@pytest.mark.parametrize("value", ["4.2", "\u0661\u0662", "12345678901234567890", "1234567890"])
def test_invoice_type_must_be_whole_number(read, value):
    # other scripts' digits and numbers longer than nine digits were let through, then
    # crashed the run converting them (ArrowInvalid, exit 3) instead of quarantining the row
    e = read(row(invoice_type_id=value))
    assert reasons(e) == ["invoice_type_id: not a whole number of at most 9 digits"]
    assert read(row(invoice_type_id="")).valid["invoice_type_id"].isna().all()
    assert read(row(invoice_type_id="999999999")).valid["invoice_type_id"].tolist() == [999_999_999]


@pytest.mark.parametrize("value", ["3", "99", "CC", "1.0"])
def test_payment_type_must_be_known(read, value):
    e = read(row(payment_type_id=value, card_vendor=""))
    assert reasons(e) == ["payment_type_id: not one of 1, 2, 11, 15, 16, 17"]


def test_payment_type_leading_zero_is_the_same_type(read):
    assert read(row(payment_type_id="01")).valid["payment_type_id"].tolist() == [1]


def test_card_vendor_required_for_card_payments(read):
    e = read(row(card_vendor=""))
    assert reasons(e) == ["card_vendor: required for card payments (payment_type_id 1)"]
    # not for ACH, and not for a card REFUND (it only voids the original's receipt)
    assert read(row(payment_type_id="2", card_vendor="")).quarantined.empty
    assert read(row(transaction_type="REFUND", original_payment_guid=G2, card_vendor="")).quarantined.empty


def test_card_vendor_must_be_known(read):
    e = read(row(card_vendor="DINERS"))
    assert reasons(e) == ["card_vendor: not one of VISA, DISCOVER, MASTERCARD, AMEX"]
    assert read(row(card_vendor="visa")).valid["card_vendor"].tolist() == ["VISA"]


def test_obd_vendor_required_for_obd_payments(read):
    e = read(row(payment_type_id="11", card_vendor=""))
    assert reasons(e) == ["obd_vendor: required for OBD payments (payment_type_id 11)"]
    assert read(row(payment_type_id="11", card_vendor="", obd_vendor="RPPS")).quarantined.empty


def test_obd_vendor_must_be_known(read):
    e = read(row(payment_type_id="11", card_vendor="", obd_vendor="CHECKFREE"))
    assert reasons(e) == ["obd_vendor: not one of FISERV, RPPS"]


@pytest.mark.parametrize("value", ["0", "0.00", "-12.00", "(12.00)"])
def test_amount_must_be_greater_than_zero(read, value):
    assert reasons(read(row(amount=value))) == ["amount: must be greater than 0"]


@pytest.mark.parametrize("value", ["10.005", "1.234", "12,34.00", "ten", "1e3"])
def test_amount_at_most_two_decimals(read, value):
    assert reasons(read(row(amount=value))) == ["amount: not an amount with at most two decimals"]


@pytest.mark.parametrize(
    ("value", "cents"), [("1234.5", 123450), ("$1,234.50", 123450), (".07", 7), ("999999999.99", 99999999999)]
)
def test_amount_forms(read, value, cents):
    assert read(row(amount=value)).valid["amount_cents"].tolist() == [cents]


def test_identical_duplicate_line_keeps_the_first(read):
    e = read(row(), row(payment_guid=G2), row())
    assert e.valid["payment_guid"].tolist() == [G1, G2]
    assert e.valid["_line"].tolist() == [2, 3]
    assert e.quarantined["_line"].tolist() == [4]
    assert reasons(e) == ["payment_guid: repeats an identical earlier line (the first is kept)"]


def test_identical_after_normalisation_is_identical(read):
    e = read(row(), row(payment_guid=G1.upper(), card_vendor="visa", amount=" 98.76 "))
    assert len(e.valid) == 1 and e.quarantined["_line"].tolist() == [3]


def test_conflicting_duplicate_quarantines_every_line(read):
    e = read(row(), row(payment_guid=G2), row(amount="98.77"), row())
    assert e.valid["payment_guid"].tolist() == [G2]
    assert e.quarantined["_line"].tolist() == [2, 4, 5]
    assert set(reasons(e)) == {"payment_guid: on more than one line with different values (none is used)"}


def test_every_failing_rule_is_reported_in_column_order(read):
    e = read(row(payment_guid="x", payment_date="", amount="1.001", card_vendor=""))
    assert reasons(e) == [
        "payment_guid: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); payment_date: required; "
        "card_vendor: required for card payments (payment_type_id 1); "
        "amount: not an amount with at most two decimals"
    ]


def test_quarantined_rows_are_as_read(read):
    e = read(row(amount=" 0.00 ", customer_name="  =cmd|' /C calc'!A0"))
    q = e.quarantined.iloc[0]
    assert q["amount"] == " 0.00 " and q["customer_name"] == "  =cmd|' /C calc'!A0"
    assert q["_line"] == 2


# -- the sample export ----------------------------------------------------------------------------


def test_sample_export():
    cfg = load_config(SAMPLES / "biller.toml")
    e = read_payment_export(SAMPLES / "payments.csv", cfg)
    assert e.rows == 40
    assert len(e.valid) == 33 and len(e.quarantined) == 7
    assert (e.valid["transaction_type"] == "PAYMENT").sum() == 30
    assert sorted(e.reversals["transaction_type"]) == ["ACH_REJECT", "REFUND", "REFUND"]
    # every reversal points at a payment of the same file
    assert set(e.reversals["original_payment_guid"]) <= set(e.payments["payment_guid"])
    got = dict(zip(e.quarantined["_line"], e.quarantined["reason"], strict=True))
    assert got == {
        35: "payment_guid: repeats an identical earlier line (the first is kept)",
        36: "payment_guid: on more than one line with different values (none is used)",
        37: "payment_guid: on more than one line with different values (none is used)",
        38: "amount: must be greater than 0",
        39: "amount: not an amount with at most two decimals",
        40: "payment_type_id: not one of 1, 2, 11, 15, 16, 17",
        41: "card_vendor: required for card payments (payment_type_id 1)",
    }
    # covers what the brief asks for
    p = e.payments
    assert set(p.loc[p["payment_type_id"] == 1, "card_vendor"]) == set(
        ["VISA", "MASTERCARD", "AMEX", "DISCOVER"]
    )
    assert set(p.loc[p["payment_type_id"] == 11, "obd_vendor"]) == {"FISERV", "RPPS"}
    assert {2, 15, 16, 17} <= set(p["payment_type_id"])
    assert {42, 7, 300} <= set(p["invoice_type_id"].dropna())
    assert (p["customer_name"].str.len() > 30).any() and p["customer_name"].str.contains(",").any()
    assert (p["amount_cents"] >= 100_000).any()
    accounts = set(e.valid["account_number"]) | set(e.quarantined["account_number"])
    assert all(a.isdigit() and 1001 <= int(a) <= 1050 and len(a) == 6 for a in accounts)
