"""Exactly-once posting of the daily payments (SPEC §4, §6, §7): the engine.

Parts: :mod:`.base` (options, stats, row updates), :mod:`.datapump` (settle and post),
:mod:`.filing` (lockbox files), :mod:`.voids` (reversals), :mod:`.engine` (the run:
leases, leftovers, waiting).

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

from caselle_ic.payments.posting.base import EngineStats, PostingOptions, server_finished
from caselle_ic.payments.posting.datapump import receipt_input
from caselle_ic.payments.posting.engine import PostingRun
from caselle_ic.store.payments import PaymentBook

__all__ = ["EngineStats", "PaymentBook", "PostingOptions", "PostingRun", "receipt_input", "server_finished"]
