"""The ledger's numbered migrations (SPEC §6): how a database gets from any earlier version
to the current schema.

* ``schema_version`` (:mod:`caselle_ic.store.tables`) holds one row per applied migration;
  :meth:`caselle_ic.store.ledger.Ledger.migrate` applies the missing ones, under a lock
  (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level advisory lock), so two
  processes opening a fresh database at once do not collide.
* :data:`MIGRATIONS` lists ``(number, description, function)`` in order. Each function
  takes a ``Connection`` inside the migration transaction and emits its DDL.
* **To add a migration**: define the new tables here, frozen (``v<N>_<what>(md)``), and a
  function ``_m<N>_<what>(conn)`` that creates or alters exactly what it adds, append
  ``(N, "what", _m<N>_<what>)`` to :data:`MIGRATIONS`, and extend the current schema in
  :mod:`caselle_ic.store.tables` (what the queries use). Never edit a migration that has
  shipped: databases in the field already ran it. Migration 1 therefore creates its
  tables from its own frozen definitions (:func:`v1_tables`), not from the current ones
  that later migrations may extend.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from caselle_ic.store.columns import INPUT_NAME_LENGTH, ledger_length


def v1_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The tables of migration 1, frozen as they shipped."""
    runs = sa.Table(
        "runs",
        md,
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("biller", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("input_name", sa.String(INPUT_NAME_LENGTH)),
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


def v2_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table, sa.Table]:
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
        sa.Column("payment_guid", sa.String(ledger_length("payment_guid")), primary_key=True),
        # the payment as first recorded (a later line with the same GUID must match it)
        sa.Column("transaction_type", sa.String(12), nullable=False),  # PAYMENT, REFUND, ACH_REJECT
        sa.Column(
            "original_guid", sa.String(ledger_length("original_guid")), nullable=False
        ),  # "" for a PAYMENT
        sa.Column("payment_date", sa.String(19), nullable=False),  # biller local, YYYY-MM-DDTHH:MM:SS
        sa.Column("account_number", sa.String(ledger_length("account_number")), nullable=False),
        sa.Column("customer_name", sa.String(ledger_length("customer_name")), nullable=False),
        sa.Column("invoice_number", sa.String(ledger_length("invoice_number")), nullable=False),
        sa.Column("invoice_type_id", sa.BigInteger),
        sa.Column("payment_type_id", sa.Integer, nullable=False),
        sa.Column("card_vendor", sa.String(ledger_length("card_vendor")), nullable=False),
        sa.Column("obd_vendor", sa.String(ledger_length("obd_vendor")), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("export_name", sa.String(INPUT_NAME_LENGTH)),
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


def v4_tables(md: sa.MetaData) -> tuple[sa.Table]:
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


def v5_inbox_files(md: sa.MetaData) -> sa.Table:
    """Migration 5: the inbox claims (:mod:`caselle_ic.store.inbox_claims`), one row per
    (biller, content SHA-256): who processed which file and how it ended. Before
    migration 5 the inbox created this table itself (``create_all``), with these columns."""
    return sa.Table(
        "inbox_files",
        md,
        sa.Column("biller", sa.String(64), primary_key=True),  # lower-case BillerGuid
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("biller_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),  # processing | done | failed
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=True),
        sa.Column("archived_as", sa.String(1000), nullable=True),
        sa.Column("outputs", sa.Text, nullable=True),  # JSON list of paths
        sa.Column("detail", sa.Text, nullable=True),  # counts, or the (redacted) failure reason
    )


def _m1_runs_and_paperless(conn: Connection) -> None:
    frozen = sa.MetaData()
    for table in v1_tables(frozen):
        table.create(conn)


def _m2_payments(conn: Connection) -> None:
    frozen = sa.MetaData()
    for table in v2_tables(frozen):
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
    for table in v4_tables(sa.MetaData()):
        table.create(conn)


def _m5_inbox_files(conn: Connection) -> None:
    # checkfirst: a database the inbox used before migration 5 already has the table
    v5_inbox_files(sa.MetaData()).create(conn, checkfirst=True)


#: (version, description, function) in the order they apply. Append; never edit.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "runs and paperless changes", _m1_runs_and_paperless),
    (2, "payments (data pump response table), lockbox files, run leases", _m2_payments),
    (3, "payments.in_doubt_until (settle grace)", _m3_in_doubt_until),
    (4, "payment_events (history of each payment, for trace)", _m4_payment_events),
    (5, "inbox_files (inbox claims), if the inbox has not created it already", _m5_inbox_files),
]


__all__ = ["MIGRATIONS", "v1_tables", "v2_tables", "v4_tables", "v5_inbox_files"]
