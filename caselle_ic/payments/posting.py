"""Exactly-once posting of the daily payments (SPEC §4, §6, §7): the engine.

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
                                           └─answer lost─▶ settle: receipts(original) shows voided?
                                                 yes ─▶ voided   no ─▶ pending   query failed ─▶ void_unknown
                        pending ─▶ manual    (the original went by File: void it by hand)
                        pending ─▶ reported  (original unknown here and in Caselle, refused, voided)

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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig
from caselle_ic.config.tuning import PostingSection
from caselle_ic.connect.client import CaselleClient, ItemOutcome, Purpose, Receipt, ReceiptInput
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
from caselle_ic.store.ledger import Ledger, utc_text
from caselle_ic.store.payments import (
    FILE,
    FILED,
    FILING,
    HELD,
    MANUAL,
    PAYMENT,
    PENDING,
    POSTED,
    REJECTED,
    REPORTED,
    SENDING,
    TERMINAL,
    UNKNOWN,
    VOID_SENDING,
    VOID_UNKNOWN,
    VOIDED,
    PaymentBook,
    _chunks,
)
from caselle_ic.tabular.values import cents_to_decimal

log = logging.getLogger(__name__)


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
    #: a request whose answer was lost without the server finishing (read timeout, a
    #: connection cut, a run killed while sending) may still commit for a while: "Caselle
    #: holds no receipt" is trusted only this long after it was sent (connect retries +
    #: the 30 s read timeout, with margin); until then the run waits and asks again
    settle_grace_seconds: float = 90.0
    client_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, posting: PostingSection, **overrides: Any) -> PostingOptions:
        """The biller file's ``[posting]`` (with the environment overrides of
        caselle_ic/env.py, applied when the file was loaded), then ``overrides``."""
        values: dict[str, Any] = {
            "workers": posting.workers,
            "batch_size": posting.batch_size,
            "settle_grace_seconds": posting.settle_grace_seconds,
        }
        return cls(**{**values, **overrides})


# -- the engine --------------------------------------------------------------------------------
@dataclass
class EngineStats:
    """What the engine did in this run."""

    answers: int = 0  # requests Caselle answered (a refusal is an answer)
    unreachable: int = 0  # requests that never got an answer (refused connection, 5xx ...)
    posted: int = 0
    settled_found: int = 0  # lost answers settled: the receipt was there
    settled_absent: int = 0  # lost answers settled: nothing committed (sent again)
    voids_settled_found: int = 0  # lost void answers settled: the receipt shows voided
    voids_settled_absent: int = 0  # lost void answers settled: not voided (sent again)
    files_recovered: int = 0  # files a dead run wrote, confirmed on disk
    files_abandoned: int = 0  # file names reserved but never written (payments re-filed)
    rechecked: int = 0  # "no receipt yet" answers asked again after the grace period
    resent: int = 0
    voided: int = 0
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _set(
    row: Mapping[str, Any] | str,
    state: str,
    reason: str | None = None,
    *,
    hold: bool = False,
    done: bool = False,
    **values: Any,
) -> dict[str, Any]:
    """An update for :meth:`PaymentBook.apply`: new state and reason; the claim is
    released unless ``hold``; ``done`` stamps ``done_at``."""
    guid = row if isinstance(row, str) else str(row["payment_guid"])
    update: dict[str, Any] = {"guid": guid, "state": state, "reason": reason, **values}
    if not hold:
        update["claim_owner"] = None
    if done:
        update["done_at"] = utc_text()
    return update


def _posted(row: Mapping[str, Any], receipt: Receipt, reason: str | None = None) -> dict[str, Any]:
    return _set(
        row,
        POSTED,
        reason,
        done=True,
        receipt_number=receipt.receipt_number,
        receipt_amount_cents=int(receipt.amount.scaleb(2)),
        receipt_distribution_code=receipt.distribution_code,
        receipt_payment_code=receipt.payment_code,
    )


def server_finished(exc: BaseException | None) -> bool:
    """Did the server finish with the request although its outcome is unknown? It did when
    it answered: HTTP 500/501/503 from the application, a GraphQL error (INTERNAL or
    uncoded) or an answer without the item. A read timeout, a cut connection or a
    502/504 from a gateway may leave it still working on the request."""
    if not isinstance(exc, CaselleAPIError):
        return False
    return exc.status in (500, 501, 503) or str(exc).startswith("Caselle answered")


def _in_doubt(row: Mapping[str, Any]) -> bool:
    until = row.get("in_doubt_until")
    return bool(until) and str(until) > utc_text()


def _purpose(row: Mapping[str, Any]) -> Purpose:
    """ACH rejects go through setting 101 (which falls back to 11); refunds through 11."""
    return "ach_rejects" if row["transaction_type"] == "ACH_REJECT" else "payments"


def _by_purpose(rows: Iterable[Mapping[str, Any]]) -> dict[Purpose, list[Mapping[str, Any]]]:
    out: dict[Purpose, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(_purpose(r), []).append(r)
    return out


class PostingRun:
    """One run's engine: settles leftovers, posts, files, voids — each exactly once.

    Use as a context manager: entering takes the run's lease (and starts its heartbeat);
    leaving turns whatever this run still holds in ``sending`` / ``void_sending`` into
    ``unknown`` / ``void_unknown`` for the next run to settle, and drops the lease.
    """

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
        #: rows this run holds whose "no receipt" answer came too early to trust
        self._recheck: dict[str, dict[str, Any]] = {}
        self._deferred: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._no_more_posts = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._clients: dict[str, CaselleClient] = {}

    # -- lifecycle ----------------------------------------------------------------------------
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
        """One client per purpose for the calling (main) thread; workers make their own."""
        if purpose not in self._clients:
            self._clients[purpose] = CaselleClient.for_purpose(
                self.cfg, purpose, **self.options.client_options
            )
        return self._clients[purpose]

    def _doubt_until(self) -> str:
        return utc_text(datetime.now(UTC) + timedelta(seconds=self.options.settle_grace_seconds))

    def _note_answer(self) -> None:
        with self._lock:
            self.stats.answers += 1

    def _note_failure(self, exc: BaseException) -> None:
        """A request that got no answer (retriable) or a refusal of the whole request
        (credentials, configuration): no more posts in this run after the latter."""
        with self._lock:
            if isinstance(exc, RetriableError):
                self.stats.unreachable += 1
            elif self.fatal is None and isinstance(exc, CaselleICError):
                self.fatal = exc
            if str(exc) not in self.stats.errors:
                self.stats.errors.append(str(exc))
        if not isinstance(exc, RetriableError):
            self._no_more_posts.set()

    # -- settling -----------------------------------------------------------------------------
    def _settle_posts(self, client: CaselleClient, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Rows whose post may have happened: the receipt Caselle holds (``posted``), none
        (``pending``: safe to send again — or, while the request may still be on its way,
        held and asked again later), or the query failed (``unknown``)."""
        updates: list[dict[str, Any]] = []
        for chunk in _chunks(list(rows), self.options.batch_size):
            try:
                # the payment itself, so every receipt listed is checked against it (13.1)
                asked = [receipt_input(r, self.cfg.allocate_to_invoice) for r in chunk]
                outcomes = client.receipts_many(asked)
            except CaselleAPIError as exc:
                self._note_failure(exc)
                updates += [
                    _set(
                        r,
                        UNKNOWN,
                        f"outcome unknown, and settling it failed: {exc}",
                        in_doubt_until=r.get("in_doubt_until"),
                    )
                    for r in chunk
                ]
                continue
            self._note_answer()
            for row, outcome in zip(chunk, outcomes, strict=True):
                update = self._settled(row, outcome)
                if update is not None:
                    updates.append(update)
        return updates

    def _settled(self, row: Mapping[str, Any], outcome: ItemOutcome[list[Receipt]]) -> dict[str, Any] | None:
        if outcome.error is not None or outcome.value is None:
            return _set(
                row,
                UNKNOWN,
                f"outcome unknown, and settling it failed: {outcome.error}",
                in_doubt_until=row.get("in_doubt_until"),
            )
        found = sorted(outcome.value, key=lambda r: r.receipt_number)
        if not found and _in_doubt(row):
            with self._lock:
                self._recheck[str(row["payment_guid"])] = dict(row)
            return None  # still held (sending): asked again once the grace period is over
        with self._lock:
            if found:
                self.stats.settled_found += 1
            else:
                self.stats.settled_absent += 1
        if not found:
            return _set(
                row,
                PENDING,
                "a post whose answer was lost had not committed; sent again",
                in_doubt_until=None,
            )
        if len(found) == 1:
            return _posted(row, found[0], "settled: the receipt was found after the answer was lost")
        numbers = ", ".join(str(r.receipt_number) for r in found)
        self.stats.notes.append(
            f"payment {row['payment_guid']} has {len(found)} receipts in Caselle ({numbers})"
        )
        return _posted(
            row,
            found[0],
            f"Caselle holds {len(found)} receipts for this payment ({numbers}): void the extra by hand",
        )

    def settle_leftovers(self) -> int:
        """Settle what earlier (or dead) runs left open, before anything is sent."""
        rows = self.book.take_over_stale()
        posts = [r for r in rows if r["state"] == SENDING]
        voids = [r for r in rows if r["state"] == VOID_SENDING]
        filing = [r for r in rows if r["state"] == FILING]
        if posts:
            try:
                client = self._client("payments")
            except ConfigError as exc:
                self._note_failure(exc)
                self.book.apply([_set(r, UNKNOWN, str(exc)) for r in posts])
            else:
                self.book.apply(self._settle_posts(client, posts))
        if voids:
            self.book.apply(self._settle_voids(voids))
        if filing:
            self._recover_filing(filing)
        return len(rows)

    # -- posting ------------------------------------------------------------------------------
    def post_payments(self) -> int:
        """Post every pending DataPump payment: ``workers`` threads, each claiming and
        sending aliased batches of ``batch_size``; the ledger is updated once per batch."""
        total = self.book.count_postable()
        if total == 0 or self._no_more_posts.is_set():
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
                    self._no_more_posts.set()  # a bug, not a Caselle answer: stop the others
        for f in futures:
            exc = f.exception()
            if exc is not None:
                raise exc
        return self.stats.posted - before

    def _post_worker(self) -> None:
        try:
            client = CaselleClient.for_purpose(self.cfg, "payments", **self.options.client_options)
        except ConfigError as exc:
            self._note_failure(exc)
            return
        with client:
            while not self._no_more_posts.is_set():
                with self._lock:
                    exclude = set(self._deferred)
                rows = self.book.claim_posts(self.options.batch_size, exclude, self._doubt_until())
                if not rows:
                    return
                self._post_batch(client, rows)

    def _post_batch(self, client: CaselleClient, rows: list[dict[str, Any]]) -> None:
        """Send one claimed batch as one aliased document and record every answer."""
        send: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        with self._lock:
            for r in rows:
                guid = str(r["payment_guid"])
                if self._sends[guid] >= self.options.max_sends_per_run:
                    self._deferred.add(guid)
                    later.append(
                        _set(
                            r,
                            PENDING,
                            f"Caselle failed {self._sends[guid]} times in this run; the next run posts it",
                        )
                    )
                    continue
                self._sends[guid] += 1
                self.stats.resent += self._sends[guid] > 1
                send.append(r)
        self.book.apply(later)
        if not send:
            return
        failpoint("post.claimed")
        try:
            outcomes = client.create_receipts([receipt_input(r, self.cfg.allocate_to_invoice) for r in send])
        except RetriableError as exc:  # never reached Caselle: nothing was processed
            self._note_failure(exc)
            self._no_more_posts.set()
            self.book.apply([_set(r, PENDING, f"not sent: {exc}; the next run posts it") for r in send])
            return
        except (FatalAPIError, ConfigError) as exc:  # credentials refused, HTTP 400: not processed
            self._note_failure(exc)
            self.book.apply([_set(r, PENDING, f"not sent: {exc}") for r in send])
            return
        failpoint("post.sent")
        updates: list[dict[str, Any]] = []
        lost: list[dict[str, Any]] = []
        for row, outcome in zip(send, outcomes, strict=True):
            if outcome.value is not None and outcome.ok:
                updates.append(_posted(row, outcome.value))
            elif isinstance(outcome.error, FatalAPIError):  # NOT_FOUND, BAD_USER_INPUT: for good
                updates.append(_set(row, REJECTED, str(outcome.error), done=True))
            else:  # OutcomeUnknownError, or anything not proven unprocessed
                lost.append({**row, "in_doubt_until": None} if server_finished(outcome.error) else row)
        if len(lost) < len(send):
            self._note_answer()
        if lost:
            updates += self._settle_posts(client, lost)
        self.book.apply(updates)
        with self._lock:
            self.stats.posted += sum(1 for u in updates if u["state"] == POSTED)

    # -- lockbox ------------------------------------------------------------------------------
    def file_payments(self) -> int:
        """Put every pending File payment in a lockbox file, exactly once across runs:
        reserve the names (with the bytes' SHA-256) and record each payment's file and
        line, write the files, then mark the payments ``filed``."""
        from caselle_ic.payments.lockbox import plan_lockbox_files

        rows = self.book.claim_files()
        if not rows:
            return 0
        frame = pd.DataFrame(rows)
        frame["payment_date"] = pd.to_datetime(frame["payment_date"])
        frame["amount_cents"] = frame["amount_cents"].astype("int64")
        for c in ("distribution_code", "payment_code"):
            frame[c] = pd.to_numeric(frame[c]).astype("Int64")
        frame["distribution_source"] = frame["code_rule"].astype("string").fillna("").map(_rule_source)
        frame["payment_source"] = frame["distribution_source"]
        directory = str(self.out_dir.resolve())
        for attempt in range(5):
            plan = plan_lockbox_files(
                frame, self.run_date, self.cfg, out_dir=self.out_dir, taken=self.book.lockbox_names()
            )
            files: list[dict[str, Any]] = [
                {
                    "file_name": f.name,
                    "directory": directory,
                    "payments": f.count,
                    "total_cents": f.total_cents,
                    "sha256": hashlib.sha256(f.data).hexdigest(),
                }
                for f in plan.files
            ]
            where = [
                {"guid": g, "lockbox_file": name, "lockbox_line": int(line), "reason": None}
                for g, name, line in zip(
                    plan.filed["payment_guid"],
                    plan.filed["lockbox_file"],
                    plan.filed["lockbox_line"],
                    strict=True,
                )
            ]
            held = [
                _set(str(g), HELD, f"not written to a lockbox file: {reason}")
                for g, reason in zip(
                    plan.quarantined["payment_guid"], plan.quarantined["reason"], strict=True
                )
            ]
            try:
                self.book.reserve_files(files, where + held)
                break
            except sa.exc.IntegrityError:  # another run reserved one of these names: plan again
                log.info("a lockbox file name was taken by another run; planning again (%d)", attempt + 1)
        else:  # pragma: no cover - five collisions in a row
            raise CaselleICError(
                "could not reserve lockbox file names (another run keeps taking them); rerun"
            )
        failpoint("file.planned")
        try:
            plan.write(self.out_dir)
        except CaselleICError as exc:  # a planned name appeared on disk: checked below
            self.stats.notes.append(str(exc))
        failpoint("file.written")
        filed = 0
        for f in files:
            guids = plan.filed.loc[plan.filed["lockbox_file"] == f["file_name"], "payment_guid"].tolist()
            filed += self._confirm_file(f["file_name"], Path(directory), f["sha256"], guids)
        return filed

    def _confirm_file(
        self, name: str, directory: Path, sha256: str, guids: Sequence[str], *, recovered: bool = False
    ) -> int:
        """The reserved file on disk with the reserved bytes: its payments are ``filed``.
        Otherwise it was never written: the name stays used, the payments go back to
        ``pending`` and the next file takes them."""
        path = directory / name
        if _same_file(path, sha256):
            why = (
                "recovered: the file was written before the run that wrote it stopped" if recovered else None
            )
            self.book.apply([_set(g, FILED, why, done=True) for g in guids])
            self.book.mark_file(name, "written", "confirmed by a later run" if recovered else None)
            self.stats.files.append(path)
            self.stats.files_recovered += recovered
            return len(guids)
        self.book.mark_file(name, "abandoned", "not written (the run stopped, or the name was taken on disk)")
        self.stats.files_abandoned += 1
        self.stats.notes.append(
            f"lockbox file {name} was reserved but not written; its {len(guids)} payment(s) go to a new file"
        )
        self.book.apply(
            [
                _set(g, PENDING, f"{name} was not written; filed again", lockbox_file=None, lockbox_line=None)
                for g in guids
            ]
        )
        return 0

    def _recover_filing(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """``filing`` rows of a dead run: check the reserved file against the disk."""
        by_file: dict[str, list[str]] = {}
        for r in rows:
            by_file.setdefault(str(r["lockbox_file"] or ""), []).append(str(r["payment_guid"]))
        for name, guids in by_file.items():
            info = self.book.lockbox_file(name) if name else None
            if info is None:  # claimed, but no file planned yet: nothing was written
                self.book.apply([_set(g, PENDING, lockbox_file=None, lockbox_line=None) for g in guids])
                continue
            self._confirm_file(name, Path(info["directory"]), info["sha256"], guids, recovered=True)

    # -- reversals ---------------------------------------------------------------------------
    def void_reversals(self) -> int:
        """REFUND / ACH_REJECT: void the original's receipt once, or say why not."""
        pending = self.book.pending_reversals()
        if not pending:
            return 0
        originals = self.book.rows_by_guid(r["original_guid"] for r in pending)
        voiding = self.book.voids_of(r["original_guid"] for r in pending)
        taken: dict[str, str] = {}  # original -> the reversal voiding it
        for orig, rows in voiding.items():
            taken[orig] = str(rows[0]["payment_guid"])
        decisions: list[dict[str, Any]] = []
        lookups: list[dict[str, Any]] = []
        for r in pending:
            guid, orig_guid = str(r["payment_guid"]), str(r["original_guid"])
            if orig_guid in taken:
                decisions.append(
                    _decision(
                        guid,
                        REPORTED,
                        f"the original payment is already reversed by {taken[orig_guid]}; nothing sent",
                    )
                )
            elif orig_guid not in originals:
                lookups.append(r)
            else:
                decision = self._decide(guid, originals[orig_guid])
                if decision["state"] == VOID_SENDING:
                    taken[orig_guid] = guid
                decisions.append(decision)
        decisions += self._look_up_originals(lookups, taken)
        doubt = self._doubt_until()
        held = self.book.decide_reversals([{**d, "in_doubt_until": doubt} for d in decisions])
        if not held:
            return 0
        failpoint("void.claimed")
        return sum(self._void(row) for row in held)

    def _decide(self, guid: str, orig: Mapping[str, Any]) -> dict[str, Any]:
        state = orig["state"]
        if orig["transaction_type"] != PAYMENT:
            return _decision(
                guid,
                REPORTED,
                f"the original {orig['payment_guid']} is itself a {orig['transaction_type']}; nothing sent",
            )
        if orig["posting_method"] == FILE or state in (FILING, FILED, HELD):
            where = f"lockbox file {orig['lockbox_file']}" if orig["lockbox_file"] else "the lockbox file"
            return _decision(
                guid, MANUAL, f"manual: the original went by {where}; reverse it in Caselle by hand"
            )
        if state == POSTED and orig["receipt_number"] is not None:
            return _decision(guid, VOID_SENDING, None, int(orig["receipt_number"]))
        if state == REJECTED:
            return _decision(
                guid,
                REPORTED,
                "the original payment was refused by Caselle and never posted; nothing to void",
            )
        return _decision(guid, PENDING, f"waiting: the original payment is {state}; it is voided once posted")

    def _look_up_originals(
        self, rows: Sequence[Mapping[str, Any]], taken: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Originals this ledger never saw: void their receipt when Caselle holds one."""
        out: list[dict[str, Any]] = []
        for purpose, items in _by_purpose(rows).items():
            guids = [str(r["payment_guid"]) for r in items]
            try:
                outcomes = self._client(purpose).receipts_many([str(r["original_guid"]) for r in items])
            except ConfigError as exc:
                out += [
                    _decision(
                        g,
                        REPORTED,
                        f"the original payment is not in the ledger and Caselle cannot be asked: {exc}",
                    )
                    for g in guids
                ]
                continue
            except CaselleAPIError as exc:
                self._note_failure(exc)
                out += [
                    _decision(g, PENDING, f"waiting: could not look up the original ({exc})") for g in guids
                ]
                continue
            self._note_answer()
            for guid, r, outcome in zip(guids, items, outcomes, strict=True):
                orig_guid = str(r["original_guid"])
                live = sorted(x.receipt_number for x in (outcome.value or []) if not x.voided)
                if outcome.error is not None:
                    out.append(
                        _decision(guid, PENDING, f"waiting: could not look up the original ({outcome.error})")
                    )
                elif orig_guid in taken:
                    out.append(
                        _decision(
                            guid,
                            REPORTED,
                            f"the original payment is already reversed by {taken[orig_guid]}; nothing sent",
                        )
                    )
                elif live:
                    taken[orig_guid] = guid
                    out.append(_decision(guid, VOID_SENDING, None, live[0]))
                elif outcome.value:
                    number = outcome.value[0].receipt_number
                    out.append(
                        _decision(
                            guid,
                            REPORTED,
                            f"the original's receipt {number} is already voided in Caselle; nothing sent",
                        )
                    )
                else:
                    out.append(
                        _decision(
                            guid,
                            REPORTED,
                            "the original payment is unknown (not in the ledger, no receipt in Caselle); "
                            "nothing sent",
                        )
                    )
        return out

    def _void(self, row: Mapping[str, Any]) -> int:
        """Send one void (intent already recorded) and record its answer."""
        number = int(row["receipt_number"])
        try:
            receipt = self._client(_purpose(row)).void_receipt(number, self.run_date)
        except OutcomeUnknownError as exc:
            updates = self._settle_voids([{**row, "in_doubt_until": None} if server_finished(exc) else row])
            self.book.apply(updates)
            return int(bool(updates) and updates[0]["state"] == VOIDED)
        except AlreadyVoidedError as exc:
            self._note_answer()
            self.book.apply(
                [
                    _set(
                        row,
                        REPORTED,
                        f"receipt {number} was already voided in Caselle (by hand?); nothing sent: {exc}",
                        done=True,
                    )
                ]
            )
            return 0
        except NotFoundError as exc:
            self._note_answer()
            self.book.apply(
                [_set(row, REPORTED, f"Caselle has no receipt {number} to void: {exc}", done=True)]
            )
            return 0
        except (CaselleAPIError, ConfigError) as exc:  # not processed: unreachable, credentials
            self._note_failure(exc)
            self.book.apply([_set(row, PENDING, f"void not sent: {exc}; the next run sends it")])
            return 0
        failpoint("void.sent")
        self._note_answer()
        self.book.apply([_set(row, VOIDED, None, done=True, receipt_number=receipt.receipt_number)])
        with self._lock:
            self.stats.voided += 1
        return 1

    def _settle_voids(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """A void whose answer was lost (or whose run died) is settled by the original's
        receipt: ``voided`` (done) or not (``pending``: the void is sent again)."""
        updates: list[dict[str, Any]] = []
        for purpose, items in _by_purpose(rows).items():
            try:
                outcomes = self._client(purpose).receipts_many([str(r["original_guid"]) for r in items])
            except (CaselleAPIError, ConfigError) as exc:
                self._note_failure(exc)
                updates += [
                    _set(
                        r,
                        VOID_UNKNOWN,
                        f"void outcome unknown, and settling it failed: {exc}",
                        in_doubt_until=r.get("in_doubt_until"),
                    )
                    for r in items
                ]
                continue
            self._note_answer()
            for r, outcome in zip(items, outcomes, strict=True):
                match = [x for x in (outcome.value or []) if x.receipt_number == r["receipt_number"]]
                if outcome.error is not None:
                    updates.append(
                        _set(
                            r,
                            VOID_UNKNOWN,
                            f"void outcome unknown, and settling it failed: {outcome.error}",
                            in_doubt_until=r.get("in_doubt_until"),
                        )
                    )
                elif match and match[0].voided:
                    updates.append(
                        _set(
                            r,
                            VOIDED,
                            "settled: the receipt shows voided after the answer was lost",
                            done=True,
                        )
                    )
                    with self._lock:
                        self.stats.voided += 1
                        self.stats.voids_settled_found += 1
                elif _in_doubt(r):
                    with self._lock:
                        self._recheck[str(r["payment_guid"])] = dict(r)  # held; asked again later
                else:
                    updates.append(
                        _set(
                            r,
                            PENDING,
                            "a void whose answer was lost had not happened; sent again",
                            in_doubt_until=None,
                        )
                    )
                    with self._lock:
                        self.stats.voids_settled_absent += 1
        return updates

    # -- other runs ----------------------------------------------------------------------------
    def open_elsewhere(self, guids: Sequence[str]) -> bool:
        """Are some of these rows still open while another live run holds claims?"""
        if not guids or not self.book.others_active():
            return False
        rows = self.book.rows_for(guids, columns=("state",))
        return bool((~rows["state"].isin([*TERMINAL, HELD])).any())

    def _recheck_due(self) -> tuple[int, float | None]:
        """Settle again the held rows whose grace period is over; returns how many, and
        the seconds until the next one is due (None when none is left)."""
        now = utc_text()
        with self._lock:
            due = [r for r in self._recheck.values() if str(r["in_doubt_until"]) <= now]
            for r in due:
                del self._recheck[str(r["payment_guid"])]
            later = [str(r["in_doubt_until"]) for r in self._recheck.values()]
        if due:
            self.stats.rechecked += len(due)
            posts = [r for r in due if r["state"] == SENDING]
            voids = [r for r in due if r["state"] == VOID_SENDING]
            if posts:
                self.book.apply(self._settle_posts(self._client("payments"), posts))
            if voids:
                self.book.apply(self._settle_voids(voids))
        if not later:
            return len(due), None
        first = datetime.strptime(min(later), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        return len(due), max(0.0, (first - datetime.now(UTC)).total_seconds())

    def wait_for_other_runs(self, guids: Sequence[str]) -> None:
        """Finish what is still open: rows held by another live run (wait for it, take its
        work over if it dies, pick up what it releases — bounded by ``wait_for_others``),
        and this run's lost answers whose "no receipt" came too early to trust (asked
        again when their grace period is over, then sent again if still absent)."""
        deadline = time.monotonic() + self.options.wait_for_others
        waited_for_grace = False
        while self.fatal is None:
            settled, next_due = self._recheck_due()
            if settled:  # what turned out not to be there is sent now
                self.post_payments()
                self.void_reversals()
                continue
            busy = self.open_elsewhere(guids)
            if next_due is None and not busy:
                if waited_for_grace:
                    self.stats.notes.append(
                        f"{self.stats.rechecked} post(s) or void(s) that may still have been on their "
                        f"way were asked again after the {self.options.settle_grace_seconds:g} s grace "
                        "period before anything was resent"
                    )
                return
            if next_due is None and time.monotonic() > deadline:
                self.stats.notes.append(
                    "another run for this biller still holds some of this export's payments; "
                    "they are counted as pending here"
                )
                return
            waited_for_grace = waited_for_grace or next_due is not None
            time.sleep(min(0.3, next_due) if next_due is not None else 0.3)
            self.settle_leftovers()
            self.post_payments()
            self.file_payments()
            self.void_reversals()


def _decision(guid: str, state: str, reason: str | None, receipt_number: int | None = None) -> dict[str, Any]:
    return {"guid": guid, "state": state, "reason": reason, "receipt_number": receipt_number}


def _rule_source(rule: str) -> str:
    """``entry 3`` -> ``setting 131 entry 3``; ``fallback 64`` -> ``setting 64``."""
    if rule.startswith("entry"):
        return f"setting 131 {rule}"
    if rule.startswith("fallback"):
        return "setting " + rule.split()[-1]
    return rule or "the payment codes"


def _same_file(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def receipt_input(row: Mapping[str, Any], allocate: bool) -> ReceiptInput:
    """The ``create_receipt`` of one ledger row (SPEC §6): receiptDate = payment_date's
    date, allocateTo = invoice_number when setting 35 is ALLOCATEAR (else null),
    confirmationNumber = payment_guid."""
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


__all__ = ["EngineStats", "PostingOptions", "PostingRun", "receipt_input"]
