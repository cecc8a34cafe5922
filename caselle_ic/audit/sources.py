"""Gathering the three sides of a day for the audit (reads only, never a mutation).

* :func:`export_side`: the valid export rows whose payment_date carries the day, from the
  ``--export`` files, else from the payment exports in ``[paths].archive`` (by name, as the
  inbox recognises them, plus every file the inbox recorded archiving as a payments input);
* :func:`ledger_side`: the ledger's payments of the day, every reversal on record (any day),
  and the lockbox files it recorded;
* :func:`caselle_side`: ``receipts(confirmationNumber:)`` for every Data Pump payment of the
  day and every reversal's original, in aliased batches sent by a few threads at once;
* :func:`lockbox_side`: the recorded lockbox files against their bytes on disk, and every
  line of every lockbox file in their directories, indexed by its exact text.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from caselle_ic.audit.discrepancy import FileCheck, LockboxSide, Seen
from caselle_ic.config.model import BillerConfig
from caselle_ic.connect.client import CaselleClient, Purpose
from caselle_ic.errors import CaselleAPIError, InputError
from caselle_ic.payments.codes import load_payment_codes
from caselle_ic.payments.codes_resolve import resolve_codes
from caselle_ic.payments.export import read_payment_export
from caselle_ic.payments.lockbox import lockbox_lines
from caselle_ic.store.ledger import Ledger
from caselle_ic.store.tables import lockbox_files, payments
from caselle_ic.tabular.csvin import LINE
from caselle_ic.tabular.values import decimal_to_cents

log = logging.getLogger(__name__)

#: Names the inbox routes to the payments run (caselle_ic.ops.inbox_scan NAME_RULES) and notes it
#: leaves beside archived inputs.
_PAYMENT_NAME = re.compile(r"payment|pymt", re.IGNORECASE)
_OTHER_KIND = re.compile(r"adjust|paperless", re.IGNORECASE)
_NOTES = (".reason.txt", ".duplicate.txt")
_FILE_DATE = re.compile(r"_PYMT_(\d{8})", re.IGNORECASE)
_IN_CHUNK = 500


# -- the export ------------------------------------------------------------------------------
@dataclass
class ExportSide:
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unreadable_lines: int = 0


def archived_exports(cfg: BillerConfig, ledger: Ledger) -> list[Path]:
    """Payment exports in ``[paths].archive``: by name, and as the inbox recorded them."""
    archive = Path(cfg.paths.archive)
    found: set[Path] = set()
    if archive.is_dir():
        for p in archive.rglob("*"):
            name = p.name
            if (
                p.is_file()
                and not name.startswith(".")
                and not name.lower().endswith(_NOTES)
                and _PAYMENT_NAME.search(name)
                and not _OTHER_KIND.search(name)
            ):
                found.add(p)
    found.update(_inbox_recorded(ledger, str(cfg.biller_guid).lower()))
    return sorted(found)


def _inbox_recorded(ledger: Ledger, biller: str) -> list[Path]:
    """``archived_as`` of the payments inputs the inbox processed (its ``inbox_files`` table
    lives in the ledger database; absent when no inbox run ever ran there)."""
    if not sa.inspect(ledger.engine).has_table("inbox_files", schema=ledger.schema):
        return []
    t = sa.table("inbox_files", sa.column("biller"), sa.column("kind"), sa.column("archived_as"))
    with ledger.begin() as conn:
        names = conn.execute(
            sa.select(t.c.archived_as).where(
                t.c.biller == biller, t.c.kind == "payments", t.c.archived_as.is_not(None)
            )
        ).scalars()
        return [Path(str(n)) for n in names if n and Path(str(n)).is_file()]


def export_side(cfg: BillerConfig, day: date, files: Sequence[Path] | None, ledger: Ledger) -> ExportSide:
    """The valid export rows of ``day`` (first occurrence of each GUID), codes resolved.

    A file given with ``--export`` that cannot be read raises (the audit cannot run); an
    archived one is skipped with a note."""
    side = ExportSide()
    given = files is not None
    paths = list(files) if files is not None else archived_exports(cfg, ledger)
    codes = load_payment_codes(cfg)
    seen: set[str] = set()
    for path in paths:
        try:
            parsed = read_payment_export(path, cfg)
        except InputError as exc:
            if given:
                raise
            side.notes.append(f"archived file {path.name} skipped: {exc}")
            continue
        valid = parsed.valid
        mine = valid[pd.to_datetime(valid["payment_date"]).dt.date == day] if len(valid) else valid
        if len(parsed.quarantined):
            side.unreadable_lines += len(parsed.quarantined)
        if mine.empty:
            if given:
                side.files.append(path)
            continue
        side.files.append(path)
        resolved = resolve_codes(mine, codes)
        frame = pd.DataFrame(
            {
                "payment_guid": resolved["payment_guid"].astype("string"),
                "transaction_type": resolved["transaction_type"].astype("string"),
                "original_guid": resolved["original_payment_guid"].astype("string"),
                "account_number": resolved["account_number"].astype("string"),
                "amount_cents": resolved["amount_cents"].astype("int64"),
                "export_line": resolved[LINE].astype("int64"),
                "posting_method": resolved["posting_method"].astype("string"),
                "distribution_code": resolved["distribution_code"].astype("Int64"),
                "payment_code": resolved["payment_code"].astype("Int64"),
            }
        )
        frame = frame.astype(object).where(frame.notna(), None)
        for rec in frame.to_dict("records"):
            guid = str(rec["payment_guid"])
            if guid in seen:  # an overlapping export: the first occurrence stands
                continue
            seen.add(guid)
            rec["export_name"] = path.name
            side.rows.append(rec)
    if not given and not side.files:
        side.notes.append(
            f"no archived payment export in {cfg.paths.archive} carries {day.isoformat()}: the export side "
            "is empty (give the day's exports with --export)"
        )
    if side.unreadable_lines:
        side.notes.append(
            f"{side.unreadable_lines} line(s) of these exports failed validation and are not audited "
            "(the payments run's rejects file lists them with the reason)"
        )
    return side


# -- the ledger ------------------------------------------------------------------------------
@dataclass
class LedgerSide:
    rows: list[dict[str, Any]]  # the payments of the day (every transaction type)
    reversals_of: dict[str, list[dict[str, Any]]]  # original GUID -> its reversal rows, any day
    known_guids: set[str]  # GUIDs of the day's export rows the ledger holds (any date)
    files: list[dict[str, Any]]  # lockbox_files rows (state written)


#: The ledger columns the comparison reads (a day can hold 100,000 rows: not all 39).
LEDGER_COLUMNS = (
    "payment_guid",
    "transaction_type",
    "original_guid",
    "payment_date",
    "account_number",
    "customer_name",
    "amount_cents",
    "export_name",
    "export_line",
    "distribution_code",
    "payment_code",
    "posting_method",
    "state",
    "receipt_number",
    "lockbox_file",
    "lockbox_line",
    "reason",
)


def ledger_side(ledger: Ledger, biller: str, day: date, export_guids: Iterable[str]) -> LedgerSide:
    start, end = f"{day.isoformat()}T00:00:00", f"{day.isoformat()}T23:59:59"
    cols = [payments.c[c] for c in LEDGER_COLUMNS]
    with ledger.begin() as conn:
        result = conn.execute(
            sa.select(*cols)
            .where(payments.c.biller == biller, payments.c.payment_date.between(start, end))
            .order_by(payments.c.payment_date, payments.c.payment_guid)
        )
        rows = [dict(zip(LEDGER_COLUMNS, r, strict=True)) for r in result]
        reversal_rows = conn.execute(
            sa.select(*cols).where(payments.c.biller == biller, payments.c.transaction_type != "PAYMENT")
        ).mappings()
        reversals_of: dict[str, list[dict[str, Any]]] = {}
        for r in reversal_rows:
            reversals_of.setdefault(str(r["original_guid"]), []).append(dict(r))
        files = [
            dict(r)
            for r in conn.execute(
                sa.select(lockbox_files).where(
                    lockbox_files.c.biller == biller, lockbox_files.c.state == "written"
                )
            ).mappings()
        ]
        known = {str(r["payment_guid"]) for r in rows}
        missing = sorted(set(export_guids) - known)
        for i in range(0, len(missing), _IN_CHUNK):
            chunk = missing[i : i + _IN_CHUNK]
            known.update(
                str(g)
                for g in conn.execute(
                    sa.select(payments.c.payment_guid).where(
                        payments.c.biller == biller, payments.c.payment_guid.in_(chunk)
                    )
                ).scalars()
            )
    return LedgerSide(rows, reversals_of, known, files)


# -- Caselle ---------------------------------------------------------------------------------
@dataclass
class CaselleSide:
    receipts: dict[str, list[Seen]]
    lookups: int = 0  # confirmation numbers asked
    requests: int = 0  # aliased documents sent


def lookups_needed(rows: Sequence[Mapping[str, Any]]) -> dict[Purpose, list[str]]:
    """Which confirmation numbers to ask, through which endpoint: a Data Pump payment's GUID
    (setting 11), a reversal's original (refunds 11, ACH rejects 101 as the posting does)."""
    wanted: dict[Purpose, dict[str, None]] = {}
    for r in rows:
        kind = str(r["transaction_type"])
        if kind == "PAYMENT":
            if str(r.get("posting_method") or "") == "File":
                continue
            wanted.setdefault("payments", {})[str(r["payment_guid"])] = None
        elif str(r.get("state") or "") != "manual":
            purpose: Purpose = "ach_rejects" if kind == "ACH_REJECT" else "payments"
            wanted.setdefault(purpose, {})[str(r["original_guid"])] = None
    return {p: list(g) for p, g in wanted.items()}


