"""Inbox pickup (SPEC §1 ``[paths]``): process each file waiting in the inbox exactly once.

A scheduled run calls :func:`process_inbox` for one kind of input (invoices, adjustments,
payments, paperless). For every file of that kind waiting in ``cfg.paths.inbox``, oldest
first:

1. **Skip what is still arriving**: hidden names, ``.part``/``.tmp``/``.filepart``/
   ``.crdownload`` names, and files modified less than ``settle_seconds`` ago are left for
   the next run; a file whose size or modification time changes while it is hashed is
   left too.
2. **Claim by content**: the file's SHA-256 is claimed in the ``inbox_files`` table of the
   ledger database (one row per biller and content hash). Content already processed is a
   **duplicate**: it is not processed again, it moves to ``archive`` with a
   ``<name>.duplicate.txt`` note naming the first file. Content another run is working on
   right now is left in place. A claim left behind by a killed run is taken over after
   ``stale_after_seconds``; content that failed before is processed again (it was fixed
   and dropped again).
3. **Run the handler** ``handler(path, outbox) -> RunResult``: the pipeline writes its
   outputs straight into ``outbox`` (they appear atomically) and its rejects into
   ``outbox/rejects/``.
4. **Move the input**: to ``archive`` on success (also when some records were quarantined:
   the output was written), to ``error`` with ``<name>.reason.txt`` when the handler
   raised or wrote nothing (``result.error`` with no outputs). One bad file never stops
   the others. When the pipeline reports records it could not send now
   (``result.retry_later``: Caselle unreachable for some), the input stays in the inbox
   and the next run sends the rest (the ledger skips what was sent).

Which files belong to which kind (``docs/operations.md``): a file in a sub-folder named
after the kind (``inbox/invoices/``, ``inbox/adjustments/``, ``inbox/payments/``,
``inbox/paperless/``) belongs to that kind whatever its name; a file directly in the inbox
is routed by its name, first match wins: ``adjust`` -> adjustments, ``paperless`` ->
paperless, ``payment``/``pymt`` -> payments, ``statement``/``stmt``/``extract``/``invoice``
-> invoices. Other files are left alone and listed as unrecognised.

The ``inbox_files`` table lives in the ledger database (default
``sqlite:///<paths.state>/ledger.db``; PostgreSQL with ``ledger_url``) so the record of
what was processed survives restarts and is shared by every worker of a biller.

Finding the files (step 1 and the routing) is :mod:`caselle_ic.ops.inbox_scan`; what the
run reports, :mod:`caselle_ic.ops.inbox_report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caselle_ic import kinds
from caselle_ic.errors import CaselleICError
from caselle_ic.logsafe import redact
from caselle_ic.ops.inbox_report import InboxItem, InboxReport
from caselle_ic.ops.inbox_scan import KINDS, Kind, Waiting, scan_inbox, sha256_file
from caselle_ic.result import RunResult
from caselle_ic.store.inbox_claims import (
    DEFAULT_STALE_AFTER_SECONDS,
    InboxStore,
    default_ledger_url,
)
from caselle_ic.store.inbox_claims import (
    Claim as Claim,  # re-exported: the inbox's callers and tests name them here
)
from caselle_ic.store.inbox_claims import (
    inbox_files as inbox_files,
)
from caselle_ic.store.ledger import biller_key, lending

if TYPE_CHECKING:
    from caselle_ic.config.model import BillerConfig

log = logging.getLogger(__name__)

DEFAULT_SETTLE_SECONDS = 30.0

Handler = Callable[[Path, Path], RunResult]


# -- moving files ----------------------------------------------------------------------------
def unique_destination(directory: Path, name: str, sha256: str) -> Path:
    """``directory/name``, or ``name`` with the content hash (then a counter) if taken."""
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / name
    if not dest.exists():
        return dest
    p = Path(name)
    stem, suffix = (p.stem, p.suffix) if p.suffix else (name, "")
    dest = directory / f"{stem}.{sha256[:12]}{suffix}"
    n = 2
    while dest.exists():
        dest = directory / f"{stem}.{sha256[:12]}-{n}{suffix}"
        n += 1
    return dest


def _move(src: Path, directory: Path, sha256: str) -> Path:
    dest = unique_destination(directory, src.name, sha256)
    shutil.move(str(src), str(dest))  # a rename on one file system, copy+delete across
    return dest


def _write_note(path: Path, text: str) -> None:
    from caselle_ic.tabular.output import write_bytes_atomic

    write_bytes_atomic(path, text.encode("utf-8"))


# -- the run ---------------------------------------------------------------------------------
class _NothingWritten(Exception):
    """A result that wrote nothing (exit 2): the input goes to ``error`` like a raised one."""

    def __init__(self, result: RunResult):
        self.result = result
        super().__init__(result.error)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, _NothingWritten | CaselleICError):
        return redact(str(exc))
    return redact(f"unexpected {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _store(url: str, stale_after_seconds: float) -> Iterator[InboxStore]:
    store = InboxStore(url, stale_after_seconds=stale_after_seconds)
    try:
        yield store
    finally:
        store.close()


def process_inbox(
    cfg: Any,
    kind: Kind,
    handler: Handler,
    *,
    ledger_url: str | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
    limit: int | None = None,
    clock: Callable[[], float] = time.time,
) -> InboxReport:
    """Process every settled ``kind`` file waiting in ``cfg.paths.inbox``, oldest first.

    Never raises for a bad input file (it ends in ``error`` with a reason); raises
    :class:`LedgerError` when the inbox table cannot be used at all.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown inbox kind {kind!r}; one of {', '.join(KINDS)}")
    paths = cfg.paths
    inbox, outbox = Path(paths.inbox), Path(paths.outbox)
    report = InboxReport(kind=kind, biller=cfg.name, inbox=inbox)
    waiting, report.in_progress, report.unrecognised = scan_inbox(inbox)
    mine = [w for w in waiting if w.kind == kind]
    if report.unrecognised:
        log.warning(
            "inbox %s: %d file(s) not recognised, left in place: %s",
            inbox,
            len(report.unrecognised),
            ", ".join(p.name for p in report.unrecognised),
        )
    if not mine:
        log.info("inbox %s: no %s file waiting", inbox, kind)
        return report
    outbox.mkdir(parents=True, exist_ok=True)

    url = ledger_url or default_ledger_url(cfg)
    # one engine for the claims and the pipelines the handler runs (open_ledger: lending)
    with _store(url, stale_after_seconds) as store, lending(url, store.ledger):
        for w in mine:
            if (
                limit is not None
                and len(report.by_status("processed")) + len(report.by_status("failed")) >= limit
            ):
                break
            report.items.append(_process_one(cfg, kind, w, handler, store, outbox, settle_seconds, clock))
    return report


