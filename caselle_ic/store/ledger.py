"""The ledger database: what was sent to Caselle, so nothing is sent twice (SPEC §6, §8).

SQLAlchemy 2 Core, one code path for SQLite (the default: ``<[paths].state>/ledger.db``)
and PostgreSQL (``--ledger postgresql+psycopg://user@host/db``).

Schema and migrations
---------------------
The schema is created on first use and upgraded by explicit, numbered migrations:

* ``schema_version`` holds one row per applied migration.
* :data:`MIGRATIONS` lists ``(number, description, function)`` in order. Each function
  takes a ``Connection`` inside the migration transaction and emits its DDL.
* **To add a migration**: define the new tables (module level, for the queries) and a
  function ``_m<N>_<what>(conn)`` that creates or alters exactly what it adds, then append
  ``(N, "what", _m<N>_<what>)`` to :data:`MIGRATIONS`. Never edit a migration that has
  shipped: databases in the field already ran it. Migration 1 therefore creates its
  tables from its own frozen definitions (:func:`_v1_tables`), not from the module-level
  ones that later migrations may extend.

Migrations run under a lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level
advisory lock), so two processes opening a fresh database at once do not collide.

Timestamps are stored as fixed-width UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: exact,
portable, and ordered the same way as text and as time.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import ConfigError, LedgerError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x_CA5E_11E  # advisory lock key for migrations

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)


def _v1_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The tables of migration 1, frozen as they shipped."""
    runs = sa.Table(
        "runs",
        md,
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("biller", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("input_name", sa.String(500)),
        sa.Column("input_sha256", sa.String(64)),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.Column("status", sa.String(20), nullable=False),  # running, ok, quarantined, failed
        sa.Column("counts", sa.Text),  # JSON object
        sa.Index("runs_biller_kind", "biller", "kind", "started_at"),
    )
    paperless = sa.Table(
        "paperless_changes",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("biller", sa.String(200), nullable=False),
        sa.Column("account", sa.String(32), nullable=False),  # the Caselle customer number, as digits
        sa.Column("changed_at", sa.String(32), nullable=False),  # UTC, fixed width
        sa.Column("paperless", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),  # sent, rejected
        sa.Column("sent_at", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("detail", sa.Text),
        sa.UniqueConstraint("biller", "account", "changed_at", name="paperless_changes_once"),
    )
    return runs, paperless


def _v2_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The tables of migration 2 (daily payments), frozen as they shipped.

    ``payments`` is the seed's "data pump response table": one row per biller and IC
    PaymentGUID, holding the payment as first recorded (never overwritten), its resolved
    codes, and where it went (see docs/payments.md, "Exactly once", for the states).
    ``lockbox_files`` reserves every lockbox file name before the file is written, with
    the SHA-256 of its bytes, so a rerun after a crash can tell whether it was written.
    ``run_leases`` says which runs are alive: claims held by a dead run are taken over.
    """
    payments = sa.Table(
        "payments",
        md,
        sa.Column("biller", sa.String(200), primary_key=True),
        sa.Column("payment_guid", sa.String(64), primary_key=True),
        # the payment as first recorded (a later line with the same GUID must match it)
        sa.Column("transaction_type", sa.String(12), nullable=False),  # PAYMENT, REFUND, ACH_REJECT
        sa.Column("original_guid", sa.String(64), nullable=False),  # "" for a PAYMENT
        sa.Column("payment_date", sa.String(19), nullable=False),  # biller local, YYYY-MM-DDTHH:MM:SS
        sa.Column("account_number", sa.String(64), nullable=False),
        sa.Column("customer_name", sa.String(300), nullable=False),
        sa.Column("invoice_number", sa.String(100), nullable=False),
        sa.Column("invoice_type_id", sa.BigInteger),
        sa.Column("payment_type_id", sa.Integer, nullable=False),
        sa.Column("card_vendor", sa.String(20), nullable=False),
        sa.Column("obd_vendor", sa.String(20), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("export_name", sa.String(500)),
        sa.Column("export_line", sa.Integer),
        # routing (section 5), re-resolved while the payment is still pending
        sa.Column("distribution_code", sa.BigInteger),
        sa.Column("payment_code", sa.BigInteger),
        sa.Column("gl_activity", sa.BigInteger),
        sa.Column("posting_method", sa.String(10)),  # DataPump, File
        sa.Column("code_rule", sa.String(40)),
        # where it went
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("receipt_number", sa.BigInteger),  # PAYMENT: its receipt; reversal: the receipt voided
        sa.Column("receipt_amount_cents", sa.BigInteger),  # as Caselle answered
        sa.Column("receipt_distribution_code", sa.BigInteger),
        sa.Column("receipt_payment_code", sa.BigInteger),
        sa.Column("lockbox_file", sa.String(100)),
        sa.Column("lockbox_line", sa.Integer),
        sa.Column("claim_owner", sa.String(36)),  # run_id holding the row
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("reason", sa.Text),
        sa.Column("first_run_id", sa.String(36), nullable=False),
        sa.Column("last_run_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("done_at", sa.String(32)),  # posted, filed, voided, or reported
        sa.Index("payments_state", "biller", "state", "posting_method"),
        sa.Index("payments_owner", "claim_owner"),
        sa.Index("payments_original", "biller", "original_guid"),
        sa.Index("payments_last_run", "last_run_id"),
    )
    lockbox_files = sa.Table(
        "lockbox_files",
        md,
        sa.Column("biller", sa.String(200), primary_key=True),
        sa.Column("file_name", sa.String(100), primary_key=True),
        sa.Column("directory", sa.Text, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),  # planned, written, abandoned
        sa.Column("payments", sa.Integer, nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("planned_at", sa.String(32), nullable=False),
        sa.Column("written_at", sa.String(32)),
        sa.Column("detail", sa.Text),
    )
    run_leases = sa.Table(
        "run_leases",
        md,
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("biller", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("process_start", sa.String(40)),  # /proc start time: tells a reused pid apart
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("lease_until", sa.String(32), nullable=False),
    )
    return payments, lockbox_files, run_leases


# The current schema, for queries. Extend these (and add a migration) when tables change.
runs, paperless_changes = _v1_tables(metadata)
payments, lockbox_files, run_leases = _v2_tables(metadata)
# Migration 3: until then, "Caselle holds no receipt" may only mean the request is still on
# its way (sent by a run that died, or whose answer timed out): settle again after it.
IN_DOUBT_UNTIL = sa.Column("in_doubt_until", sa.String(32))
payments.append_column(IN_DOUBT_UNTIL)


def _v4_tables(md: sa.MetaData) -> tuple[sa.Table]:
    """Migration 4: ``payment_events``, the history of each payment (``caselle-ic trace``):
    one row per export line it came in and per change of its ledger row, appended by
    :class:`caselle_ic.store.payments.PaymentBook` in the transaction of the change."""
    events = sa.Table(
        "payment_events",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("biller", sa.String(200), nullable=False),
        sa.Column("payment_guid", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),  # exported, conflict, state, route, ...
        sa.Column("state", sa.String(16)),  # the row's state after the change, when it changed
        sa.Column("detail", sa.Text),  # JSON object: export/line, reason, receipt_number, lockbox_file ...
        sa.Index("payment_events_guid", "biller", "payment_guid", "id"),
    )
    return (events,)


(payment_events,) = _v4_tables(metadata)


def _m1_runs_and_paperless(conn: Connection) -> None:
    frozen = sa.MetaData()
    for table in _v1_tables(frozen):
        table.create(conn)


def _m2_payments(conn: Connection) -> None:
    frozen = sa.MetaData()
    for table in _v2_tables(frozen):
        table.create(conn)


def _add_column(conn: Connection, table: str, column: str, sql_type: str) -> None:
    """``ALTER TABLE … ADD COLUMN`` in the ledger's schema (the engine's schema translate
    map, when the ledger lives in a PostgreSQL schema of its own)."""
    prep = conn.dialect.identifier_preparer
    schema = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
    name = prep.quote(table) if not schema else f"{prep.quote_schema(schema)}.{prep.quote(table)}"
    conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {prep.quote(column)} {sql_type}")


def _m3_in_doubt_until(conn: Connection) -> None:
    _add_column(conn, "payments", "in_doubt_until", "VARCHAR(32)")


def _m4_payment_events(conn: Connection) -> None:
    for table in _v4_tables(sa.MetaData()):
        table.create(conn)


#: (version, description, function) in the order they apply. Append; never edit.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "runs and paperless changes", _m1_runs_and_paperless),
    (2, "payments (data pump response table), lockbox files, run leases", _m2_payments),
    (3, "payments.in_doubt_until (settle grace)", _m3_in_doubt_until),
    (4, "payment_events (history of each payment, for trace)", _m4_payment_events),
]


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
    """An open ledger database. Use :func:`open_ledger`."""

    def __init__(self, engine: Engine, *, schema: str | None = None):
        self.engine = engine
        self.schema = schema
        self.url = mask_url(engine.url)

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
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
            for version, description, fn in MIGRATIONS:
                if version in applied:
                    continue
                fn(conn)
                conn.execute(
                    schema_version.insert().values(
                        version=version, description=description, applied_at=utc_text()
                    )
                )
        return max(v for v, _, _ in MIGRATIONS)

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


def open_ledger(url: str, *, schema: str | None = None) -> Ledger:
    """Open the ledger at ``url``, creating or upgrading its schema.

    ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing —
    tests use a unique schema each so they are isolated.
    """
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
    "MIGRATIONS",
    "Ledger",
    "biller_key",
    "file_sha256",
    "ledger_url_for",
    "lockbox_files",
    "metadata",
    "open_ledger",
    "paperless_changes",
    "payment_events",
    "payments",
    "run_leases",
    "runs",
    "schema_version",
    "utc_text",
]
