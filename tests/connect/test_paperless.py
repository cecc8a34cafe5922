"""Paperless sync: the rules on frames, then the CLI end to end against the emulator."""

from __future__ import annotations

import csv
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from caselle_ic.emulator.process import EmulatorProcess, free_port
from caselle_ic.sync.paperless import prepare_changes, run_paperless_sync
from tests.conftest import SAMPLES, run_cli

DENVER = ZoneInfo("America/Denver")


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_number": pd.Series([r[0] for r in rows], dtype="string"),
            "paperless": pd.Series([r[1] for r in rows], dtype="string"),
            "changed_at": pd.Series([r[2] for r in rows], dtype="string"),
            "_line": range(2, len(rows) + 2),
        }
    )


def write_log(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["account_number", "paperless", "changed_at"])
        w.writerows(rows)
    return path


# -- rules ------------------------------------------------------------------------------
def test_latest_change_per_account_wins():
    latest, rejects, superseded = prepare_changes(
        frame(
            [
                ("001001", "true", "2025-06-01T08:00:00"),
                ("001001", "false", "2025-06-02T08:00:00"),
                ("1001", "Y", "2025-06-01T23:00:00"),  # same customer, earlier
                ("001002", "N", "2025-06-01T08:00:00-06:00"),
                ("001002", "1", "2025-06-01T14:00:00Z"),  # the same instant: the later line wins
            ]
        ),
        DENVER,
    )
    assert rejects.empty and superseded == 3
    got = {
        r.customer_number: (bool(r.paperless), bool(r.send_paper), r.changed_at) for r in latest.itertuples()
    }
    assert got == {
        1001: (False, True, "2025-06-02T14:00:00.000000Z"),  # 08:00 Denver (MDT) = 14:00 UTC
        1002: (True, False, "2025-06-01T14:00:00.000000Z"),
    }


def test_values_accepted_for_paperless():
    rows = [
        (f"{1000 + i:06d}", v, "2025-06-01")
        for i, v in enumerate(["TRUE", "y", "1", "False", "N", "0", "Yes", "no"])
    ]
    latest, rejects, _ = prepare_changes(frame(rows), DENVER)
    assert rejects.empty
    assert latest["paperless"].tolist() == [True, True, True, False, False, False, True, False]
    assert latest["send_paper"].tolist() == [not p for p in latest["paperless"].tolist()]


def test_bad_rows_are_quarantined_with_a_reason():
    latest, rejects, _ = prepare_changes(
        frame(
            [
                ("ABC-1041", "true", "2025-06-01T08:00:00"),
                ("001002", "maybe", "2025-06-01T08:00:00"),
                ("001002", "true", "2025-06-01T07:00:00"),  # held back with its account
                ("001003", "true", "yesterday"),
                ("001004", "true", "2025-11-02T01:30:00"),  # ambiguous: the DST change in Denver
                ("001005", "true", "2025-11-02T01:30:00-07:00"),  # the same with an offset is fine
                ("99999999999", "true", "2025-06-01"),
                ("", "true", "2025-06-01"),
            ]
        ),
        DENVER,
    )
    assert latest["customer_number"].tolist() == [1005]
    reasons = dict(zip(rejects["_line"], rejects["reason"], strict=True))
    assert set(reasons) == {2, 3, 4, 5, 6, 8, 9}
    assert "not numeric" in reasons[2] and "not numeric" in reasons[9]
    assert "paperless must be" in reasons[3]
    assert reasons[4] == "not sent: line 3 of the same account is invalid"
    assert "ISO 8601" in reasons[5] and "ISO 8601" in reasons[6]
    assert "too large" in reasons[8]