def caselle_side(
    cfg: BillerConfig,
    wanted: Mapping[Purpose, Sequence[str]],
    *,
    batch_size: int = 50,
    workers: int = 8,
    client_options: Mapping[str, Any] | None = None,
) -> CaselleSide:
    """Every receipt for the wanted confirmation numbers. Each thread has its own client;
    a query is repeatable, so the client retries and fails over freely. Raises the first
    error (the audit cannot run without Caselle's side)."""
    jobs = [(p, list(g[i : i + batch_size])) for p, g in wanted.items() for i in range(0, len(g), batch_size)]
    side = CaselleSide({}, lookups=sum(len(g) for g in wanted.values()), requests=len(jobs))
    if not jobs:
        return side
    local = threading.local()
    clients: list[CaselleClient] = []
    lock = threading.Lock()

    def client(purpose: Purpose) -> CaselleClient:
        mine: dict[str, CaselleClient] = local.__dict__.setdefault("clients", {})
        if purpose not in mine:
            mine[purpose] = CaselleClient.for_purpose(cfg, purpose, **dict(client_options or {}))
            with lock:
                clients.append(mine[purpose])
        return mine[purpose]

    def one(job: tuple[Purpose, list[str]]) -> dict[str, list[Seen]]:
        purpose, guids = job
        outcomes = client(purpose).receipts_many(guids)
        got: dict[str, list[Seen]] = {}
        for guid, outcome in zip(guids, outcomes, strict=True):
            if outcome.error is not None:
                raise outcome.error
            got[guid] = [
                Seen(
                    receipt_number=x.receipt_number,
                    receipt_date=x.receipt_date.isoformat(),
                    distribution_code=x.distribution_code,
                    payment_code=x.payment_code,
                    amount_cents=decimal_to_cents(x.amount),
                    account_number=x.account_number,
                    voided=x.voided,
                    void_date=x.void_date.isoformat() if x.void_date else "",
                )
                for x in outcome.value or []
            ]
        return got

    try:
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="audit"
        ) as pool:
            for got in pool.map(one, jobs):
                side.receipts.update(got)
    except CaselleAPIError as exc:
        raise type(exc)(f"cannot read Caselle's receipts, the audit cannot run: {exc}") from None
    finally:
        for c in clients:
            c.close()
    return side


