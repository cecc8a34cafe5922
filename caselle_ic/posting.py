"""Exactly-once posting of the daily payments (SPEC §4, §6, §7): the ledger side and the engine.

Every payment reaches Caselle once — by one Data Pump receipt or by one line in one
lockbox file — whatever fails. The ledger's ``payments`` table (the seed's "data pump
response table") is the record; each row moves through these states::

    PAYMENT, DataPump   pending ─claim─▶ sending ─answer─▶ posted
                                           │   └─refused─▶ rejected       (NOT_FOUND, BAD_USER_INPUT)
                                           └─answer lost─▶ settle: receipts(confirmationNumber:)
                                                 found ─▶ posted   none ─▶ pending   query failed ─▶ unknown
    PAYMENT, File       pending ─claim─▶ filing (file name reserved) ─written─▶ filed
                                           └─ breaks a lockbox limit ─▶ held (retried next run)
    REFUND, ACH_REJECT  pending ─target known─▶ void_sending ─answer─▶ voided
                                           └─answer lost─▶ settle: receipts(original) voided? ─▶ voided | pending | void_unknown
                        pending ─▶ manual    (the original went by File: void it by hand)
                        pending ─▶ reported  (original unknown here and in Caselle, refused, or already voided)

Rules that make it exactly once:

* **Intent before the request.** A row is claimed (``sending`` / ``void_sending`` /
  ``filing``, ``claim_owner`` = this run) in a committed transaction before anything
  leaves; the answer is recorded after. Claims are compare-and-set updates (``WHERE
  state = 'pending'``), under ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL and
  ``BEGIN IMMEDIATE`` on SQLite, so two runs for one biller never claim the same row.
* **Never resend an unknown outcome.** A row left in ``sending`` (answer lost, or the run
  was killed) is settled with ``receipts(confirmationNumber:)`` first: the receipt found
  is recorded (with its receiptNumber); only when Caselle holds none is it sent again.
  A void is settled by its original's receipt showing ``voided``.
* **Dead runs are taken over, live ones are not.** Each run holds a lease in
  ``run_leases`` (host, pid, process start time, renewed by a heartbeat). A claim is taken
  over only when its owner is dead: on the same host its process is gone (or the pid was
  reused), elsewhere its lease expired. A run that finds rows of the export held by a live
  run waits for them (bounded).
* **Lockbox files** are reserved by name in ``lockbox_files`` with the SHA-256 of their
  bytes before they are written, and written without ever replacing a file; a rerun after
  a crash finds a reserved file on disk with those bytes (``filed``) or not (the payments
  go to a new file; the name is never reused).

Fault injection for the tests: :mod:`caselle_ic.failpoints`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from caselle_ic.client import CaselleClient, ItemOutcome, Purpose, Receipt, ReceiptInput
from caselle_ic.config import BillerConfig
from caselle_ic.errors import (
    AlreadyVoidedError,
    CaselleAPIError,
    CaselleICError,
    ConfigError,
    FatalAPIError,
    NotFoundError,
    OutcomeUnknownError,
    RetriableError,
)
from caselle_ic.failpoints import failpoint
from caselle_ic.ledger import Ledger, lockbox_files, payments, run_leases, utc_text

log = logging.getLogger(__name__)

# -- states -------------------------------------------------------------------------------
PENDING = "pending"
SENDING = "sending"
POSTED = "posted"
UNKNOWN = "unknown"
REJECTED = "rejected"
FILING = "filing"
FILED = "filed"
HELD = "held"
VOID_SENDING = "void_sending"
VOID_UNKNOWN = "void_unknown"
VOIDED = "voided"
MANUAL = "manual"
REPORTED = "reported"

#: Nothing more will happen to these automatically.
TERMINAL = frozenset({POSTED, REJECTED, FILED, VOIDED, MANUAL, REPORTED})
#: Held by a run (claim_owner): something may be on its way.
IN_FLIGHT = frozenset({SENDING, VOID_SENDING, FILING})
#: Released, but the outcome of a request is unknown: settle before anything else.
UNSETTLED = frozenset({UNKNOWN, VOID_UNKNOWN})

PAYMENT = "PAYMENT"
REVERSALS = ("REFUND", "ACH_REJECT")
DATAPUMP, FILE = "DataPump", "File"

#: The columns that make up a payment as IC exported it: a later line with the same
#: payment_guid must carry the same values, else it is a conflict (never overwritten).
CONTENT = (
    "transaction_type",
    "original_guid",
    "payment_date",
    "account_number",
    "customer_name",
    "invoice_number",
    "invoice_type_id",
    "payment_type_id",
    "card_vendor",
    "obd_vendor",
    "amount_cents",
)
ROUTE = ("distribution_code", "payment_code", "gl_activity", "posting_method", "code_rule")

_IN_CHUNK = 500  # guids per IN (...) list


@dataclass
class PostingOptions:
    """How the engine sends. The defaults hide 20 ms of latency: 4 workers × 50 receipts."""

    workers: int = 4
    batch_size: int = 50
    #: a row whose post was lost and settled as "not there" is sent at most this often per run
    max_sends_per_run: int = 3
    lease_seconds: float = 300.0
    heartbeat_seconds: float = 15.0
    #: how long to wait for rows of this export held by another live run
    wait_for_others: float = 120.0
    client_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> PostingOptions:
        """Defaults, overridden by ``CASELLE_IC_POST_WORKERS`` / ``CASELLE_IC_POST_BATCH``
        (tuning knobs for an operator; the tests use them to make runs slow)."""
        opts = cls(**overrides)
        for env, name in (("CASELLE_IC_POST_WORKERS", "workers"), ("CASELLE_IC_POST_BATCH", "batch_size")):
            raw = os.environ.get(env, "").strip()
            if raw:
                if not raw.isdigit() or int(raw) < 1:
                    raise ConfigError(f"{env}={raw!r} must be a positive integer")
                setattr(opts, name, int(raw))
        return opts


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


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def cents_to_decimal(cents: int) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


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
        for chunk in _chunks(rest, _IN_CHUNK):
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
        records = ledger_records(frame)
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
        dicts = _records(rows)
        stmt = self.ledger._insert_ignore(payments, ("biller", "payment_guid"))
        with self.ledger.begin() as conn:
            for chunk in _chunks(dicts, 2000):
                conn.execute(stmt, list(chunk))
        stored = self.rows_for(records["payment_guid"].tolist(), columns=(*CONTENT, "export_name", "export_line", "state"))
        return _conflicts(records, stored)

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
            {"g": r["payment_guid"], **{f"v_{c}": r[c] for c in ROUTE}} for r in _records(changed[["payment_guid", *ROUTE]])
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

    # -- claims ------------------------------------------------------------------------
    def _claim(
        self, conn: Connection, where: list[Any], new_state: str, limit: int | None, order: bool = True
    ) -> list[dict[str, Any]]:
        q = sa.select(payments.c.payment_guid).where(payments.c.biller == self.biller, *where)
        if order:
            q = q.order_by(payments.c.created_at, payments.c.export_line, payments.c.payment_guid)
        if limit is not None:
            q = q.limit(limit)
        if self.pg:
            q = q.with_for_update(skip_locked=True)
        guids = list(conn.execute(q).scalars())
        out: list[dict[str, Any]] = []
        now = utc_text()
        for chunk in _chunks(guids, _IN_CHUNK):
            stmt = (
                payments.update()
                .where(payments.c.biller == self.biller, payments.c.payment_guid.in_(chunk), *where)
                .values(
                    state=new_state,
                    claim_owner=self.run_id,
                    attempts=payments.c.attempts + 1,
                    last_run_id=self.run_id,
                    updated_at=now,
                )
                .returning(*payments.c)
            )
            out.extend(dict(r) for r in conn.execute(stmt).mappings())
        return out

    def claim_posts(self, n: int, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Up to ``n`` pending DataPump payments, now ``sending`` and held by this run."""
        where = [
            payments.c.state == PENDING,
            payments.c.transaction_type == PAYMENT,
            payments.c.posting_method == DATAPUMP,
        ]
        skip = sorted(exclude)
        if skip:
            where.append(payments.c.payment_guid.not_in(skip))
        with self.ledger.begin() as conn:
            rows = self._claim(conn, where, SENDING, n)
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
            for chunk in _chunks(wanted, _IN_CHUNK):
                for r in conn.execute(
                    sa.select(payments).where(payments.c.biller == self.biller, payments.c.payment_guid.in_(chunk))
                ).mappings():
                    out[str(r["payment_guid"])] = dict(r)
        return out

    def voids_of(self, originals: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Reversal rows already voiding (or that voided) each original."""
        wanted = sorted(set(originals))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.ledger.begin() as conn:
            for chunk in _chunks(wanted, _IN_CHUNK):
                for r in conn.execute(
                    sa.select(payments).where(
                        payments.c.biller == self.biller,
                        payments.c.original_guid.in_(chunk),
                        payments.c.state.in_((VOID_SENDING, VOID_UNKNOWN, VOIDED)),
                    )
                ).mappings():
                    out.setdefault(str(r["original_guid"]), []).append(dict(r))
        return out

    def decide_reversals(self, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply reversal decisions to rows still ``pending`` (compare-and-set, one
        transaction). Each decision: guid, state, receipt_number, reason. Returns the rows
        this run now holds in ``void_sending``."""
        held: list[dict[str, Any]] = []
        now = utc_text()
        with self.ledger.begin() as conn:
            for d in decisions:
                owner = self.run_id if d["state"] == VOID_SENDING else None
                done = now if d["state"] in TERMINAL else None
                stmt = (
                    payments.update()
                    .where(
                        payments.c.biller == self.biller,
                        payments.c.payment_guid == d["guid"],
                        payments.c.state == PENDING,
                    )
                    .values(
                        state=d["state"],
                        receipt_number=d.get("receipt_number"),
                        reason=d.get("reason"),
                        claim_owner=owner,
                        attempts=payments.c.attempts + (1 if d["state"] == VOID_SENDING else 0),
                        last_run_id=self.run_id,
                        updated_at=now,
                        done_at=done,
                    )
                    .returning(*payments.c)
                )
                row = conn.execute(stmt).mappings().first()
                if row is not None and d["state"] == VOID_SENDING:
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
                sa.select(sa.func.count()).where(payments.c.biller == self.biller, payments.c.state.in_(UNSETTLED))
            ).scalar():
                return []
            if dead:
                log.warning("taking over the claims of %d run(s) that are no longer alive: %s", len(dead), dead)
            where = [payments.c.biller == self.biller, sa.or_(*conditions)]
            q = sa.select(payments.c.payment_guid).where(*where)
            if self.pg:
                q = q.with_for_update(skip_locked=True)
            guids = list(conn.execute(q).scalars())
            out: list[dict[str, Any]] = []
            now = utc_text()
            for chunk in _chunks(guids, _IN_CHUNK):
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
            return out

    def apply(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """Record outcomes for rows this run holds, in one transaction. Each update is
        ``{"guid": ..., column: value, ...}``; ``claim_owner`` None releases the row."""
        if not updates:
            return
        now = utc_text()
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for u in updates:
            groups.setdefault(tuple(sorted(k for k in u if k != "guid")), []).append(u)
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

    def release_mine(self) -> int:
        """At the end of a run: whatever this run still holds. ``sending`` / ``void_sending``
        may have been sent: they become ``unknown`` / ``void_unknown`` (settled by the next
        run); ``filing`` stays for the next run to check against the disk."""
        now = utc_text()
        with self.ledger.begin() as conn:
            n = 0
            for old, new in ((SENDING, UNKNOWN), (VOID_SENDING, VOID_UNKNOWN)):
                n += conn.execute(
                    payments.update()
                    .where(payments.c.claim_owner == self.run_id, payments.c.state == old)
                    .values(state=new, claim_owner=None, updated_at=now)
                ).rowcount
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

    def reserve_files(self, files: Sequence[Mapping[str, Any]], updates: Sequence[Mapping[str, Any]]) -> None:
        """One transaction: reserve the planned file names (IntegrityError if another run
        took one) and record which file and line each held payment goes to."""
        now = utc_text()
        with self.ledger.begin() as conn:
            if files:
                conn.execute(
                    lockbox_files.insert(),
                    [
                        {"biller": self.biller, "run_id": self.run_id, "planned_at": now, "state": "planned", **f}
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
            for chunk in _chunks(wanted, _IN_CHUNK):
                result = conn.execute(
                    sa.select(*cols).where(payments.c.biller == self.biller, payments.c.payment_guid.in_(chunk))
                )
                parts.append(pd.DataFrame(result.all(), columns=list(result.keys())))
        if not parts:
            return pd.DataFrame(columns=[c.name for c in cols])
        return pd.concat(parts, ignore_index=True)

    def rows_of_run(self) -> pd.DataFrame:
        """Every row this run changed (posted, filed, voided, reported, ...)."""
        with self.ledger.begin() as conn:
            result = conn.execute(
                sa.select(payments).where(payments.c.biller == self.biller, payments.c.last_run_id == self.run_id)
            )
            return pd.DataFrame(result.all(), columns=list(result.keys()))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain Python values (None for missing) for the database driver."""
    obj = frame.astype(object).where(frame.notna(), None)
    return obj.to_dict("records")  # type: ignore[return-value]


def ledger_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The export's valid rows (after ``codes.resolve_codes``) as ledger columns."""
    n = len(frame)

    def text(col: str) -> pd.Series:
        if col not in frame.columns:
            return pd.Series("", index=frame.index, dtype="string")
        return frame[col].astype("string").fillna("")

    def opt_int(col: str) -> pd.Series:
        if col not in frame.columns:
            return pd.Series([pd.NA] * n, index=frame.index, dtype="Int64")
        return pd.to_numeric(frame[col], errors="coerce").astype("Int64")

    when = pd.to_datetime(frame["payment_date"])
    out = pd.DataFrame(
        {
            "payment_guid": text("payment_guid"),
            "transaction_type": text("transaction_type"),
            "original_guid": text("original_payment_guid"),
            "payment_date": when.dt.strftime("%Y-%m-%dT%H:%M:%S").astype("string"),
            "account_number": text("account_number"),
            "customer_name": text("customer_name"),
            "invoice_number": text("invoice_number"),
            "invoice_type_id": opt_int("invoice_type_id"),
            "payment_type_id": opt_int("payment_type_id"),
            "card_vendor": text("card_vendor"),
            "obd_vendor": text("obd_vendor"),
            "amount_cents": frame["amount_cents"].astype("int64"),
            "export_line": opt_int("_line"),
            "distribution_code": opt_int("distribution_code"),
            "payment_code": opt_int("payment_code"),
            "gl_activity": opt_int("gl_activity"),
            "posting_method": text("posting_method").replace("", pd.NA),
            "code_rule": text("code_rule").replace("", pd.NA),
        },
        index=frame.index,
    )
    return out.reset_index(drop=True)


_INT_CONTENT = ("invoice_type_id", "payment_type_id", "amount_cents")


def _comparable(s: pd.Series, column: str) -> pd.Series:
    if column in _INT_CONTENT:
        s = pd.to_numeric(s, errors="coerce").astype("Int64")
    return s.astype("string").fillna("")


def _conflicts(records: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """GUIDs whose stored content differs from this export's line, with a reason."""
    empty = pd.DataFrame(
        {"payment_guid": pd.Series([], dtype="string"), "reason": pd.Series([], dtype="string")}
    )
    if stored.empty:
        return empty
    both = records.merge(stored, on="payment_guid", suffixes=("", "_stored"), how="inner")
    differs = pd.DataFrame(
        {c: _comparable(both[c], c) != _comparable(both[f"{c}_stored"], c) for c in CONTENT},
        index=both.index,
    )
    bad = differs.any(axis=1).to_numpy()
    if not bad.any():
        return empty
    conflicted = both.loc[bad]
    fields = [", ".join(c for c in CONTENT if flags[c]) for flags in differs.loc[bad].to_dict("records")]
    reasons = [
        f"payment_guid: already recorded with a different {f} (first recorded from "
        f"{name or 'an earlier export'} line {line}, now {state}); the recorded payment is kept "
        "and this line is not posted: check with IC which is right"
        for f, name, line, state in zip(
            fields,
            conflicted["export_name"].tolist(),
            conflicted["export_line_stored"].tolist(),
            conflicted["state"].tolist(),
            strict=True,
        )
    ]
    return pd.DataFrame(
        {
            "payment_guid": conflicted["payment_guid"].astype("string").to_numpy(),
            "reason": pd.Series(reasons, dtype="string").to_numpy(),
        }
    )


# -- the engine --------------------------------------------------------------------------------
@dataclass
class EngineStats:
    """What the engine did in this run (counts of Caselle answers and failures)."""

    answers: int = 0  # Caselle answered (any answer, including a refusal)
    unreachable: int = 0  # requests that never got through (connection refused, 5xx on queries ...)
    posted: int = 0
    settled_found: int = 0
    settled_absent: int = 0
    resent: int = 0
    voided: int = 0
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class PostingRun:
    """One run's engine: settles leftovers, posts, files, voids — each exactly once."""

    def __init__(
        self,
        cfg: BillerConfig,
        ledger: Ledger,
        biller: str,
        run_id: str,
        *,
        run_date: date,
        out_dir: str | Path,
        options: PostingOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.cfg = cfg
        self.book = PaymentBook(ledger, biller, run_id)
        self.run_id = run_id
        self.run_date = run_date
        self.out_dir = Path(out_dir)
        self.options = options or PostingOptions()
        self.progress = progress
        self.stats = EngineStats()
        self.fatal: CaselleICError | None = None
        self._sends: Counter[str] = Counter()
        self._deferred: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._post_stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._clients: dict[str, CaselleClient] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> PostingRun:
        self.book.start_lease(self.options.lease_seconds)
        self._heartbeat = threading.Thread(target=self._beat, name="posting-heartbeat", daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            left = self.book.release_mine()
            if left:
                self.stats.notes.append(
                    f"{left} request(s) were left with an unknown outcome; the next run settles them first"
                )
        finally:
            for client in self._clients.values():
                client.close()
            if self._heartbeat is not None:
                self._heartbeat.join(timeout=5)
            self.book.end_lease()

    def _beat(self) -> None:
        while not self._stop.wait(self.options.heartbeat_seconds):
            try:
                self.book.renew_lease(self.options.lease_seconds)
            except CaselleICError as exc:  # pragma: no cover - the database went away
                log.warning("could not renew the run lease: %s", exc)

    def _client(self, purpose: Purpose) -> CaselleClient:
        """One client per purpose for the main thread (workers make their own)."""
        if purpose not in self._clients:
            self._clients[purpose] = CaselleClient.for_purpose(self.cfg, purpose, **self.options.client_options)
        return self._clients[purpose]

    def _note_answer(self) -> None:
        with self._lock:
            self.stats.answers += 1

    def _note_unreachable(self, exc: BaseException) -> None:
        with self._lock:
            self.stats.unreachable += 1
            message = str(exc)
            if message not in self.stats.errors:
                self.stats.errors.append(message)

    def _note_fatal(self, exc: CaselleICError) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
            if str(exc) not in self.stats.errors:
                self.stats.errors.append(str(exc))
        self._post_stop.set()

    # -- settling ------------------------------------------------------------------------------
    def _settle_posts(self, client: CaselleClient, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Updates for rows whose post may have happened: the receipt Caselle holds
        (posted), none (pending: safe to send again), or the query failed (unknown)."""
        updates: list[dict[str, Any]] = []
        for chunk in _chunks(list(rows), self.options.batch_size):
            guids = [str(r["payment_guid"]) for r in chunk]
            try:
                outcomes = client.receipts_many(guids)
            except CaselleAPIError as exc:
                if isinstance(exc, RetriableError):
                    self._note_unreachable(exc)
                else:
                    self._note_fatal(exc)
                updates += [_unknown(r, f"outcome unknown, and settling it failed: {exc}") for r in chunk]
                continue
            self._note_answer()
            for row, outcome in zip(chunk, outcomes, strict=True):
                updates.append(self._settled(row, outcome))
        return updates

    def _settled(self, row: Mapping[str, Any], outcome: ItemOutcome[list[Receipt]]) -> dict[str, Any]:
        guid = str(row["payment_guid"])
        if outcome.error is not None or outcome.value is None:
            return _unknown(row, f"outcome unknown, and settling it failed: {outcome.error}")
        found = sorted(outcome.value, key=lambda r: r.receipt_number)
        if not found:
            with self._lock:
                self.stats.settled_absent += 1
            return {"guid": guid, "state": PENDING, "claim_owner": None, "reason": "a post whose answer was lost did not commit; sent again"}
        with self._lock:
            self.stats.settled_found += 1
        update = _posted(row, found[0])
        if len(found) > 1:
            update["reason"] = (
                f"Caselle holds {len(found)} receipts for this payment "
                f"({', '.join(str(r.receipt_number) for r in found)}): void the extra ones by hand"
            )
            self.stats.notes.append(f"payment {guid} has {len(found)} receipts in Caselle; see the reconciliation")
        else:
            update["reason"] = "settled: the receipt was found after the answer was lost"
        return update

    def settle_leftovers(self) -> int:
        """Settle what earlier (or dead) runs left open, before anything is sent."""
        rows = self.book.take_over_stale()
        if not rows:
            return 0
        posts = [r for r in rows if r["state"] == SENDING]
        voids = [r for r in rows if r["state"] == VOID_SENDING]
        filing = [r for r in rows if r["state"] == FILING]
        if posts:
            try:
                client = self._client("payments")
            except ConfigError as exc:
                self._note_fatal(exc)
                self.book.apply([_unknown(r, str(exc)) for r in posts])
            else:
                self.book.apply(self._settle_posts(client, posts))
        if voids:
            self.book.apply(self._settle_voids(voids))
        if filing:
            self._recover_filing(filing)
        return len(rows)

    # -- posting ----------------------------------------------------------------------------
    def post_payments(self) -> int:
        """Post every pending DataPump payment: ``workers`` threads, each claiming and
        sending aliased batches of ``batch_size``; the ledger is updated per batch."""
        total = self.book.count_postable()
        if total == 0 or self._post_stop.is_set():
            return 0
        before = self.stats.posted
        workers = max(1, min(self.options.workers, -(-total // self.options.batch_size)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="post") as pool:
            futures = [pool.submit(self._post_worker) for _ in range(workers)]
            while True:
                done, running = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                if self.progress is not None:
                    self.progress(self.stats.posted - before, total)
                if not running:
                    break
                if any(f.exception() is not None for f in done):
                    self._post_stop.set()  # a bug, not a Caselle answer: stop the others
            for f in futures:
                exc = f.exception()
                if exc is not None:
                    raise exc
        if self.progress is not None:
            self.progress(self.stats.posted - before, total)
        return self.stats.posted - before

    def _post_worker(self) -> None:
        try:
            client = CaselleClient.for_purpose(self.cfg, "payments", **self.options.client_options)
        except ConfigError as exc:
            self._note_fatal(exc)
            return
        with client:
            while not self._post_stop.is_set() and not self._stop.is_set():
                with self._lock:
                    exclude = set(self._deferred)
                rows = self.book.claim_posts(self.options.batch_size, exclude)
                if not rows:
                    return
                self._post_batch(client, rows)

    def _post_batch(self, client: CaselleClient, rows: list[dict[str, Any]]) -> None:
        release: list[dict[str, Any]] = []
        send: list[dict[str, Any]] = []
        with self._lock:
            for r in rows:
                guid = str(r["payment_guid"])
                if self._sends[guid] >= self.options.max_sends_per_run:
                    self._deferred.add(guid)
                    release.append(
                        {"guid": guid, "state": PENDING, "claim_owner": None,
                         "reason": f"Caselle failed {self._sends[guid]} times in this run; the next run posts it"}
                    )
                else:
                    self._sends[guid] += 1
                    if self._sends[guid] > 1:
                        self.stats.resent += 1
                    send.append(r)
        self.book.apply(release)
        if not send:
            return
        failpoint("post.claimed")
        try:
            outcomes = client.create_receipts([receipt_input(r, self.cfg.allocate_to_invoice) for r in send])
        except RetriableError as exc:  # never reached Caselle: nothing was processed
            self._note_unreachable(exc)
            self._post_stop.set()
            self.book.apply([_release(r, f"not sent: {exc}; the next run posts it") for r in send])
            return
        except (FatalAPIError, ConfigError) as exc:  # credentials refused, HTTP 400: not processed
            self._note_fatal(exc)
            self.book.apply([_release(r, f"not sent: {exc}") for r in send])
            return
        failpoint("post.sent")
        updates: list[dict[str, Any]] = []
        lost: list[dict[str, Any]] = []
        answered = False
        for row, outcome in zip(send, outcomes, strict=True):
            if outcome.ok and outcome.value is not None:
                answered = True
                updates.append(_posted(row, outcome.value))
            elif isinstance(outcome.error, FatalAPIError):
                answered = True
                updates.append(
                    {"guid": row["payment_guid"], "state": REJECTED, "claim_owner": None,
                     "reason": str(outcome.error), "done_at": utc_text()}
                )
            else:  # OutcomeUnknownError, or anything we cannot prove unprocessed
                lost.append(row)
        if answered:
            self._note_answer()
        if lost:
            updates += self._settle_posts(client, lost)
        self.book.apply(updates)
        with self._lock:
            self.stats.posted += sum(1 for u in updates if u["state"] == POSTED)

    # -- lockbox ---------------------------------------------------------------------------------
    def file_payments(self) -> int:
        """Put every pending File payment in a lockbox file, exactly once across runs."""
        from caselle_ic.lockbox import plan_lockbox_files

        rows = self.book.claim_files()
        if not rows:
            return 0
        frame = pd.DataFrame(rows)
        frame["payment_date"] = pd.to_datetime(frame["payment_date"])
        frame["amount_cents"] = frame["amount_cents"].astype("int64")
        for c in ("distribution_code", "payment_code"):
            frame[c] = pd.to_numeric(frame[c]).astype("Int64")
        source = frame["code_rule"].astype("string").fillna("the payment codes")
        frame["distribution_source"] = source.map(_rule_source)
        frame["payment_source"] = frame["distribution_source"]
        for attempt in range(5):
            plan = plan_lockbox_files(
                frame, self.run_date, self.cfg, out_dir=self.out_dir, taken=self.book.lockbox_names()
            )
            files = [
                {
                    "file_name": f.name,
                    "directory": str(self.out_dir.resolve()),
                    "payments": f.count,
                    "total_cents": f.total_cents,
                    "sha256": hashlib.sha256(f.data).hexdigest(),
                }
                for f in plan.files
            ]
            updates = [
                {"guid": g, "lockbox_file": name, "lockbox_line": int(line), "reason": None}
                for g, name, line in zip(
                    plan.filed["payment_guid"], plan.filed["lockbox_file"], plan.filed["lockbox_line"], strict=True
                )
            ] + [
                {"guid": g, "state": HELD, "claim_owner": None, "reason": f"not written to a lockbox file: {reason}"}
                for g, reason in zip(plan.quarantined["payment_guid"], plan.quarantined["reason"], strict=True)
            ]
            try:
                self.book.reserve_files(files, updates)
                break
            except sa.exc.IntegrityError:  # another run reserved one of the names: plan again
                log.info("a lockbox file name was taken by another run; planning again (%d)", attempt + 1)
        else:  # pragma: no cover - five collisions in a row
            raise CaselleICError("could not reserve lockbox file names (another run keeps taking them); rerun")
        failpoint("file.planned")
        try:
            plan.write(self.out_dir)
        except CaselleICError as exc:
            self.stats.notes.append(str(exc))
        failpoint("file.written")
        return self._confirm_files([f["file_name"] for f in files], plan.filed)

    def _confirm_files(self, names: Sequence[str], filed: pd.DataFrame) -> int:
        """Check each reserved file on disk: ours (same bytes) -> filed; else the
        payments go back to pending and the name is abandoned."""
        n = 0
        for name in names:
            info = self.book.lockbox_file(name)
            assert info is not None
            guids = filed.loc[filed["lockbox_file"] == name, "payment_guid"].tolist()
            path = Path(info["directory"]) / name
            if _same_file(path, info["sha256"]):
                self.book.apply([{"guid": g, "state": FILED, "claim_owner": None, "done_at": utc_text()} for g in guids])
                self.book.mark_file(name, "written")
                self.stats.files.append(path)
                n += len(guids)
            else:
                self.book.mark_file(name, "abandoned", "not written")
                self.book.apply(
                    [{"guid": g, "state": PENDING, "claim_owner": None, "lockbox_file": None, "lockbox_line": None,
                      "reason": f"lockbox file {name} could not be written; filed again by the next run"} for g in guids]
                )
        return n

    def _recover_filing(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """``filing`` rows of a dead run: their file is on disk with the reserved bytes
        (filed) or it is not (pending again; the name stays used)."""
        by_file: dict[str | None, list[Mapping[str, Any]]] = {}
        for r in rows:
            by_file.setdefault(r["lockbox_file"], []).append(r)
        for name, items in by_file.items():
            info = self.book.lockbox_file(name) if name else None
            path = Path(info["directory"]) / name if info and name else None
            if info and path is not None and _same_file(path, info["sha256"]):
                self.book.apply(
                    [{"guid": r["payment_guid"], "state": FILED, "claim_owner": None, "done_at": utc_text(),
                      "reason": "recovered: the file was written before the run that wrote it stopped"} for r in items]
                )
                self.book.mark_file(str(name), "written", "confirmed by a later run")
                continue
            if name:
                self.book.mark_file(name, "abandoned", "the run stopped before it was written")
                self.stats.notes.append(
                    f"lockbox file {name} was reserved by a run that stopped before writing it; its "
                    f"{len(items)} payment(s) go to a new file (if {name} was delivered after all, check for doubles)"
                )
            self.book.apply(
                [{"guid": r["payment_guid"], "state": PENDING, "claim_owner": None, "lockbox_file": None,
                  "lockbox_line": None, "reason": None} for r in items]
            )

    # -- reversals ----------------------------------------------------------------------------
    def void_reversals(self) -> int:
        """REFUND / ACH_REJECT: void the original's receipt once, or report why not."""
        pending = self.book.pending_reversals()
        if not pending:
            return 0
        originals = self.book.rows_by_guid(r["original_guid"] for r in pending)
        already = self.book.voids_of(r["original_guid"] for r in pending)
        decisions: list[dict[str, Any]] = []
        lookups: list[dict[str, Any]] = []
        taken: dict[str, str] = {}  # original -> reversal voiding it in this batch
        for r in pending:
            guid, orig_guid = str(r["payment_guid"]), str(r["original_guid"])
            orig = originals.get(orig_guid)
            others = [v for v in already.get(orig_guid, []) if v["payment_guid"] != guid]
            if orig_guid in taken or others:
                other = taken.get(orig_guid) or str(others[0]["payment_guid"])
                decisions.append(_decision(guid, REPORTED, f"the original payment is already reversed by {other}; nothing sent"))
                continue
            if orig is None:
                lookups.append(r)
                continue
            decision = self._decide(r, orig)
            if decision["state"] == VOID_SENDING:
                taken[orig_guid] = guid
            decisions.append(decision)
        if lookups:
            decisions += self._look_up_originals(lookups, taken)
        held = self.book.decide_reversals([d for d in decisions if d["state"] != PENDING])
        waiting = [d for d in decisions if d["state"] == PENDING]
        if waiting:
            self._note_waiting(waiting)
        if not held:
            return 0
        failpoint("void.claimed")
        voided = 0
        for row in held:
            voided += self._void(row)
        return voided

    def _note_waiting(self, waiting: Sequence[Mapping[str, Any]]) -> None:
        now = utc_text()
        with self.book.ledger.begin() as conn:
            for d in waiting:
                conn.execute(
                    payments.update()
                    .where(payments.c.biller == self.book.biller, payments.c.payment_guid == d["guid"],
                           payments.c.state == PENDING)
                    .values(reason=d["reason"], updated_at=now)
                )

    def _decide(self, rev: Mapping[str, Any], orig: Mapping[str, Any]) -> dict[str, Any]:
        guid = str(rev["payment_guid"])
        state = orig["state"]
        if orig["transaction_type"] != PAYMENT:
            return _decision(guid, REPORTED, f"the original {orig['payment_guid']} is itself a {orig['transaction_type']}; nothing sent")
        if orig["posting_method"] == FILE or state in (FILING, FILED, HELD):
            where = f"lockbox file {orig['lockbox_file']}" if orig["lockbox_file"] else "the lockbox file"
            if state == HELD:
                where = "the lockbox file (not written yet: it breaks a lockbox limit)"
            return _decision(guid, MANUAL, f"manual: the original went by {where}; reverse it in Caselle by hand")
        if state == POSTED and orig["receipt_number"] is not None:
            return _decision(guid, VOID_SENDING, None, int(orig["receipt_number"]))
        if state == REJECTED:
            return _decision(guid, REPORTED, "the original payment was refused by Caselle and never posted; nothing to void")
        return _decision(guid, PENDING, f"waiting: the original payment is {state}; the void follows once it is posted")

    def _look_up_originals(self, rows: Sequence[Mapping[str, Any]], taken: dict[str, str]) -> list[dict[str, Any]]:
        """Originals this ledger never saw: void their receipt if Caselle holds one."""
        out: list[dict[str, Any]] = []
        for purpose, items in _by_purpose(rows).items():
            try:
                client = self._client(purpose)
            except ConfigError as exc:
                out += [_decision(str(r["payment_guid"]), REPORTED,
                                  f"the original payment is not in the ledger and Caselle cannot be asked: {exc}") for r in items]
                continue
            try:
                outcomes = client.receipts_many([str(r["original_guid"]) for r in items])
            except CaselleAPIError as exc:
                self._note_unreachable(exc) if isinstance(exc, RetriableError) else self._note_fatal(exc)
                out += [_decision(str(r["payment_guid"]), PENDING, f"waiting: could not look up the original ({exc})") for r in items]
                continue
            self._note_answer()
            for r, outcome in zip(items, outcomes, strict=True):
                guid, orig_guid = str(r["payment_guid"]), str(r["original_guid"])
                found = [x for x in (outcome.value or []) if not x.voided]
                if outcome.error is not None:
                    out.append(_decision(guid, PENDING, f"waiting: could not look up the original ({outcome.error})"))
                elif orig_guid in taken:
                    out.append(_decision(guid, REPORTED, f"the original payment is already reversed by {taken[orig_guid]}; nothing sent"))
                elif found:
                    taken[orig_guid] = guid
                    out.append(_decision(guid, VOID_SENDING, None, min(x.receipt_number for x in found)))
                elif outcome.value:
                    out.append(_decision(guid, REPORTED, f"the original's receipt {outcome.value[0].receipt_number} is already voided in Caselle; nothing sent"))
                else:
                    out.append(_decision(guid, REPORTED, "the original payment is unknown (not in the ledger, no receipt in Caselle); nothing sent"))
        return out

    def _void(self, row: Mapping[str, Any]) -> int:
        guid = str(row["payment_guid"])
        purpose: Purpose = "ach_rejects" if row["transaction_type"] == "ACH_REJECT" else "payments"
        with self._lock:
            self._sends[guid] += 1
        try:
            client = self._client(purpose)
            receipt = client.void_receipt(int(row["receipt_number"]), self.run_date)
        except OutcomeUnknownError:
            self.book.apply(self._settle_voids([row]))
            return int(self.book.rows_by_guid([guid])[guid]["state"] == VOIDED)
        except AlreadyVoidedError as exc:
            self._note_answer()
            self.book.apply([{"guid": guid, "state": REPORTED, "claim_owner": None, "done_at": utc_text(),
                              "reason": f"Caselle says receipt {row['receipt_number']} is already voided (voided elsewhere?); nothing else sent: {exc}"}])
            return 0
        except NotFoundError as exc:
            self._note_answer()
            self.book.apply([{"guid": guid, "state": REPORTED, "claim_owner": None, "done_at": utc_text(),
                              "reason": f"Caselle has no receipt {row['receipt_number']} to void: {exc}"}])
            return 0
        except RetriableError as exc:
            self._note_unreachable(exc)
            self.book.apply([_release(row, f"void not sent: {exc}; the next run sends it")])
            return 0
        except (FatalAPIError, ConfigError) as exc:
            self._note_fatal(exc)
            self.book.apply([_release(row, f"void not sent: {exc}")])
            return 0
        failpoint("void.sent")
        self._note_answer()
        self.book.apply([{"guid": guid, "state": VOIDED, "claim_owner": None, "done_at": utc_text(),
                          "receipt_number": receipt.receipt_number, "reason": None}])
        with self._lock:
            self.stats.voided += 1
        return 1

    def _settle_voids(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """A void whose answer was lost (or whose run died): the original's receipt shows
        ``voided`` (done) or not (pending: the void is sent again)."""
        updates: list[dict[str, Any]] = []
        for purpose, items in _by_purpose(rows).items():
            try:
                client = self._client(purpose)
                outcomes = client.receipts_many([str(r["original_guid"]) for r in items])
            except (CaselleAPIError, ConfigError) as exc:
                if isinstance(exc, RetriableError):
                    self._note_unreachable(exc)
                updates += [{"guid": r["payment_guid"], "state": VOID_UNKNOWN, "claim_owner": None,
                             "reason": f"void outcome unknown, and settling it failed: {exc}"} for r in items]
                continue
            self._note_answer()
            for r, outcome in zip(items, outcomes, strict=True):
                target = r["receipt_number"]
                match = [x for x in (outcome.value or []) if x.receipt_number == target]
                if outcome.error is not None:
                    updates.append({"guid": r["payment_guid"], "state": VOID_UNKNOWN, "claim_owner": None,
                                    "reason": f"void outcome unknown, and settling it failed: {outcome.error}"})
                elif match and match[0].voided:
                    updates.append({"guid": r["payment_guid"], "state": VOIDED, "claim_owner": None, "done_at": utc_text(),
                                    "reason": "settled: the receipt shows voided after the answer was lost"})
                    with self._lock:
                        self.stats.voided += 1
                else:
                    updates.append({"guid": r["payment_guid"], "state": PENDING, "claim_owner": None,
                                    "reason": "a void whose answer was lost did not happen; sent again"})
        return updates

    # -- the whole run ---------------------------------------------------------------------------
    def open_elsewhere(self, guids: Sequence[str]) -> bool:
        """Are some of these rows still open while another live run holds claims?"""
        if not self.book.others_active():
            return False
        rows = self.book.rows_for(guids, columns=("state",))
        return bool((~rows["state"].isin(list(TERMINAL | {HELD}))).any()) if not rows.empty else False

    def wait_for_other_runs(self, guids: Sequence[str]) -> None:
        """While another live run holds rows of this export, wait, taking over its work
        if it dies; then pick up what it released."""
        deadline = time.monotonic() + self.options.wait_for_others
        while self.fatal is None and self.open_elsewhere(guids):
            if time.monotonic() > deadline:
                self.stats.notes.append(
                    "another run for this biller still holds some of this export's payments; "
                    "they are counted as pending here"
                )
                return
            time.sleep(0.3)
            self.settle_leftovers()
            self.post_payments()
            self.file_payments()
            self.void_reversals()


def _rule_source(rule: str) -> str:
    """``entry 3`` -> ``setting 131 entry 3``; ``fallback 64`` -> ``setting 64``."""
    if rule.startswith("entry"):
        return f"setting 131 {rule}"
    if rule.startswith("fallback"):
        return "setting " + rule.split()[-1]
    return rule


def _same_file(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def _by_purpose(rows: Iterable[Mapping[str, Any]]) -> dict[Purpose, list[Mapping[str, Any]]]:
    out: dict[Purpose, list[Mapping[str, Any]]] = {}
    for r in rows:
        purpose: Purpose = "ach_rejects" if r["transaction_type"] == "ACH_REJECT" else "payments"
        out.setdefault(purpose, []).append(r)
    return out


def _decision(guid: str, state: str, reason: str | None, receipt_number: int | None = None) -> dict[str, Any]:
    return {"guid": guid, "state": state, "reason": reason, "receipt_number": receipt_number}


def _posted(row: Mapping[str, Any], receipt: Receipt) -> dict[str, Any]:
    return {
        "guid": row["payment_guid"],
        "state": POSTED,
        "claim_owner": None,
        "receipt_number": receipt.receipt_number,
        "receipt_amount_cents": int(receipt.amount.scaleb(2)),
        "receipt_distribution_code": receipt.distribution_code,
        "receipt_payment_code": receipt.payment_code,
        "done_at": utc_text(),
        "reason": None,
    }


def _unknown(row: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {"guid": row["payment_guid"], "state": UNKNOWN, "claim_owner": None, "reason": reason}


def _release(row: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {"guid": row["payment_guid"], "state": PENDING, "claim_owner": None, "reason": reason}


def receipt_input(row: Mapping[str, Any], allocate: bool) -> ReceiptInput:
    """The ``create_receipt`` of one ledger row (SPEC §6)."""
    invoice = str(row["invoice_number"] or "")
    return ReceiptInput(
        receipt_date=date.fromisoformat(str(row["payment_date"])[:10]),
        distribution_code=int(row["distribution_code"]),
        payment_code=int(row["payment_code"]),
        amount=cents_to_decimal(int(row["amount_cents"])),
        account_number=str(row["account_number"]),
        confirmation_number=str(row["payment_guid"]),
        account_name=str(row["customer_name"]) or None,
        gl_activity_number=int(row["gl_activity"] or 0),
        allocate_to=invoice if allocate and invoice else None,
    )


__all__ = [
    "DATAPUMP",
    "FILE",
    "IN_FLIGHT",
    "TERMINAL",
    "UNSETTLED",
    "EngineStats",
    "PaymentBook",
    "PostingOptions",
    "PostingRun",
    "ledger_records",
    "process_start",
    "receipt_input",
]
