"""One audit of one day (SPEC §11): ``caselle-ic audit --config F --date YYYY-MM-DD --out DIR``.

    export rows of the day ─┐
    ledger rows of the day ─┼─▶ compare (pure) ─▶ audit-YYYY-MM-DD.csv + totals + summary
    Caselle's receipts     ─┤
    lockbox files on disk  ─┘

Exit status: 0 clean, 1 discrepancies (the CSV lists them), 2 the audit cannot run (bad
configuration or date, no ledger, an unreadable ``--export`` file, Caselle unreachable):
then an error is raised and nothing is written. The audit sends no mutation, ever: it
asks ``receipts(confirmationNumber:)`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from caselle_ic.audit import report, sources
from caselle_ic.audit.compare import audit_day, count_by_kind
from caselle_ic.audit.discrepancy import Discrepancy, LockboxSide
from caselle_ic.audit.totals import DIFFERENCE, caselle_amounts, totals_table
from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.errors import ConfigError, UsageError
from caselle_ic.result import AuditCount, RunResult
from caselle_ic.store.ledger import Ledger, biller_key, ledger_url_for, open_ledger

KIND = "daily-audit"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AuditResult(RunResult):
    """A RunResult whose exit status is 1 when the audit found discrepancies."""

    day: str = ""
    discrepancies: list[Discrepancy] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        if self.error:
            return 2
        return 1 if self.discrepancies else 0

    def summary_lines(self) -> list[str]:
        found = {k: n for k, n in self.by_kind.items() if n}
        head = f"{self.kind} of {self.day} for {self.biller}: " + (
            f"{len(self.discrepancies)} discrepanc{'y' if len(self.discrepancies) == 1 else 'ies'} ("
            + ", ".join(f"{k} {n}" for k, n in found.items())
            + ")"
            if found
            else "clean, no discrepancy"
        )
        lines = [head, "  " + ", ".join(f"{k} {v}" for k, v in self.counts.items())]
        lines += [f"  total {k}: {v}" for k, v in self.totals.items()]
        lines += [f"  wrote {p}" for p in self.outputs]
        lines += [f"  note: {n}" for n in self.notes]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "date": self.day,
            "discrepancies": len(self.discrepancies),
            "by_kind": self.by_kind,
        }


def _identity(fn: F) -> F:
    return fn


def parse_day(text: str | date) -> date:
    if isinstance(text, date):
        return text
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise UsageError(f"--date {text!r} is not a date YYYY-MM-DD") from None


def open_existing_ledger(cfg: BillerConfig, ledger_url: str | None) -> Ledger:
    """The ledger to audit; a SQLite file that does not exist is an error, not a new ledger."""
    url = ledger_url_for(cfg, ledger_url)
    parsed = sa.make_url(url)
    db = parsed.database
    if parsed.get_backend_name() == "sqlite" and db and db != ":memory:" and not Path(db).is_file():
        raise ConfigError(
            f"no ledger at {db}: nothing was ever run for this biller there (give the ledger with --ledger)",
            file=cfg.source,
        )
    return open_ledger(url)


# -- steps (each a Prefect task in the flow) ----------------------------------------------------
def gather_export(
    cfg: BillerConfig, day: date, exports: Sequence[Path] | None, ledger: Ledger
) -> sources.ExportSide:
    """The day's export rows, from --export files or the archive."""
    return sources.export_side(cfg, day, exports, ledger)


def gather_ledger(ledger: Ledger, biller: str, day: date, export: sources.ExportSide) -> sources.LedgerSide:
    """The ledger's payments of the day, reversals on record and lockbox files."""
    return sources.ledger_side(ledger, biller, day, [str(r["payment_guid"]) for r in export.rows])


def gather_caselle(
    cfg: BillerConfig, led: sources.LedgerSide, options: dict[str, Any]
) -> sources.CaselleSide:
    """Caselle's receipts for the day's Data Pump payments and reversals (queries only)."""
    return sources.caselle_side(cfg, sources.lookups_needed(led.rows), **options)


def gather_lockbox(led: sources.LedgerSide, day: date) -> LockboxSide:
    """The lockbox files on disk: bytes against the ledger's SHA-256, lines indexed."""
    rows = [r for r in led.rows if r["transaction_type"] == "PAYMENT" and r.get("posting_method") == "File"]
    return sources.lockbox_side(rows, led.files, day)


