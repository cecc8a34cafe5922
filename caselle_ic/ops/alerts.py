"""Alerts (SPEC §11 ``[alerts]``): each biller's Prefect automations, kept in step with its file.

Deploying a biller (``caselle-ic serve``, ``caselle-ic deployments``) calls
:func:`ensure_alerts`, which creates, updates or leaves alone four automations per biller,
found by name (so deploying again creates no duplicates):

=====================================  =========================================================
``caselle-ic/<biller>/run-failed``     a run of any of the biller's deployments (deployment
                                       name = biller slug, tag ``caselle-ic``) ends Failed,
                                       Crashed or TimedOut. Subflows (one per file) are not
                                       matched: their parent pickup fails too, and one
                                       failure is one notification.
``caselle-ic/<biller>/input-missing``  event ``caselle-ic.input.missing`` (the
                                       ``input-deadline`` flow, scheduled by ``[alerts].expect``)
``caselle-ic/<biller>/audit``          event ``caselle-ic.audit.discrepancies`` (``daily-audit``)
``caselle-ic/<biller>/not-started``    event ``caselle-ic.run.not-started``: the ``all-billers``
                                       fan-out could not start the biller's run
=====================================  =========================================================

Each sends one notification through the block named by ``[alerts].notify``, rendered by the
Prefect server from the event: biller, flow, run, reason. The reason is the run's state
message or the event's ``reason``, which this project writes redacted and with account
numbers masked (no secret can reach it: the automation holds none).

A biller whose ``notify`` is ``""`` has no automations (existing ones are removed);
:func:`remove_alerts` (``caselle-ic deployments --remove``) removes them with its deployments.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import ConfigError, ServiceError
from caselle_ic.flows.unattended import EVENT_AUDIT, EVENT_MISSING, EVENT_NOT_STARTED, RESOURCE_PREFIX

PREFIX = "caselle-ic"
TAG = "caselle-ic"
FAILED_STATES = ("Failed", "Crashed", "TimedOut")
ALERTS = ("run-failed", "input-missing", "audit", "not-started")


def automation_name(slug: str, alert: str) -> str:
    return f"{PREFIX}/{slug}/{alert}"


def _plain(text: str) -> str:
    """Text placed inside a Jinja template: nothing that opens a tag."""
    return re.sub(r"[{}%#]", "", text)


def _body(cfg: BillerConfig, what: str, reason: str) -> str:
    return (
        f"caselle-ic alert: {what}\n"
        f"biller: {_plain(cfg.name)} ({cfg.slug})\n"
        "flow: {{ flow.name }}\n"
        "run: {{ flow_run.name }} ({{ flow_run.id }})\n"
        f"reason: {reason}\n"
        "{% set url = flow_run|ui_url %}{% if url %}see: {{ url }}\n{% endif %}"
    )


def planned(cfg: BillerConfig, block_id: UUID) -> list[Any]:
    """The biller's automations, as Prefect ``AutomationCore`` objects."""
    from prefect.automations import (
        AutomationCore,
        EventTrigger,
        Posture,
        ResourceSpecification,
        SendNotification,
    )

    slug, name = cfg.slug, _plain(cfg.name)
    biller = ResourceSpecification({"prefect.resource.id": f"{RESOURCE_PREFIX}{slug}"})

    def on_event(name: str) -> Any:  # one notification per event of ours about the biller
        return EventTrigger(
            expect={name}, match=biller, posture=Posture.Reactive, threshold=1, within=timedelta(0)
        )

    def event(alert: str, description: str, trigger: Any, subject: str, body: str) -> Any:
        return AutomationCore(
            name=automation_name(slug, alert),
            description=f"{description} (managed by caselle-ic from {cfg.source.name}; do not edit)",
            tags=[TAG, slug],
            trigger=trigger,
            actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)],
        )

    return [
        event(
            "run-failed",
            f"{name}: a run ended Failed, Crashed or TimedOut",
            EventTrigger(
                expect={f"prefect.flow-run.{s}" for s in FAILED_STATES},
                match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
                match_related=[
                    ResourceSpecification(
                        {"prefect.resource.role": "deployment", "prefect.resource.name": slug}
                    ),
                    ResourceSpecification(
                        {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}
                    ),
                ],
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            f"caselle-ic: {name}: {{{{ flow.name }}}} {{{{ flow_run.state.name }}}}",
            _body(
                cfg,
                "a run ended {{ flow_run.state.name }}",
                "{{ flow_run.state.message | truncate(700) }}",
            ),
        ),
        event(
            "input-missing",
            f"{name}: an expected input did not arrive by its deadline ([alerts].expect)",
            on_event(EVENT_MISSING),
            f"caselle-ic: {name}: {{{{ event.resource['caselle-ic.kind'] }}}} input missing",
            _body(
                cfg,
                "expected {{ event.resource['caselle-ic.kind'] }} input has not arrived",
                "{{ event.payload.reason | truncate(700) }}",
            ),
        ),
        event(
            "audit",
            f"{name}: the daily audit found discrepancies",
            on_event(EVENT_AUDIT),
            f"caselle-ic: {name}: audit discrepancies",
            _body(
                cfg,
                "the audit found discrepancies",
                "{{ event.payload.reason | default('see the audit artifact', true) | truncate(700) }}",
            ),
        ),
        event(
            "not-started",
            f"{name}: the all-billers fan-out could not start one of its runs",
            on_event(EVENT_NOT_STARTED),
            f"caselle-ic: {name}: {{{{ event.resource['caselle-ic.kind'] }}}} run not started",
            _body(
                cfg,
                "the {{ event.resource['caselle-ic.kind'] }} run was not started"
                "; its input waits in the inbox",
                "{{ event.payload.reason | truncate(700) }}",
            ),
        ),
    ]


@dataclass
class AlertsReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for what in ("created", "updated", "unchanged", "removed"):
            names = getattr(self, what)
            if names:
                out.append(f"automations {what}: {', '.join(names)}")
        return out


async def _notify_block_id(client: Any, cfg: BillerConfig) -> UUID:
    """The id of the notification block ``[alerts].notify`` names (``name`` or ``type/name``)."""
    ref = cfg.alerts.notify
    type_slug, _, name = ref.rpartition("/")
    docs: list[Any] = []
    offset = 0
    while True:
        page = await client.read_block_documents(offset=offset, limit=200, include_secrets=False)
        docs += [d for d in page if d.name == name and (not type_slug or d.block_type.slug == type_slug)]
        if len(page) < 200:
            break
        offset += 200
    notifiers = [d for d in docs if "notify" in (d.block_schema.capabilities if d.block_schema else [])]
    if len(notifiers) != 1:
        found = "no notification block" if not notifiers else f"{len(notifiers)} notification blocks"
        raise ConfigError(
            f"[alerts].notify = {ref!r}: {found} of that name on the Prefect server; create it in the "
            "UI (Blocks: Slack Webhook, Microsoft Teams Webhook, Email, Custom Webhook) or write "
            "'<block-type>/<name>'",
            file=cfg.source,
            setting="[alerts].notify",
        )
    return UUID(str(notifiers[0].id))


def _canonical(automation: Any) -> Any:
    """The fields we manage, with the trigger's event sets sorted: they are sets, and a set of
    strings dumps in an order that changes with each process's hash seed."""
    keys = ("description", "enabled", "tags", "trigger", "actions")
    data = automation.model_dump(mode="json", include=set(keys))
    trigger = data.get("trigger") or {}
    for name in ("expect", "after"):
        if isinstance(trigger.get(name), list):
            trigger[name] = sorted(trigger[name])
    return data


def _same(existing: Any, wanted: Any) -> bool:
    return bool(_canonical(existing) == _canonical(wanted))


async def aensure_alerts(cfgs: list[BillerConfig]) -> AlertsReport:
    """Create or update each biller's automations; remove those of a biller without ``notify``."""
    from prefect.client.orchestration import get_client

    report = AlertsReport()
    async with get_client() as client:
        for cfg in cfgs:
            if not cfg.alerts.notify:
                report.removed += await _remove(client, cfg.slug)
                continue
            block_id = await _notify_block_id(client, cfg)
            for wanted in planned(cfg, block_id):
                found = await client.read_automations_by_name(wanted.name)
                for extra in found[1:]:  # left by a deploy that raced another: keep one
                    await client.delete_automation(extra.id)
                if not found:
                    await client.create_automation(wanted)
                    report.created.append(wanted.name)
                elif _same(found[0], wanted):
                    report.unchanged.append(wanted.name)
                else:
                    await client.update_automation(found[0].id, wanted)
                    report.updated.append(wanted.name)
    return report


async def _remove(client: Any, slug: str) -> list[str]:
    removed = []
    for alert in ALERTS:
        for found in await client.read_automations_by_name(automation_name(slug, alert)):
            await client.delete_automation(found.id)
            removed.append(found.name)
    return removed


async def aremove_alerts(slugs: list[str]) -> AlertsReport:
    from prefect.client.orchestration import get_client

    report = AlertsReport()
    async with get_client() as client:
        for slug in slugs:
            report.removed += await _remove(client, slug)
    return report


def _run(coro: Any) -> AlertsReport:
    import httpx

    try:
        result: AlertsReport = asyncio.run(coro)
    except (httpx.HTTPError, OSError) as exc:
        raise ServiceError(
            f"could not set the alert automations on the Prefect server: {type(exc).__name__}: {exc}"
        ) from None
    return result


def ensure_alerts(cfgs: list[BillerConfig]) -> AlertsReport:
    """Sync wrapper of :func:`aensure_alerts` (the Prefect API of ``PREFECT_API_URL``)."""
    return _run(aensure_alerts(cfgs))


def remove_alerts(slugs: list[str]) -> AlertsReport:
    return _run(aremove_alerts(slugs))
