"""Prefect flow ``balance-refresh``: a thin wrapper over :func:`run_balance_refresh`."""

from __future__ import annotations

from prefect import flow, get_run_logger

from caselle_ic.balance import run_balance_refresh
from caselle_ic.report import RunResult


@flow(name="balance-refresh", log_prints=False)
def balance_refresh(accounts: str, config: str, out_dir: str, now: str | None = None) -> RunResult:
    """Look up the RTDR balance of a list of accounts and write them to a CSV (SPEC §8)."""
    result = run_balance_refresh(accounts, config, out_dir, now=now)
    logger = get_run_logger()
    for line in result.summary_lines():
        logger.info(line)
    # TODO(lead): publish artifacts once caselle_ic.artifacts is on main:
    #     from caselle_ic.artifacts import publish_run_artifacts
    #     publish_run_artifacts(result)
    return result