def run_audit(
    config: str | Path | BillerConfig,
    day: str | date,
    out_dir: str | Path,
    ledger_url: str | None = None,
    exports: Sequence[str | Path] | None = None,
    step: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    *,
    caselle_options: dict[str, Any] | None = None,
) -> AuditResult:
    """Audit one day. ``caselle_options``: batch_size, workers, client_options."""
    wrap = step or _identity
    cfg = config if isinstance(config, BillerConfig) else load_config(config)
    day = parse_day(day)
    export_paths = [Path(p) for p in exports] if exports else None
    ledger = open_existing_ledger(cfg, ledger_url)
    try:
        exp: sources.ExportSide = wrap(gather_export)(cfg, day, export_paths, ledger)
        led: sources.LedgerSide = wrap(gather_ledger)(ledger, biller_key(cfg), day, exp)
        cas: sources.CaselleSide = wrap(gather_caselle)(cfg, led, dict(caselle_options or {}))
        box: LockboxSide = wrap(gather_lockbox)(led, day)
    finally:
        ledger.close()
    result: AuditResult = wrap(report_day)(cfg, day, Path(out_dir), exp, led, cas, box)
    return result


def report_day(
    cfg: BillerConfig,
    day: date,
    out: Path,
    exp: sources.ExportSide,
    led: sources.LedgerSide,
    cas: sources.CaselleSide,
    box: LockboxSide,
) -> AuditResult:
    """Compare the sides, write the CSVs, count."""
    found = audit_day(exp.rows, led.rows, cas.receipts, led.reversals_of, box, led.known_guids)
    totals = totals_table(exp.rows, led.rows, caselle_amounts(led.rows, cas.receipts, led.reversals_of, box))
    frame = report.discrepancy_frame(found)
    totals_frame = report.totals_frame(totals)
    outputs = [
        report.write_csv(frame, report.audit_csv_path(out, day)),
        report.write_csv(totals_frame, report.totals_csv_path(out, day)),
    ]
    by_kind = count_by_kind(found)
    payments_ = [r for r in led.rows if r["transaction_type"] == "PAYMENT"]
    counts: dict[str, int] = {
        AuditCount.EXPORT_ROWS: len(exp.rows),
        AuditCount.LEDGER_PAYMENTS: len(payments_),
        AuditCount.LEDGER_REVERSALS: len(led.rows) - len(payments_),
        AuditCount.DATAPUMP_PAYMENTS: sum(1 for r in payments_ if r.get("posting_method") != "File"),
        AuditCount.FILE_PAYMENTS: sum(1 for r in payments_ if r.get("posting_method") == "File"),
        AuditCount.RECEIPTS_LOOKED_UP: cas.lookups,
        AuditCount.LOCKBOX_FILES_CHECKED: len(box.files),
        AuditCount.DISCREPANCIES: len(found),
        **{AuditCount(k): n for k, n in by_kind.items() if n},  # a kind is a count name (KINDS)
    }
    grand = totals[-1]
    result = AuditResult(
        kind=KIND,
        biller=cfg.name,
        inputs=list(exp.files),
        outputs=outputs,
        counts=counts,
        totals={s: grand[f"{s}_amount"] for s in ("export", "ledger", "caselle")},
        period=day.isoformat(),
        day=day.isoformat(),
        discrepancies=found,
        by_kind=by_kind,
    )
    result.notes.extend(exp.notes)
    manual = sum(1 for r in led.rows if r.get("state") == "manual")
    if manual:
        result.notes.append(
            f"{manual} reversal(s) of lockbox payments are for manual handling; "
            "Caselle cannot be asked about them"
        )
    if exp.rows:
        exported = {str(r["payment_guid"]) for r in exp.rows}
        absent = sum(1 for r in led.rows if str(r["payment_guid"]) not in exported)
        if absent:
            result.notes.append(f"{absent} ledger payment(s) of the day are in none of the audited exports")
    if any(t["check"] == DIFFERENCE for t in totals):
        result.notes.append("the totals differ between export, ledger and Caselle: see the totals table")
    result.tables["discrepancies"] = frame
    result.tables["totals"] = totals_frame
    result.extra.update({"date": day.isoformat(), "by_kind": by_kind, "requests": cas.requests})
    return result


def default_audit_day(now: datetime) -> date:
    """The day a scheduled audit checks: the payments run of today posts yesterday's
    payments (an export carries the previous day), so yesterday."""
    return (now - timedelta(days=1)).date()


__all__ = ["KIND", "AuditResult", "default_audit_day", "parse_day", "report_day", "run_audit"]
