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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from caselle_ic import kinds
from caselle_ic.errors import CaselleICError, LedgerError
from caselle_ic.logsafe import redact
from caselle_ic.result import RunResult

if TYPE_CHECKING:
    from caselle_ic.config.model import BillerConfig

log = logging.getLogger(__name__)

Kind = str  # a name of caselle_ic.kinds.KINDS with an inbox rule
KINDS: tuple[Kind, ...] = kinds.inbox_kinds()

#: Name rules for files directly in the inbox, tried in this order (first match wins).
NAME_RULES: tuple[tuple[Kind, re.Pattern[str]], ...] = kinds.name_rules()
#: Names of files still being written (or not inputs at all): never picked up.
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".tmp", ".filepart", ".crdownload", ".swp", ".lock")
NOTE_SUFFIXES = (".reason.txt", ".duplicate.txt")

DEFAULT_SETTLE_SECONDS = 30.0
DEFAULT_STALE_AFTER_SECONDS = 3600.0

Handler = Callable[[Path, Path], RunResult]

# -- the table ---------------------------------------------------------------------------
metadata = sa.MetaData()
inbox_files = sa.Table(
    "inbox_files",
    metadata,
    sa.Column("biller", sa.String(64), primary_key=True),  # lower-case BillerGuid, as the ledger keys it
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("biller_name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # processing | done | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=False),
    sa.Column("claimed_at", sa.String(32), nullable=False),  # fixed-width UTC text, as in the ledger
    sa.Column("finished_at", sa.String(32), nullable=True),
    sa.Column("archived_as", sa.String(1000), nullable=True),
    sa.Column("outputs", sa.Text, nullable=True),  # JSON list of paths
    sa.Column("detail", sa.Text, nullable=True),  # counts, or the (redacted) failure reason
)


def default_ledger_url(cfg: Any) -> str:
    """``sqlite:///<paths.state>/ledger.db`` — the same file the ledger uses by default."""
    state = Path(cfg.paths.state)
    return f"sqlite:///{state / 'ledger.db'}"


def utc_text(moment: datetime | None = None) -> str:
    """Fixed-width UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the ledger's timestamp format)."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc_text(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def biller_key(cfg: Any) -> str:
    """The biller's key: its BillerGuid in lower case (stable when the biller is renamed)."""
    return str(cfg.biller_guid).lower()


@dataclass(frozen=True)
class Claim:
    outcome: Literal["claimed", "duplicate", "busy"]
    row: dict[str, Any] = field(default_factory=dict)


class InboxStore:
    """The ``inbox_files`` table: who processed which content, and how it ended."""

    def __init__(self, url: str, *, stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS):
        self.url = url
        self.stale_after_seconds = stale_after_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        try:
            self.engine = sa.create_engine(url, **kwargs)
            self._create_table()
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot open the inbox table in the ledger database {_safe_url(url)}: "
                f"{type(exc).__name__}; check the URL and that the database is running"
            ) from None

    def _create_table(self) -> None:
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError:
            # Another process created it between our check and our CREATE: fine if it is there.
            if not sa.inspect(self.engine).has_table(inbox_files.name):
                raise

    def close(self) -> None:
        self.engine.dispose()

    def _key(self, biller: str, sha256: str) -> Any:
        t = inbox_files.c
        return sa.and_(t.biller == biller, t.sha256 == sha256)

    def get(self, biller: str, sha256: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(inbox_files).where(self._key(biller, sha256))).mappings().first()
        return dict(row) if row else None

    def claim(self, *, biller: str, biller_name: str, sha256: str, kind: str, name: str, size: int) -> Claim:
        """Claim content for processing. Safe when several runs race for the same file."""
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    inbox_files.insert().values(
                        biller=biller,
                        sha256=sha256,
                        biller_name=biller_name,
                        kind=kind,
                        name=name,
                        size=size,
                        status="processing",
                        attempts=1,
                        claimed_by=self.worker,
                        claimed_at=utc_text(now),
                    )
                )
            return Claim("claimed")
        except IntegrityError:
            pass
        row = self.get(biller, sha256)
        if row is None:  # deleted between our insert and select: try once more
            return self.claim(
                biller=biller, biller_name=biller_name, sha256=sha256, kind=kind, name=name, size=size
            )
        if row["status"] == "done":
            return Claim("duplicate", row)
        age = (now - parse_utc_text(row["claimed_at"])).total_seconds()
        if row["status"] == "processing" and age < self.stale_after_seconds:
            return Claim("busy", row)
        # failed before, or a stale claim of a run that died: take it over, optimistically
        with self.engine.begin() as conn:
            taken = conn.execute(
                inbox_files.update()
                .where(self._key(biller, sha256))
                .where(inbox_files.c.status == row["status"])
                .where(inbox_files.c.attempts == row["attempts"])
                .values(
                    status="processing",
                    attempts=row["attempts"] + 1,
                    claimed_by=self.worker,
                    claimed_at=utc_text(now),
                    kind=kind,
                    name=name,
                    finished_at=None,
                )
            ).rowcount
        return Claim("claimed", row) if taken == 1 else Claim("busy", row)

    def finish(
        self,
        *,
        biller: str,
        sha256: str,
        ok: bool,
        archived_as: Path | None,
        outputs: list[Path] | None = None,
        detail: str = "",
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                inbox_files.update()
                .where(self._key(biller, sha256))
                .values(
                    status="done" if ok else "failed",
                    finished_at=utc_text(),
                    archived_as=str(archived_as) if archived_as else None,
                    outputs=json.dumps([str(p) for p in outputs or []]),
                    detail=detail,
                )
            )

    def forget(self, biller: str, sha256: str) -> bool:
        """Drop the record of some content so the same file can be processed again."""
        with self.engine.begin() as conn:
            return bool(conn.execute(inbox_files.delete().where(self._key(biller, sha256))).rowcount)


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


