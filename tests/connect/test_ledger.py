"""The ledger on real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from caselle_ic.errors import ConfigError
from caselle_ic.store import migrations
from caselle_ic.store import tables as tables_module
from caselle_ic.store.ledger import Ledger, ledger_url_for, open_ledger, utc_text
from tests.fixtures.ledgers import drop_schema


def change(account: str, changed_at: str, paperless: bool = True, state: str = "sent") -> dict[str, object]:
    return {
        "biller": "b-1",
        "account": account,
        "changed_at": changed_at,
        "paperless": paperless,
        "state": state,
        "sent_at": utc_text(),
        "run_id": None,
        "detail": None,
    }


def exercise(ledger: Ledger) -> None:
    """The same checks on either database."""
    assert ledger.version() == len(migrations.MIGRATIONS)
    run = ledger.start_run("b-1", "paperless-sync")
    ledger.finish_run(run, "ok", {"sent": 2})
    row = ledger.run(run)
    assert row is not None and row["status"] == "ok" and row["counts"] == '{"sent": 2}'
    assert row["finished_at"] >= row["started_at"]
    t1, t2 = "2025-06-01T14:20:00.000000Z", "2025-06-02T09:00:00.000000Z"
    ledger.record_paperless([change("1001", t1), change("1002", t1, False)])
    ledger.record_paperless([change("1001", t1, False), change("1001", t2)])  # the first is a duplicate
    rows = ledger.paperless_rows("b-1")
    assert [(r["account"], r["changed_at"], r["paperless"]) for r in rows] == [
        ("1001", t1, True),  # the first record of a change stays
        ("1001", t2, True),
        ("1002", t1, False),
    ]
    assert ledger.paperless_latest("b-1", ["1001", "1002", "1003"]) == {"1001": t2, "1002": t1}
    assert ledger.paperless_latest("other-biller", ["1001"]) == {}


def test_sqlite_ledger(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    with open_ledger(url) as ledger:
        exercise(ledger)
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    with open_ledger(url) as again:  # reopening runs no migration twice
        with again.begin() as conn:
            versions = conn.execute(sa.select(tables_module.schema_version.c.version)).scalars().all()
        assert versions == [v for v, _, _ in migrations.MIGRATIONS]
        assert len(again.paperless_rows("b-1")) == 3


def test_default_url_is_under_the_state_directory(awkward_cfg, tmp_path: Path):
    url = ledger_url_for(awkward_cfg)
    assert url == f"sqlite:///{awkward_cfg.paths.state / 'ledger.db'}"
    assert awkward_cfg.paths.state.is_dir()
    assert ledger_url_for(awkward_cfg, "postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match="not a database URL"):
        ledger_url_for(awkward_cfg, "not a url")
    with pytest.raises(ConfigError, match="supports"):
        open_ledger("mysql://u@h/db")


def test_adding_a_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(url).close()  # a database at the current version

    notes = sa.Table(
        "notes", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text)
    )
    calls = []

    def _m2_notes(conn: sa.Connection) -> None:
        calls.append(1)
        notes.create(conn)
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN operator TEXT"))

    shipped = [d for _, d, _ in migrations.MIGRATIONS]
    nxt = len(shipped) + 1
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (nxt, "notes", _m2_notes)])
    with open_ledger(url) as ledger:
        assert ledger.version() == nxt
        with ledger.begin() as conn:
            conn.execute(notes.insert().values(text="hello"))
            cols = [r[1] for r in conn.exec_driver_sql("PRAGMA table_info(runs)")]
            described = conn.execute(sa.select(tables_module.schema_version.c.description)).scalars().all()
        assert "operator" in cols and described == [*shipped, "notes"]
    open_ledger(url).close()
    assert calls == [1]  # applied once


def test_sqlite_writers_from_two_threads_queue_instead_of_failing(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            with open_ledger(url) as ledger:
                for i in range(30):
                    ledger.record_paperless([change(f"{prefix}{i}", "2025-06-01T00:00:00.000000Z")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("7", "8", "9")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_ledger(url) as ledger:
        assert len(ledger.paperless_rows("b-1")) == 90


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"  # not created: open_ledger creates it
    yield name
    drop_schema(pg_url, name)


@pytest.mark.postgres
def test_postgresql_ledger(pg_url: str, pg_schema: str):
    with open_ledger(pg_url, schema=pg_schema) as ledger:
        assert ledger.dialect == "postgresql"
        exercise(ledger)
    with open_ledger(pg_url, schema=pg_schema) as again:
        assert len(again.paperless_rows("b-1")) == 3
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        tables = set(
            conn.execute(
                sa.text("select table_name from information_schema.tables where table_schema = :s"),
                {"s": pg_schema},
            ).scalars()
        )
    engine.dispose()
    assert tables == {"schema_version", *tables_module.metadata.tables}


@pytest.mark.postgres
def test_postgresql_fresh_database_opened_by_two_processes_at_once(pg_url: str, pg_schema: str):
    open_ledger(pg_url, schema=pg_schema).close()  # create the schema itself first
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # back to an empty schema: both openers must migrate
        conn.execute(sa.text(f'DROP SCHEMA "{pg_schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{pg_schema}"'))
    engine.dispose()
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_ledger(pg_url, schema=pg_schema).close()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_ledger(pg_url, schema=pg_schema) as ledger:
        assert ledger.version() == len(migrations.MIGRATIONS)


def test_ledger_errors_name_the_database_not_the_password(tmp_path: Path):
    url = "postgresql+psycopg://someone:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(Exception) as err:
        open_ledger(url)
    assert "hunter2" not in str(err.value) and "***" in str(err.value)
