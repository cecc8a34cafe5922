"""What the posting engine's parts share: options, statistics, the row updates they
make, and the state of one run (:class:`RunBase`). The parts — :mod:`.datapump`,
:mod:`.filing`, :mod:`.voids` — extend it; :mod:`.engine` puts them together."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from caselle_ic.config.model import BillerConfig
from caselle_ic.config.tuning import PostingSection
from caselle_ic.connect.client import CaselleClient, Purpose, Receipt
from caselle_ic.errors import CaselleAPIError, CaselleICError, RetriableError
from caselle_ic.store.ledger import Ledger, utc_text
from caselle_ic.store.payment_rows import KEEP, POSTED, PaymentState, RowUpdate
from caselle_ic.store.payments import PaymentBook

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
    state: PaymentState,
    reason: str | None = None,
    *,
    hold: bool = False,
    done: bool = False,
    **values: Any,
) -> RowUpdate:
    """An update for :meth:`PaymentBook.apply`: new state and reason; the claim is
    released unless ``hold``; ``done`` stamps ``done_at``; ``values``: other columns."""
    guid = row if isinstance(row, str) else str(row["payment_guid"])
    return RowUpdate(
        guid,
        state=state,
        reason=reason,
        claim_owner=KEEP if hold else None,
        done_at=utc_text() if done else KEEP,
        **values,
    )


def _posted(row: Mapping[str, Any], receipt: Receipt, reason: str | None = None) -> RowUpdate:
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


def _unsettled(
    rows: Iterable[Mapping[str, Any]], state: PaymentState, what: str, error: object
) -> list[RowUpdate]:
    """Rows whose settling query failed: ``unknown`` / ``void_unknown``, their grace kept
    (one rule for posts and voids)."""
    return [
        _set(
            r,
            state,
            f"{what} unknown, and settling it failed: {error}",
            in_doubt_until=r.get("in_doubt_until"),
        )
        for r in rows
    ]


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


class RunBase:
    """One run's shared state: the ledger book, clients, counters, what is deferred or
    held for a recheck. Not used alone: :class:`caselle_ic.payments.posting.PostingRun`."""

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
