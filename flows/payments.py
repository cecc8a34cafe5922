"""Prefect flow ``daily-payments``: a thin wrapper over :func:`run_daily_payments`.

The steps an analyst opens — reading the export, posting, filing, voiding
(:data:`TASK_STEPS`) — are one Prefect task each (never one per payment), with
``cache_policy=NO_CACHE`` (the steps take DataFrames and the engine; hashing them would be
slow and wrong). The quick bookkeeping steps (resolve codes, record, route, settle
leftovers, wait for other runs) run inside the flow run: each task run cost the Prefect
server 0.07-0.15 s of CPU, measured, on a run whose own work is ~1 s; one that fails logs
its name and fails the run. While
posting, a progress artifact shows how many receipts are done; at the end the run's
artifacts (summary, quarantined records masked, the reconciliation in exact decimals, the
carried-over table) are published.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from caselle_ic.flows._common import finish, load_biller, run_name, tasks_for
from caselle_ic.flows.unattended import run_timeout
from caselle_ic.payments.pipeline import PaymentRunResult, run_daily_payments
from caselle_ic.payments.reconcile import format_reconciliation

#: The steps that are Prefect task runs (see the module docstring).
TASK_STEPS = frozenset({"read-export", "post-payments", "file-payments", "void-reversals"})


class _Progress:
    """Updates one progress artifact (percent of the receipts to post), at most per 1 %."""

    def __init__(self, key: str):
        self.key = key
        self.artifact_id: Any = None
        self.last = -1.0

    def __call__(self, done: int, total: int) -> None:
        pct = 100.0 if total <= 0 else round(100.0 * min(done, total) / total, 0)
        if pct == self.last:
            return
        self.last = pct
        description = f"Data Pump receipts posted: {done} of {total}"
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(pct, key=self.key, description=description)
        else:
            update_progress_artifact(self.artifact_id, pct, description=description)


@flow(name="daily-payments", flow_run_name=run_name("daily-payments", "%Y-%m-%d"), log_prints=False)
def daily_payments(
    export: str,
    config: str,
    out_dir: str,
    now: str | None = None,
    ledger_url: str | None = None,
) -> PaymentRunResult:
    """Post the day's IC payments to Caselle exactly once (SPEC §4-§7).

    Ends Failed when nothing could be posted (Caselle unreachable: exit 2); the error
    carries the result, so the inbox keeps the export and the next run posts the rest.
    """
    cfg = load_biller(config)
    with run_timeout(cfg, "daily-payments"):
        progress = _Progress(f"posting-{cfg.slug}")
        steps = tasks_for(TASK_STEPS)
        result = run_daily_payments(
            export, cfg, out_dir, now=now, ledger_url=ledger_url, step=steps, progress=progress
        )
        if progress.artifact_id is None:  # nothing to post in this run
            progress(0, 0)
        finish(
            result,
            tables={
                **result.tables,
                "reconciliation": format_reconciliation(result.tables["reconciliation"]),
            },
        )
    return result
