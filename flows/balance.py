"""Prefect flow ``balance-refresh``: a thin wrapper over :func:`run_balance_refresh`."""

from __future__ import annotations

from prefect import flow

from caselle_ic.flows._common import finish, load_biller, run_name
from caselle_ic.flows.unattended import run_timeout
from caselle_ic.result import RunResult
from caselle_ic.sync.balance import run_balance_refresh


@flow(name="balance-refresh", flow_run_name=run_name("balance-refresh", "%Y-%m-%d"), log_prints=False)
def balance_refresh(accounts: str, config: str, out_dir: str, now: str | None = None) -> RunResult:
    """Look up the RTDR balance of a list of accounts and write them to a CSV (SPEC §8)."""
    cfg = load_biller(config)
    with run_timeout(cfg, "balance-refresh"):
        result = run_balance_refresh(accounts, cfg, out_dir, now=now)
        return finish(result)
