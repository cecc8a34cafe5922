"""The ``daily-payments`` flow on a Prefect test server: its run name, one task per step,
the progress artifact and the reconciliation table artifact."""

from __future__ import annotations

import asyncio
from pathlib import Path

from caselle_ic.emulator.process import EmulatorProcess
from tests.posting.postkit import assert_exactly_once, dp, lb, write_export


async def _read(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        tasks = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return run, tasks, artifacts


def test_daily_payments_flow(prefect_harness, fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path):
    from caselle_ic.flows.payments import daily_payments

    rows = [dp(i) for i in range(12)] + [lb(0)]
    export = write_export(tmp_path / "pay.csv", rows)
    state = daily_payments(
        export=str(export),
        config=str(fifty_toml),
        out_dir=str(tmp_path / "out"),
        now="2026-11-03T07:00:00",
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        return_state=True,
    )
    result = state.result()
    assert result.exit_status == 0 and result.counts["posted"] == 12
    assert_exactly_once(fifty_emu, rows[:12], rows[12:], tmp_path / "out")
    assert daily_payments.name == "daily-payments"

    run, tasks, artifacts = asyncio.run(_read(state.state_details.flow_run_id))
    assert run.name == "daily-payments/sample-city-utilities/2026-11-03"
    names = sorted(t.name.rsplit("-", 1)[0] for t in tasks)
    assert names == sorted(
        [
            "read-export",
            "resolve-payment-codes",
            "record-export",
            "route-payments",
            "settle-leftovers",
            "post-payments",
            "file-payments",
            "void-reversals",
            "wait-for-other-runs",
        ]
    )
    by_key = {a.key: a for a in artifacts}
    assert by_key["posting-sample-city-utilities"].type == "progress"
    assert by_key["posting-sample-city-utilities"].data == 100.0
    assert "posted | 12" in str(by_key["daily-payments-sample-city-utilities-summary"].data)
    table = by_key["daily-payments-sample-city-utilities-reconciliation"]
    assert table.type == "table" and "TOTAL" in str(table.data) and "DIFFERENCE" not in str(table.data)
    assert '"accounted_amount": "207.16"' in str(table.data)  # exact decimals, not cents
