"""SPEC §7: the lockbox file — exact bytes, an independent parser, limits, naming."""
# ruff: noqa: F811  (make_cfg is a fixture imported from paykit)

from __future__ import annotations

import csv
import io
import os
from datetime import date

import pandas as pd
import pytest

from caselle_ic.config.model import load_config, resolve_now
from caselle_ic.errors import ConfigError, OutputError
from caselle_ic.payments.codes import load_payment_codes
from caselle_ic.payments.codes_resolve import resolve_codes
from caselle_ic.payments.export import read_payment_export
from caselle_ic.payments.lockbox import (
    FILE_COLUMN,
    LINE_COLUMN,
    lockbox_file_name,
    plan_lockbox_files,
    write_lockbox_files,
)
from caselle_ic.payments.lockbox_fields import format_amounts
from tests.conftest import SAMPLES
from tests.payments.paykit import UNSET, make_cfg  # noqa: F401  (a fixture)

EXPECTED = SAMPLES / "expected"
RUN_DAY = date(2026, 11, 2)


def sample_file_payments():
    cfg = load_config(SAMPLES / "biller.toml")
    export = read_payment_export(SAMPLES / "payments.csv", cfg)
    resolved = resolve_codes(export.payments, load_payment_codes(cfg))
    return cfg, resolved[resolved["posting_method"] == "File"]


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def payments(n: int = 3, **cols) -> pd.DataFrame:
    base = {
        "payment_guid": [f"00000000-0000-4000-8000-{i:012d}" for i in range(n)],
        "payment_date": pd.to_datetime(["2026-11-01 10:00:00"] * n).astype("datetime64[s]"),
        "distribution_code": pd.array([300] * n, dtype="Int64"),
        "payment_code": pd.array([97] * n, dtype="Int64"),
        "amount_cents": [1000 + i for i in range(n)],
        "account_number": pd.Series([f"0010{i:02d}" for i in range(n)], dtype="string"),
        "customer_name": pd.Series([f"NAME {i}" for i in range(n)], dtype="string"),
    }
    base.update(cols)
    return pd.DataFrame(base)


# -- the sample, byte for byte ---------------------------------------------------------------------


def test_sample_lockbox_file_matches_golden_bytes(tmp_path):
    cfg, file_rows = sample_file_payments()
    run_date = resolve_now("2026-11-02T07:00:00", cfg.tz)
    result = write_lockbox_files(file_rows, tmp_path, run_date, cfg)
    assert [p.name for p in result.paths] == ["300_PYMT_20261102.TXT"]
    assert sorted(os.listdir(tmp_path)) == ["300_PYMT_20261102.TXT"]  # nothing left aside
    golden = (EXPECTED / "300_PYMT_20261102.TXT").read_bytes()
    assert result.paths[0].read_bytes() == golden
    assert result.quarantined.empty
    f = result.files[0]
    assert (f.count, f.total_cents, f.distribution_code) == (7, 1_446_045, 300)


def test_golden_file_parses_with_csv_reader():
    data = (EXPECTED / "300_PYMT_20261102.TXT").read_bytes()
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert not data.startswith(b"\xef\xbb\xbf")  # no byte-order mark
    rows = parse(data)
    _cfg, file_rows = sample_file_payments()
    assert len(rows) == len(file_rows) == 7
    for fields, (_, p) in zip(rows, file_rows.iterrows(), strict=True):
        assert len(fields) == 6
        d, dc, pc, amount, acct, name = fields
        assert d == p["payment_date"].strftime("%m/%d/%Y")
        assert dc.isdigit() and len(dc) <= 4 and int(dc) == p["distribution_code"]
        assert pc.isdigit() and len(pc) <= 2 and int(pc) == p["payment_code"]
        assert int(amount.replace(",", "").replace(".", "")) == p["amount_cents"]
        assert acct == p["account_number"]
        assert name == p["customer_name"][:30]
    assert rows[2][3] == "1,234.50" and rows[5][3] == "12,500.00"
    assert rows[4][5] == 'BOB "BUDDY" TANAKA'
    assert rows[5][0] == "10/31/2026"  # 2026-11-01T03:30:00Z is Oct 31 in Denver


