"""Fixtures of the Caselle Connect tests: an emulator seeded with customers we know."""

from __future__ import annotations

from pathlib import Path

import pytest

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.emulator.process import EmulatorProcess
from tests.conftest import EmulatorPool

#: The seed extract of these tests: (account as written, name, customer_balance as written).
SEED_ROWS = [
    ("001001", "Ada Lovelace", "1,234.50"),
    ("001002", "Grace Hopper", "0.10"),
    ("001003", '"Babbage, Charles"', "(12.00)"),
    ("00-1017", "Edsger Dijkstra", "$99.99"),
    ("001048", "Barbara Liskov", "500"),
    ("001049", "Alan Turing", "75.25"),
    ("001050", "Donald Knuth", "2.56"),
]


def write_seed(path: Path) -> Path:
    lines = ["Acct No,Customer Name,statement_date,due_date,customer_balance,last_statement_balance,ref_no"]
    for account, name, balance in SEED_ROWS:
        money = f'"{balance}"' if "," in balance else balance
        lines.append(f"{account},{name},06/01/2025,06/20/2025,{money},0.00,INV-{account}")
        lines.append(f"{account},{name},06/01/2025,06/20/2025,{money},0.00,PAY-{account}")  # a 2nd line
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    return write_seed(tmp_path / "seed.csv")


@pytest.fixture
def emu(emulator_pool: EmulatorPool, seed_file: Path) -> EmulatorProcess:
    return emulator_pool.get(seed_file)


@pytest.fixture
def env(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = emu.env()
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def cfg_path(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path) -> Path:
    return emu.write_config(tmp_path / "biller" / "biller.toml")


@pytest.fixture
def cfg(cfg_path: Path) -> BillerConfig:
    return load_config(cfg_path)
