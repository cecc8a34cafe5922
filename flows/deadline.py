"""Prefect flow ``input-deadline``: has the input a biller expects arrived by its deadline?

Scheduled by ``[alerts].expect`` (``payments = "0 9 * * 1-5"``: one schedule per kind, in
the biller's time zone, on the deployment ``input-deadline/<biller>``). At the deadline it
looks back to the previous one. The input **arrived** when, since then, an inbox pickup
announced a file of that kind (event ``caselle-ic.input.arrived``) or a file of that kind is
waiting in the inbox now (it came after the last pickup). Otherwise it emits
``caselle-ic.input.missing`` — the automation of :mod:`caselle_ic.ops.alerts` turns that
into one notification — and leaves a markdown artifact saying so. The run itself completes:
the check did its job; a failed check (bad config, Prefect API down) ends Failed and alerts
through the failed-run automation instead.

Why a scheduled check rather than a Prefect proactive trigger: a proactive trigger waits a
fixed span after its last event; deadlines here are cron times (weekdays at 09:00), which
only a schedule expresses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.errors import ConfigError
from caselle_ic.flows.unattended import EVENT_ARRIVED, EVENT_MISSING, RESOURCE_PREFIX, emit, run_timeout
from caselle_ic.ops.inbox_scan import scan_inbox


def previous_deadline(cron: str, deadline: datetime, tz: Any) -> datetime:
    """The cron time before ``deadline`` (aware), in the biller's time zone."""
    from prefect._vendor.croniter import croniter  # type: ignore[attr-defined]  # Prefect's own cron reader

    local = deadline.astimezone(tz) - timedelta(seconds=1)
    prev: datetime = croniter(cron, local).get_prev(datetime)  # type: ignore[no-untyped-call]
    return prev


def arrivals_since(cfg: BillerConfig, kind: str, since: datetime, until: datetime) -> int:
    """``caselle-ic.input.arrived`` events of this biller and kind between the two times."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )
    from prefect.events.schemas.events import ResourceSpecification

    flt = EventFilter(
        occurred=EventOccurredFilter.model_validate({"since": since, "until": until}),
        event=EventNameFilter(name=[EVENT_ARRIVED]),
        resource=EventResourceFilter(
            id=[f"{RESOURCE_PREFIX}{cfg.slug}"],
            labels=ResourceSpecification({"caselle-ic.kind": kind}),
        ),
    )
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=flt, limit=1)
    return int(page.total)


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    try:
        cfg = load_config(params["config"], resolve_secrets=False)  # a name needs no secret
        return f"input-deadline/{cfg.slug}/{params.get('kind', '')}"
    except Exception:  # the flow itself reports a bad config
        return "input-deadline/unknown-biller"


@flow(name="input-deadline", flow_run_name=_run_name)
def input_deadline(config: str, kind: str, deadline: str | None = None) -> dict[str, Any]:
    """Alert (event ``caselle-ic.input.missing``) when no ``kind`` input arrived by the deadline.

    ``deadline`` (ISO time) defaults to this run's scheduled start time.
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    cfg = load_config(config, resolve_secrets=False)  # the check talks to no endpoint
    with run_timeout(cfg, "input-deadline"):
        cron = cfg.alerts.expect.get(kind)
        if not cron:
            raise ConfigError(f"[alerts].expect has no deadline for {kind!r}", file=cfg.source)
        when = deadline or flow_run.scheduled_start_time
        at = datetime.fromisoformat(str(when)) if when else datetime.now(UTC)
        at = at if at.tzinfo else at.replace(tzinfo=cfg.tz)
        since = previous_deadline(cron, at, cfg.tz)
        events = arrivals_since(cfg, kind, since, max(at, datetime.now(UTC)))
        waiting = [w.path.name for w in scan_inbox(cfg.paths.inbox)[0] if w.kind == kind]
        arrived = bool(events or waiting)
        local = at.astimezone(cfg.tz)
        summary = {
            "biller": cfg.name,
            "kind": kind,
            "deadline": local.isoformat(),
            "since": since.isoformat(),
            "picked_up": events,
            "waiting": len(waiting),
            "arrived": arrived,
        }
        if arrived:
            text = (
                f"{kind} input for {cfg.name} arrived by {local:%Y-%m-%d %H:%M %Z}: "
                f"{events} file(s) picked up since {since:%Y-%m-%d %H:%M}, {len(waiting)} waiting"
            )
            logger.info(text)
        else:
            text = (
                f"no {kind} input for {cfg.name} arrived between {since:%Y-%m-%d %H:%M} and the "
                f"deadline {local:%Y-%m-%d %H:%M %Z} ([alerts].expect.{kind} = {cron!r}); "
                f"nothing waits in {cfg.paths.inbox}"
            )
            logger.warning(text)
            emit(
                EVENT_MISSING,
                cfg,
                kind=kind,
                payload={"deadline": local.isoformat(), "since": since.isoformat(), "reason": text},
            )
        create_markdown_artifact(
            f"# Input deadline: {kind} — {cfg.name}\n\n{'Arrived' if arrived else '**Missing**'}: {text}\n",
            key=f"input-deadline-{kind}-{cfg.slug}",
            description=f"did the {kind} input of {cfg.name} arrive by its deadline",
        )
        return summary
