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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from caselle_ic.tabular.values import mask_account

#: Columns never shown to an analyst (personal data).
PERSONAL_COLUMNS = ("email", "phone", "address1", "address2")
#: Columns masked to their last 4 characters.
ACCOUNT_COLUMNS = ("account_number", "customer_number", "customernumber", "accountnumber")


@dataclass
class RunResult:
    kind: str  # invoice-file, adjustments-file, daily-payments, paperless-sync, balance-refresh
    biller: str
    inputs: list[Path]
    outputs: list[Path] = field(default_factory=list)
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