def _process_one(
    cfg: Any,
    kind: Kind,
    w: Waiting,
    handler: Handler,
    store: InboxStore,
    outbox: Path,
    settle_seconds: float,
    clock: Callable[[], float],
) -> InboxItem:
    paths = cfg.paths
    item = InboxItem(name=w.path.name, kind=kind, status="unsettled", size=w.size)
    age = clock() - w.mtime
    if age < settle_seconds:
        item.reason = f"modified {age:.0f} s ago; waiting {settle_seconds:.0f} s for it to settle"
        log.info("inbox: %s is still arriving (%s), left for the next run", w.path.name, item.reason)
        return item
    try:
        item.sha256 = sha256_file(w.path)
        st = w.path.stat()
    except FileNotFoundError:
        item.status, item.reason = "vanished", "the file disappeared before it could be read"
        return item
    if (st.st_size, st.st_mtime) != (w.size, w.mtime):
        item.reason = "the file changed while it was read; left for the next run"
        log.info("inbox: %s changed while hashing, left for the next run", w.path.name)
        return item

    claim = store.claim(
        biller=biller_key(cfg),
        biller_name=cfg.name,
        sha256=item.sha256,
        kind=kind,
        name=w.path.name,
        size=w.size,
    )
    if claim.outcome == "busy":
        item.status = "busy"
        item.reason = f"another run ({claim.row.get('claimed_by')}) is processing the same content"
        return item
    if claim.outcome == "duplicate":
        prev = claim.row
        try:
            item.moved_to = _move(w.path, Path(paths.archive), item.sha256)
        except FileNotFoundError:  # the run that processed it has just moved it
            item.status, item.reason = "vanished", f"processed by another run as {prev['name']}"
            return item
        item.status = "duplicate"
        item.reason = (
            f"same content as {prev['name']} processed {prev['finished_at'][:16].replace('T', ' ')} UTC; "
            "not processed again"
        )
        item.note = item.moved_to.with_name(item.moved_to.name + ".duplicate.txt")
        _write_note(
            item.note,
            f"{item.moved_to.name} was not processed: its content (sha256 {item.sha256}) is the same as\n"
            f"{prev['name']}, processed at {prev['finished_at'][:19].replace('T', ' ')} UTC "
            f"and archived as {prev['archived_as']}.\n"
            "To process it again on purpose, run the command for it directly "
            "(e.g. caselle-ic payments FILE --config BILLER.toml --out DIR); the payment ledger "
            "still prevents posting a payment twice.\n",
        )
        log.warning("inbox: %s is a duplicate of %s; archived without processing", w.path.name, prev["name"])
        return item

    started = time.perf_counter()
    log.info("inbox: processing %s (%s, %d bytes, sha256 %s)", w.path.name, kind, w.size, item.sha256[:12])
    try:
        result = handler(w.path, outbox)
        if result.nothing_written and not result.retry_later:
            raise _NothingWritten(result)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            # Timed out or cancelled mid-file: release the claim (the next run takes it over,
            # the ledger skips what was sent) and leave the file where it is.
            store.finish(
                biller=biller_key(cfg),
                sha256=item.sha256,
                ok=False,
                archived_as=None,
                detail=f"interrupted ({type(exc).__name__}); the next run takes it over",
            )
            raise
        item.seconds = time.perf_counter() - started
        item.status = "failed"
        item.reason = _failure_reason(exc)
        log.error("inbox: %s failed: %s", w.path.name, item.reason)
        item.moved_to = _move(w.path, Path(paths.error), item.sha256)
        item.note = item.moved_to.with_name(item.moved_to.name + ".reason.txt")
        _write_note(
            item.note,
            f"{item.moved_to.name} failed and was not processed ({kind}, sha256 {item.sha256}):\n\n"
            f"{item.reason}\n\n"
            "Fix the cause, then move the file back into the inbox; the next scheduled run picks it up.\n",
        )
        store.finish(
            biller=biller_key(cfg),
            sha256=item.sha256,
            ok=False,
            archived_as=item.moved_to,
            detail=item.reason,
        )
        return item

    item.seconds = time.perf_counter() - started
    item.result = result
    if result.retry_later:
        # Outputs were written, but some records could not be sent now (Caselle down, an
        # outcome to settle): keep the input in the inbox so the next run sends the rest —
        # the pipeline's ledger skips what was already sent.
        item.status = "retry"
        item.reason = f"{result.pending} record(s) could not be sent now; left in the inbox for the next run"
        store.finish(
            biller=biller_key(cfg),
            sha256=item.sha256,
            ok=False,
            archived_as=None,
            outputs=list(result.outputs),
            detail=f"retry: {item.reason}",
        )
        log.warning("inbox: %s: %s", w.path.name, item.reason)
        return item
    item.status = "processed"
    item.moved_to = _move(w.path, Path(paths.archive), item.sha256)
    if result.n_quarantined:
        item.reason = f"{result.n_quarantined} record(s) quarantined -> {result.rejects_path}"
    store.finish(
        biller=biller_key(cfg),
        sha256=item.sha256,
        ok=True,
        archived_as=item.moved_to,
        outputs=list(result.outputs),
        detail=json.dumps({"counts": result.counts, "quarantined": result.n_quarantined}),
    )
    log.info("inbox: %s processed in %.2f s, archived as %s", w.path.name, item.seconds, item.moved_to.name)
    return item


# -- which pipeline handles which kind -------------------------------------------------------
def make_handler(
    kind: Kind,
    config: str | Path | BillerConfig,
    *,
    via_flow: bool,
    ledger_url: str | None = None,
    now: str | None = None,
) -> Handler:
    """A handler ``(path, outbox) -> RunResult`` that runs the pipeline of ``kind``.

    ``via_flow=True`` calls the Prefect flow (inside a flow run it becomes a subflow, so each
    file gets its own run, run name and artifacts in the UI); otherwise the plain function,
    with ``config`` as loaded once by the caller. See :meth:`caselle_ic.kinds.Kind.run`.
    """
    k = kinds.get(kind)

    def handler(path: Path, outbox: Path) -> RunResult:
        return k.run(path, config, via_flow=via_flow, out_dir=outbox, now=now, ledger_url=ledger_url)

    return handler