# -- finding files ---------------------------------------------------------------------------
def classify(name: str) -> Kind | None:
    """The kind a file directly in the inbox belongs to, by its name (None: unrecognised)."""
    for kind, pattern in NAME_RULES:
        if pattern.search(name):
            return kind
    return None


def is_in_progress_name(name: str) -> bool:
    lower = name.lower()
    return (
        name.startswith((".", "~")) or lower.endswith(IN_PROGRESS_SUFFIXES) or lower.endswith(NOTE_SUFFIXES)
    )


@dataclass(frozen=True)
class Waiting:
    path: Path
    kind: Kind
    size: int
    mtime: float


def scan_inbox(inbox: Path) -> tuple[list[Waiting], list[Path], list[Path]]:
    """Every candidate input, oldest first; plus in-progress names and unrecognised files."""
    found: list[Waiting] = []
    in_progress: list[Path] = []
    unknown: list[Path] = []
    if not inbox.is_dir():
        return found, in_progress, unknown

    def consider(path: Path, kind: Kind | None) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:  # moved away meanwhile
            return
        if is_in_progress_name(path.name):
            in_progress.append(path)
        elif kind is None:
            unknown.append(path)
        else:
            found.append(Waiting(path, kind, st.st_size, st.st_mtime))

    root = inbox.resolve()

    def outside(path: Path) -> bool:
        """A symbolic link (to anywhere), or a path resolving outside the inbox, is never
        read: its content would be echoed into the error note, stderr and the ledger.
        Listed as unrecognised (name only) and left where it is."""
        try:
            escapes = path.is_symlink() or not path.resolve().is_relative_to(root)
        except OSError:
            escapes = True
        if escapes:
            log.warning("inbox: %s is a symbolic link or resolves outside the inbox; not read", path.name)
            unknown.append(path)
        return escapes

    for entry in sorted(inbox.iterdir()):
        if outside(entry):
            continue
        if entry.is_dir():
            if entry.name in KINDS:
                for sub in sorted(entry.iterdir()):
                    if not outside(sub) and sub.is_file():
                        consider(sub, entry.name)  # type: ignore[arg-type]
            continue
        if entry.is_file():
            consider(entry, classify(entry.name))
    found.sort(key=lambda w: (w.mtime, w.path.name))
    return found, in_progress, unknown


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


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
Status = Literal["processed", "retry", "failed", "duplicate", "busy", "unsettled", "vanished"]


