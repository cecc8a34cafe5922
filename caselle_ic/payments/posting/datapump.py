"""Data Pump posting (SPEC §6): claim pending DataPump payments in batches, send each
batch as one aliased ``create_receipt`` document, record every answer; an answer lost is
settled with ``receipts(confirmationNumber:)`` before anything is sent again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import date
from typing import Any

from caselle_ic.connect.client import CaselleClient, ItemOutcome, Receipt, ReceiptInput
from caselle_ic.errors import CaselleAPIError, ConfigError, FatalAPIError, RetriableError
from caselle_ic.failpoints import failpoint
from caselle_ic.payments.posting.base import RunBase, _in_doubt, _posted, _set, _unsettled, server_finished
from caselle_ic.store.payment_claims import chunks
from caselle_ic.store.payment_rows import PENDING, POSTED, REJECTED, UNKNOWN, RowUpdate
from caselle_ic.tabular.values import cents_to_decimal


class DataPump(RunBase):
    """Settle and post DataPump payments."""

    def _settle_posts(self, client: CaselleClient, rows: Sequence[Mapping[str, Any]]) -> list[RowUpdate]:
        """Rows whose post may have happened: the receipt Caselle holds (``posted``), none
        (``pending``: safe to send again — or, while the request may still be on its way,
        held and asked again later), or the query failed (``unknown``)."""
        updates: list[RowUpdate] = []
        for chunk in chunks(list(rows), self.options.batch_size):
            try:
                # the payment itself, so every receipt listed is checked against it (13.1)
                asked = [receipt_input(r, self.cfg.allocate_to_invoice) for r in chunk]
                outcomes = client.receipts_many(asked)
            except CaselleAPIError as exc:
                self._note_failure(exc)
                updates += _unsettled(chunk, UNKNOWN, "outcome", exc)
                continue
            self._note_answer()
            for row, outcome in zip(chunk, outcomes, strict=True):
                update = self._settled(row, outcome)
                if update is not None:
                    updates.append(update)
        return updates

    def _settled(self, row: Mapping[str, Any], outcome: ItemOutcome[list[Receipt]]) -> RowUpdate | None:
        if outcome.error is not None or outcome.value is None:
            return _unsettled([row], UNKNOWN, "outcome", outcome.error)[0]
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
        later: list[RowUpdate] = []
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
        updates: list[RowUpdate] = []
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
            self.stats.posted += sum(1 for u in updates if u.state == POSTED)


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