# -- end to end ------------------------------------------------------------------------
def expected_from_log(path: Path, tz: ZoneInfo) -> dict[int, bool]:
    """An independent reading of the log: latest change per numeric account -> sendPaper."""
    latest: dict[int, tuple[datetime, int, bool]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            if not row["account_number"].isdigit():
                continue
            when = datetime.fromisoformat(row["changed_at"].replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=tz)
            paperless = row["paperless"].strip().lower() in ("true", "y", "yes", "1")
            key = int(row["account_number"])
            if key not in latest or (when, line) >= latest[key][:2]:
                latest[key] = (when, line, paperless)
    return {k: not v[2] for k, v in latest.items()}


def test_sample_log_end_to_end_and_rerun_sends_nothing(
    sample_toml: Path, sample_emu: EmulatorProcess, tmp_path
):
    sample = SAMPLES / "paperless.csv"
    out = tmp_path / "out"
    first = run_cli("paperless", str(sample), "--config", str(sample_toml), "--out", str(out))
    assert first.returncode == 1, first.stderr  # the non-numeric account
    assert "1 record(s) quarantined" in first.stderr
    updates = sample_emu.paper_updates()
    sent = {u["customerNumber"]: u["sendPaperStatement"] for u in updates}
    assert sent == expected_from_log(sample, DENVER)
    assert len(updates) == len(sent)  # one update per account
    with (out / "rejects" / "paperless.rejects.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["account_number", "paperless", "changed_at", "line", "reason"]
    assert [r[0] for r in rows[1:]] == ["ABC-1041"] and "not numeric" in rows[1][4]

    again = run_cli("paperless", str(sample), "--config", str(sample_toml), "--out", str(out))
    assert again.returncode == 1
    assert "sent 0" in again.stderr and f"already sent {len(sent)}" in again.stderr
    assert len(sample_emu.paper_updates()) == len(updates)  # nothing sent again


def test_clean_log_exits_0_and_stale_changes_are_not_sent(
    awkward_toml: Path, awkward_emu: EmulatorProcess, tmp_path
):
    first = write_log(
        tmp_path / "day1.csv",
        [("001001", "true", "2025-06-02T10:00:00"), ("001002", "false", "2025-06-02T10:00:00")],
    )
    r = run_cli("paperless", str(first), "--config", str(awkward_toml))
    assert r.returncode == 0, r.stderr
    # day 2 carries a late entry older than what was sent for 1001, and a new one for 1002
    second = write_log(
        tmp_path / "day2.csv",
        [("001001", "false", "2025-06-01T09:00:00"), ("001002", "true", "2025-06-03T10:00:00")],
    )
    r = run_cli("paperless", str(second), "--config", str(awkward_toml))
    assert r.returncode == 0, r.stderr
    assert "stale 1" in r.stderr and "sent 1" in r.stderr
    assert [(u["customerNumber"], u["sendPaperStatement"]) for u in awkward_emu.paper_updates()] == [
        (1001, False),
        (1002, True),
        (1002, False),
    ]


def test_unknown_customer_is_quarantined_with_caselles_reason(
    awkward_toml: Path, awkward_emu: EmulatorProcess, tmp_path
):
    log = write_log(
        tmp_path / "log.csv",
        [("009999", "true", "2025-06-02T10:00:00"), ("001048", "true", "2025-06-02T10:00:00")],
    )
    result = run_paperless_sync(log, awkward_toml, out_dir=tmp_path / "out")
    assert result.exit_status == 1 and result.counts["sent"] == 1 and result.counts["refused by Caselle"] == 1
    assert "no such customer" in result.quarantined["reason"].iloc[0]
    assert [u["customerNumber"] for u in awkward_emu.paper_updates()] == [1048]
    rerun = run_paperless_sync(log, awkward_toml, out_dir=tmp_path / "out")
    assert rerun.counts["sent"] == 0 and rerun.counts["already sent"] == 2


def test_failover_from_14_to_111_with_112_113(awkward_emu: EmulatorProcess, awkward_env, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/tp/api/cr0/graphql"
    cfg_path = awkward_emu.write_config(
        tmp_path / "b.toml",
        oauth=False,
        settings={
            "14": dead,
            "111": awkward_emu.graphql_url_under("dr"),
            "112": "dr-user",
            "113": "env:CASELLE_DP_PASSWORD",
        },
    )
    log = write_log(tmp_path / "log.csv", [("001050", "true", "2025-06-02T10:00:00")])
    result = run_paperless_sync(log, cfg_path)
    assert result.exit_status == 0 and result.counts["sent"] == 1
    assert result.extra["endpoint"] == "paperless-secondary"
    assert any("failed over" in n for n in result.notes)
    assert awkward_emu.paper_updates()[0]["customerNumber"] == 1050


def test_caselle_down_everywhere_fails_the_run_and_a_rerun_finishes_it(
    awkward_emu: EmulatorProcess, awkward_env, tmp_path
):
    cfg_path = awkward_emu.write_config(tmp_path / "b.toml")
    log = write_log(
        tmp_path / "log.csv", [(f"{n:06d}", "true", "2025-06-02T10:00:00") for n in (1001, 1002, 1003)]
    )
    awkward_emu.faults(fail_next=100)
    # a 2 s retry window instead of 30: the run gives up the same way, sooner
    r = run_cli("paperless", str(log), "--config", str(cfg_path), env={"CASELLE_IC_RETRY_WINDOW": "2"})
    assert r.returncode == 2 and "rerun" in r.stderr
    awkward_emu.reset_faults()
    r = run_cli("paperless", str(log), "--config", str(cfg_path))
    assert r.returncode == 0 and "sent 3" in r.stderr


@pytest.mark.postgres
def test_paperless_with_a_postgresql_ledger(
    awkward_toml: Path, awkward_emu: EmulatorProcess, pg_url: str, tmp_path
):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    try:
        log = write_log(
            tmp_path / "log.csv",
            [("001001", "true", "2025-06-02T10:00:00"), ("001049", "false", "2025-06-02T11:00:00")],
        )
        r = run_cli("paperless", str(log), "--config", str(awkward_toml), "--ledger", url)
        assert r.returncode == 0, r.stderr
        r = run_cli("paperless", str(log), "--config", str(awkward_toml), "--ledger", url)
        assert r.returncode == 0 and "sent 0" in r.stderr
        assert len(awkward_emu.paper_updates()) == 2
        with admin.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f'select account, paperless, state from "{schema}".paperless_changes order by account'
                )
            ).all()
            runs = conn.execute(sa.text(f'select status from "{schema}".runs')).scalars().all()
        assert [tuple(r) for r in rows] == [("1001", True, "sent"), ("1049", False, "sent")]
        assert runs == ["ok", "ok"]
        assert not (tmp_path / "biller" / "state" / "ledger.db").exists()  # the SQLite default was not used
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_missing_column_is_exit_2_naming_it(awkward_toml: Path, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("account_number,changed_at\n001001,2025-06-01\n", encoding="utf-8")
    r = run_cli("paperless", str(bad), "--config", str(awkward_toml))
    assert r.returncode == 2 and "paperless" in r.stderr and "bad.csv" in r.stderr


@pytest.mark.prefect
def test_paperless_flow(prefect_harness, awkward_toml: Path, awkward_emu: EmulatorProcess, tmp_path):
    from caselle_ic.flows.paperless import paperless_sync

    log = write_log(tmp_path / "log.csv", [("001003", "false", "2025-06-02T10:00:00")])
    result = paperless_sync(log=str(log), config=str(awkward_toml))
    assert result.kind == "paperless-sync" and result.counts["sent"] == 1
    assert paperless_sync.name == "paperless-sync"
    assert awkward_emu.paper_updates()[0] == {
        **awkward_emu.paper_updates()[0],
        "customerNumber": 1003,
        "sendPaperStatement": True,
    }