# -- the lockbox files on disk ---------------------------------------------------------------
def _sha256(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def expected_lines(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """payment_guid -> the exact lockbox line (no CRLF) its ledger row makes (SPEC §7)."""
    usable = [r for r in rows if r.get("distribution_code") is not None and r.get("payment_code") is not None]
    if not usable:
        return {}
    frame = pd.DataFrame(usable)
    frame["payment_date"] = pd.to_datetime(frame["payment_date"])
    for c in ("distribution_code", "payment_code", "amount_cents"):
        frame[c] = frame[c].astype("int64")
    lines = lockbox_lines(frame).to_pylist()
    return {str(g): str(t) for g, t in zip(frame["payment_guid"], lines, strict=True)}


def lockbox_side(
    rows: Sequence[Mapping[str, Any]], files: Sequence[Mapping[str, Any]], day: date
) -> LockboxSide:
    """``rows``: the day's File payments (ledger rows); ``files``: the recorded lockbox files.

    Every ``*_PYMT_*.TXT`` in the recorded files' directories named for the day or later
    (or not named by date) is read, so a copy of a file, or a line pasted into another
    one, is found."""
    side = LockboxSide(expected=expected_lines(rows))
    by_name = {str(f["file_name"]): f for f in files}
    for name in sorted({str(r["lockbox_file"]) for r in rows if r.get("lockbox_file")}):
        f = by_name.get(name)
        if f is not None:
            side.files.append(
                FileCheck(
                    name, str(f["directory"]), str(f["sha256"]), _sha256(Path(str(f["directory"])) / name)
                )
            )
    if not rows:
        return side
    floor = day.strftime("%Y%m%d")
    for directory in sorted({str(f["directory"]) for f in files}):
        d = Path(directory)
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*_PYMT_*")):
            m = _FILE_DATE.search(p.name)
            if not p.is_file() or (m is not None and m.group(1) < floor):
                continue
            try:
                text = p.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                continue
            for n, line in enumerate(text.split("\r\n"), start=1):
                if line:
                    side.lines.setdefault(line, []).append((p.name, n))
    return side


__all__ = [
    "CaselleSide",
    "ExportSide",
    "LedgerSide",
    "archived_exports",
    "caselle_side",
    "expected_lines",
    "export_side",
    "ledger_side",
    "lockbox_side",
    "lookups_needed",
]
