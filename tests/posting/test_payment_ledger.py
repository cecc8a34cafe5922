"""The ledger side of exactly once (caselle_ic/store/payments.py) on SQLite and PostgreSQL:
claims never overlap, only dead runs' claims are taken over, a GUID is never overwritten."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from caselle_ic.store.ledger import open_ledger, utc_text
from caselle_ic.store.payment_claims import HOST, process_start
from caselle_ic.store.payments import PaymentBook
from caselle_ic.store.tables import payments, run_leases

BILLER = "b-test"


def frame(n: int, start: int = 0, amount: int = 1000) -> pd.DataFrame:
    """Valid export rows as the reader and resolve_codes hand them over."""
    i = range(start, start + n)
    return pd.DataFrame(
        {
            "payment_guid": [str(uuid.UUID(int=k + 1)) for k in i],
            "transaction_type": "PAYMENT",
            "original_payment_guid": "",
            "payment_date": pd.to_datetime(["2026-11-02T08:00:00"] * n),
            "account_number": [f"{1001 + k % 50:06d}" for k in i],
            "customer_name": "X",
            "invoice_number": "",
            "invoice_type_id": pd.array([42] * n, dtype="Int64"),
            "payment_type_id": 1,
            "card_vendor": "VISA",
            "obd_vendor": "",
            "amount_cents": amount,
            "_line": [k + 2 for k in i],
            "distribution_code": pd.array([111] * n, dtype="Int64"),
            "payment_code": pd.array([4] * n, dtype="Int64"),
            "gl_activity": pd.array([0] * n, dtype="Int64"),
            "posting_method": "DataPump",
            "code_rule": "entry 1",
        }
    )


def book(url: str, run_id: str | None = None) -> PaymentBook:
    b = PaymentBook(open_ledger(url), BILLER, run_id or str(uuid.uuid4()))
    b.start_lease(300)
    return b


def test_claims_from_many_threads_never_overlap(ledger_url: str):
    first = book(ledger_url)
    assert first.intake(frame(300), "a.csv").empty
    claimed: list[list[str]] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(6)
    each_has_one = threading.Barrier(6)

    def worker() -> None:
        try:
            b = book(ledger_url)
            ready.wait(timeout=30)  # all open before any claims
            mine: list[str] = []
            first_round = True
            while rows := b.claim_posts(3):
                if first_round:  # every thread holds a claim before any goes on: they compete
                    each_has_one.wait(timeout=30)
                    first_round = False
                assert all(r["state"] == "sending" and r["claim_owner"] == b.run_id for r in rows)
                mine += [r["payment_guid"] for r in rows]
            claimed.append(mine)
            b.ledger.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    flat = [g for c in claimed for g in c]
    assert len(flat) == 300 and len(set(flat)) == 300
    assert len(claimed) == 6 and all(claimed)  # all six claimed, interleaved
    first.ledger.close()


def _hold(url: str, owner: str, guids: list[str]) -> None:
    with open_ledger(url) as led, led.begin() as conn:
        conn.execute(
            payments.update()
            .where(payments.c.payment_guid.in_(guids))
            .values(state="sending", claim_owner=owner)
        )


def _lease(
    url: str, run_id: str, *, pid: int, start: str | None, host: str = HOST, seconds: float = 300
) -> None:
    until = utc_text(datetime.now(UTC) + timedelta(seconds=seconds))
    with open_ledger(url) as led, led.begin() as conn:
        conn.execute(
            run_leases.insert().values(
                run_id=run_id,
                biller=BILLER,
                host=host,
                pid=pid,
                process_start=start,
                started_at=utc_text(),
                lease_until=until,
            )
        )


def test_only_dead_runs_claims_are_taken_over(ledger_url: str):
    me = book(ledger_url)
    me.intake(frame(5), "a.csv")
    guids = sorted(me.rows_for([str(uuid.UUID(int=k + 1)) for k in range(5)])["payment_guid"])
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a process that has ended (its pid is free)
    owners = {
        "alive": str(uuid.uuid4()),  # this very process, another run
        "dead pid": str(uuid.uuid4()),
        "pid reused": str(uuid.uuid4()),  # our pid, but another start time
        "expired elsewhere": str(uuid.uuid4()),
        "alive elsewhere": str(uuid.uuid4()),
    }
    _lease(ledger_url, owners["alive"], pid=os.getpid(), start=process_start(os.getpid()))
    _lease(ledger_url, owners["dead pid"], pid=child.pid, start="1")
    _lease(ledger_url, owners["pid reused"], pid=os.getpid(), start="0")
    _lease(ledger_url, owners["expired elsewhere"], pid=1, start=None, host="other-host", seconds=-5)
    _lease(ledger_url, owners["alive elsewhere"], pid=1, start=None, host="other-host")
    for guid, owner in zip(guids, owners.values(), strict=True):
        _hold(ledger_url, owner, [guid])
    taken = {r["payment_guid"]: r for r in me.take_over_stale()}
    assert set(taken) == {guids[1], guids[2], guids[3]}
    assert all(r["claim_owner"] == me.run_id and r["state"] == "sending" for r in taken.values())
    assert me.take_over_stale() == []  # now they are ours, and we are alive
    assert me.others_active()  # "alive" and "alive elsewhere" still hold theirs


def test_unknown_rows_are_taken_over_for_settling(ledger_url: str):
    me = book(ledger_url)
    me.intake(frame(2), "a.csv")
    with me.ledger.begin() as conn:
        conn.execute(payments.update().values(state="unknown", claim_owner=None))
    rows = me.take_over_stale()
    assert sorted(r["state"] for r in rows) == ["sending", "sending"]
    me.release_mine()
    with me.ledger.begin() as conn:
        assert set(conn.execute(sa.select(payments.c.state)).scalars()) == {"unknown"}


def test_same_guid_with_other_content_is_a_conflict_and_never_overwritten(ledger_url: str):
    me = book(ledger_url)
    assert me.intake(frame(3), "a.csv").empty
    assert me.intake(frame(3), "b.csv").empty  # the same lines again: fine
    changed = frame(3, amount=1001)
    changed.loc[1, "customer_name"] = "Y"
    conflicts = me.intake(changed, "c.csv")
    assert len(conflicts) == 3
    reasons = dict(zip(conflicts["payment_guid"], conflicts["reason"], strict=True))
    assert reasons[str(uuid.UUID(int=2))].startswith(
        "payment_guid: already recorded with a different customer_name, amount_cents "
        "(first recorded from a.csv line 3, now pending)"
    )
    stored = me.rows_for(list(changed["payment_guid"]))
    assert set(stored["amount_cents"]) == {1000} and set(stored["export_name"]) == {"a.csv"}


def test_process_start_tells_dead_and_zombie_processes_apart():
    assert process_start(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child_pid = child.pid
    deadline = time.monotonic() + 10
    while process_start(child_pid) is not None and time.monotonic() < deadline:  # a zombie counts as dead
        time.sleep(0.01)
    assert process_start(child_pid) is None
    child.wait()
    assert process_start(child_pid) is None


def test_empty_intake(ledger_url: str):
    assert book(ledger_url).intake(frame(0), "a.csv").empty


def test_a_version_2_ledger_is_upgraded_with_in_doubt_until(ledger_url: str, monkeypatch):
    """Migration 3 adds a column to a ledger that already ran migration 2 (as shipped)."""
    from caselle_ic.store import migrations as migrations_module

    shipped = migrations_module.MIGRATIONS
    monkeypatch.setattr(migrations_module, "MIGRATIONS", shipped[:2])
    with open_ledger(ledger_url) as led:
        assert led.version() == 2
        with led.begin() as conn:
            assert "in_doubt_until" not in _columns(conn)
    monkeypatch.setattr(migrations_module, "MIGRATIONS", shipped)
    me = book(ledger_url)
    assert me.ledger.version() == len(shipped)
    me.intake(frame(1), "a.csv")
    claimed = me.claim_posts(5, in_doubt_until="2999-01-01T00:00:00.000000Z")
    assert claimed[0]["in_doubt_until"] == "2999-01-01T00:00:00.000000Z"


def _columns(conn: sa.Connection) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns("payments")}


def test_payment_states_store_the_text_of_the_first_ledger() -> None:
    """The StrEnum's values are the stored text (ledgers made before it keep working)."""
    from caselle_ic.store.payment_rows import KEEP, PaymentState, RowUpdate

    assert [s.value for s in PaymentState] == [
        "pending", "sending", "posted", "unknown", "rejected", "filing", "filed", "held",
        "void_sending", "void_unknown", "voided", "manual", "reported",
    ]  # fmt: skip
    update = RowUpdate("g", state=PaymentState.POSTED, claim_owner=None, receipt_number=7)
    cols = update.columns()
    assert cols == {"state": "posted", "claim_owner": None, "receipt_number": 7}
    assert type(cols["state"]) is str and RowUpdate("g", reason=KEEP).columns() == {}