def test_quoting_only_where_needed():
    lines = (EXPECTED / "300_PYMT_20261102.TXT").read_bytes().decode().split("\r\n")
    assert lines[0] == "10/31/2026,300,97,250.00,001016,PATEL ANJALI"  # nothing quoted
    assert lines[3] == '10/31/2026,300,95,310.00,001019,"SMITH, JOHN & MARY"'
    assert lines[4] == '10/31/2026,300,97,18.75,001020,"BOB ""BUDDY"" TANAKA"'


# -- formatting -----------------------------------------------------------------------------------


def test_amount_format():
    cents = pd.Series([1, 99, 1200, 99_999, 100_000, 123_450, 100_000_000, 1_234_567_890, 99_999_999_999])
    assert format_amounts(cents).tolist() == [
        "0.01",
        "0.99",
        "12.00",
        "999.99",
        '"1,000.00"',
        '"1,234.50"',
        '"1,000,000.00"',
        '"12,345,678.90"',
        '"999,999,999.99"',
    ]


def test_name_cut_to_30_and_control_characters(tmp_path, make_cfg):
    frame = payments(
        2,
        customer_name=pd.Series(["A" * 29 + "BCDEF", "LINE\r\nBREAK\tTAB"], dtype="string"),
    )
    result = write_lockbox_files(frame, tmp_path, RUN_DAY, make_cfg())
    rows = parse(result.paths[0].read_bytes())
    assert rows[0][5] == "A" * 29 + "B"
    assert rows[1][5] == "LINE BREAK TAB"  # a run of breaks is one space, as in the invoice file


def test_name_cut_before_quoting(tmp_path, make_cfg):
    name = "SMITH, JOHN AND MARY ELIZABETH OF THE HILL"  # comma inside the first 30
    result = write_lockbox_files(
        payments(1, customer_name=pd.Series([name], dtype="string")), tmp_path, RUN_DAY, make_cfg()
    )
    data = result.paths[0].read_bytes()
    assert data.endswith(b',"' + name[:30].encode() + b'"\r\n')
    assert parse(data)[0][5] == name[:30]


def test_account_with_comma_is_quoted_and_utf8(tmp_path, make_cfg):
    frame = payments(
        1,
        account_number=pd.Series(["12,345"], dtype="string"),
        customer_name=pd.Series(["MÜLLER JOSÉ"], dtype="string"),
    )
    data = write_lockbox_files(frame, tmp_path, RUN_DAY, make_cfg()).paths[0].read_bytes()
    assert data == '11/01/2026,300,97,10.00,"12,345",MÜLLER JOSÉ\r\n'.encode()


# -- limits -------------------------------------------------------------------------------------


