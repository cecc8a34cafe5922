"""The ledger database: what was sent to Caselle, so nothing is sent twice (SPEC §6, §8).

SQLAlchemy 2 Core, one code path for SQLite (the default: ``<[paths].state>/ledger.db``)
and PostgreSQL (``--ledger postgresql+psycopg://user@host/db``).

The engine factory (:func:`open_ledger`: SQLite set up for concurrent writers, PostgreSQL
in a schema of its own when asked), the ledger's URL, and :class:`Ledger`: transactions,
the migration run, the ``runs`` and ``paperless_changes`` queries. The tables are in
:mod:`caselle_ic.store.tables`, the numbered migrations in :mod:`caselle_ic.store.migrations`.

The schema is created on first use and upgraded by the migrations this database has not
had yet, under a lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level advisory
lock), so two processes opening a fresh database at once do not collide.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import ConfigError, LedgerError
from caselle_ic.store import migrations
from caselle_ic.store.tables import paperless_changes, runs, schema_version

SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x_CA5E_11E  # advisory lock key for migrations


def utc_text(moment: datetime | None = None) -> str:
    """A timestamp as fixed-width UTC text (naive datetimes are taken as UTC)."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def biller_key(cfg: BillerConfig) -> str:
    """The biller's key in the ledger: its BillerGuid (stable when the biller is renamed)."""
    return cfg.biller_guid.lower()


def mask_url(url: str | sa.URL) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def ledger_url_for(cfg: BillerConfig, override: str | None = None) -> str:
    """``--ledger URL`` when given, else the SQLite file ``<[paths].state>/ledger.db``."""
    if override:
        try:
            sa.make_url(override)
        except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ConfigError(
                "--ledger is not a database URL; use sqlite:////abs/path/ledger.db or "
                "postgresql+psycopg://user@host/db"
            ) from None
        return override
    state = Path(cfg.paths.state)
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory {state} ({exc.strerror}); fix [paths].state",
            file=cfg.source,
        ) from None
    return f"sqlite:///{state / 'ledger.db'}"


def _sqlite_setup(engine: Engine) -> None:
    """WAL, busy timeout, durable commits, and BEGIN IMMEDIATE for every transaction.

    pysqlite's own transaction handling is switched off (the SQLAlchemy recipe) so each
    transaction takes the write lock up front: two processes never deadlock upgrading a
    read lock, they queue on the busy timeout instead.
    """

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Ledger:
    """An open ledger database. Use :func:`open_ledger`.

    ``owned=False``: a view of an engine another caller opened and closes (:func:`lending`);
    :meth:`close` leaves it open.
    """

    def __init__(self, engine: Engine, *, schema: str | None = None, owned: bool = True):
        self.engine = engine
        self.schema = schema
        self.url = mask_url(engine.url)
        self.owned = owned

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; database errors become LedgerError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise _ledger_error(self.url, exc) from None

    # -- schema -----------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply the migrations this database has not had yet; returns the version."""
        with self.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            schema_version.create(conn, checkfirst=True)
            applied = set(conn.execute(sa.select(schema_version.c.version)).scalars())
            for version, description, fn in migrations.MIGRATIONS:
                if version in applied:
                    continue
                fn(conn)
                conn.execute(
                    schema_version.insert().values(
                        version=version, description=description, applied_at=utc_text()
                    )
                )
        return max(v for v, _, _ in migrations.MIGRATIONS)

    def version(self) -> int:
        with self.begin() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)

    # -- runs ---------------------------------------------------------------------------
    def start_run(self, biller: str, kind: str, input_path: str | Path | None = None) -> str:
        run_id = str(uuid.uuid4())
        name = digest = None
        if input_path is not None:
            p = Path(input_path)
            name = p.name
            digest = file_sha256(p)
        with self.begin() as conn:
            conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    biller=biller,
                    kind=kind,
                    input_name=name,
                    input_sha256=digest,
                    started_at=utc_text(),
                    status="running",
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int] | None = None) -> None:
        with self.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(
                    finished_at=utc_text(),
                    status=status,
                    counts=json.dumps(dict(counts or {}), sort_keys=True),
                )
            )

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return dict(row) if row else None

    # -- paperless ----------------------------------------------------------------------
    def paperless_latest(self, biller: str, accounts: Iterable[str]) -> dict[str, str]:
        """For each account, the changed_at of the latest change already recorded."""
        wanted = sorted(set(accounts))
        out: dict[str, str] = {}
        with self.begin() as conn:
            for chunk in _chunks(wanted, 500):
                rows = conn.execute(
                    sa.select(paperless_changes.c.account, sa.func.max(paperless_changes.c.changed_at))
                    .where(paperless_changes.c.biller == biller, paperless_changes.c.account.in_(chunk))
                    .group_by(paperless_changes.c.account)
                )
                out.update({str(a): str(t) for a, t in rows})
        return out

    def record_paperless(self, rows: list[dict[str, Any]]) -> None:
        """Record sent (or refused) changes; a change already recorded is left as it is."""
        if not rows:
            return
        stmt = self._insert_ignore(paperless_changes, ("biller", "account", "changed_at"))
        with self.begin() as conn:
            conn.execute(stmt, rows)

    def paperless_rows(self, biller: str) -> list[dict[str, Any]]:
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(paperless_changes)
                .where(paperless_changes.c.biller == biller)
                .order_by(paperless_changes.c.account, paperless_changes.c.changed_at)
            ).mappings()
            return [dict(r) for r in rows]

    def _insert_ignore(self, table: sa.Table, keys: tuple[str, ...]) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        raise LedgerError(f"the ledger supports SQLite and PostgreSQL, not {self.dialect}")


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _ledger_error(url: str, exc: sa.exc.SQLAlchemyError) -> LedgerError:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return LedgerError(f"the ledger database {url} failed: {type(orig).__name__}: {first}")


