"""Operations flows: scheduled inbox pickups per kind, and the fan-out over all billers.

* ``invoice-inbox``, ``adjustments-inbox``, ``payments-inbox``, ``paperless-inbox``: one
  deployment per biller (deployment name = the biller's slug), scheduled per the biller's
  ``[schedule]``. Each run takes the files of its kind waiting in ``[paths].inbox`` and
  runs the matching pipeline flow on each (``invoice-file``, ``adjustments-file``,
  ``daily-payments``, ``paperless-sync``) as a subflow, so every file has its own run,
  run name and artifacts. The pickup run leaves a markdown artifact listing every file
  and where it went; it ends **Failed** when a file failed (the file is in
  ``[paths].error`` with a reason) or could not be finished after the biller's retries
  (``[schedule].retries`` × ``retry_delay``; the file stays in the inbox), and **TimedOut**
  after ``[schedule].timeout``, so a red run in the UI always means "look here". Each file
  found is announced with the event ``caselle-ic.input.arrived`` (the ``input-deadline``
  check reads them).
* ``all-billers``: starts the inbox deployment of one kind for every biller (or a given
  list) with ``run_deployment(..., timeout=0)`` and an idempotency key
  ``<biller>/<kind>/<period>``, so a thousand billers spread over the workers of a work
  pool, and starting the fan-out twice for one period starts nothing twice.

These flows are thin: the work is in :mod:`caselle_ic.ops.inbox`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact, create_markdown_artifact

from caselle_ic.errors import LedgerError
from caselle_ic.flows._common import load_biller
from caselle_ic.flows.artifacts import failure_reason
from caselle_ic.flows.unattended import EVENT_ARRIVED, EVENT_NOT_STARTED, biller_resource, emit, run_timeout
from caselle_ic.kinds import KINDS as ALL_KINDS
from caselle_ic.ops.inbox import DEFAULT_SETTLE_SECONDS, make_handler, process_inbox
from caselle_ic.ops.inbox_report import InboxItem, InboxReport
from caselle_ic.ops.inbox_scan import KINDS, Kind

#: Prefect flow name of the inbox pickup of each kind (deployment = "<flow>/<biller slug>").
INBOX_FLOWS: dict[str, str] = {k.name: k.inbox.flow_name for k in ALL_KINDS.values() if k.inbox is not None}


def _inbox_run_name() -> str:
    """``<flow>/<biller slug>/<local date>``, e.g. ``payments-inbox/sample-city-utilities/2025-02-03``."""
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    name = flow_run.flow_name or "inbox"
    try:
        from caselle_ic.config.model import load_config

        cfg = load_config(params["config"], resolve_secrets=False)  # a name needs no secret
        when = flow_run.scheduled_start_time
        local = datetime.fromisoformat(str(when)).astimezone(cfg.tz) if when else datetime.now(cfg.tz)
        return f"{name}/{cfg.slug}/{local:%Y-%m-%d}"
    except Exception:  # the flow itself reports a bad config; the name must not fail
        return f"{name}/{datetime.now(UTC):%Y-%m-%d}"


def pickup(
    kind: Kind,
    config: str,
    ledger_url: str | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    now: str | None = None,
    via_flow: bool = True,
) -> dict[str, Any]:
    """Run one inbox pickup inside a flow run: process (retrying what could not be finished
    now), log, leave the artifact, announce what arrived, fail if a file did not complete.

    The whole pickup, retries included, runs under the biller's ``[schedule].timeout``.
    """
    from caselle_ic.errors import InboxError
    from caselle_ic.logsafe import mask_accounts, redact

    logger = get_run_logger()
    cfg = load_biller(config)
    with run_timeout(cfg, INBOX_FLOWS[kind]):
        report = _pickup_with_retries(cfg, kind, ledger_url, settle_seconds, now, via_flow)
    for line in report.summary_lines():
        logger.info(line)
    create_markdown_artifact(
        report.to_markdown(),
        key=f"inbox-{kind}-{cfg.slug}",
        description=f"{kind} inbox pickup for {cfg.name}: what was processed and where it went",
    )
    for item in report.items:  # the input-deadline check counts these (caselle_ic.flows.deadline)
        emit(EVENT_ARRIVED, cfg, kind=kind, payload={"file": mask_accounts(item.name), "status": item.status})
    summary = report.to_dict()
    failed = report.by_status("failed") + report.by_status("retry")
    if failed:
        raise InboxError(
            mask_accounts(
                redact(
                    f"{len(failed)} of {len(report.items)} {kind} file(s) did not complete (failed: moved to "
                    f"{cfg.paths.error} with a .reason.txt; retry: left in the inbox for the next run): "
                    + "; ".join(f"{i.name}: {i.reason}{_why(i)}" for i in failed)
                )
            ),
            summary=summary,
        )
    return summary


def _why(item: InboxItem) -> str:
    """What the pipeline said about a file it could not finish (Caselle unreachable, …)."""
    if item.result is None or item.result.exit_status < 2:
        return ""
    return f" ({failure_reason(item.result)})"


#: Items whose file has left the inbox: an earlier attempt's word on them is final.
_SETTLED = ("processed", "failed", "duplicate", "vanished")


def _pickup_with_retries(
    cfg: Any,
    kind: Kind,
    ledger_url: str | None,
    settle_seconds: float,
    now: str | None,
    via_flow: bool,
) -> InboxReport:
    """:func:`process_inbox`, again after ``[schedule].retry_delay`` while files could not be
    finished now (status ``retry``: Caselle unreachable) or the ledger database refused, at
    most ``[schedule].retries`` more times.

    Our loop, not Prefect's flow retries: a file that failed for good is already in
    ``error``, so a Prefect retry would find nothing and turn the red run green; and Prefect
    flow retries cannot be set per deployment (one biller file, one policy).
    """
    logger = get_run_logger()
    retries, delay = cfg.schedule.retries, cfg.schedule.retry_delay
    handler = make_handler(kind, cfg, via_flow=via_flow, ledger_url=ledger_url, now=now)
    settled: list[InboxItem] = []
    attempt = 0
    while True:
        try:
            report = process_inbox(cfg, kind, handler, ledger_url=ledger_url, settle_seconds=settle_seconds)
        except LedgerError as exc:
            if attempt >= retries:
                raise
            why = str(exc)
        else:
            report.items = settled + report.items
            waiting = report.by_status("retry")
            if not waiting or attempt >= retries:
                return report
            settled = [i for i in report.items if i.status in _SETTLED]
            why = f"{len(waiting)} file(s) could not be finished now"
        attempt += 1
        logger.warning("%s; trying again in %d s (retry %d of %d)", why, delay, attempt, retries)
        time.sleep(delay)


@flow(name="invoice-inbox", flow_run_name=_inbox_run_name)
def invoice_inbox(
    config: str,
    ledger_url: str | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    now: str | None = None,
) -> dict[str, Any]:
    """Monthly: every statement extract waiting in the inbox -> an IC invoice file in the outbox."""
    return pickup("invoices", config, ledger_url=ledger_url, settle_seconds=settle_seconds, now=now)


@flow(name="adjustments-inbox", flow_run_name=_inbox_run_name)
def adjustments_inbox(
    config: str,
    ledger_url: str | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    now: str | None = None,
) -> dict[str, Any]:
    """Every adjustments extract waiting in the inbox -> an IC invoice file in the outbox."""
    return pickup("adjustments", config, ledger_url=ledger_url, settle_seconds=settle_seconds, now=now)


@flow(name="payments-inbox", flow_run_name=_inbox_run_name)
def payments_inbox(
    config: str,
    ledger_url: str | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    now: str | None = None,
) -> dict[str, Any]:
    """Daily: every IC payment export waiting in the inbox -> Data Pump receipts, voids, lockbox files."""
    return pickup("payments", config, ledger_url=ledger_url, settle_seconds=settle_seconds, now=now)


@flow(name="paperless-inbox", flow_run_name=_inbox_run_name)
def paperless_inbox(
    config: str, ledger_url: str | None = None, settle_seconds: float = DEFAULT_SETTLE_SECONDS
) -> dict[str, Any]:
    """Daily: every paperless change log waiting in the inbox -> Caselle paper-statement flags."""
    return pickup("paperless", config, ledger_url=ledger_url, settle_seconds=settle_seconds)


# -- the fan-out ---------------------------------------------------------------------------
def default_period(kind: str, when: datetime) -> str:
    """The period an idempotency key covers: the month for invoices, else the day (UTC)."""
    when = when.astimezone(UTC)
    return f"{when:%Y-%m}" if kind == "invoices" else f"{when:%Y-%m-%d}"


def idempotency_key(biller: str, kind: str, period: str) -> str:
    return f"{biller}/{kind}/{period}"


async def _biller_deployments(flow_name: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    names: list[str] = []
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200, offset=offset
            )
            names += [d.name for d in page]
            if len(page) < 200:
                break
            offset += 200
    return sorted(names)


def _fanout_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    kind = params.get("kind", "")
    when = flow_run.scheduled_start_time
    period = params.get("period") or default_period(
        kind, datetime.fromisoformat(str(when)) if when else datetime.now(UTC)
    )
    return f"all-billers/{kind}/{period}"


def _announce_not_started(biller: str, kind: str, flow_name: str, period: str, exc: BaseException) -> None:
    """The fan-out's failure is the biller's too: its inbox waits until someone starts it,
    so the biller's ``not-started`` automation is told (the fan-out run itself belongs to no
    biller, and its Failed state alone would alert nobody)."""
    from prefect.events import emit_event

    from caselle_ic.logsafe import mask_accounts, redact

    reason = mask_accounts(redact(f"{type(exc).__name__}: {exc}"))[:500]
    emit_event(
        event=EVENT_NOT_STARTED,
        resource=biller_resource(biller, biller, kind),
        payload={"reason": f"all-billers could not start {flow_name}/{biller} for {period}: {reason}"},
    )


@flow(name="all-billers", flow_run_name=_fanout_run_name)
async def all_billers(
    kind: str = "payments",
    period: str | None = None,
    billers: list[str] | None = None,
    max_concurrent: int = 16,
) -> list[dict[str, str]]:
    """Start the ``kind`` inbox deployment of every biller (or of ``billers``), once per period.

    ``billers`` are deployment names (biller slugs); by default every deployment of the
    kind's inbox flow. Runs are not awaited (``timeout=0``): the workers of the pool take
    them. The idempotency key ``<biller>/<kind>/<period>`` makes a second fan-out for the
    same period return the runs already created instead of starting new ones.
    """
    from prefect.deployments import arun_deployment
    from prefect.runtime import flow_run

    logger = get_run_logger()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    flow_name = INBOX_FLOWS[kind]
    when = flow_run.scheduled_start_time
    period = period or default_period(kind, datetime.fromisoformat(str(when)) if when else datetime.now(UTC))
    targets = billers if billers is not None else await _biller_deployments(flow_name)
    logger.info("starting %s for %d biller(s), period %s", flow_name, len(targets), period)
    gate = asyncio.Semaphore(max(1, max_concurrent))

    async def start(biller: str) -> dict[str, str]:
        async with gate:
            run = await arun_deployment(
                f"{flow_name}/{biller}",
                idempotency_key=idempotency_key(biller, kind, period),
                timeout=0,
            )
            return {
                "biller": biller,
                "deployment": f"{flow_name}/{biller}",
                "flow_run": run.name,
                "flow_run_id": str(run.id),
                "state": str(run.state.name) if run.state else "",
            }

    started = await asyncio.gather(*(start(b) for b in targets), return_exceptions=True)
    rows: list[dict[str, str]] = []
    errors: list[str] = []
    for biller, outcome in zip(targets, started, strict=True):
        if isinstance(outcome, BaseException):
            errors.append(f"{biller}: {type(outcome).__name__}: {outcome}")
            _announce_not_started(biller, kind, flow_name, period, outcome)
            rows.append(
                {
                    "biller": biller,
                    "deployment": f"{flow_name}/{biller}",
                    "flow_run": "",
                    "state": "not started",
                }
            )
        else:
            rows.append(outcome)
    await acreate_table_artifact(
        rows,
        key=f"all-billers-{kind}",
        description=f"{flow_name} runs started for period {period}",
    )
    if errors:
        raise RuntimeError(f"{len(errors)} biller run(s) could not be started: " + "; ".join(errors))
    return rows
