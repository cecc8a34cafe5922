"""RTDR balance: the CLI's exact JSON, failover 8 -> 88, and the balance-refresh run."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from caselle_ic.emulator.process import EmulatorProcess, free_port
from caselle_ic.errors import UsageError
from caselle_ic.sync.balance import customer_number_of, run_balance_refresh
from tests.conftest import run_cli
from tests.fixtures.emulators import AWKWARD_ROWS


def seeded() -> dict[int, tuple[str, str]]:
    """customerNumber -> (name, balance) read back from the seed rows with csv, independently."""
    out: dict[int, tuple[str, str]] = {}
    for account, name, balance in AWKWARD_ROWS:
        (clean_name,) = next(csv.reader([name]))
        text = balance.replace("$", "").replace(",", "")
        value = -Decimal(text.strip("()")) if text.startswith("(") else Decimal(text)
        out[int("".join(ch for ch in account if ch.isdigit()))] = (clean_name, f"{value:.2f}")
    return out


@pytest.mark.parametrize("account", ["001001", "001003", "00-1017", "001002"])
def test_balance_cli_prints_the_exact_json(awkward_toml: Path, account: str):
    r = run_cli("balance", account, "--config", str(awkward_toml))
    assert r.returncode == 0, r.stderr
    number = int(account.replace("-", ""))
    name, balance = seeded()[number]
    expected = json.dumps({"customerNumber": number, "name": name, "balance": balance}, separators=(",", ":"))
    assert r.stdout == expected + "\n"
    assert json.loads(r.stdout)["balance"] == balance  # a string: exact, never a float


def test_balance_cli_errors(awkward_toml: Path):
    missing = run_cli("balance", "009999", "--config", str(awkward_toml))
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr and missing.stdout == ""
    bad = run_cli("balance", "12AB", "--config", str(awkward_toml))
    assert bad.returncode == 2 and "not a Caselle customer number" in bad.stderr


def test_customer_number_of():
    assert customer_number_of(" 001001 ") == 1001
    assert customer_number_of("00-1017") == 1017
    for bad in ("", "abc", "-1", "1e5", "99999999999"):
        with pytest.raises(UsageError):
            customer_number_of(bad)


def test_balance_fails_over_from_8_to_88(awkward_emu: EmulatorProcess, awkward_env, tmp_path: Path):
    dead = f"http://127.0.0.1:{free_port()}/tp/api/cr0/graphql"
    cfg_path = awkward_emu.write_config(
        tmp_path / "b.toml", settings={"8": dead, "88": awkward_emu.graphql_url_under("secondary")}
    )
    r = run_cli("balance", "001049", "--config", str(cfg_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"customerNumber": 1049, "name": "Alan Turing", "balance": "75.25"}


def test_balance_refresh_writes_the_csv(awkward_toml: Path, tmp_path: Path):
    accounts = tmp_path / "accounts.txt"
    accounts.write_text(
        "# accounts to refresh\n001001\n\n00-1017\nnot-an-account\n009999\n001001\n", encoding="utf-8"
    )
    result = run_balance_refresh(accounts, awkward_toml, tmp_path / "out", now="2025-06-05T07:30:00")
    out = tmp_path / "out" / "balances_20250605073000.csv"
    assert result.outputs == [out] and result.exit_status == 1
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert out.read_bytes().count(b"\r\n") == len(rows)
    truth = seeded()
    assert rows[0] == ["account_number", "customer_number", "name", "balance", "retrieved_at"]
    assert rows[1:] == [
        ["001001", "1001", truth[1001][0], truth[1001][1], "2025-06-05T07:30:00-06:00"],
        ["00-1017", "1017", truth[1017][0], truth[1017][1], "2025-06-05T07:30:00-06:00"],
        ["001001", "1001", truth[1001][0], truth[1001][1], "2025-06-05T07:30:00-06:00"],
    ]
    assert result.totals["balance"] == f"{2 * Decimal(truth[1001][1]) + Decimal(truth[1017][1]):.2f}"
    assert result.rejects_path is not None
    with result.rejects_path.open(newline="", encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh))
    assert [(r["account_number"], r["line"]) for r in rejects] == [("not-an-account", "5"), ("009999", "6")]
    assert "NOT_FOUND" in rejects[1]["reason"]


def test_balance_refresh_reads_a_csv_with_account_number(awkward_toml: Path, tmp_path: Path):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("Account_Number,note\n001048,a\n001050,b\n", encoding="utf-8")
    result = run_balance_refresh(accounts, awkward_toml, tmp_path / "out", now="2025-06-05T07:30:00")
    assert result.exit_status == 0 and result.counts == {"accounts": 2, "found": 2, "quarantined": 0}
    assert result.tables["balances"]["balance"].tolist() == ["500.00", "2.56"]


@pytest.mark.prefect
def test_balance_refresh_flow(prefect_harness, awkward_toml: Path, tmp_path: Path):
    from caselle_ic.flows.balance import balance_refresh

    accounts = tmp_path / "a.txt"
    accounts.write_text("001049\n", encoding="utf-8")
    result = balance_refresh(accounts=str(accounts), config=str(awkward_toml), out_dir=str(tmp_path / "o"))
    assert balance_refresh.name == "balance-refresh"
    assert result.tables["balances"]["balance"].tolist() == ["75.25"]
