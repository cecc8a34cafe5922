"""Prefect flows ``invoice-file`` and ``adjustments-file`` (SPEC §3, §10).

Thin: each calls :func:`caselle_ic.invoices.pipeline.run_invoice_file` with a ``step``
wrapper that makes every step a Prefect task (``cache_policy=NO_CACHE``: the steps pass
DataFrames, which the default cache policy would hash), then publishes the run's
artifacts. When every statement is quarantined the artifacts are still published (so the
analyst sees why) and the flow fails.
"""

from __future__ import annotations

from prefect import flow

from caselle_ic.errors import NothingToWriteError
from caselle_ic.flows._common import as_task, finish, run_name
from caselle_ic.flows.artifacts import publish_run_artifacts
from caselle_ic.flows.unattended import run_timeout
from caselle_ic.invoices.pipeline import ADJUSTMENTS_KIND, INVOICE_KIND, run_invoice_file
from caselle_ic.result import RunResult


def _run(kind: str, extract: str, config: str, out_dir: str, now: str | None) -> RunResult:
    with run_timeout(config, kind):
        return _run_in_time(kind, extract, config, out_dir, now)


def _run_in_time(kind: str, extract: str, config: str, out_dir: str, now: str | None) -> RunResult:
    try:
        result = run_invoice_file(
            extract, config, out_dir, now=now, adjustments=kind == ADJUSTMENTS_KIND, step=as_task
        )
    except NothingToWriteError as exc:
        if isinstance(exc.result, RunResult):
            publish_run_artifacts(exc.result)
        raise
    return finish(result)


@flow(name=INVOICE_KIND, flow_run_name=run_name(INVOICE_KIND), persist_result=False)
def invoice_file(extract: str, config: str, out_dir: str, now: str | None = None) -> RunResult:
    """The monthly invoice file from a statement extract."""
    return _run(INVOICE_KIND, extract, config, out_dir, now)


@flow(name=ADJUSTMENTS_KIND, flow_run_name=run_name(ADJUSTMENTS_KIND), persist_result=False)
def adjustments_file(extract: str, config: str, out_dir: str, now: str | None = None) -> RunResult:
    """An invoice file from an extract of adjusted accounts (same format)."""
    return _run(ADJUSTMENTS_KIND, extract, config, out_dir, now)
