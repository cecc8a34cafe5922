"""Issue 13 over real HTTP: the emulator process answers wrongly on purpose (hostile modes)
and the client neither crashes, nor hangs, nor records a receipt that is not the payment's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from caselle_ic.config.model import load_config
from caselle_ic.connect.client import CaselleClient, ReceiptInput
from caselle_ic.connect.models import TEXT_CAP, MalformedAnswerError, ReceiptMismatchError
from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.errors import BadUserInputError, OutcomeUnknownError
from caselle_ic.payments.pipeline import run_daily_payments
from caselle_ic.payments.posting import PostingOptions
from caselle_ic.store.ledger import open_ledger
from caselle_ic.store.tables import payments
from tests.posting.postkit import dp, write_export

FAST = {"backoff": 0.01}


def receipt(account: str, amount: str, guid: str) -> ReceiptInput:
    return ReceiptInput(date(2025, 6, 5), 101, 99, Decimal(amount), account, guid)


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()`` in a thread; fails (instead of hanging the suite) when it does not end."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# -- 13.1: a receipt that is not ours ---------------------------------------------------------
def test_create_receipt_answered_with_a_strangers_receipt_is_not_taken(
    awkward_cfg, awkward_emu: EmulatorProcess
):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        theirs = pay.create_receipt(receipt("001050", "2.00", "theirs"))
        awkward_emu.faults(hostile="wrong_receipt", hostile_next=1)
        (o,) = pay.create_receipts([receipt("001049", "1.00", "mine")])
        assert o.value is None and isinstance(o.error, ReceiptMismatchError), o
        assert str(o.error).startswith("Caselle answered") and "001049" not in str(o.error)
        (mine,) = pay.receipts("mine")  # settled: the real one, which matches
    assert mine.receipt_number != theirs.receipt_number and mine.amount == Decimal("1.00")


def test_settle_answer_listing_a_strangers_receipt_is_not_taken(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        pay.create_receipts([receipt("001050", "2.00", "theirs"), receipt("001049", "1.00", "mine")])
        awkward_emu.faults(hostile="wrong_receipt", hostile_next=1)
        (o,) = pay.receipts_many(["mine"])
    assert o.value is None and isinstance(o.error, ReceiptMismatchError)


def test_a_payment_run_never_records_a_strangers_receipt(
    awkward_toml: Path, awkward_emu: EmulatorProcess, tmp_path
):
    """The issue's case: the post answers 500 (not processed), the settle query lists another
    payment's receipt. Today the payment is recorded "posted" with the stranger's number."""
    ledger = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    with CaselleClient.for_purpose(load_config(awkward_toml), "payments", **FAST) as pay:
        stranger = pay.create_receipt(receipt("001050", "2.00", "stranger"))
    export = write_export(tmp_path / "pay.csv", [dp(0)])
    awkward_emu.faults(fail_next=1, hostile="wrong_receipt", hostile_next=1)
    result = run_daily_payments(
        export,
        awkward_toml,
        tmp_path / "out",
        now="2026-11-03T07:00:00",
        ledger_url=ledger,
        options=PostingOptions(client_options=FAST),
    )
    with open_ledger(ledger) as led, led.begin() as conn:
        (row,) = conn.execute(sa.select(payments.c.state, payments.c.receipt_number)).all()
    ours = [r for r in awkward_emu.receipts() if r["confirmation_number"] == dp(0)["payment_guid"]]
    assert row.receipt_number != stranger.receipt_number and len(ours) <= 1
    if row.state == "posted":  # settled again later in the run: by its own receipt
        assert row.receipt_number == ours[0]["receipt_number"]
    assert awkward_emu.state()["counters"]["hostile_answers"] == 1, result.summary_lines()


# -- 13.2 / 13.4: wrong types and malformed shapes ----------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"receiptNumber": True},
        {"receiptNumber": 555001.7},
        {"receiptNumber": "555001"},
        {"receiptNumber": None},
        {"receiptNumber": 10**40},
        {"amount": "12,00"},
        {"amount": "garbage"},
        {"amount": "1E+99999"},
    ],
    ids=lambda f: f"{next(iter(f))}={next(iter(f.values()))!r}"[:40],
)
def test_a_receipt_of_the_wrong_type_is_outcome_unknown(
    awkward_cfg, awkward_emu: EmulatorProcess, fields: dict[str, Any]
):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        awkward_emu.faults(hostile="fields", hostile_fields=fields, hostile_next=1)
        (o,) = pay.create_receipts([receipt("001049", "1.00", "typed")])
        assert o.value is None and isinstance(o.error, MalformedAnswerError), o
        assert next(iter(fields)) in str(o.error) and "001049" not in str(o.error)
        assert len(pay.receipts("typed")) == 1  # it did commit: settling finds it


@pytest.mark.parametrize(
    "body",
    [
        "null",
        "42",
        '"a string"',
        '{"data": [], "errors": null}',
        '{"data": null, "errors": {"message": "x"}}',
        '{"data": 7}',
        '{"data": {}}',
        '{"data": {"r0": {}}}',
    ],
)
def test_a_malformed_answer_is_outcome_unknown_not_a_crash(
    awkward_cfg, awkward_emu: EmulatorProcess, body: str
):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        awkward_emu.faults(hostile="body", hostile_body=body, hostile_next=1)
        (o,) = pay.create_receipts([receipt("001049", "1.00", "shape")])
        assert o.unknown and isinstance(o.error, OutcomeUnknownError)
        assert "malformed" in str(o.error) and "001049" not in str(o.error)
        awkward_emu.faults(hostile="body", hostile_body=body, hostile_next=1)
        (c,) = pay.customers([1049])
        assert c.value is None and isinstance(c.error, MalformedAnswerError)


# -- 13.5: bounded requests ------------------------------------------------------------------------
def test_a_server_dripping_its_answer_is_cut_at_the_deadline(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", timeout=(2.0, 1.0), deadline=2.5, **FAST) as pay:
        pay.customer(1049)  # token fetched
        awkward_emu.faults(hostile="slow", slow_body_s=0.4, hostile_next=1)  # < read timeout: never fires
        (o,) = within(30, lambda: pay.create_receipts([receipt("001049", "1.00", "drip")]))
        assert o.unknown and "2.5 s deadline" in str(o.error)
        assert len(pay.receipts("drip")) == 1


def test_a_slow_token_endpoint_is_cut_at_the_deadline_and_retried(awkward_cfg, awkward_emu: EmulatorProcess):
    awkward_emu.faults(hostile="slow", hostile_on="token", slow_body_s=0.4, hostile_next=1)
    with CaselleClient.for_purpose(awkward_cfg, "rtdr", timeout=(2.0, 1.0), deadline=2.5, **FAST) as c:
        assert within(30, lambda: c.customer(1049)).balance == Decimal("75.25")
        assert c.oauth[0].fetches == 1
    assert awkward_emu.state()["counters"]["hostile_answers"] == 1


def test_an_endless_answer_is_cut_at_the_size_cap(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", max_body=256 * 1024, **FAST) as pay:
        pay.customer(1049)
        awkward_emu.faults(hostile="endless", hostile_next=1)
        (o,) = within(60, lambda: pay.create_receipts([receipt("001049", "1.00", "endless")]))
        assert o.unknown and "larger than 262144 bytes" in str(o.error)
        awkward_emu.faults(hostile="endless", hostile_next=1)
        assert within(60, lambda: pay.customer(1049)).customer_number == 1049  # a query is asked again


def test_huge_error_text_is_capped_in_the_error(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        awkward_emu.faults(hostile="huge_error", hostile_size=3_000_000, hostile_next=1)
        (o,) = pay.create_receipts([receipt("001049", "1.00", "huge")])
    assert isinstance(o.error, BadUserInputError) and len(str(o.error)) < TEXT_CAP + 200


def test_huge_error_text_is_capped_in_the_ledger_and_rejects(
    awkward_toml: Path, awkward_emu: EmulatorProcess, tmp_path
):
    ledger = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    export = write_export(tmp_path / "pay.csv", [dp(0), dp(1)])
    # 1 MB per payment: under the 4 MiB answer cap, so the text itself must be capped
    awkward_emu.faults(hostile="huge_error", hostile_size=1_000_000, hostile_next=1, hostile_on="mutation")
    result = run_daily_payments(
        export,
        awkward_toml,
        tmp_path / "out",
        now="2026-11-03T07:00:00",
        ledger_url=ledger,
        options=PostingOptions(client_options=FAST),
    )
    with open_ledger(ledger) as led, led.begin() as conn:
        reasons = [r for (r,) in conn.execute(sa.select(payments.c.reason)) if r]
    assert reasons and max(len(r) for r in reasons) < 3 * TEXT_CAP, result.summary_lines()
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files and max(p.stat().st_size for p in files) < 10 * TEXT_CAP
    assert all(len(line) < 3 * TEXT_CAP for line in result.summary_lines())


# -- 13.11: bursts of 500s while the server answers ----------------------------------------------
def test_a_500_burst_longer_than_four_tries_is_ridden_out(awkward_cfg, awkward_emu: EmulatorProcess):
    awkward_emu.faults(fail_next=9)
    with CaselleClient.for_purpose(awkward_cfg, "rtdr", backoff=0.002) as c:
        assert c.customer(1001).balance == Decimal("1234.50")
    assert awkward_emu.state()["counters"]["injected_500"] == 9


def test_a_payment_run_through_500_bursts_posts_and_does_not_say_unreachable(
    awkward_toml: Path, awkward_emu: EmulatorProcess, tmp_path
):
    ledger = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    rows = [dp(i) for i in (0, 1, 47, 48, 49)]
    export = write_export(tmp_path / "pay.csv", rows)
    awkward_emu.faults(fail_next=9)  # the post (unprocessed), then 8 answers of 500 to the settle query
    result = run_daily_payments(
        export,
        awkward_toml,
        tmp_path / "out",
        now="2026-11-03T07:00:00",
        ledger_url=ledger,
        options=PostingOptions(client_options={"backoff": 0.002}),
    )
    assert result.exit_status == 0, result.summary_lines()
    assert result.counts["posted"] == 5 and not any("could not be reached" in n for n in result.notes)
    assert sorted(r["confirmation_number"] for r in awkward_emu.receipts()) == sorted(
        r["payment_guid"] for r in rows
    )
