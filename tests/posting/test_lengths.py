"""Issue 13.8: SQLite and PostgreSQL agree on text lengths. A 301-character customer_name
or a 101-character invoice_number is quarantined on both (never a
StringDataRightTruncation that stops a PostgreSQL run); the other lines post."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.payments.pipeline import run_daily_payments
from caselle_ic.payments.posting import PostingOptions
from caselle_ic.store.columns import PAYMENT_TEXT_LENGTHS
from caselle_ic.store.ledger import open_ledger
from caselle_ic.store.tables import payments
from tests.posting.postkit import dp, write_export


def test_the_lengths_are_the_ledger_columns():
    for column, limit in PAYMENT_TEXT_LENGTHS.items():
        name = "original_guid" if column == "original_payment_guid" else column
        assert payments.c[name].type.length == limit  # type: ignore[attr-defined]
    assert (PAYMENT_TEXT_LENGTHS["customer_name"], PAYMENT_TEXT_LENGTHS["invoice_number"]) == (300, 100)


def test_too_long_text_is_quarantined_alike_on_sqlite_and_postgresql(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, ledger_url: str
):
    name, invoice = {**dp(0), "customer_name": "N" * 301}, {**dp(1), "invoice_number": "I" * 101}
    fits = {**dp(2), "customer_name": "N" * 300, "invoice_number": "I" * 100}
    export = write_export(tmp_path / "d.csv", [name, invoice, fits, dp(3)])
    opts = PostingOptions(client_options={"backoff": 0.01})
    r = run_daily_payments(
        export, fifty_toml, tmp_path / "o", now="2026-11-02T07:00:00", ledger_url=ledger_url, options=opts
    )
    assert r.exit_status == 1 and r.counts["posted"] == 2 and r.n_quarantined == 2, r.summary_lines()
    assert sorted(x["confirmation_number"] for x in fifty_emu.receipts()) == sorted(
        [fits["payment_guid"], dp(3)["payment_guid"]]
    )
    reasons = r.quarantined.set_index("payment_guid")["reason"]
    assert "customer_name" in reasons[name["payment_guid"]] and "300" in reasons[name["payment_guid"]]
    assert "invoice_number" in reasons[invoice["payment_guid"]] and "100" in reasons[invoice["payment_guid"]]
    with open_ledger(ledger_url) as led, led.begin() as conn:
        stored = set(conn.execute(sa.select(payments.c.payment_guid)).scalars())
    assert stored == {fits["payment_guid"], dp(3)["payment_guid"]}
