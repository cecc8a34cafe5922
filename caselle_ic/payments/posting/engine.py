"""The posting engine: one run (:class:`PostingRun`) — its lease and heartbeat, settling
what earlier runs left, the Data Pump, lockbox and void parts, and waiting for other live
runs and for lost answers whose "no receipt" came too early to trust."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from caselle_ic.errors import ConfigError
from caselle_ic.payments.posting.base import _set
from caselle_ic.payments.posting.datapump import DataPump
from caselle_ic.payments.posting.filing import Filing
from caselle_ic.payments.posting.voids import Voids
from caselle_ic.store.ledger import utc_text
from caselle_ic.store.payment_rows import FILING, HELD, SENDING, TERMINAL, UNKNOWN, VOID_SENDING

log = logging.getLogger(__name__)


class PostingRun(DataPump, Filing, Voids):
    """One run's engine: settles leftovers, posts, files, voids — each exactly once.

    Use as a context manager: entering takes the run's lease (and starts its heartbeat);
    leaving turns whatever this run still holds in ``sending`` / ``void_sending`` into
    ``unknown`` / ``void_unknown`` for the next run to settle, and drops the lease.
    """

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
