"""Exactly once under faults, against the emulator process (the pipeline called in-process).

Every test ends with the emulator holding exactly one receipt per DataPump payment and the
lockbox files holding each File payment on exactly one line (postkit.assert_exactly_once).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa

from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.payments.pipeline import run_daily_payments
from caselle_ic.payments.posting import PostingOptions
from caselle_ic.store.ledger import open_ledger
from caselle_ic.store.tables import payments
from tests.posting.postkit import assert_exactly_once, dp, lb, write_export

NOW = "2026-11-03T07:00:00"


def run(export: Path, cfg: Path, out: Path, ledger: str, now: str = NOW, **opts: object):
    return run_daily_payments(
        export,
        cfg,
        out,
        now=now,
        ledger_url=ledger,
        options=PostingOptions(**opts),  # type: ignore[arg-type]
    )


def ledger_states(url: str) -> dict[str, str]:
    with open_ledger(url) as led, led.begin() as conn:
        return {g: s for g, s in conn.execute(sa.select(payments.c.payment_guid, payments.c.state))}


def test_500_burst_is_settled_then_resent(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, ledger_url: str
):
    rows = [dp(i) for i in range(40)] + [lb(i) for i in range(3)]
    export = write_export(tmp_path / "pay.csv", rows)
    fifty_emu.faults(fail_next=3)  # the first documents answer HTTP 500 unprocessed: outcome unknown
    result = run(export, fifty_toml, tmp_path / "out", ledger_url, batch_size=10, workers=2)
    assert result.exit_status == 0, result.summary_lines()
    assert result.counts["posted"] == 40 and result.counts["filed"] == 3
    assert fifty_emu.state()["counters"]["injected_500"] == 3
    assert result.extra["engine"]["settled_absent"] >= 10  # settled as "not there", then sent again
    assert_exactly_once(fifty_emu, rows[:40], rows[40:], tmp_path / "out")
    assert set(ledger_states(ledger_url).values()) == {"posted", "filed"}


def test_commit_then_drop_is_settled_from_caselle(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, ledger_url: str
):
    rows = [dp(i) for i in range(30)]
    export = write_export(tmp_path / "pay.csv", rows)
    fifty_emu.faults(drop_after_commit=2)  # two batches commit, then their answers are cut off
    result = run(export, fifty_toml, tmp_path / "out", ledger_url, batch_size=10, workers=1)
    assert result.exit_status == 0, result.summary_lines()
    assert fifty_emu.state()["counters"]["dropped_connections"] == 2
    assert result.counts["settled after a lost answer"] == 20  # found in Caselle, never resent
    assert result.extra["engine"]["resent"] == 0
    assert_exactly_once(fifty_emu, rows, [], tmp_path / "out")


def test_internal_after_commit_is_settled(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    rows = [dp(i) for i in range(12)]
    export = write_export(tmp_path / "pay.csv", rows)
    fifty_emu.faults(internal_after_commit=1)
    result = run(export, fifty_toml, tmp_path / "out", sqlite_ledger, batch_size=5, workers=1)
    assert result.exit_status == 0, result.summary_lines()
    assert result.counts["settled after a lost answer"] == 5
    assert_exactly_once(fifty_emu, rows, [], tmp_path / "out")
    with open_ledger(sqlite_ledger) as led, led.begin() as conn:
        reasons = (
            conn.execute(sa.select(payments.c.reason).where(payments.c.reason.is_not(None))).scalars().all()
        )
    assert len(reasons) == 5 and all(r.startswith("settled: the receipt was found") for r in reasons)


def test_token_expiry_mid_run(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    rows = [dp(i) for i in range(60)]
    export = write_export(tmp_path / "pay.csv", rows)
    fifty_emu.faults(latency_ms=60)
    results = []
    t = threading.Thread(
        target=lambda: results.append(
            run(export, fifty_toml, tmp_path / "out", sqlite_ledger, batch_size=5, workers=2)
        )
    )
    t.start()
    deadline = time.monotonic() + 30
    while fifty_emu.state()["counters"].get("receipts_created", 0) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    expired = fifty_emu.expire_tokens()
    t.join(60)
    assert expired >= 1 and results, "the run did not finish"
    assert results[0].exit_status == 0, results[0].summary_lines()
    counters = fifty_emu.state()["counters"]
    assert counters["unauthenticated"] >= 1 and counters["tokens_issued"] >= 3  # refreshed mid-run
    assert_exactly_once(fifty_emu, rows, [], tmp_path / "out")


def test_same_export_twice_and_an_overlapping_export_next_day(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, ledger_url: str
):
    day1 = [dp(i) for i in range(20)] + [lb(i) for i in range(4)]
    e1 = write_export(tmp_path / "day1.csv", day1)
    r1 = run(e1, fifty_toml, tmp_path / "out1", ledger_url, now="2026-11-02T07:00:00")
    assert r1.exit_status == 0 and r1.counts["posted"] == 20 and r1.counts["filed"] == 4
    again = run(e1, fifty_toml, tmp_path / "out1", ledger_url, now="2026-11-02T09:00:00")
    assert again.exit_status == 0
    assert again.counts["earlier"] == 24 and again.counts["posted"] == 0 and again.counts["filed"] == 0
    assert [p.name for p in (tmp_path / "out1").glob("*.TXT")] == ["300_PYMT_20261102.TXT"]
    # day 2: half of day 1 again plus new ones
    day2 = day1[10:20] + day1[22:] + [dp(i) for i in range(20, 35)] + [lb(i) for i in range(4, 6)]
    e2 = write_export(tmp_path / "day2.csv", day2)
    r2 = run(e2, fifty_toml, tmp_path / "out2", ledger_url, now="2026-11-03T07:00:00")
    assert r2.exit_status == 0, r2.summary_lines()
    assert (r2.counts["earlier"], r2.counts["posted"], r2.counts["filed"]) == (12, 15, 2)
    recon = r2.tables["reconciliation"]
    assert recon.iloc[-1]["check"] == "ok" and int(recon.iloc[-1]["earlier_count"]) == 12
    all_dp = [r for r in day1 + day2 if r["invoice_type_id"] == "42"]
    all_lb = [r for r in day1 + day2 if r["invoice_type_id"] == "300"]
    unique = lambda rows: list({r["payment_guid"]: r for r in rows}.values())  # noqa: E731
    assert_exactly_once(fifty_emu, unique(all_dp), unique(all_lb), tmp_path / "out1", tmp_path / "out2")


def test_a_second_run_the_same_day_writes_the_next_file_name(
    fifty_emu, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    first = [lb(i) for i in range(3)]
    second = first + [lb(i) for i in range(3, 5)]
    out = tmp_path / "out"
    run(write_export(tmp_path / "a.csv", first), fifty_toml, out, sqlite_ledger)
    r = run(write_export(tmp_path / "b.csv", second), fifty_toml, out, sqlite_ledger)
    assert r.exit_status == 0 and r.counts["filed"] == 2 and r.counts["earlier"] == 3
    assert sorted(p.name for p in out.glob("*.TXT")) == ["300_PYMT_20261103.TXT", "300_PYMT_20261103_2.TXT"]
    assert_exactly_once(fifty_emu, [], second, out)


def test_conflicting_guid_is_quarantined_never_overwritten(
    fifty_emu, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    rows = [dp(i) for i in range(3)]
    run(write_export(tmp_path / "a.csv", rows), fifty_toml, tmp_path / "out", sqlite_ledger)
    changed = {**rows[1], "amount": "999.99"}
    r = run(
        write_export(tmp_path / "b.csv", [rows[0], changed, dp(3)]),
        fifty_toml,
        tmp_path / "out",
        sqlite_ledger,
    )
    assert r.exit_status == 1 and r.counts["conflicts"] == 1 and r.counts["posted"] == 1
    reason = r.quarantined.set_index("payment_guid").loc[changed["payment_guid"], "reason"]
    assert "already recorded with a different amount_cents" in reason and "a.csv line 3" in reason
    recon = r.tables["reconciliation"]
    assert recon.iloc[-1]["check"] == "ok"
    assert_exactly_once(fifty_emu, [*rows, dp(3)], [], tmp_path / "out")  # the first amount stands


def test_caselle_refusal_is_quarantined_with_its_message_and_never_resent(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    stranger = {**dp(0), "account_number": "009999", "payment_guid": dp(0, tag="x")["payment_guid"]}
    rows = [dp(1), stranger, dp(2)]
    export = write_export(tmp_path / "pay.csv", rows)
    r = run(export, fifty_toml, tmp_path / "out", sqlite_ledger)
    assert r.exit_status == 1 and r.counts["posted"] == 2 and r.counts["quarantined"] == 1
    reason = r.quarantined.set_index("payment_guid").loc[stranger["payment_guid"], "reason"]
    assert "Caselle refused" in reason and "NOT_FOUND" in reason
    assert r.rejects_path is not None and stranger["payment_guid"] in r.rejects_path.read_text()
    mutations = fifty_emu.state()["counters"]["mutation_requests"]
    again = run(export, fifty_toml, tmp_path / "out", sqlite_ledger)
    assert again.counts["earlier"] == 3 and fifty_emu.state()["counters"]["mutation_requests"] == mutations
    assert_exactly_once(fifty_emu, [dp(1), dp(2)], [], tmp_path / "out")


def test_unreachable_caselle_keeps_payments_pending_for_the_next_run(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    rows = [dp(i) for i in range(8)] + [lb(0)]
    export = write_export(tmp_path / "pay.csv", rows)
    fifty_emu.stop()
    r = run(export, fifty_toml, tmp_path / "out", sqlite_ledger, client_options={"backoff": 0.01})
    assert r.exit_status == 2 and r.counts["pending"] == 8 and r.counts["filed"] == 1
    assert r.extra["retry_later"] == 8  # the inbox keeps the export for the next run
    assert "could not be reached" in " ".join(r.notes)
    assert set(ledger_states(sqlite_ledger).values()) == {"pending", "filed"}
    fifty_emu.start()
    # the next day's export does not repeat them: the ledger carries them over
    r2 = run(write_export(tmp_path / "next.csv", [dp(8)]), fifty_toml, tmp_path / "out", sqlite_ledger)
    assert r2.exit_status == 0 and r2.counts["posted"] == 1 and r2.counts["carried over"] == 8
    assert_exactly_once(fifty_emu, [*rows[:8], dp(8)], rows[8:], tmp_path / "out")


def test_read_timeout_is_an_unknown_outcome_settled_by_the_next_run(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    """The client gives up after 0.3 s while Caselle takes 1 s and then commits: the run
    cannot tell, so it neither resends nor calls them failed; the next run finds them."""
    fifty_toml = fifty_emu.write_config(fifty_toml, oauth=False)  # HTTP basic: no token request to slow down
    rows = [dp(i) for i in range(6)]
    export = write_export(tmp_path / "pay.csv", rows)
    fifty_emu.faults(latency_ms=1000)
    slow = {"timeout": (5.0, 0.3), "backoff": 0.01, "max_attempts": 2}
    r = run(export, fifty_toml, tmp_path / "out", sqlite_ledger, batch_size=6, client_options=slow)
    assert r.exit_status == 2 and r.counts["pending"] == 6, r.summary_lines()
    assert set(ledger_states(sqlite_ledger).values()) == {"unknown"}
    fifty_emu.reset_faults()
    time.sleep(1.2)  # Caselle finishes what it was given
    r2 = run(export, fifty_toml, tmp_path / "out", sqlite_ledger, settle_grace_seconds=0)
    assert r2.exit_status == 0 and r2.counts["settled after a lost answer"] == 6, r2.summary_lines()
    assert_exactly_once(fifty_emu, rows, [], tmp_path / "out")
