"""Fixtures of the audit tests: a day already through the payments run (``posted_day``), on
the fifty-accounts emulator and a SQLite ledger (tests/fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.payments.pipeline import run_daily_payments
from tests.posting.postkit import dp, lb, reversal, write_export

DAY = "2026-11-02"
NOW = "2026-11-03T07:00:00"


@dataclass
class Day:
    """A day through the payments run: 10 Data Pump payments dp(0..9), 3 lockbox payments
    lb(0..2) in ``out/300_PYMT_20261103.TXT``, and a refund of dp(3), all dated DAY."""

    emu: EmulatorProcess
    cfg: Path
    ledger: str
    export: Path
    out: Path
    audit_dir: Path

    def receipt_of(self, row: dict[str, str]) -> int:
        (number,) = [
            r["receipt_number"]
            for r in self.emu.receipts()
            if r["confirmation_number"] == row["payment_guid"]
        ]
        return int(number)

    @property
    def lockbox(self) -> Path:
        return self.out / "300_PYMT_20261103.TXT"


def rows_of_day() -> list[dict[str, str]]:
    return [dp(i) for i in range(10)] + [lb(i) for i in range(3)] + [reversal("REFUND", dp(3), day=DAY)]


def post_day(emulator: EmulatorProcess, cfg: Path, ledger: str, tmp_path: Path) -> Day:
    export = write_export(tmp_path / "payments-1102.csv", rows_of_day())
    out = tmp_path / "out"
    result = run_daily_payments(export, cfg, out, now=NOW, ledger_url=ledger)
    assert result.exit_status == 0, result.summary_lines()
    return Day(emulator, cfg, ledger, export, out, tmp_path / "audit")


@pytest.fixture
def posted_day(fifty_emu: EmulatorProcess, fifty_toml: Path, sqlite_ledger: str, tmp_path: Path) -> Day:
    return post_day(fifty_emu, fifty_toml, sqlite_ledger, tmp_path)
