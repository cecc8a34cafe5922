"""The ledger's tables as they are now: what the queries use (SPEC §6).

Each table is built from the frozen definition of the migration that created it
(:mod:`caselle_ic.store.migrations`), extended here by the migrations that changed it
since.

Timestamps are stored as fixed-width UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: exact,
portable, and ordered the same way as text and as time.
"""

from __future__ import annotations

import sqlalchemy as sa

from caselle_ic.store.migrations import v1_tables, v2_tables, v4_tables, v5_inbox_files

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)

# The current schema, for queries. Extend these (and add a migration) when tables change.
runs, paperless_changes = v1_tables(metadata)
payments, lockbox_files, run_leases = v2_tables(metadata)
# Migration 3: until then, "Caselle holds no receipt" may only mean the request is still on
# its way (sent by a run that died, or whose answer timed out): settle again after it.
IN_DOUBT_UNTIL = sa.Column("in_doubt_until", sa.String(32))
payments.append_column(IN_DOUBT_UNTIL)

(payment_events,) = v4_tables(metadata)

inbox_files = v5_inbox_files(metadata)


__all__ = [
    "IN_DOUBT_UNTIL",
    "inbox_files",
    "lockbox_files",
    "metadata",
    "paperless_changes",
    "payment_events",
    "payments",
    "run_leases",
    "runs",
    "schema_version",
]