@dataclass
class InboxItem:
    name: str
    kind: str
    status: Status
    sha256: str = ""
    size: int = 0
    moved_to: Path | None = None
    note: Path | None = None
    result: RunResult | None = None
    reason: str = ""
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        if self.status in ("failed", "retry"):
            return 2
        return self.result.exit_status if self.result is not None else 0


@dataclass
class InboxReport:
    kind: str
    biller: str
    inbox: Path
    items: list[InboxItem] = field(default_factory=list)
    unrecognised: list[Path] = field(default_factory=list)
    in_progress: list[Path] = field(default_factory=list)

    def by_status(self, status: Status) -> list[InboxItem]:
        return [i for i in self.items if i.status == status]

    @property
    def results(self) -> list[RunResult]:
        return [i.result for i in self.items if i.result is not None]

    @property
    def exit_status(self) -> int:
        """2 when a file failed, 1 when records were quarantined, else 0."""
        return max([i.exit_status for i in self.items], default=0)

    def summary_lines(self) -> list[str]:
        counts = {
            s: len(self.by_status(s))
            for s in ("processed", "retry", "failed", "duplicate", "busy", "unsettled")
        }
        lines = [
            f"inbox {self.kind} for {self.biller}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f" (inbox {self.inbox})"
        ]
        for i in self.items:
            where = f" -> {i.moved_to}" if i.moved_to else ""
            why = f": {i.reason}" if i.reason else ""
            lines.append(f"  {i.status:<9} {i.name}{where}{why}")
        if self.unrecognised:
            lines.append(
                "  not recognised (left in the inbox): " + ", ".join(p.name for p in self.unrecognised)
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (what the inbox flows return)."""
        counts = {
            s: len(self.by_status(s))
            for s in ("processed", "retry", "failed", "duplicate", "busy", "unsettled")
        }
        return {
            "biller": self.biller,
            "kind": self.kind,
            "exit_status": self.exit_status,
            **counts,
            "unrecognised": [p.name for p in self.unrecognised],
            "files": [
                {
                    "name": i.name,
                    "status": i.status,
                    "moved_to": str(i.moved_to) if i.moved_to else None,
                    "reason": i.reason,
                    "outputs": [str(p) for p in i.result.outputs] if i.result else [],
                    "quarantined": i.result.n_quarantined if i.result else 0,
                    "rejects": str(i.result.rejects_path) if i.result and i.result.rejects_path else None,
                    "seconds": round(i.seconds, 3),
                }
                for i in self.items
            ],
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Inbox pickup: {self.kind} — {self.biller}",
            "",
            f"Inbox: `{self.inbox}`",
            "",
            "| file | status | moved to | records quarantined | note |",
            "| --- | --- | --- | --- | --- |",
        ]
        for i in self.items:
            q = str(i.result.n_quarantined) if i.result is not None else ""
            moved = f"`{i.moved_to}`" if i.moved_to else "(left in inbox)"
            reason = i.reason.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{i.name}` | {i.status} | {moved} | {q} | {reason} |")
        if not self.items:
            lines.append("| (nothing waiting) | | | | |")
        if self.unrecognised:
            lines += [
                "",
                "Files whose name does not say what they are (left in the inbox; rename them or move "
                "them into `inbox/<kind>/`): " + ", ".join(f"`{p.name}`" for p in self.unrecognised),
            ]
        return "\n".join(lines) + "\n"


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

    with _store(ledger_url or default_ledger_url(cfg), stale_after_seconds) as store:
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
