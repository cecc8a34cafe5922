"""What a run reports: counts, totals, outputs and quarantined records.

A :class:`RunResult` is returned by every pipeline function (through
:func:`caselle_ic.kinds.Kind.run`, which also turns a raised
:class:`~caselle_ic.errors.NothingToWriteError` into its result, so every consumer sees one
shape). The CLI turns it into an exit status and a stderr summary (or one JSON object with
``--json``); the Prefect flows turn it into artifacts; the inbox reads
:attr:`RunResult.retry_later`. Anything an analyst sees goes through :func:`analyst_view`,
which masks account numbers to their last 4 characters and drops e-mail and phone.

The one convention for "the run did not do its job" (exit 2): :attr:`RunResult.error` holds
why. With no outputs ("nothing written": every statement quarantined) the CLI prints it as
its one error line; with outputs (payments: lockbox files and the reconciliation written,
Caselle unreachable) the summary carries it as a note.

Count names are declared here, once per kind, as a :class:`~enum.StrEnum` whose values are
the labels every summary, ``--json`` object, artifact and ledger ``runs.counts`` shows
(:class:`InvoiceCount`, :class:`PaymentCount`, :class:`PaperlessCount`,
:class:`BalanceCount`, :class:`AuditCount`). Producers and consumers use the members, never
the label text; :attr:`RunResult.counts` stays a plain ``dict`` of str to int (a member is a
str, so a key written either way is the same key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from caselle_ic.tabular.values import mask_account

#: Columns never shown to an analyst (personal data).
PERSONAL_COLUMNS = ("email", "phone", "address1", "address2")
#: Columns masked to their last 4 characters.
ACCOUNT_COLUMNS = ("account_number", "customer_number", "customernumber", "accountnumber")


# -- count names, one enum per kind; the value is the label shown everywhere -----------------
class InvoiceCount(StrEnum):
    """``invoice-file`` and ``adjustments-file`` (:mod:`caselle_ic.invoices`)."""

    ROWS_IN = "rows_in"
    STATEMENTS_IN = "statements_in"
    STATEMENTS_WRITTEN = "statements_written"
    STATEMENTS_QUARANTINED = "statements_quarantined"
    ROWS_QUARANTINED = "rows_quarantined"
    RECORDS_WRITTEN = "records_written"


class PaymentCount(StrEnum):
    """``daily-payments`` (:mod:`caselle_ic.payments.pipeline`). POSTED .. QUARANTINED are
    also the reconciliation outcomes; the ones after LOCKBOX_FILES appear only when nonzero."""

    LINES = "lines"
    VALID = "valid"
    POSTED = "posted"
    VOIDED = "voided"
    FILED = "filed"
    MANUAL = "manual"
    PENDING = "pending"
    EARLIER = "earlier"
    QUARANTINED = "quarantined"
    CONFLICTS = "conflicts"
    LOCKBOX_FILES = "lockbox files"
    SETTLED_FOUND = "settled after a lost answer"
    SETTLED_ABSENT = "lost posts not committed (sent again)"
    VOIDS_SETTLED_FOUND = "lost voids settled"
    VOIDS_SETTLED_ABSENT = "lost voids not done (sent again)"
    FILES_RECOVERED = "lockbox files recovered"
    FILES_ABANDONED = "lockbox names abandoned"
    CARRIED_OVER = "carried over"


class PaperlessCount(StrEnum):
    """``paperless-sync`` (:mod:`caselle_ic.sync.paperless`)."""

    ROWS = "rows"
    ACCOUNTS = "accounts"
    SENT = "sent"
    ALREADY_SENT = "already sent"
    STALE = "stale"
    SUPERSEDED = "superseded"
    REFUSED = "refused by Caselle"
    NOT_SENT = "not sent (retry)"
    QUARANTINED = "quarantined"


class BalanceCount(StrEnum):
    """``balance-refresh`` (:mod:`caselle_ic.sync.balance`)."""

    ACCOUNTS = "accounts"
    FOUND = "found"
    QUARANTINED = "quarantined"


class AuditCount(StrEnum):
    """``daily-audit`` (:mod:`caselle_ic.audit`). After DISCREPANCIES, one per discrepancy
    kind (the audit CSV's ``kind``, in its order; :data:`caselle_ic.audit.compare.KINDS`),
    counted only when nonzero."""

    EXPORT_ROWS = "export rows"
    LEDGER_PAYMENTS = "ledger payments"
    LEDGER_REVERSALS = "ledger reversals"
    DATAPUMP_PAYMENTS = "Data Pump payments"
    FILE_PAYMENTS = "File payments"
    RECEIPTS_LOOKED_UP = "receipts looked up"
    LOCKBOX_FILES_CHECKED = "lockbox files checked"
    DISCREPANCIES = "discrepancies"
    MISSING_RECEIPT = "missing_receipt"
    RECEIPT_DIFFERS = "receipt_differs"
    DUPLICATE_RECEIPT = "duplicate_receipt"
    VOIDED_WITHOUT_REVERSAL = "voided_without_reversal"
    REVERSAL_NOT_VOIDED = "reversal_not_voided"
    NOT_IN_ANY_FILE = "not_in_any_file"
    IN_TWO_FILES = "in_two_files"
    FILE_CHANGED = "file_changed"
    NEVER_PROCESSED = "never_processed"


@dataclass
class RunResult:
    kind: str  # invoice-file, adjustments-file, daily-payments, paperless-sync, balance-refresh
    biller: str
    inputs: list[Path]
    outputs: list[Path] = field(default_factory=list)
    #: keyed by the members of the kind's count enum (InvoiceCount, ...): a StrEnum member
    #: is a str, so the mapping is str -> int at runtime and a label reads the same entry
    counts: dict[str, int] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)  # exact decimal strings
    quarantined: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejects_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # e.g. reconciliation
    period: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: why the run did not do its job (exit 2); "" when it did
    error: str = ""
    #: a rerun of the same input would still send something (Caselle unreachable for some
    #: records, an outcome to settle): the inbox keeps the input for the next run
    retry_later: bool = False
    #: how many records a rerun would still send (shown in the inbox's reason)
    pending: int = 0

    def keep_for_retry(self, n: int) -> None:
        """Say that ``n`` records could not be sent now and a rerun sends them."""
        self.retry_later = n > 0
        self.pending = n

    @property
    def n_quarantined(self) -> int:
        return len(self.quarantined)

    @property
    def exit_status(self) -> int:
        """0 everything accepted, 1 some records quarantined, 2 not done (SPEC §10)."""
        if self.error:
            return 2
        return 1 if self.n_quarantined else 0

    @property
    def nothing_written(self) -> bool:
        """Exit 2 with no output at all: the CLI reports it as an error line, not a summary."""
        return bool(self.error) and not self.outputs

    def to_json(self) -> dict[str, Any]:
        """The run as one JSON-able object (``--json``): totals stay exact decimal strings."""
        return {
            "kind": self.kind,
            "biller": self.biller,
            "exit_status": self.exit_status,
            "inputs": [str(p) for p in self.inputs],
            "counts": dict(self.counts),
            "totals": {k: str(v) for k, v in self.totals.items()},
            "outputs": [str(p) for p in self.outputs],
            "quarantined": self.n_quarantined,
            "rejects": str(self.rejects_path) if self.rejects_path else None,
            "notes": list(self.notes),
            "error": self.error or None,
            "retry_later": self.retry_later,
            "period": self.period,
        }

    def summary_lines(self) -> list[str]:
        lines = [f"{self.kind} for {self.biller}: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())]
        lines += [f"  total {k}: {v}" for k, v in self.totals.items()]
        lines += [f"  wrote {p}" for p in self.outputs]
        if self.n_quarantined:
            lines.append(f"  {self.n_quarantined} record(s) quarantined -> {self.rejects_path}")
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def analyst_view(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy safe to show in the Prefect UI: accounts masked, personal data dropped."""
    if frame is None or frame.empty:
        return pd.DataFrame() if frame is None else frame.copy()
    out = frame.drop(columns=[c for c in frame.columns if c.lower() in PERSONAL_COLUMNS])
    for c in out.columns:
        if c.lower() in ACCOUNT_COLUMNS:
            out[c] = mask_account(out[c])
    return out
