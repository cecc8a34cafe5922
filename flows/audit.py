"""Prefect flow ``daily-audit`` (SPEC §11): a thin wrapper over :func:`run_audit`, scheduled
an hour after the payments pickup (``[schedule].audit``).

Each gathering step is one Prefect task. The run leaves three artifacts: the summary
(markdown), the discrepancies (account numbers masked to their last 4, also where the
account is what differs) and the totals by posting method, distribution and payment code.

When it finds anything it emits the event ``caselle-ic.audit.discrepancies`` about the
resource ``caselle-ic.biller.<slug>`` (payload: day, run id, counts by kind, a short reason;
never an account number); the biller's automation (caselle_ic/ops/alerts.py, built from
``[alerts].notify``) turns it into one notification. The run itself ends **Completed**:
discrepancies are exit status 1 ("written, with an artifact and an alert"), not a failure
of the run (decided, docs/payments.md); a run that cannot audit (exit 2) raises and ends
Failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from caselle_ic.audit.pipeline import AuditResult, default_audit_day, parse_day, run_audit
from caselle_ic.audit.report import analyst_frame
from caselle_ic.config.model import load_config, resolve_now
from caselle_ic.flows._common import as_task, finish
from caselle_ic.flows.unattended import EVENT_AUDIT as EVENT
from caselle_ic.flows.unattended import biller_resource, run_timeout


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    try:
        cfg = load_config(params["config"])
        day = params.get("date") or default_audit_day(resolve_now(None, cfg.tz)).isoformat()
        return f"daily-audit/{cfg.slug}/{day}"
    except Exception:  # a bad config fails the run itself, with its message
        return "daily-audit/unknown-biller"


def discrepancy_event(cfg: Any, result: AuditResult, run_id: str | None) -> dict[str, Any]:
    """The event's resource and payload: counts only, no account number, no secret."""
    found = {k: n for k, n in result.by_kind.items() if n}
    return {
        "event": EVENT,
        "resource": biller_resource(cfg.slug, cfg.name, "audit"),
        "payload": {
            "date": result.day,
            "run_id": run_id,
            "discrepancies": len(result.discrepancies),
            "by_kind": found,
            "reason": f"{len(result.discrepancies)} discrepancies on {result.day}: "
            + ", ".join(f"{k} {n}" for k, n in found.items())
            + f"; see audit-{result.day}.csv and the run's artifacts",
        },
    }


@flow(name="daily-audit", flow_run_name=_run_name, log_prints=False)
def daily_audit(
    config: str,
    date: str | None = None,
    out_dir: str | None = None,
    ledger_url: str | None = None,
    exports: list[str] | None = None,
) -> AuditResult:
    """Prove a day's payments landed in Caselle exactly once (default: yesterday)."""
    from prefect.events import emit_event
    from prefect.runtime import flow_run

    cfg = load_config(config)
    day = parse_day(date) if date else default_audit_day(resolve_now(None, cfg.tz))
    out = Path(out_dir) if out_dir else Path(cfg.paths.outbox) / "audit"
    with run_timeout(cfg, "daily-audit"):
        result = run_audit(cfg, day, out, ledger_url=ledger_url, exports=exports, step=as_task)
    finish(
        result,
        tables={
            "discrepancies": analyst_frame(result.tables["discrepancies"]),
            "totals": result.tables["totals"],
        },
    )
    if result.discrepancies:
        event = discrepancy_event(cfg, result, flow_run.get_id())
        emit_event(event=event["event"], resource=event["resource"], payload=event["payload"])
        get_run_logger().warning("%s", event["payload"]["reason"])
    return result
