"""Prefect flow ``paperless-sync``: a thin wrapper over :func:`run_paperless_sync`."""

from __future__ import annotations

from prefect import flow, get_run_logger

from caselle_ic.paperless import run_paperless_sync
from caselle_ic.report import RunResult


@flow(name="paperless-sync", log_prints=False)
def paperless_sync(
    log: str, config: str, ledger_url: str | None = None, out_dir: str | None = None
) -> RunResult:
    """Send the latest paperless change of each account to Caselle, once (SPEC §8)."""
    result = run_paperless_sync(log, config, ledger_url, out_dir=out_dir)
    logger = get_run_logger()
    for line in result.summary_lines():
        logger.info(line)
    # TODO(lead): publish artifacts once caselle_ic.artifacts is on main:
    #     from caselle_ic.artifacts import publish_run_artifacts
    #     publish_run_artifacts(result)
    return result
