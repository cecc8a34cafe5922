"""Who holds which ``payments`` row (SPEC §6): run leases, claims, the take-over of
claims whose run died, and the release at the end of a run.

:class:`PaymentClaims` is the claims side of :class:`caselle_ic.store.payments.PaymentBook`
(which adds intake, routing, reversal decisions, outcomes, lockbox files and reading
back). Claims are compare-and-set updates (``WHERE state = 'pending'``) under ``SELECT …
FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite, so two runs
never hold the same row. A claim is taken over only when its owner is dead
(:meth:`PaymentClaims.live_owners`: its lease ran out, or its process is gone).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from caselle_ic.store import events as history
from caselle_ic.store.ledger import Ledger, utc_text
from caselle_ic.store.payment_rows import (
    DATAPUMP,
    FILE,
    FILING,
    HELD,
    IN_FLIGHT,
    PAYMENT,
    PENDING,
    SENDING,
    UNKNOWN,
    UNSETTLED,
    VOID_SENDING,
    VOID_UNKNOWN,
)
from caselle_ic.store.tables import payments, run_leases

# PaymentBook's logger: the take-over warning keeps its name
log = logging.getLogger("caselle_ic.store.payments")


IN_CHUNK = 500  # guids per IN (...) list


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


# -- the claims side of the ledger ----------------------------------------------------------
class PaymentClaims:
    """The claims on the ``payments`` rows of one biller, as seen by one run (``run_id``)."""

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
        for chunk in chunks(rest, IN_CHUNK):
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
        for chunk in chunks(guids, IN_CHUNK):
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
            for chunk in chunks(guids, IN_CHUNK):
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


__all__ = ["HOST", "IN_CHUNK", "PaymentClaims", "chunks", "process_start"]
