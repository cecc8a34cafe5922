"""What every flow shares: steps as Prefect tasks, run names, and the finish
(log the summary, publish the artifacts an analyst reads)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
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


def in_flow(fn: Callable[..., Any]) -> Any:
    """A pipeline step run inside the flow run, without a task run of its own (a task run
    costs the Prefect server ~0.1 s of CPU: events, state rows). The step is recorded
    (:func:`caselle_ic.steps.tracked`); when it raises, the run's log says which step
    failed and the error ends the flow run Failed, as a failed task would."""
    from functools import wraps

    from caselle_ic.steps import step_name, tracked

    name, run = step_name(fn), tracked(fn)

    @wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except Exception as exc:
            get_run_logger().error("step %s failed: %s: %s", name, type(exc).__name__, exc)
            raise

    return step


def tasks_for(names: frozenset[str]) -> Callable[[Callable[..., Any]], Any]:
    """The ``step`` wrapper that makes the steps called ``names`` task runs (:func:`as_task`)
    and runs the others inside the flow run (:func:`in_flow`)."""
    from caselle_ic.steps import step_name

    return lambda fn: as_task(fn) if step_name(fn) in names else in_flow(fn)


def run_name(kind: str, period: str = "%Y-%m") -> Callable[[], str]:
    """``<kind>/<biller slug>/<period>`` from the flow run's ``config`` and ``now``."""

    def name() -> str:
        from prefect.runtime import flow_run

        from caselle_ic.config.model import load_config, resolve_now

        params = flow_run.parameters
        try:
            # a name needs no secret
            cfg = lent_config(params["config"]) or load_config(params["config"], resolve_secrets=False)
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


#: The biller a pickup loaded, lent to the pipeline flows it runs in this context.
_LENT_CONFIG: ContextVar[BillerConfig | None] = ContextVar("caselle_ic_lent_config", default=None)


@contextlib.contextmanager
def lending_config(config: BillerConfig | str | Path) -> Iterator[None]:
    """Within this block, a flow given the path of ``config``'s file (a pipeline subflow
    of a pickup) takes ``config`` as loaded instead of reading and resolving the file again
    (twice: its run name, then the run). A path is lent nothing."""
    if not isinstance(config, BillerConfig):
        yield
        return
    token = _LENT_CONFIG.set(config)
    try:
        yield
    finally:
        _LENT_CONFIG.reset(token)


def lent_config(path: str) -> BillerConfig | None:
    """The biller lent for the file ``path`` (:func:`lending_config`), if any."""
    cfg = _LENT_CONFIG.get()
    return cfg if cfg is not None and str(cfg.source) == str(path) else None


def load_biller(config: str | BillerConfig) -> BillerConfig:
    """The flow's edge: load the biller file once for the whole run (its secrets join the
    redaction that importing ``caselle_ic.flows`` installed) and pass it down."""
    from caselle_ic.config.model import load_config
    from caselle_ic.logsafe import install_redaction

    cfg = config if isinstance(config, BillerConfig) else lent_config(config) or load_config(config)
    install_redaction(cfg)  # idempotent; also covers handlers Prefect added since import
    return cfg
