"""The reconciliation report: every export line in exactly one outcome, differences flagged."""

from __future__ import annotations

import csv
from datetime import date

import pandas as pd
import pytest

from caselle_ic.config.model import load_config
from caselle_ic.payments.codes import load_payment_codes
from caselle_ic.payments.codes_resolve import resolve_codes
from caselle_ic.payments.export import read_payment_export
from caselle_ic.payments.lockbox import plan_lockbox_files
from caselle_ic.payments.reconcile import (
    DIFFERENCE,
    OK,
    export_frame,
    guid_differences,
    read_quarantine_frame,
    reconcile,
    write_reconciliation_csv,
)
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def sample():
    """The sample run split into outcomes the way the daily run does it."""
    cfg = load_config(SAMPLES / "biller.toml")
    export = read_payment_export(SAMPLES / "payments.csv", cfg)
    resolved = resolve_codes(export.valid, load_payment_codes(cfg))
    pays = resolved[resolved["transaction_type"] == "PAYMENT"]
    plan = plan_lockbox_files(pays[pays["posting_method"] == "File"], date(2026, 11, 2), cfg)
    file_guids = set(pays.loc[pays["posting_method"] == "File", "payment_guid"])
    rev = resolved[resolved["transaction_type"] != "PAYMENT"]
    manual = rev[rev["original_payment_guid"].isin(file_guids)]
    outcomes = {
        "posted": pays[pays["posting_method"] == "DataPump"],
        "voided": rev[~rev.index.isin(manual.index)],
        "filed": plan.filed,
        "quarantined": pd.concat([read_quarantine_frame(export), plan.quarantined], ignore_index=True),
        "manual": manual,
    }
    return export_frame(export, resolved), outcomes


def amount(table: pd.DataFrame, row: int, col: str) -> int:
    return int(table.iloc[row][col])


def test_sample_adds_up(sample):
    export, outcomes = sample
    table = reconcile(export, outcomes)
    assert (table["check"] == OK).all(), table[table["check"] != OK]
    total = table.iloc[-1]
    assert total["transaction_type"] == "TOTAL"
    assert total["export_count"] == 40
    body = table.iloc[:-1]
    # the TOTAL row is the column sums, and export = sum of the outcomes
    for c in [c for c in table.columns if c.endswith(("_count", "_cents"))]:
        assert total[c] == body[c].sum(), c
    names = ["posted", "voided", "filed", "quarantined", "manual"]
    assert total["export_cents"] == sum(total[f"{n}_cents"] for n in names)
    assert total["export_count"] == sum(total[f"{n}_count"] for n in names)
    # exact money: the export's amounts summed independently of pandas
    rows = list(csv.DictReader((SAMPLES / "payments.csv").open(encoding="utf-8", newline="")))
    from decimal import Decimal, InvalidOperation

    def cents(text: str) -> int:
        try:
            return int(Decimal(text) * 100) if Decimal(text) == Decimal(text).quantize(Decimal("0.01")) else 0
        except InvalidOperation:
            return 0

    assert total["export_cents"] == sum(cents(r["amount"]) for r in rows)
    assert guid_differences(export, outcomes).empty


def test_keys_are_posting_method_and_codes(sample):
    export, outcomes = sample
    table = reconcile(export, outcomes).set_index(
        ["transaction_type", "posting_method", "distribution_code", "payment_code"]
    )
    visa42 = table.loc[("PAYMENT", "DataPump", "111", "4")]
    assert (visa42["export_count"], visa42["posted_count"], visa42["export_cents"]) == (2, 2, 8417 + 7312)
    ach_file = table.loc[("PAYMENT", "File", "300", "95")]
    assert (ach_file["filed_count"], ach_file["filed_cents"]) == (3, 123450 + 31000 + 5730)
    refunds = table.loc[("REFUND", "", "", "")]
    assert (refunds["voided_count"], refunds["manual_count"], refunds["manual_cents"]) == (1, 1, 25000)


def test_a_dropped_payment_is_flagged(sample):
    export, outcomes = sample
    posted = outcomes["posted"]
    table = reconcile(export, {**outcomes, "posted": posted.iloc[1:]})
    flagged = table[table["check"] == DIFFERENCE]
    assert len(flagged) == 2  # its key, and TOTAL
    key = flagged.iloc[0]
    assert (key["distribution_code"], key["payment_code"]) == ("111", "4")
    assert (key["difference_count"], key["difference_cents"]) == (1, int(posted.iloc[0]["amount_cents"]))
    total = flagged.iloc[-1]
    assert total["transaction_type"] == "TOTAL"
    assert total["note"] == "1 key(s) differ; 1 payment_guid(s) not accounted for exactly once"


def test_a_payment_counted_twice_is_flagged(sample):
    export, outcomes = sample
    filed = outcomes["filed"]
    table = reconcile(export, {**outcomes, "filed": pd.concat([filed, filed.iloc[[0]]])})
    total = table.iloc[-1]
    assert total["check"] == DIFFERENCE and total["difference_count"] == -1
    diffs = guid_differences(export, {**outcomes, "filed": pd.concat([filed, filed.iloc[[0]]])})
    assert diffs["payment_guid"].tolist() == [filed.iloc[0]["payment_guid"]]
    assert (diffs["export_lines"].iloc[0], diffs["outcome_lines"].iloc[0]) == (1, 2)


def test_a_miss_and_a_double_that_cancel_are_still_flagged(sample):
    export, outcomes = sample
    posted = outcomes["posted"]
    # two payments with the same key and amount: drop one, post the other twice
    twin = posted.iloc[[0]].assign(payment_guid="ffffffff-ffff-4fff-8fff-ffffffffffff")
    export2 = pd.concat([export, twin], ignore_index=True)
    outcomes2 = {**outcomes, "posted": pd.concat([posted, posted.iloc[[0]]])}
    table = reconcile(export2, outcomes2)
    assert (table.iloc[:-1]["check"] == OK).all()  # the totals agree by key...
    total = table.iloc[-1]
    assert total["check"] == DIFFERENCE  # ...but not per payment
    assert total["note"] == "2 payment_guid(s) not accounted for exactly once"


def test_a_missing_outcome_frame_counts_as_nothing(sample):
    export, outcomes = sample
    table = reconcile(export, {**outcomes, "manual": None})
    assert table.iloc[-1]["manual_count"] == 0
    assert table.iloc[-1]["check"] == DIFFERENCE


def test_reconciliation_csv(sample, tmp_path):
    export, outcomes = sample
    table = reconcile(export, outcomes)
    path = write_reconciliation_csv(table, tmp_path, "payments-20261102")
    assert path.name == "payments-20261102.reconciliation.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert len(rows) == len(table)
    total = rows[-1]
    assert total["transaction_type"] == "TOTAL" and total["check"] == "ok"
    assert total["export_amount"] == "19034.99"
    assert total["export_count"] == "40"
    assert "export_cents" not in total
    assert path.read_bytes().count(b"\r\n") == len(table) + 1