def test_limits_quarantine_with_the_setting_to_fix(tmp_path, make_cfg):
    doc = {
        "PaymentSettings": [
            {"PaymentTypeID": 1, "PaymentCode": 97, "DistributionCode": 12345, "InvoiceTypeID": 1},
            {"PaymentTypeID": 2, "DistributionCode": 300, "InvoiceTypeID": 2},
            {"PaymentTypeID": 1, "PaymentCode": 97, "DistributionCode": 300},
        ]
    }
    cfg = make_cfg(doc, s11=UNSET, s65="101|100|0")  # 11 unset: File by default
    frame = pd.DataFrame(
        {
            "payment_guid": [f"00000000-0000-4000-8000-{i:012d}" for i in range(6)],
            "transaction_type": "PAYMENT",
            "payment_date": pd.to_datetime(["2026-11-01"] * 6).astype("datetime64[s]"),
            "payment_type_id": [1, 2, 1, 1, 1, 1],
            "invoice_type_id": pd.array([1, 2, None, None, None, None], dtype="Int64"),
            "card_vendor": "VISA",
            "amount_cents": [100, 200, 100_000_000_000, 300, 400, 500],
            "account_number": pd.Series(
                ["1", "2", "3", "1234567890123456", "123456789012345", ""], dtype="string"
            ),
            "customer_name": pd.Series(["A", "B", "C", "D", "E", "F"], dtype="string"),
        }
    )
    resolved = resolve_codes(frame, load_payment_codes(cfg))
    result = write_lockbox_files(resolved, tmp_path, RUN_DAY, cfg)
    reasons = dict(zip(result.quarantined["payment_guid"].str[-1], result.quarantined["reason"], strict=True))
    assert reasons == {
        "0": "distribution_code: 12345 has more than 4 digits (a lockbox line holds at most 9999); "
        "fix setting 131 entry 1",
        "1": "payment_code: 100 has more than 2 digits (a lockbox line holds at most 99); fix setting 65",
        "2": "amount: above 999,999,999.99, the most a lockbox line holds; enter it in Caselle by hand",
        "3": "account_number: 16 characters; the lockbox file holds at most 15 "
        "(fix the account number in IC)",
        "5": "account_number: required",
    }
    # the one within every limit is written, alone
    rows = parse(result.paths[0].read_bytes())
    assert rows == [["11/01/2026", "300", "97", "4.00", "123456789012345", "E"]]
    assert result.filed["payment_guid"].tolist() == ["00000000-0000-4000-8000-000000000004"]


def test_limit_boundaries_are_allowed(tmp_path, make_cfg):
    frame = payments(
        1,
        distribution_code=pd.array([9999], dtype="Int64"),
        payment_code=pd.array([99], dtype="Int64"),
        amount_cents=[99_999_999_999],
        account_number=pd.Series(["X" * 15], dtype="string"),
    )
    result = write_lockbox_files(frame, tmp_path, RUN_DAY, make_cfg())
    assert result.quarantined.empty
    assert parse(result.paths[0].read_bytes())[0][:5] == [
        "11/01/2026",
        "9999",
        "99",
        "999,999,999.99",
        "X" * 15,
    ]
    assert result.paths[0].name == "9999_PYMT_20261102.TXT"


def test_several_reasons_in_one_row(make_cfg):
    frame = payments(
        1,
        distribution_code=pd.array([10000], dtype="Int64"),
        payment_code=pd.array([123], dtype="Int64"),
    )
    plan = plan_lockbox_files(frame, RUN_DAY, make_cfg())
    assert plan.files == []
    assert plan.quarantined["reason"].tolist() == [
        "distribution_code: 10000 has more than 4 digits (a lockbox line holds at most 9999); "
        "fix the payment codes; payment_code: 123 has more than 2 digits (a lockbox line holds at most 99); "
        "fix the payment codes"
    ]


# -- files per code, combined, names --------------------------------------------------------------


def two_code_frame() -> pd.DataFrame:
    return payments(
        4,
        distribution_code=pd.array([300, 12, 300, 12], dtype="Int64"),
        payment_code=pd.array([97, 95, 98, 95], dtype="Int64"),
    )


def test_one_file_per_distribution_code(tmp_path, make_cfg):
    result = write_lockbox_files(two_code_frame(), tmp_path, RUN_DAY, make_cfg())
    assert [p.name for p in result.paths] == ["12_PYMT_20261102.TXT", "300_PYMT_20261102.TXT"]
    assert parse((tmp_path / "12_PYMT_20261102.TXT").read_bytes()) == [
        ["11/01/2026", "12", "95", "10.01", "001001", "NAME 1"],
        ["11/01/2026", "12", "95", "10.03", "001003", "NAME 3"],
    ]
    assert parse((tmp_path / "300_PYMT_20261102.TXT").read_bytes()) == [
        ["11/01/2026", "300", "97", "10.00", "001000", "NAME 0"],
        ["11/01/2026", "300", "98", "10.02", "001002", "NAME 2"],
    ]
    filed = result.filed.set_index("payment_guid")
    assert filed[FILE_COLUMN].str[:3].tolist() == ["300", "12_", "300", "12_"]
    assert filed[LINE_COLUMN].tolist() == [1, 1, 2, 2]
    assert [(f.distribution_code, f.count, f.total_cents) for f in result.files] == [
        (12, 2, 2004),
        (300, 2, 2002),
    ]


