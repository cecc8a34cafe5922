"""The ledger side of the daily payments: the ``payments`` table (the seed's "data pump
response table"), lockbox file reservations and run leases (SPEC §6).

:class:`PaymentBook` is every query the posting engine (:mod:`caselle_ic.payments.posting`) makes,
for one biller as seen by one run. This module holds intake, routing, reversal decisions,
outcomes, lockbox files and reading back; leases, claims, the take-over of a dead run's
claims and the release at the end of a run are in :mod:`caselle_ic.store.payment_claims`
(:class:`~caselle_ic.store.payment_claims.PaymentClaims`, which PaymentBook extends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from caselle_ic.store import events as history
from caselle_ic.store import payment_frames as frames
from caselle_ic.store.ledger import utc_text
from caselle_ic.store.payment_claims import IN_CHUNK, PaymentClaims, chunks
from caselle_ic.store.payment_rows import (
    CONTENT,
    HELD,
    PAYMENT,
    PENDING,
    REVERSALS,
    ROUTE,
    VOID_SENDING,
    VOID_UNKNOWN,
    VOIDED,
    ReversalDecision,
    RowUpdate,
)
from caselle_ic.store.tables import lockbox_files, payments


# -- the ledger side --------------------------------------------------------------------------
class PaymentBook(PaymentClaims):
    """The ``payments`` rows of one biller, as seen by one run (``run_id``)."""

    # -- intake ------------------------------------------------------------------------
    def intake(self, frame: pd.DataFrame, export_name: str) -> pd.DataFrame:
        """Record the export's valid rows (new GUIDs as ``pending``); a GUID already
        recorded is left exactly as it is. Returns the conflicts — GUIDs recorded before
        with different content — as ``payment_guid``, ``reason``."""
        if frame.empty:
            return pd.DataFrame({"payment_guid": pd.Series([], dtype="string"), "reason": []})
        records = frames.ledger_records(frame)
        too_long = frames.too_long(records)
        records = records[~records["payment_guid"].isin(too_long["payment_guid"])]
        now = utc_text()
        rows = records.assign(
            biller=self.biller,
            export_name=export_name,
            state=PENDING,
            attempts=0,
            first_run_id=self.run_id,
            last_run_id=self.run_id,
            created_at=now,
            updated_at=now,
        )
        dicts = frames.records_of(rows)
        stmt = self.ledger._insert_ignore(payments, ("biller", "payment_guid"))
        with self.ledger.begin() as conn:
            for chunk in chunks(dicts, 2000):
                conn.execute(stmt, list(chunk))
            history.record(
                conn,
                self.biller,
                self.run_id,
                (
                    history.event(d["payment_guid"], "exported", export=export_name, line=d["export_line"])
                    for d in dicts
                ),
            )
        stored = self.rows_for(
            records["payment_guid"].tolist(), columns=(*CONTENT, "export_name", "export_line", "state")
        )
        conflicts = frames.conflicts(records, stored)
        if not conflicts.empty:
            with self.ledger.begin() as conn:
                history.record(
                    conn,
                    self.biller,
                    self.run_id,
                    (
                        history.event(g, "conflict", export=export_name, reason=r)
                        for g, r in zip(conflicts["payment_guid"], conflicts["reason"], strict=True)
                    ),
                )
        return pd.concat([too_long, conflicts], ignore_index=True)

    # -- routing ------------------------------------------------------------------------
    def unsent_payments(self) -> pd.DataFrame:
        """Pending and held PAYMENT rows (nothing sent for them), for re-routing."""
        cols = [payments.c.payment_guid, *(payments.c[c] for c in CONTENT), *(payments.c[c] for c in ROUTE)]
        with self.ledger.begin() as conn:
            result = conn.execute(
                sa.select(*cols).where(
                    payments.c.biller == self.biller,
                    payments.c.transaction_type == PAYMENT,
                    payments.c.state.in_((PENDING, HELD)),
                )
            )
            return pd.DataFrame(result.all(), columns=list(result.keys()))

    def update_routes(self, changed: pd.DataFrame) -> None:
        """Store re-resolved codes for rows still pending or held (compare-and-set)."""
        if changed.empty:
            return
        params = [
            {"g": r["payment_guid"], **{f"v_{c}": r[c] for c in ROUTE}}
            for r in frames.records_of(changed[["payment_guid", *ROUTE]])
        ]
        stmt = (
            payments.update()
            .where(
                payments.c.biller == sa.bindparam("b"),
                payments.c.payment_guid == sa.bindparam("g"),
                payments.c.state.in_((PENDING, HELD)),
            )
            .values({c: sa.bindparam(f"v_{c}") for c in ROUTE})
        )
        with self.ledger.begin() as conn:
            conn.execute(stmt, [{"b": self.biller, **p} for p in params])
            history.record(
                conn,
                self.biller,
                self.run_id,
                (history.event(p["g"], "route", **{c: p[f"v_{c}"] for c in ROUTE}) for p in params),
            )

    # -- reversals ---------------------------------------------------------------------
    def pending_reversals(self) -> list[dict[str, Any]]:
        with self.ledger.begin() as conn:
            rows = conn.execute(
                sa.select(payments)
                .where(
                    payments.c.biller == self.biller,
                    payments.c.state == PENDING,
                    payments.c.transaction_type.in_(REVERSALS),
                )
                .order_by(payments.c.created_at, payments.c.export_line, payments.c.payment_guid)
            ).mappings()
            return [dict(r) for r in rows]

    def rows_by_guid(self, guids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(guids))
        out: dict[str, dict[str, Any]] = {}
        with self.ledger.begin() as conn:
            for chunk in chunks(wanted, IN_CHUNK):
                for r in conn.execute(
                    sa.select(payments).where(
                        payments.c.biller == self.biller, payments.c.payment_guid.in_(chunk)
                    )
                ).mappings():
                    out[str(r["payment_guid"])] = dict(r)
        return out

    def voids_of(self, originals: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Reversal rows already voiding (or that voided) each original."""
        wanted = sorted(set(originals))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.ledger.begin() as conn:
            for chunk in chunks(wanted, IN_CHUNK):
                for r in conn.execute(
                    sa.select(payments).where(
                        payments.c.biller == self.biller,
                        payments.c.original_guid.in_(chunk),
                        payments.c.state.in_((VOID_SENDING, VOID_UNKNOWN, VOIDED)),
                    )
                ).mappings():
                    out.setdefault(str(r["original_guid"]), []).append(dict(r))
        return out

    def decide_reversals(self, decisions: Sequence[ReversalDecision]) -> list[dict[str, Any]]:
        """Apply reversal decisions to rows still ``pending`` (compare-and-set, one
        transaction). A decision has guid, state, receipt_number (the receipt to void),
        reason and in_doubt_until (for ``void_sending``); state ``pending`` only records
        why the reversal waits. Returns the rows
        this run now holds in ``void_sending`` (intent recorded, void not sent)."""
        held: list[dict[str, Any]] = []
        now = utc_text()
        with self.ledger.begin() as conn:
            for d in decisions:
                where = (
                    payments.c.biller == self.biller,
                    payments.c.payment_guid == d.guid,
                    payments.c.state == PENDING,
                )
                if d.state == PENDING:
                    waits = conn.execute(
                        payments.update().where(*where).values(reason=d.reason, updated_at=now)
                    )
                    if waits.rowcount:
                        history.record(
                            conn,
                            self.biller,
                            self.run_id,
                            [history.event(d.guid, "waiting", PENDING, reason=d.reason)],
                        )
                    continue
                sending = d.state == VOID_SENDING
                stmt = (
                    payments.update()
                    .where(*where)
                    .values(
                        state=str(d.state),
                        receipt_number=d.receipt_number,
                        reason=d.reason,
                        claim_owner=self.run_id if sending else None,
                        attempts=payments.c.attempts + int(sending),
                        last_run_id=self.run_id,
                        updated_at=now,
                        done_at=None if sending else now,
                        in_doubt_until=d.in_doubt_until if sending else None,
                    )
                    .returning(*payments.c)
                )
                row = conn.execute(stmt).mappings().first()
                if row is not None:
                    history.record(conn, self.biller, self.run_id, [history.from_update(d.columns())])
                if row is not None and sending:
                    held.append(dict(row))
        return held

    # -- outcomes ----------------------------------------------------------------------
    def apply(self, updates: Sequence[RowUpdate]) -> None:
        """Record outcomes for rows this run holds, in one transaction (one statement per
        set of columns written)."""
        if not updates:
            return
        now = utc_text()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        rows = [{"guid": u.guid, **u.columns()} for u in updates]
        for row in rows:
            groups.setdefault(tuple(sorted(k for k in row if k != "guid")), []).append(row)
        with self.ledger.begin() as conn:
            for keys, items in groups.items():
                stmt = (
                    payments.update()
                    .where(
                        payments.c.biller == sa.bindparam("p_biller"),
                        payments.c.payment_guid == sa.bindparam("p_guid"),
                        payments.c.claim_owner == sa.bindparam("p_me"),
                    )
                    .values(
                        {k: sa.bindparam(f"v_{k}") for k in keys}
                        | {"updated_at": sa.bindparam("p_now"), "last_run_id": sa.bindparam("p_me")}
                    )
                )
                conn.execute(
                    stmt,
                    [
                        {
                            "p_biller": self.biller,
                            "p_guid": u["guid"],
                            "p_me": self.run_id,
                            "p_now": now,
                            **{f"v_{k}": u[k] for k in keys},
                        }
                        for u in items
                    ],
                )
            history.record(
                conn,
                self.biller,
                self.run_id,
                (history.from_update(row) for row in rows),
            )

    # -- lockbox files ----------------------------------------------------------------------
    def lockbox_names(self) -> set[str]:
        with self.ledger.begin() as conn:
            return {
                str(n)
                for n in conn.execute(
                    sa.select(lockbox_files.c.file_name).where(lockbox_files.c.biller == self.biller)
                ).scalars()
            }

    def reserve_files(self, files: Sequence[Mapping[str, Any]], updates: Sequence[RowUpdate]) -> None:
        """One transaction: reserve the planned file names (IntegrityError if another run
        took one) and record which file and line each held payment goes to."""
        now = utc_text()
        with self.ledger.begin() as conn:
            if files:
                conn.execute(
                    lockbox_files.insert(),
                    [
                        {
                            "biller": self.biller,
                            "run_id": self.run_id,
                            "planned_at": now,
                            "state": "planned",
                            **f,
                        }
                        for f in files
                    ],
                )
        self.apply(updates)

    def lockbox_file(self, name: str) -> dict[str, Any] | None:
        with self.ledger.begin() as conn:
            row = (
                conn.execute(
                    sa.select(lockbox_files).where(
                        lockbox_files.c.biller == self.biller, lockbox_files.c.file_name == name
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def mark_file(self, name: str, state: str, detail: str | None = None) -> None:
        with self.ledger.begin() as conn:
            conn.execute(
                lockbox_files.update()
                .where(lockbox_files.c.biller == self.biller, lockbox_files.c.file_name == name)
                .values(state=state, detail=detail, written_at=utc_text() if state == "written" else None)
            )

    # -- reading back -------------------------------------------------------------------------
    def rows_for(self, guids: Sequence[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of these GUIDs (all columns, or ``columns`` + payment_guid)."""
        cols = [payments.c.payment_guid, *(payments.c[c] for c in columns)] if columns else list(payments.c)
        parts: list[pd.DataFrame] = []
        wanted = sorted(set(guids))
        with self.ledger.begin() as conn:
            for chunk in chunks(wanted, IN_CHUNK):
                result = conn.execute(
                    sa.select(*cols).where(
                        payments.c.biller == self.biller, payments.c.payment_guid.in_(chunk)
                    )
                )
                parts.append(pd.DataFrame(result.all(), columns=list(result.keys())))
        if not parts:
            return pd.DataFrame(columns=[c.name for c in cols])
        return pd.concat(parts, ignore_index=True)

    def rows_of_run(self) -> pd.DataFrame:
        """Every row this run changed (posted, filed, voided, reported, ...)."""
        with self.ledger.begin() as conn:
            result = conn.execute(
                sa.select(payments).where(
                    payments.c.biller == self.biller, payments.c.last_run_id == self.run_id
                )
            )
            return pd.DataFrame(result.all(), columns=list(result.keys()))


__all__ = ["PaymentBook"]
