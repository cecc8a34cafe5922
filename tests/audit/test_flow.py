"""The ``daily-audit`` flow on a Prefect test server: a hand-void found, the run Completed
with its artifacts (account numbers masked, also where the account is what differs), and
the event ``caselle-ic.audit.discrepancies`` the biller's alert automation reacts to."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from tests.audit.conftest import DAY, Day
from tests.posting.postkit import dp

if TYPE_CHECKING:
    from prefect.events.schemas.events import ReceivedEvent


async def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return run, artifacts


async def _events() -> list[ReceivedEvent]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    async with get_client() as client:
        page = await client.read_events(
            filter=EventFilter(event=EventNameFilter(name=["caselle-ic.audit.discrepancies"])), limit=50
        )
    return page.events


def test_daily_audit_flow_finds_a_hand_void_and_emits_the_event(prefect_harness, posted_day: Day):
    from caselle_ic.flows.audit import daily_audit

    posted_day.emu.receipt_op("void", posted_day.receipt_of(dp(6)))
    posted_day.emu.receipt_op("change", posted_day.receipt_of(dp(8)), accountNumber="1049")
    state = daily_audit(
        config=str(posted_day.cfg),
        date=DAY,
        out_dir=str(posted_day.audit_dir),
        ledger_url=posted_day.ledger,
        exports=[str(posted_day.export)],
        return_state=True,
    )
    assert state.is_completed()  # discrepancies are exit 1 (written + artifact + alert), not a failure
    result = state.result()
    assert result.exit_status == 1 and result.by_kind["voided_without_reversal"] == 1

    run, artifacts = asyncio.run(_artifacts(state.state_details.flow_run_id))
    assert run.name == f"daily-audit/sample-city-utilities/{DAY}"
    by_key = {a.key: a for a in artifacts}
    summary = str(by_key["daily-audit-sample-city-utilities-summary"].data)
    assert "voided_without_reversal | 1" in summary and "receipt_differs | 1" in summary
    table = json.loads(str(by_key["daily-audit-sample-city-utilities-discrepancies"].data))
    moved = next(r for r in table if r["field"] == "account_number")
    assert (moved["account_number"], moved["expected"], moved["found"]) == (
        "****1009",
        "****1009",
        "****1049",
    )
    assert "001009" not in json.dumps(table) and "1049" not in moved["detail"].replace("****1049", "")
    totals = json.loads(str(by_key["daily-audit-sample-city-utilities-totals"].data))
    assert totals[-1]["posting_method"] == "TOTAL" and totals[-1]["check"] == "DIFFERENCE"

    deadline = time.monotonic() + 30
    events: list[ReceivedEvent] = []
    while time.monotonic() < deadline and not events:
        events = asyncio.run(_events())
        time.sleep(0.5)
    (event,) = events
    assert event.resource.id == "caselle-ic.biller.sample-city-utilities"
    assert event.payload["run_id"] == str(state.state_details.flow_run_id)
    assert event.payload["by_kind"] == {"receipt_differs": 1, "voided_without_reversal": 1}
    assert "001009" not in json.dumps(event.payload)
