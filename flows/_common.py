"""What every flow shares: steps as Prefect tasks, run names, and the finish
(log the summary, publish the artifacts an analyst reads)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import RunFailedError
from caselle_ic.flows.artifacts import failure_reason, publish_run_artifacts
from caselle_ic.result import RunResult


def as_task(fn: Callable[..., Any]) -> Any:
    """A pipeline step as one Prefect task, named after the function (``read-extract``).

    Never cached: steps pass DataFrames, which the default cache policy would hash.
    """
    return task(name=fn.__name__.replace("_", "-"), cache_policy=NO_CACHE, persist_result=False)(fn)


def run_name(kind: str, period: str = "%Y-%m") -> Callable[[], str]:
    """``<kind>/<biller slug>/<period>`` from the flow run's ``config`` and ``now``."""

    def name() -> str:
        from prefect.runtime import flow_run

        from caselle_ic.config.model import load_config, resolve_now

        params = flow_run.parameters
        try:
            cfg = load_config(params["config"], resolve_secrets=False)  # a name needs no secret
            return f"{kind}/{cfg.slug}/{resolve_now(params.get('now'), cfg.tz):{period}}"
        except Exception:  # a bad config fails the run itself, with its message
            return f"{kind}/unknown-biller"

    return name


def finish(result: RunResult, tables: dict[str, pd.DataFrame] | None = None) -> RunResult:
    """Log the summary lines and publish the run's artifacts; then, when the command would
    exit 2 or more, raise :class:`RunFailedError` so the run ends Failed (SPEC §11 "red
    means red"). The error carries the result: the inbox keeps an input with unsent work."""
    logger = get_run_logger()
    for line in result.summary_lines():
        logger.info(line)
    publish_run_artifacts(result, tables=tables)
    if result.exit_status >= 2:
        reason = failure_reason(result)
        logger.error("run failed (exit status %d): %s", result.exit_status, reason)
        raise RunFailedError(reason, result=result)
    return result


def load_biller(config: str | BillerConfig) -> BillerConfig:
    """The flow's edge: load the biller file once for the whole run (its secrets join the
    redaction that importing ``caselle_ic.flows`` installed) and pass it down."""
    from caselle_ic.config.model import load_config
    from caselle_ic.logsafe import install_redaction

    cfg = config if isinstance(config, BillerConfig) else load_config(config)
    install_redaction(cfg)  # idempotent; also covers handlers Prefect added since import
    return cfg