def test_combined_file_named_after_setting_64(tmp_path, make_cfg):
    cfg = make_cfg(s64="777|99|0", combine=True)
    result = write_lockbox_files(two_code_frame(), tmp_path, RUN_DAY, cfg)
    assert [p.name for p in result.paths] == ["777_PYMT_20261102.TXT"]
    rows = parse(result.paths[0].read_bytes())
    assert [r[1] for r in rows] == ["300", "12", "300", "12"]  # each line keeps its own codes
    assert result.files[0].distribution_code is None
    assert set(result.file_of().values()) == {"777_PYMT_20261102.TXT"}
    assert result.filed[LINE_COLUMN].tolist() == [1, 2, 3, 4]


def test_combined_file_needs_setting_64(tmp_path, make_cfg):
    with pytest.raises(ConfigError) as err:
        write_lockbox_files(two_code_frame(), tmp_path, RUN_DAY, make_cfg(s64=UNSET, combine=True))
    assert err.value.setting is not None
    assert err.value.setting.startswith("setting 64")
    assert os.listdir(tmp_path) == []


def test_second_run_same_day_writes_the_next_name_and_keeps_the_first(tmp_path, make_cfg):
    cfg = make_cfg()
    first = write_lockbox_files(payments(2), tmp_path, RUN_DAY, cfg)
    before = first.paths[0].read_bytes()
    later = payments(1, payment_guid=["00000000-0000-4000-8000-000000000099"])
    second = write_lockbox_files(later, tmp_path, RUN_DAY, cfg)
    assert [p.name for p in second.paths] == ["300_PYMT_20261102_2.TXT"]
    assert first.paths[0].read_bytes() == before
    assert len(parse(second.paths[0].read_bytes())) == 1
    third = write_lockbox_files(later, tmp_path, RUN_DAY, cfg, taken=["300_PYMT_20261102_3.TXT"])
    assert [p.name for p in third.paths] == ["300_PYMT_20261102_4.TXT"]


def test_taken_names_count_when_the_outbox_was_emptied(tmp_path, make_cfg):
    result = write_lockbox_files(payments(1), tmp_path, RUN_DAY, make_cfg(), taken=["300_pymt_20261102.txt"])
    assert [p.name for p in result.paths] == ["300_PYMT_20261102_2.TXT"]


def test_a_planned_name_that_appears_is_never_overwritten(tmp_path, make_cfg):
    plan = plan_lockbox_files(payments(1), RUN_DAY, make_cfg(), out_dir=tmp_path)
    (tmp_path / plan.files[0].name).write_bytes(b"another run\r\n")
    with pytest.raises(OutputError, match="appeared while this run was writing it"):
        plan.write()
    assert (tmp_path / "300_PYMT_20261102.TXT").read_bytes() == b"another run\r\n"
    assert sorted(os.listdir(tmp_path)) == ["300_PYMT_20261102.TXT"]  # no temporary left


def test_file_names():
    assert lockbox_file_name(101, RUN_DAY) == "101_PYMT_20261102.TXT"
    assert lockbox_file_name(7, date(2027, 1, 5), 3) == "7_PYMT_20270105_3.TXT"


def test_nothing_to_file_writes_nothing(tmp_path, make_cfg):
    result = write_lockbox_files(payments(0), tmp_path, RUN_DAY, make_cfg(combine=True))
    assert result.files == [] and result.filed.empty and result.quarantined.empty
    assert os.listdir(tmp_path) == []


def test_reversals_never_go_into_a_file(make_cfg):
    frame = payments(1).assign(transaction_type="REFUND")
    with pytest.raises(ValueError, match="reversals"):
        plan_lockbox_files(frame, RUN_DAY, make_cfg())
