"""Prefect flow ``paperless-sync``: a thin wrapper over :func:`run_paperless_sync`."""

from __future__ import annotations

from prefect import flow

from caselle_ic.flows._common import finish, load_biller, run_name
from caselle_ic.flows.unattended import run_timeout
from caselle_ic.result import RunResult
from caselle_ic.sync.paperless import run_paperless_sync


@flow(name="paperless-sync", flow_run_name=run_name("paperless-sync", "%Y-%m-%d"), log_prints=False)
def paperless_sync(
    log: str, config: str, ledger_url: str | None = None, out_dir: str | None = None
) -> RunResult:
    """Send the latest paperless change of each account to Caselle, once (SPEC §8)."""
    cfg = load_biller(config)
    with run_timeout(cfg, "paperless-sync"):
        result = run_paperless_sync(log, cfg, ledger_url, out_dir=out_dir)
        return finish(result)
