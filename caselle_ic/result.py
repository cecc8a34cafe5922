"""What a run reports: counts, totals, outputs and quarantined records.

A :class:`RunResult` is returned by every pipeline function. The CLI turns it into an
exit status and a stderr summary; the Prefect flows turn it into artifacts. Anything an
analyst sees goes through :func:`analyst_view`, which masks account numbers to their last
4 characters and drops e-mail and phone.
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

    @property
    def n_quarantined(self) -> int:
        return len(self.quarantined)

    @property
    def exit_status(self) -> int:
        """0 everything accepted, 1 some records quarantined (SPEC §10)."""
        return 1 if self.n_quarantined else 0

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
