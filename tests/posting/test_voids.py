"""Refunds and ACH rejects (SPEC §4, §6): each voids its original's receipt once, only a
receipt that exists; a File original goes to manual handling; an unknown one is reported."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.payments.pipeline import run_daily_payments
from caselle_ic.payments.posting import PostingOptions
from caselle_ic.store.ledger import open_ledger
from caselle_ic.store.tables import payments
from tests.posting.postkit import assert_exactly_once, dp, guid, lb, reversal, write_export

DAY1, DAY2 = "2026-11-02T07:00:00", "2026-11-03T07:00:00"


def run(export: Path, cfg: Path, out: Path, ledger: str, now: str):
    opts = PostingOptions(client_options={"backoff": 0.01})
    return run_daily_payments(export, cfg, out, now=now, ledger_url=ledger, options=opts)


def voided(emu: EmulatorProcess) -> dict[str, str | None]:
    """confirmationNumber -> void date, for every voided receipt."""
    return {r["confirmation_number"]: r["void_date"] for r in emu.receipts() if r["voided"]}


def states(url: str) -> dict[str, tuple[str, str | None]]:
    with open_ledger(url) as led, led.begin() as conn:
        rows = conn.execute(sa.select(payments.c.payment_guid, payments.c.state, payments.c.reason))
        return {g: (s, r) for g, s, r in rows}


def test_refund_and_ach_reject_each_through_their_endpoint(
    fifty_emu: EmulatorProcess, tmp_path: Path, monkeypatch, ledger_url: str
):
    for k, v in fifty_emu.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CASELLE_IC_RETRY_WINDOW", "2")  # /dp is down: give up on it in 2 s, not 30
    cfg = fifty_emu.write_config(
        tmp_path / "biller" / "biller.toml",
        settings={
            "11": fifty_emu.graphql_url_under("dp"),
            "101": fifty_emu.graphql_url_under("ach"),
            "102": "sample-city",
            "103": "env:CASELLE_DP_PASSWORD",
        },
    )
    day1 = [dp(0), dp(1), dp(2)]
    assert (
        run(write_export(tmp_path / "d1.csv", day1), cfg, tmp_path / "o1", ledger_url, DAY1).exit_status == 0
    )
    refund, reject = reversal("REFUND", dp(0)), reversal("ACH_REJECT", dp(1))
    e2 = write_export(tmp_path / "d2.csv", [refund, reject])
    fifty_emu.faults(down_prefixes=["/dp"])  # the payments endpoint is down; 101 is not
    r = run(e2, cfg, tmp_path / "o2", ledger_url, DAY2)
    assert r.exit_status == 1 and r.counts["voided"] == 1 and r.counts["pending"] == 1, r.summary_lines()
    assert voided(fifty_emu) == {dp(1)["payment_guid"]: "2026-11-03"}  # the ACH reject went through /ach
    # the refund's void got a 503: its outcome is unknown until settled
    assert states(ledger_url)[refund["payment_guid"]][0] == "void_unknown"
    fifty_emu.reset_faults()
    r2 = run(e2, cfg, tmp_path / "o2", ledger_url, "2026-11-04T07:00:00")
    assert r2.exit_status == 0 and r2.counts["voided"] == 1 and r2.counts["earlier"] == 1, r2.summary_lines()
    assert voided(fifty_emu) == {dp(0)["payment_guid"]: "2026-11-04", dp(1)["payment_guid"]: "2026-11-03"}
    assert fifty_emu.state()["counters"]["receipts_voided"] == 2
    assert_exactly_once(fifty_emu, day1, [], tmp_path / "o1")


def test_void_whose_answer_was_lost_is_settled_not_resent(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    run(write_export(tmp_path / "d1.csv", [dp(0)]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY1)
    e2 = write_export(tmp_path / "d2.csv", [reversal("REFUND", dp(0))])
    before = fifty_emu.state()["counters"]["mutation_requests"]
    fifty_emu.faults(drop_after_commit=1)  # the void commits; its answer is cut off
    r = run(e2, fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert r.exit_status == 0 and r.counts["voided"] == 1, r.summary_lines()
    counters = fifty_emu.state()["counters"]
    assert counters["dropped_connections"] == 1 and counters["receipts_voided"] == 1
    assert counters["mutation_requests"] == before + 1  # settled by a query, never sent again
    again = run(e2, fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert again.exit_status == 0 and again.counts["earlier"] == 1
    assert fifty_emu.state()["counters"]["mutation_requests"] == before + 1
    state, reason = states(sqlite_ledger)[reversal("REFUND", dp(0))["payment_guid"]]
    assert state == "voided" and reason is not None and reason.startswith("settled")


def test_reversal_of_a_file_payment_goes_to_manual_handling(
    fifty_emu, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    run(write_export(tmp_path / "d1.csv", [lb(0)]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY1)
    rev = reversal("REFUND", lb(0))
    r = run(write_export(tmp_path / "d2.csv", [rev]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert (
        r.exit_status == 1
        and r.counts["manual"] == 1
        and fifty_emu.state()["counters"]["mutation_requests"] == 0
    )
    reason = r.quarantined.set_index("payment_guid").loc[rev["payment_guid"], "reason"]
    assert (
        reason
        == "manual: the original went by lockbox file 300_PYMT_20261102.TXT; reverse it in Caselle by hand"
    )
    table = r.tables["reconciliation"]
    assert int(table.iloc[-1]["manual_count"]) == 1 and table.iloc[-1]["check"] == "ok"


def test_reversal_of_an_unknown_payment_is_reported_and_nothing_sent(
    fifty_emu, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    ghost = {**dp(0), "payment_guid": guid("never-seen")}
    rev = reversal("REFUND", ghost)
    r = run(write_export(tmp_path / "d.csv", [rev]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert r.exit_status == 1 and r.counts["quarantined"] == 1
    assert fifty_emu.state()["counters"]["mutation_requests"] == 0
    assert (
        "unknown (not in the ledger, no receipt in Caselle); nothing sent" in r.quarantined["reason"].iloc[0]
    )


def test_original_known_only_to_caselle_is_looked_up_and_voided(
    fifty_emu, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    other_ledger = f"sqlite:///{tmp_path / 'other.db'}"  # e.g. posted before this ledger existed
    run(write_export(tmp_path / "d1.csv", [dp(0)]), fifty_toml, tmp_path / "o", other_ledger, DAY1)
    rev = reversal("REFUND", dp(0))
    r = run(write_export(tmp_path / "d2.csv", [rev]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert r.exit_status == 0 and r.counts["voided"] == 1
    assert list(voided(fifty_emu)) == [dp(0)["payment_guid"]]


def test_payment_and_its_reversals_in_one_export(
    fifty_emu, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    """Payments go first, so a refund in the same export voids the receipt just created;
    a second reversal of the same payment is reported, never an ALREADY_VOIDED."""
    refund, reject = reversal("REFUND", dp(0)), reversal("ACH_REJECT", dp(0), tag="rev2")
    rows = [refund, dp(0), dp(1), reject]
    r = run(write_export(tmp_path / "d.csv", rows), fifty_toml, tmp_path / "o", sqlite_ledger, DAY1)
    assert (r.counts["posted"], r.counts["voided"], r.counts["quarantined"]) == (2, 1, 1), r.summary_lines()
    assert list(voided(fifty_emu)) == [dp(0)["payment_guid"]]
    reason = r.quarantined.set_index("payment_guid").loc[reject["payment_guid"], "reason"]
    assert reason == f"the original payment is already reversed by {refund['payment_guid']}; nothing sent"
    assert_exactly_once(fifty_emu, [dp(0), dp(1)], [], tmp_path / "o")


def test_void_answered_by_500_is_settled_and_sent_again_in_the_same_run(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    """Issue 9.7: one void, one HTTP 500, nothing else in flight: settled as "not voided",
    then sent again in this run (not left pending with exit 1)."""
    run(write_export(tmp_path / "d1.csv", [dp(0)]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY1)
    rev = reversal("REFUND", dp(0))
    before = fifty_emu.state()["counters"]["mutation_requests"]
    fifty_emu.faults(fail_next=1)  # the void answers HTTP 500 without processing
    r = run(write_export(tmp_path / "d2.csv", [rev]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert r.exit_status == 0 and r.counts["voided"] == 1, r.summary_lines()
    assert voided(fifty_emu) == {dp(0)["payment_guid"]: "2026-11-03"}
    assert fifty_emu.state()["counters"]["receipts_voided"] == 1
    assert fifty_emu.state()["counters"]["mutation_requests"] == before + 1  # the 500 was not processed
    assert states(sqlite_ledger)[rev["payment_guid"]][0] == "voided"


def test_partial_refund_is_reported_for_manual_handling_and_nothing_sent(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    """Issue 13.3: only a full reversal is voided; a REFUND of 5.00 against a PAYMENT of
    50.00 (or any other amount) is left to a person, and Caselle's receipt stays live."""
    pay = {**dp(0), "amount": "50.00"}
    run(write_export(tmp_path / "d1.csv", [pay]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY1)
    rev = {**reversal("REFUND", pay), "amount": "5.00"}
    before = fifty_emu.state()["counters"]["mutation_requests"]
    r = run(write_export(tmp_path / "d2.csv", [rev]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert r.exit_status == 1 and r.counts["manual"] == 1, r.summary_lines()
    assert fifty_emu.state()["counters"]["mutation_requests"] == before and voided(fifty_emu) == {}
    reason = r.quarantined.set_index("payment_guid").loc[rev["payment_guid"], "reason"]
    assert reason == (
        "manual: a partial reversal (5.00 of the original's 50.00) is not voided; "
        "adjust the receipt in Caselle by hand"
    )
    assert states(sqlite_ledger)[rev["payment_guid"]] == ("manual", reason)


def test_partial_refund_of_an_original_known_only_to_caselle_is_manual(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    pay = {**dp(0), "amount": "50.00"}
    other_ledger = f"sqlite:///{tmp_path / 'other.db'}"
    run(write_export(tmp_path / "d1.csv", [pay]), fifty_toml, tmp_path / "o", other_ledger, DAY1)
    rev = {**reversal("REFUND", pay), "amount": "5.00"}
    before = fifty_emu.state()["counters"]["mutation_requests"]
    r = run(write_export(tmp_path / "d2.csv", [rev]), fifty_toml, tmp_path / "o", sqlite_ledger, DAY2)
    assert r.exit_status == 1 and r.counts["manual"] == 1, r.summary_lines()
    assert fifty_emu.state()["counters"]["mutation_requests"] == before and voided(fifty_emu) == {}
