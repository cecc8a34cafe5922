"""One test per discrepancy kind of SPEC §11, each made the way it happens in the field (a
hand edit in Caselle through the emulator's admin operations, an edited or copied lockbox
file, an export never run) and each found with the right kind and field. A clean day
reports none, and the audit never sends a mutation (the emulator's request log)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest

from caselle_ic.audit.pipeline import run_audit
from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.payments.pipeline import run_daily_payments
from tests.audit.conftest import DAY, NOW, Day, post_day
from tests.posting.postkit import dp, lb, reversal, write_export


def audit(day: Day, *exports: Path):
    return run_audit(
        day.cfg, DAY, day.audit_dir, ledger_url=day.ledger, exports=list(exports or [day.export])
    )


def found(day: Day) -> list[dict[str, str]]:
    with (day.audit_dir / f"audit-{DAY}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def kinds(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(r["kind"], r["payment_guid"], r["field"]) for r in rows]


def test_a_clean_day_reports_nothing_and_sends_no_mutation(
    fifty_emu: EmulatorProcess, fifty_toml: Path, ledger_url: str, tmp_path: Path
):
    day = post_day(fifty_emu, fifty_toml, ledger_url, tmp_path)
    before = fifty_emu.requests()["totals"]
    result = audit(day)
    after = fifty_emu.requests()["totals"]
    assert result.exit_status == 0, result.summary_lines()
    assert found(day) == [] and (day.audit_dir / f"audit-{DAY}.csv").read_bytes() == (
        b"kind,payment_guid,transaction_type,posting_method,account_number,amount,field,expected,found,"
        b"receipt_number,lockbox_file,export_file,detail\r\n"
    )
    assert after["mutation"] == before["mutation"]  # the audit asked, it never wrote
    assert after["query"] == before["query"] + 1  # one aliased document
    # the refund's original is one of the 10 payments: asked once
    assert result.counts["receipts looked up"] == 10 and result.counts["File payments"] == 3
    with (day.audit_dir / f"audit-{DAY}.totals.csv").open(newline="", encoding="utf-8") as fh:
        totals = list(csv.DictReader(fh))
    assert [(t["posting_method"], t["distribution_code"], t["payment_code"], t["check"]) for t in totals] == [
        ("DataPump", "111", "4", "ok"),
        ("File", "300", "97", "ok"),
        ("TOTAL", "", "", "ok"),
    ]
    assert totals[-1]["export_amount"] == totals[-1]["caselle_amount"] == "209.95"


def test_missing_receipt(posted_day: Day):
    number = posted_day.receipt_of(dp(1))
    posted_day.emu.receipt_op("delete", number)
    result = audit(posted_day)
    assert result.exit_status == 1
    (row,) = found(posted_day)
    assert (row["kind"], row["payment_guid"], row["field"]) == (
        "missing_receipt",
        dp(1)["payment_guid"],
        "receipt",
    )
    assert (row["expected"], row["found"]) == (str(number), "none")


@pytest.mark.parametrize(
    ("change", "field", "expected", "got"),
    [
        ({"amount": "99.99"}, "amount", "12.02", "99.99"),
        ({"accountNumber": "1049"}, "account_number", "001003", "1049"),
        ({"distributionCode": 444}, "distribution_code", "111", "444"),
        ({"paymentCode": 7}, "payment_code", "4", "7"),
        ({"receiptDate": "2026-11-01"}, "receipt_date", DAY, "2026-11-01"),
    ],
)
def test_receipt_differs_names_the_field(
    posted_day: Day, change: dict[str, Any], field: str, expected: str, got: str
):
    posted_day.emu.receipt_op("change", posted_day.receipt_of(dp(2)), **change)
    audit(posted_day)
    (row,) = found(posted_day)
    assert (row["kind"], row["payment_guid"], row["field"]) == (
        "receipt_differs",
        dp(2)["payment_guid"],
        field,
    )
    assert (row["expected"], row["found"]) == (expected, got)


def test_duplicate_receipt(posted_day: Day):
    number = posted_day.receipt_of(dp(4))
    second = posted_day.emu.receipt_op("duplicate", number)["receipt_number"]
    audit(posted_day)
    (row,) = found(posted_day)
    assert kinds([row]) == [("duplicate_receipt", dp(4)["payment_guid"], "receipt_number")]
    assert row["found"] == f"{number}, {second}"


def test_voided_without_reversal(posted_day: Day):
    posted_day.emu.receipt_op("void", posted_day.receipt_of(dp(5)), date="2026-11-04")
    audit(posted_day)
    (row,) = found(posted_day)
    assert kinds([row]) == [("voided_without_reversal", dp(5)["payment_guid"], "voided")]
    assert row["found"] == "true (2026-11-04)"
    # the refund of dp(3) voided its receipt through this integration: not a discrepancy


def test_reversal_not_voided(
    fifty_emu: EmulatorProcess,
    fifty_toml: Path,
    sqlite_ledger: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """The refund's void is lost (Caselle answers 500 to the void and to every settling
    query): the ledger says void_unknown and the original's receipt is still live."""
    monkeypatch.setenv("CASELLE_IC_RETRY_WINDOW", "2")  # gives up the same way as with 30 s, sooner
    payments = write_export(tmp_path / "payments-a.csv", [dp(i) for i in range(3)])
    assert (
        run_daily_payments(
            payments, fifty_toml, tmp_path / "out", now=NOW, ledger_url=sqlite_ledger
        ).exit_status
        == 0
    )
    refund = reversal("REFUND", dp(1), day=DAY)
    second = write_export(tmp_path / "payments-b.csv", [refund])
    fifty_emu.faults(fail_next=50)
    run_daily_payments(second, fifty_toml, tmp_path / "out", now=NOW, ledger_url=sqlite_ledger)
    fifty_emu.reset_faults()
    result = run_audit(
        fifty_toml, DAY, tmp_path / "audit", ledger_url=sqlite_ledger, exports=[payments, second]
    )
    rows = found(Day(fifty_emu, fifty_toml, sqlite_ledger, payments, tmp_path / "out", tmp_path / "audit"))
    assert kinds(rows) == [("reversal_not_voided", refund["payment_guid"], "voided")], result.summary_lines()
    assert rows[0]["expected"] == "true" and rows[0]["found"] == "false"


