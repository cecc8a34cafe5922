"""The pure comparison functions alone (no emulator, no database): the cases the process
tests do not reach."""

from __future__ import annotations

from caselle_ic.audit.discrepancy import LockboxSide, Seen
from caselle_ic.audit.lockbox import compare_files
from caselle_ic.audit.receipts import compare_receipt, compare_reversal
from caselle_ic.audit.totals import totals_table


def payment(guid: str, **kw: object) -> dict[str, object]:
    return {
        "payment_guid": guid,
        "transaction_type": "PAYMENT",
        "posting_method": "DataPump",
        "account_number": "001001",
        "amount_cents": 1234,
        "distribution_code": 111,
        "payment_code": 4,
        "payment_date": "2026-11-02T08:00:00",
        "state": "posted",
        "receipt_number": 7,
        **kw,
    }


def seen(number: int = 7, **kw: object) -> Seen:
    base = dict(
        receipt_number=number,
        receipt_date="2026-11-02",
        distribution_code=111,
        payment_code=4,
        amount_cents=1234,
        account_number="001001",
        voided=False,
    )
    return Seen(**{**base, **kw})  # type: ignore[arg-type]


def test_a_matching_receipt_is_clean():
    assert compare_receipt(payment("g"), [seen()], []) == []


def test_a_receipt_the_ledger_has_not_recorded_yet():
    (d,) = compare_receipt(payment("g", state="unknown", receipt_number=None), [seen(9)], [])
    assert (d.kind, d.field, d.expected, d.found) == ("receipt_differs", "receipt_number", "", "9")
    assert "the next payments run settles it" in d.detail


def test_a_voided_duplicate_is_not_a_duplicate():
    assert compare_receipt(payment("g"), [seen(), seen(8, voided=True)], []) == []


def test_a_refunded_payment_is_voided_with_a_reversal():
    refund = {"payment_guid": "r", "state": "voided"}
    assert compare_receipt(payment("g"), [seen(voided=True)], [refund]) == []
    (d,) = compare_receipt(payment("g"), [seen(voided=True)], [{**refund, "state": "reported"}])
    assert d.kind == "voided_without_reversal" and "r (reported)" in d.detail


def test_a_reversal_of_a_payment_caselle_never_had_is_clean():
    rev = {"payment_guid": "r", "transaction_type": "REFUND", "original_guid": "g", "state": "reported"}
    assert compare_reversal(rev, []) == []
    (d,) = compare_reversal({**rev, "state": "voided", "receipt_number": 7}, [])
    assert (d.kind, d.field, d.found) == ("reversal_not_voided", "receipt", "none")


def lockbox(**lines: list[tuple[str, int]]) -> LockboxSide:
    return LockboxSide(lines=dict(lines), expected={"a": "L", "b": "L"})


def filed(guid: str, name: str, line: int) -> dict[str, object]:
    return payment(guid, posting_method="File", state="filed", lockbox_file=name, lockbox_line=line)


def test_two_payments_with_the_same_line_in_two_files_are_each_once():
    side = lockbox(L=[("A.TXT", 1), ("B.TXT", 4)])
    assert compare_files([filed("a", "A.TXT", 1), filed("b", "B.TXT", 4)], side) == []


def test_a_line_repeated_within_one_file_is_found():
    side = lockbox(L=[("A.TXT", 1), ("A.TXT", 2)])
    (d,) = compare_files([filed("a", "A.TXT", 1)], side)
    assert (d.kind, d.payment_guid, d.expected, d.found) == (
        "in_two_files",
        "a",
        "A.TXT line 1",
        "A.TXT line 2",
    )


def test_a_reordered_file_still_holds_each_payment_once():
    side = lockbox(L=[("A.TXT", 2), ("A.TXT", 1)])
    rows = [filed("a", "A.TXT", 3), filed("b", "A.TXT", 1)]
    assert compare_files(rows, side) == []


def test_totals_flag_a_difference_per_group():
    export = [payment("g"), payment("h", posting_method="File", distribution_code=300, payment_code=97)]
    rows = totals_table(export, export, [("DataPump", 111, 4, 1234)])
    assert [(r["posting_method"], r["caselle_amount"], r["check"]) for r in rows] == [
        ("DataPump", "12.34", "ok"),
        ("File", "0.00", "DIFFERENCE"),
        ("TOTAL", "12.34", "DIFFERENCE"),
    ]
