"""The ledger side of the daily payments: the ``payments`` table (the seed's "data pump
response table"), lockbox file reservations and run leases (SPEC §6).

:class:`PaymentBook` is every query the posting engine (:mod:`caselle_ic.payments.posting`) makes,
for one biller as seen by one run. Claims are compare-and-set updates (``WHERE state =
'pending'``) under ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN
IMMEDIATE`` on SQLite, so two runs never hold the same row. A claim is taken over only
when its owner is dead (:meth:`PaymentBook.live_owners`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from caselle_ic.store import events as history
from caselle_ic.store import payment_frames as frames
from caselle_ic.store.ledger import Ledger, utc_text
from caselle_ic.store.payment_rows import (
    CONTENT,
    DATAPUMP,
    FILE,
    FILING,
    HELD,
    IN_FLIGHT,
    PAYMENT,
    PENDING,
    REVERSALS,
    ROUTE,
    SENDING,
    UNKNOWN,
    UNSETTLED,
    VOID_SENDING,
    VOID_UNKNOWN,
    VOIDED,
    ReversalDecision,
    RowUpdate,
)
from caselle_ic.store.tables import lockbox_files, payments, run_leases

log = logging.getLogger(__name__)


_IN_CHUNK = 500  # guids per IN (...) list


# -- process identity (is the owner of a claim still alive?) -------------------------------
HOST = socket.gethostname()


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux ``/proc/<pid>/stat``), or None when it is gone or
    a zombie. Tells a live process apart from a later one that reused its pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else ""


def _pid_alive(pid: int, start: str | None) -> bool:
    if Path("/proc/self/stat").exists():
        now_start = process_start(pid)
        return now_start is not None and (start is None or now_start == start)
    try:  # not Linux: the pid alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _utc_in(seconds: float) -> str:
    return utc_text(datetime.now(UTC) + timedelta(seconds=seconds))


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- the ledger side --------------------------------------------------------------------------
class PaymentBook:
    """The ``payments`` rows of one biller, as seen by one run (``run_id``)."""

    def __init__(self, ledger: Ledger, biller: str, run_id: str):
        self.ledger = ledger
        self.biller = biller
        self.run_id = run_id
        self.pg = ledger.dialect == "postgresql"

    # -- leases -------------------------------------------------------------------------
    def start_lease(self, lease_seconds: float) -> None:
        with self.ledger.begin() as conn:
            conn.execute(
                run_leases.insert().values(
                    run_id=self.run_id,
                    biller=self.biller,
                    host=HOST,
                    pid=os.getpid(),
                    process_start=process_start(os.getpid()),
                    started_at=utc_text(),
                    lease_until=_utc_in(lease_seconds),
                )
            )

    def renew_lease(self, lease_seconds: float) -> None:
        with self.ledger.begin() as conn:
            conn.execute(
                run_leases.update()
                .where(run_leases.c.run_id == self.run_id)
                .values(lease_until=_utc_in(lease_seconds))
            )

    def end_lease(self) -> None:
        with self.ledger.begin() as conn:
            conn.execute(run_leases.delete().where(run_leases.c.run_id == self.run_id))

    def live_owners(self, conn: Connection, owners: Iterable[str]) -> set[str]:
        """The owners (run ids) among ``owners`` that are alive (this run always is)."""
        wanted = sorted({o for o in owners if o})
        alive = {self.run_id} & set(wanted)
        rest = [o for o in wanted if o != self.run_id]
        if not rest:
            return alive
        now = utc_text()
        for chunk in chunks(rest, _IN_CHUNK):
            for row in conn.execute(sa.select(run_leases).where(run_leases.c.run_id.in_(chunk))).mappings():
                if row["lease_until"] < now:
                    continue
                if row["host"] == HOST and not _pid_alive(int(row["pid"]), row["process_start"]):
                    continue
                alive.add(str(row["run_id"]))
        return alive

    def others_active(self) -> bool:
        """Does another live run hold claims on this biller's payments?"""
        with self.ledger.begin() as conn:
            owners = conn.execute(
                sa.select(payments.c.claim_owner)
                .where(
                    payments.c.biller == self.biller,
                    payments.c.claim_owner.is_not(None),
                    payments.c.claim_owner != self.run_id,
                )
                .distinct()
            ).scalars()
            return bool(self.live_owners(conn, [str(o) for o in owners]) - {self.run_id})

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

    # -- claims ------------------------------------------------------------------------
    def _claim(
        self,
        conn: Connection,
        where: list[Any],
        new_state: str,
        limit: int | None,
        **values: Any,
    ) -> list[dict[str, Any]]:
        q = sa.select(payments.c.payment_guid).where(payments.c.biller == self.biller, *where)
        q = q.order_by(payments.c.created_at, payments.c.export_line, payments.c.payment_guid)
        if limit is not None:
            q = q.limit(limit)
        if self.pg:
            q = q.with_for_update(skip_locked=True)
        guids = list(conn.execute(q).scalars())
        out: list[dict[str, Any]] = []
        now = utc_text()
        for chunk in chunks(guids, _IN_CHUNK):
            stmt = (
                payments.update()
                .where(payments.c.biller == self.biller, payments.c.payment_guid.in_(chunk), *where)
                .values(
                    state=new_state,
                    claim_owner=self.run_id,
                    attempts=payments.c.attempts + 1,
                    last_run_id=self.run_id,
                    updated_at=now,
                    **values,
                )
                .returning(*payments.c)
            )
            out.extend(dict(r) for r in conn.execute(stmt).mappings())
        history.record(
            conn,
            self.biller,
            self.run_id,
            (history.event(r["payment_guid"], "state", new_state, attempts=r["attempts"]) for r in out),
        )
        return out

    def claim_posts(
        self, n: int, exclude: Iterable[str] = (), in_doubt_until: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``n`` pending DataPump payments, now ``sending`` and held by this run.
        ``in_doubt_until``: until when a lost answer cannot be settled as "not there"."""
        where = [
            payments.c.state == PENDING,
            payments.c.transaction_type == PAYMENT,
            payments.c.posting_method == DATAPUMP,
        ]
        skip = sorted(exclude)
        if skip:
            where.append(payments.c.payment_guid.not_in(skip))
        with self.ledger.begin() as conn:
            rows = self._claim(conn, where, SENDING, n, in_doubt_until=in_doubt_until)
        return sorted(rows, key=lambda r: (r["created_at"], r["export_line"] or 0, r["payment_guid"]))

    def count_postable(self) -> int:
        with self.ledger.begin() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        payments.c.biller == self.biller,
                        payments.c.state == PENDING,
                        payments.c.transaction_type == PAYMENT,
                        payments.c.posting_method == DATAPUMP,
                    )
                ).scalar()
                or 0
            )

    def claim_files(self) -> list[dict[str, Any]]:
        """Every pending File payment, and every held one this run has not tried yet: ``filing``."""
        where = [
            payments.c.transaction_type == PAYMENT,
            payments.c.posting_method == FILE,
            sa.or_(
                payments.c.state == PENDING,
                sa.and_(payments.c.state == HELD, payments.c.last_run_id != self.run_id),
            ),
        ]
        with self.ledger.begin() as conn:
            rows = self._claim(conn, where, FILING, None)
        return sorted(rows, key=lambda r: (r["created_at"], r["export_line"] or 0, r["payment_guid"]))

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
            for chunk in chunks(wanted, _IN_CHUNK):
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
            for chunk in chunks(wanted, _IN_CHUNK):
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

    def take_over_stale(self) -> list[dict[str, Any]]:
        """Rows whose outcome is open and nobody alive holds: in flight for a dead run, or
        ``unknown`` / ``void_unknown``. This run holds them afterwards (same state;
        ``unknown`` becomes ``sending``, ``void_unknown`` becomes ``void_sending``)."""
        with self.ledger.begin() as conn:
            owners = [
                str(o)
                for o in conn.execute(
                    sa.select(payments.c.claim_owner)
                    .where(
                        payments.c.biller == self.biller,
                        payments.c.state.in_(IN_FLIGHT),
                        payments.c.claim_owner.is_not(None),
                    )
                    .distinct()
                ).scalars()
            ]
            dead = sorted(set(owners) - self.live_owners(conn, owners))
            conditions = [sa.and_(payments.c.state.in_(UNSETTLED), payments.c.claim_owner.is_(None))]
            if dead:
                conditions.append(sa.and_(payments.c.state.in_(IN_FLIGHT), payments.c.claim_owner.in_(dead)))
            elif not conn.execute(
                sa.select(sa.func.count()).where(
                    payments.c.biller == self.biller, payments.c.state.in_(UNSETTLED)
                )
            ).scalar():
                return []
            if dead:
                log.warning(
                    "taking over the claims of %d run(s) that are no longer alive: %s", len(dead), dead
                )
            where = [payments.c.biller == self.biller, sa.or_(*conditions)]
            q = sa.select(payments.c.payment_guid).where(*where)
            if self.pg:
                q = q.with_for_update(skip_locked=True)
            guids = list(conn.execute(q).scalars())
            out: list[dict[str, Any]] = []
            now = utc_text()
            for chunk in chunks(guids, _IN_CHUNK):
                stmt = (
                    payments.update()
                    .where(payments.c.payment_guid.in_(chunk), *where)
                    .values(
                        state=sa.case(
                            (payments.c.state == UNKNOWN, SENDING),
                            (payments.c.state == VOID_UNKNOWN, VOID_SENDING),
                            else_=payments.c.state,
                        ),
                        claim_owner=self.run_id,
                        last_run_id=self.run_id,
                        updated_at=now,
                    )
                    .returning(*payments.c)
                )
                out.extend(dict(r) for r in conn.execute(stmt).mappings())
            history.record(
                conn,
                self.biller,
                self.run_id,
                (
                    history.event(
                        r["payment_guid"],
                        "takeover",
                        r["state"],
                        reason="taken over: its run ended without an answer",
                    )
                    for r in out
                ),
            )
            return out

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

    def release_mine(self) -> int:
        """At the end of a run: whatever this run still holds. ``sending`` / ``void_sending``
        may have been sent: they become ``unknown`` / ``void_unknown`` (settled by the next
        run); ``filing`` stays for the next run to check against the disk."""
        now = utc_text()
        with self.ledger.begin() as conn:
            n = 0
            for old, new in ((SENDING, UNKNOWN), (VOID_SENDING, VOID_UNKNOWN)):
                released = (
                    conn.execute(
                        payments.update()
                        .where(payments.c.claim_owner == self.run_id, payments.c.state == old)
                        .values(state=new, claim_owner=None, updated_at=now)
                        .returning(payments.c.payment_guid)
                    )
                    .scalars()
                    .all()
                )
                n += len(released)
                reason = "released at the end of the run without an answer: the next run settles it"
                history.record(
                    conn,
                    self.biller,
                    self.run_id,
                    (history.event(g, "state", new, reason=reason) for g in released),
                )
        return n

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
            for chunk in chunks(wanted, _IN_CHUNK):
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


__all__ = ["PaymentBook", "chunks", "process_start"]