def test_not_in_any_file_and_file_changed(posted_day: Day):
    """A clerk deletes lb(1)'s line from the lockbox file."""
    data = posted_day.lockbox.read_bytes()
    lines = data.split(b"\r\n")
    kept = [x for x in lines if b",900001," not in x]
    assert len(kept) == len(lines) - 1
    posted_day.lockbox.write_bytes(b"\r\n".join(kept))
    audit(posted_day)
    rows = found(posted_day)
    assert kinds(rows) == [
        ("not_in_any_file", lb(1)["payment_guid"], "lockbox_file"),
        ("file_changed", "", "sha256"),
    ]
    assert rows[0]["expected"] == "300_PYMT_20261103.TXT line 2" and rows[0]["found"] == "none"
    assert rows[1]["lockbox_file"] == "300_PYMT_20261103.TXT"


def test_file_changed_alone(posted_day: Day):
    """A line that is no payment of ours appended: every payment is still there once."""
    with posted_day.lockbox.open("ab") as fh:
        fh.write(b"11/02/2026,300,97,1.00,999999,SOMEONE ELSE\r\n")
    audit(posted_day)
    (row,) = found(posted_day)
    assert (row["kind"], row["field"], row["lockbox_file"]) == (
        "file_changed",
        "sha256",
        "300_PYMT_20261103.TXT",
    )


def test_in_two_files(posted_day: Day):
    """The file delivered twice under another name: every payment in it is in two files."""
    shutil.copy(posted_day.lockbox, posted_day.out / "300_PYMT_20261103_RESENT.TXT")
    audit(posted_day)
    rows = found(posted_day)
    assert sorted(kinds(rows)) == sorted(
        ("in_two_files", lb(i)["payment_guid"], "lockbox_file") for i in range(3)
    )
    assert {r["lockbox_file"] for r in rows} == {"300_PYMT_20261103_RESENT.TXT"}
    assert rows[0]["found"].startswith("300_PYMT_20261103_RESENT.TXT line ")


def test_never_processed(posted_day: Day, tmp_path: Path):
    late = write_export(tmp_path / "payments-late.csv", [dp(20)])
    audit(posted_day, posted_day.export, late)
    (row,) = found(posted_day)
    assert kinds([row]) == [("never_processed", dp(20)["payment_guid"], "payment_guid")]
    assert row["export_file"] == "payments-late.csv"


def test_every_kind_at_once_on_postgresql(
    fifty_emu: EmulatorProcess, fifty_toml: Path, ledger_url: str, tmp_path: Path
):
    day = post_day(fifty_emu, fifty_toml, ledger_url, tmp_path)
    fifty_emu.receipt_op("delete", day.receipt_of(dp(1)))
    fifty_emu.receipt_op("change", day.receipt_of(dp(2)), amount="1.00")
    fifty_emu.receipt_op("duplicate", day.receipt_of(dp(4)))
    fifty_emu.receipt_op("void", day.receipt_of(dp(5)))
    shutil.copy(day.lockbox, day.out / "300_PYMT_20261104.TXT")
    late = write_export(tmp_path / "payments-late.csv", [dp(20)])
    result = audit(day, day.export, late)
    assert {k: n for k, n in result.by_kind.items() if n} == {
        "missing_receipt": 1,
        "receipt_differs": 1,
        "duplicate_receipt": 1,
        "voided_without_reversal": 1,
        "in_two_files": 3,
        "never_processed": 1,
    }
