"""Inbox pickup: each file once, oldest first, moved to archive/error, duplicates skipped.

The handler here is a small real pipeline built from the project's own parts (the CSV
reader, exact cents parsing, the atomic writer and the rejects writer): the inbox is
generic over the pipeline, and the real pipelines are exercised through it in
``test_inbox_pipelines.py`` once they are merged.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.errors import LedgerError
from caselle_ic.ops.inbox import inbox_files, process_inbox
from caselle_ic.ops.inbox_scan import classify, scan_inbox
from caselle_ic.result import RunResult
from caselle_ic.store.inbox_claims import InboxStore, default_ledger_url
from caselle_ic.tabular.csvin import read_text_csv

from .inboxkit import GOOD, GOOD2, MISSING_COLUMN, WITH_BAD_ROW, total_handler


def drop(cfg: BillerConfig, name: str, text: str, age: float = 120.0) -> Path:
    """Write a file into the inbox and make it ``age`` seconds old."""
    path = cfg.paths.inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    t = time.time() - age
    os.utime(path, (t, t))
    return path


@pytest.fixture
def cfg(biller_toml: Path) -> BillerConfig:
    return load_config(biller_toml)


def rows(cfg: BillerConfig, url: str | None = None) -> list[dict[str, Any]]:
    engine = sa.create_engine(url or default_ledger_url(cfg))
    with engine.connect() as conn:
        out = [dict(r) for r in conn.execute(sa.select(inbox_files)).mappings()]
    engine.dispose()
    return out


def test_classify_names() -> None:
    assert classify("statements_2025-01.csv") == "invoices"
    assert classify("CASELLE_EXTRACT.CSV") == "invoices"
    assert classify("statement_adjustments.csv") == "adjustments"
    assert classify("ic_payments_20250203.csv") == "payments"
    assert classify("paperless_changes.csv") == "paperless"
    assert classify("notes.txt") is None


def test_scan_routes_by_folder_and_name(cfg: BillerConfig) -> None:
    drop(cfg, "payments/whatever.csv", GOOD, age=50)
    drop(cfg, "ic_payments_1.csv", GOOD, age=300)
    drop(cfg, "statements.csv", GOOD, age=100)
    drop(cfg, "ic_payments_2.csv.part", GOOD)
    drop(cfg, ".hidden_payments.csv", GOOD)
    drop(cfg, "readme.txt", GOOD)
    found, in_progress, unknown = scan_inbox(cfg.paths.inbox)
    assert [(w.path.name, w.kind) for w in found] == [
        ("ic_payments_1.csv", "payments"),  # oldest first
        ("statements.csv", "invoices"),
        ("whatever.csv", "payments"),
    ]
    assert sorted(p.name for p in in_progress) == [".hidden_payments.csv", "ic_payments_2.csv.part"]
    assert [p.name for p in unknown] == ["readme.txt"]


def test_pickup_moves_files_and_skips_duplicates(cfg: BillerConfig) -> None:
    calls: list[str] = []
    handler = total_handler(calls)
    drop(cfg, "a_payments.csv", GOOD, age=400)
    drop(cfg, "b_payments.csv", MISSING_COLUMN, age=300)
    drop(cfg, "c_payments.csv", WITH_BAD_ROW, age=200)
    drop(cfg, "d_payments.csv.part", GOOD2)  # still uploading
    drop(cfg, "e_payments.csv", GOOD2, age=1)  # just written: not settled
    drop(cfg, "statements.csv", GOOD, age=500)  # another kind: untouched
    drop(cfg, "readme.txt", "hello")

    report = process_inbox(cfg, "payments", handler, settle_seconds=30)

    # oldest first; the bad file did not stop the one after it
    assert calls == ["a_payments.csv", "b_payments.csv", "c_payments.csv"]
    assert [(i.name, i.status) for i in report.items] == [
        ("a_payments.csv", "processed"),
        ("b_payments.csv", "failed"),
        ("c_payments.csv", "processed"),
        ("e_payments.csv", "unsettled"),
    ]
    assert report.exit_status == 2
    p = cfg.paths
    assert sorted(x.name for x in p.inbox.iterdir() if x.is_file()) == [
        "d_payments.csv.part",
        "e_payments.csv",
        "readme.txt",
        "statements.csv",
    ]
    assert sorted(x.name for x in p.archive.iterdir()) == ["a_payments.csv", "c_payments.csv"]
    assert (p.archive / "a_payments.csv").read_text() == GOOD
    assert sorted(x.name for x in p.error.iterdir()) == ["b_payments.csv", "b_payments.csv.reason.txt"]
    reason = (p.error / "b_payments.csv.reason.txt").read_text()
    assert "amount" in reason and "b_payments.csv" in reason and "move the file back into the inbox" in reason
    # outputs delivered to the outbox, rejects beside them
    assert (p.outbox / "a_payments.total.txt").read_bytes() == b"3050\r\n"
    assert (p.outbox / "c_payments.total.txt").read_bytes() == b"500\r\n"
    with open(p.outbox / "rejects" / "c_payments.total.rejects.csv", newline="") as fh:
        got = list(csv.reader(fh))
    assert got == [
        ["account_number", "amount", "line", "reason"],
        ["001005", "abc", "3", "amount: not an amount"],
    ]
    assert report.items[2].result is not None and report.items[2].result.n_quarantined == 1

    # the record survives: a new run (new engine) sees the same content as a duplicate
    calls.clear()
    drop(cfg, "a_payments_again.csv", GOOD, age=100)
    os.utime(p.inbox / "e_payments.csv", (time.time() - 100, time.time() - 100))
    report2 = process_inbox(cfg, "payments", handler, settle_seconds=30)
    assert calls == ["e_payments.csv"]  # the duplicate was not handed to the pipeline
    statuses = {i.name: i.status for i in report2.items}
    assert statuses == {"a_payments_again.csv": "duplicate", "e_payments.csv": "processed"}
    note = (p.archive / "a_payments_again.csv.duplicate.txt").read_text()
    assert "a_payments.csv" in note and "not processed" in note
    assert (p.archive / "a_payments_again.csv").read_text() == GOOD

    table = {r["name"]: r for r in rows(cfg)}
    assert table["a_payments.csv"]["status"] == "done"
    assert table["b_payments.csv"]["status"] == "failed"
    assert json.loads(table["c_payments.csv"]["detail"])["quarantined"] == 1
    assert json.loads(table["a_payments.csv"]["outputs"]) == [str(p.outbox / "a_payments.total.txt")]
    assert len(table) == 4  # a, b, c, e: the duplicate added no row


def test_failed_content_is_retried_and_same_name_does_not_overwrite(cfg: BillerConfig) -> None:
    handler = total_handler()
    drop(cfg, "x_payments.csv", MISSING_COLUMN)
    assert [i.status for i in process_inbox(cfg, "payments", handler).items] == ["failed"]
    # dropped again unchanged: tried again (it may have failed for a reason fixed since)
    drop(cfg, "x_payments.csv", MISSING_COLUMN)
    assert [i.status for i in process_inbox(cfg, "payments", handler).items] == ["failed"]
    assert (cfg.paths.error / "x_payments.csv").exists()
    second = [
        x.name for x in cfg.paths.error.iterdir() if x.name.startswith("x_payments.") and x.suffix == ".csv"
    ]
    assert len(second) == 2  # the second copy got its own name, nothing overwritten
    assert [r["attempts"] for r in rows(cfg)] == [2]
    # the fixed file (new content, same name) goes through
    drop(cfg, "x_payments.csv", GOOD)
    assert [i.status for i in process_inbox(cfg, "payments", handler).items] == ["processed"]


def test_busy_and_stale_claims(cfg: BillerConfig) -> None:
    from caselle_ic.ops.inbox_scan import sha256_file

    path = drop(cfg, "y_payments.csv", GOOD)
    url = default_ledger_url(cfg)
    other = InboxStore(url)
    claim = other.claim(
        biller=cfg.biller_guid.lower(),
        biller_name=cfg.name,
        sha256=sha256_file(path),
        kind="payments",
        name=path.name,
        size=1,
    )
    other.close()
    assert claim.outcome == "claimed"
    calls: list[str] = []
    report = process_inbox(cfg, "payments", total_handler(calls))
    assert [i.status for i in report.items] == ["busy"] and calls == [] and path.exists()
    # the other run died: after stale_after_seconds its claim is taken over
    report = process_inbox(cfg, "payments", total_handler(calls), stale_after_seconds=0)
    assert [i.status for i in report.items] == ["processed"] and calls == ["y_payments.csv"]
    assert rows(cfg)[0]["attempts"] == 2


def test_unusable_ledger_is_a_clear_error(cfg: BillerConfig) -> None:
    drop(cfg, "z_payments.csv", GOOD)
    with pytest.raises(LedgerError, match="cannot open the inbox table"):
        process_inbox(
            cfg, "payments", total_handler(), ledger_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/x"
        )


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_runs_at_once_process_each_file_once(
    db: str, biller_toml: Path, request: pytest.FixtureRequest
) -> None:
    cfg = load_config(biller_toml)
    url = default_ledger_url(cfg)
    if db == "postgres":  # a schema of its own: the ledger's migrations create the table
        from tests.fixtures.ledgers import drop_schema, pg_schema_url

        pg_url = request.getfixturevalue("pg_url")
        schema, url = pg_schema_url(pg_url)
        request.addfinalizer(lambda: drop_schema(pg_url, schema))
    n = 24
    for i in range(n):
        drop(cfg, f"p{i:02d}_payments.csv", f"account_number,amount\n001001,{i}.00\n", age=1000 - i)
    log = biller_toml.parent / "calls.log"
    kit = Path(__file__).with_name("inboxkit.py")
    procs = [
        subprocess.Popen(
            [sys.executable, str(kit), str(biller_toml), url, str(log)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for pr in procs:
        _, err = pr.communicate(timeout=120)
        assert pr.returncode == 0, err
    calls = log.read_text().split()
    assert sorted(calls) == [f"p{i:02d}_payments.csv" for i in range(n)]  # each exactly once
    assert sorted(x.name for x in cfg.paths.archive.iterdir()) == sorted(calls)
    assert not any(cfg.paths.inbox.glob("*.csv"))
    assert len(rows(cfg, url)) == n
    totals = sorted(int((cfg.paths.outbox / f"p{i:02d}_payments.total.txt").read_text()) for i in range(n))
    assert totals == [i * 100 for i in range(n)]


def test_records_to_retry_keep_the_input_in_the_inbox(cfg: BillerConfig) -> None:
    """A pipeline that could not send everything (Caselle down for some) gets the file again."""
    down = {"value": True}
    sent: list[str] = []
    inner = total_handler()

    def handler(path: Path, outbox: Path) -> RunResult:
        result = inner(path, outbox)
        accounts = read_text_csv(path, required=["account_number"])["account_number"].tolist()
        todo = [a for a in accounts if a not in sent]
        now = todo[:1] if down["value"] else todo  # while "down", only one gets through
        sent.extend(now)
        result.keep_for_retry(len(todo) - len(now))
        return result

    drop(cfg, "r_payments.csv", GOOD)
    report = process_inbox(cfg, "payments", handler)
    assert [(i.status, i.exit_status) for i in report.items] == [("retry", 2)]
    assert "1 record(s) could not be sent now" in report.items[0].reason
    assert (cfg.paths.inbox / "r_payments.csv").exists() and not cfg.paths.archive.exists()
    assert rows(cfg)[0]["status"] == "failed"
    down["value"] = False
    report = process_inbox(cfg, "payments", handler)
    assert [i.status for i in report.items] == ["processed"]
    assert sent == ["001001", "001002"]
    assert (cfg.paths.archive / "r_payments.csv").exists()
    assert rows(cfg)[0]["status"] == "done" and rows(cfg)[0]["attempts"] == 2


def test_cli_inbox_command(biller_toml: Path) -> None:
    """`caselle-ic inbox` as cron would run it: nothing waiting is 0; a bad file is 2 and in error/."""
    from tests.conftest import run_cli

    cfg = load_config(biller_toml)
    out = run_cli("inbox", "--config", str(biller_toml), "--kind", "payments")
    assert out.returncode == 0, out.stderr
    assert "inbox payments for Sample City Utilities: processed 0" in out.stderr
    drop(cfg, "bad_payments.csv", "this is not, a payment export\n")
    drop(cfg, "notes.txt", "hello")
    out = run_cli("inbox", "--config", str(biller_toml), "--kind", "payments", "--settle", "0")
    assert out.returncode == 2, out.stderr
    assert "failed    bad_payments.csv" in out.stderr
    assert "not recognised (left in the inbox): notes.txt" in out.stderr
    assert (cfg.paths.error / "bad_payments.csv.reason.txt").exists()
    assert (cfg.paths.inbox / "notes.txt").exists()
