"""``caselle-ic audit`` as a process: exit 0 / 1 / 2, ``--json``, the archive as the export
side, and the audit of a day whose payments run was killed and resumed under faults."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.failpoints import ENV as FAILPOINT
from tests.audit.conftest import DAY, NOW, Day, rows_of_day
from tests.conftest import run_cli
from tests.posting.postkit import dp, write_export

SLOW = {"CASELLE_IC_POST_BATCH": "3", "CASELLE_IC_POST_WORKERS": "2", "CASELLE_IC_SETTLE_GRACE": "1"}


def audit_cli(cfg: Path, out: Path, ledger: str, *extra: str, **env: str):
    return run_cli(
        "audit", "--config", str(cfg), "--date", DAY, "--out", str(out), "--ledger", ledger, *extra, env=env
    )


def test_exit_codes_and_json(posted_day: Day):
    r = audit_cli(
        posted_day.cfg, posted_day.audit_dir, posted_day.ledger, "--export", str(posted_day.export), "--json"
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["exit_status"] == 0 and summary["discrepancies"] == 0
    assert summary["totals"] == {"export": "209.95", "ledger": "209.95", "caselle": "209.95"}
    plain = audit_cli(
        posted_day.cfg, posted_day.audit_dir, posted_day.ledger, "--export", str(posted_day.export)
    )
    assert plain.returncode == 0 and "clean, no discrepancy" in plain.stderr, (
        plain.stderr
    )  # --json: stdout only

    posted_day.emu.receipt_op("void", posted_day.receipt_of(dp(7)))
    r = audit_cli(
        posted_day.cfg, posted_day.audit_dir, posted_day.ledger, "--export", str(posted_day.export), "--json"
    )
    assert r.returncode == 1, r.stderr
    summary = json.loads(r.stdout)
    assert summary["by_kind"]["voided_without_reversal"] == 1 and summary["totals"]["caselle"] == "192.88"
    assert str(posted_day.audit_dir / f"audit-{DAY}.csv") in summary["outputs"]
    r = audit_cli(posted_day.cfg, posted_day.audit_dir, posted_day.ledger, "--export", str(posted_day.export))
    assert r.returncode == 1 and "1 discrepancy (voided_without_reversal 1)" in r.stderr, r.stderr


def test_the_archive_is_the_default_export_side(posted_day: Day):
    archive = posted_day.cfg.parent / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    shutil.copy(posted_day.export, archive / posted_day.export.name)
    (archive / "statements-1101.csv").write_text("not, a payment export\r\n")  # another kind: not read
    r = audit_cli(posted_day.cfg, posted_day.audit_dir, posted_day.ledger, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["export rows"] == 14


def test_cannot_run_is_exit_2(posted_day: Day, tmp_path: Path):
    r = audit_cli(posted_day.cfg, tmp_path / "a", f"sqlite:///{tmp_path / 'nope' / 'ledger.db'}")
    assert r.returncode == 2 and "no ledger at" in r.stderr
    r = run_cli(
        "audit", "--config", str(posted_day.cfg), "--date", "2026-13-02", "--out", str(tmp_path / "a")
    )
    assert r.returncode == 2 and "is not a date YYYY-MM-DD" in r.stderr
    posted_day.emu.stop()  # Caselle unreachable: nothing can be proven
    r = audit_cli(posted_day.cfg, tmp_path / "a", posted_day.ledger, "--export", str(posted_day.export))
    assert r.returncode == 2 and "cannot read Caselle's receipts" in r.stderr, r.stderr
    assert not (tmp_path / "a" / f"audit-{DAY}.csv").exists()


def test_a_day_killed_and_resumed_under_faults_audits_clean(
    fifty_emu: EmulatorProcess, fifty_toml: Path, sqlite_ledger: str, tmp_path: Path
):
    export = write_export(tmp_path / "payments-1102.csv", rows_of_day() + [dp(i) for i in range(10, 40)])
    out = tmp_path / "out"
    args = ("payments", str(export), "--config", str(fifty_toml), "--out", str(out), "--now", NOW)
    r = run_cli(*args, "--ledger", sqlite_ledger, env={**SLOW, FAILPOINT: "post.sent:3"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    fifty_emu.faults(drop_after_commit=2, fail_next=2)  # the resumed run meets lost answers and 500s
    r = run_cli(*args, "--ledger", sqlite_ledger, env=SLOW)
    assert r.returncode == 0, r.stderr
    fifty_emu.reset_faults()
    before = fifty_emu.requests()["totals"]["mutation"]
    r = audit_cli(fifty_toml, tmp_path / "audit", sqlite_ledger, "--export", str(export), "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads(r.stdout)["counts"]["Data Pump payments"] == 40
    assert fifty_emu.requests()["totals"]["mutation"] == before
