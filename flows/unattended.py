"""Running unattended (SPEC §11): the biller's run timeout and the events alerts react to.

* :func:`run_timeout` — every flow run of a biller ends **TimedOut** after
  ``[schedule].timeout`` seconds. Applied at run time from the biller's file (a deployment
  cannot carry per-biller flow options: workers and ``serve`` both import the flow from its
  entrypoint), only in the top-level run (a subflow is covered by its parent's).
* The custom events :mod:`caselle_ic.ops.alerts` builds automations on, each about the
  resource ``caselle-ic.biller.<slug>`` (labels ``caselle-ic.biller``, ``caselle-ic.kind``)
  and, emitted inside a run, related to that flow run, its flow and its deployment:

  ======================================  ===================================================
  ``caselle-ic.input.arrived``            an inbox pickup found input of a kind (one per file)
  ``caselle-ic.input.missing``            the ``input-deadline`` check found none by its deadline
  ``caselle-ic.audit.discrepancies``      the ``daily-audit`` flow found discrepancies
  ======================================  ===================================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

EVENT_ARRIVED = "caselle-ic.input.arrived"
EVENT_MISSING = "caselle-ic.input.missing"
EVENT_AUDIT = "caselle-ic.audit.discrepancies"
#: the fleet fan-out could not start a biller's run (its inbox waits; the biller's alert says so)
EVENT_NOT_STARTED = "caselle-ic.run.not-started"
RESOURCE_PREFIX = "caselle-ic.biller."


class RunTimeoutError(TimeoutError):
    """The run exceeded ``[schedule].timeout``. A ``TimeoutError``: Prefect names the state TimedOut."""


def biller_resource(slug: str, name: str, kind: str | None = None) -> dict[str, str]:
    """The resource our events are about: the biller (and the input kind, as a label)."""
    resource = {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{slug}",
        "prefect.resource.name": name,
        "caselle-ic.biller": slug,
    }
    if kind:
        resource["caselle-ic.kind"] = kind
    return resource


def emit(event: str, cfg: Any, *, kind: str | None = None, payload: dict[str, Any] | None = None) -> None:
    """Emit one of our events about ``cfg``'s biller (no-op without a Prefect API).

    ``payload`` must hold nothing an alert may not show: no secret, no full account number.
    """
    from prefect.events import emit_event

    emit_event(event=event, resource=biller_resource(cfg.slug, cfg.name, kind), payload=payload or {})


def _is_subflow() -> bool:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return bool(ctx and ctx.flow_run and ctx.flow_run.parent_task_run_id)


@contextlib.contextmanager
def subflow_without_heartbeat() -> Iterator[None]:
    """Inside a flow run, start the next flow call (a subflow, in this process) without a
    heartbeat thread of its own.

    Prefect gives every flow run a heartbeat thread (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``)
    and joins it when the run ends, which waits out the thread's current 1 s sleep: up to a
    second, 0.5-0.9 s measured, added to the parent run for every file. The parent's own
    heartbeat, in the same process, already says the process is alive. Outside a flow run
    (a top-level run) nothing changes.
    """
    from prefect.context import FlowRunContext, SettingsContext, get_settings_context

    if FlowRunContext.get() is None:
        yield
        return
    # a copy of the current settings with one value changed (prefect.settings'
    # temporary_settings re-validates every setting: 30+ ms)
    ctx = get_settings_context()
    flows = ctx.settings.flows.model_copy(update={"heartbeat_frequency": None})
    with SettingsContext(profile=ctx.profile, settings=ctx.settings.model_copy(update={"flows": flows})):
        yield


@contextlib.contextmanager
def run_timeout(cfg: Any, flow_name: str) -> Iterator[None]:
    """End this run with :class:`RunTimeoutError` after ``cfg.schedule.timeout`` seconds.

    ``cfg`` is the loaded biller config or the path of its file.

    An alarm signal in the main thread (Prefect's own cancel scope), so a run blocked on a
    socket is interrupted too. What the run was doing when interrupted is left as an
    interrupted run leaves it: the ledger records what was sent, the inbox releases its
    claim (:func:`caselle_ic.ops.inbox.process_inbox`), and the next run does the rest.
    """
    if _is_subflow():
        yield
        return
    from prefect.utilities.timeout import timeout

    if not hasattr(cfg, "schedule"):  # a path: a config that does not load fails the run anyway
        from caselle_ic.config.model import load_config

        try:
            cfg = load_config(cfg, resolve_secrets=False)
        except Exception:
            yield
            return
    seconds = cfg.schedule.timeout
    try:
        with timeout(seconds=seconds, timeout_exc_type=RunTimeoutError):
            yield
    except RunTimeoutError:
        raise RunTimeoutError(
            f"{flow_name} for {cfg.name} exceeded its timeout of {seconds} s ([schedule].timeout); "
            "what it had sent is in the ledger and the next run does the rest"
        ) from None