#: The ledger lent to the code this context runs (:func:`lending`): (url, schema, ledger).
_LENT: ContextVar[tuple[str, str | None, Ledger] | None] = ContextVar("caselle_ic_lent_ledger", default=None)


@contextmanager
def lending(url: str, ledger: Ledger, *, schema: str | None = None) -> Iterator[None]:
    """Within this block, :func:`open_ledger` of the same ``url`` and ``schema`` in this
    context returns a view of ``ledger``: the same engine, already migrated, whose ``close``
    leaves the engine to its owner.

    An inbox pickup opens the ledger once for its claims and lends it to the pipelines it
    runs, in its thread (a subflow too): one engine and one connection pool per pickup, not
    a second engine, connect and migration check per file.
    """
    token = _LENT.set((url, schema, ledger))
    try:
        yield
    finally:
        _LENT.reset(token)


def open_ledger(url: str, *, schema: str | None = None) -> Ledger:
    """Open the ledger at ``url``, creating or upgrading its schema (or the lent one:
    :func:`lending`).

    ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing —
    tests use a unique schema each so they are isolated.
    """
    lent = _LENT.get()
    if lent is not None and lent[:2] == (url, schema):
        return Ledger(lent[2].engine, schema=schema, owned=False)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"{url!r} is not a database URL") from None
    masked = mask_url(parsed)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(
                    f"cannot create the directory of the ledger {masked}: {exc.strerror}"
                ) from None
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"connect_timeout": 10}
    else:
        raise ConfigError(f"the ledger supports sqlite:/// and postgresql+psycopg:// URLs, not {masked}")
    if schema is not None and parsed.get_backend_name() != "postgresql":
        raise ConfigError("a ledger schema name is only supported on PostgreSQL")
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"cannot open the ledger {masked}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_setup(engine)
    if schema is not None:
        try:
            with engine.begin() as conn:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        except sa.exc.SQLAlchemyError as exc:
            raise _ledger_error(masked, exc) from None
        engine = engine.execution_options(schema_translate_map={None: schema})
    ledger = Ledger(engine, schema=schema)
    ledger.migrate()
    return ledger


__all__ = [
    "Ledger",
    "biller_key",
    "file_sha256",
    "ledger_url_for",
    "lending",
    "open_ledger",
    "utc_text",
]
