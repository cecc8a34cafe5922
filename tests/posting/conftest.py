"""Fixtures of the posting tests: an emulator seeded with the 50 sample accounts, the
sample biller pointed at it, and a ledger URL on SQLite or on PostgreSQL (a schema each)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from caselle_ic.emulator.process import EmulatorProcess
from tests.conftest import EmulatorPool, write_seed_extract


@pytest.fixture
def emu(emulator_pool: EmulatorPool, tmp_path_factory: pytest.TempPathFactory) -> EmulatorProcess:
    seed = write_seed_extract(tmp_path_factory.mktemp("seed") / "statements.csv")
    return emulator_pool.get(seed)


@pytest.fixture
def cfg_path(emu: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k, v in emu.env().items():
        monkeypatch.setenv(k, v)
    return emu.write_config(tmp_path / "biller" / "biller.toml")


def pg_schema_url(pg_url: str) -> tuple[str, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema, f"{pg_url}?options=-csearch_path%3D{schema}"


def drop_schema(pg_url: str, schema: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    schema, url = pg_schema_url(pg_url)
    try:
        yield url
    finally:
        drop_schema(pg_url, schema)


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
