"""The ``daily-payments`` flow on a Prefect test server: its run name, the steps that are
task runs (``flows.payments.TASK_STEPS``; the others run inside the flow run), a failing
in-flow step failing the run, the progress artifact and the reconciliation table artifact;
and a payments pickup that opens the ledger once for its claims and its pipeline runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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


def _run_daily(rows: list[dict[str, Any]], config: Path, tmp_path: Path) -> Any:
    """``daily-payments`` on an export of ``rows`` into ``tmp_path``: its final state."""
    from caselle_ic.flows.payments import daily_payments

    return daily_payments(
        export=str(write_export(tmp_path / "pay.csv", rows)),
        config=str(config),
        out_dir=str(tmp_path / "out"),
        now="2026-11-03T07:00:00",
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        return_state=True,
    )


def test_daily_payments_flow(prefect_harness, fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path):
    from caselle_ic.flows.payments import daily_payments

    rows = [dp(i) for i in range(12)] + [lb(0)]
    state = _run_daily(rows, fifty_toml, tmp_path)
    result = state.result()
    assert result.exit_status == 0 and result.counts["posted"] == 12
    assert_exactly_once(fifty_emu, rows[:12], rows[12:], tmp_path / "out")
    assert daily_payments.name == "daily-payments"

    run, tasks, artifacts = asyncio.run(_read(state.state_details.flow_run_id))
    assert run.name == "daily-payments/sample-city-utilities/2026-11-03"
    names = sorted(t.name.rsplit("-", 1)[0] for t in tasks)
    # the steps an analyst opens; resolve, record, route, settle and wait run in the flow run
    assert names == ["file-payments", "post-payments", "read-export", "void-reversals"]
    assert all(t.state is not None and t.state.is_completed() for t in tasks)
    by_key = {a.key: a for a in artifacts}
    assert by_key["posting-sample-city-utilities"].type == "progress"
    assert by_key["posting-sample-city-utilities"].data == 100.0
    assert "posted | 12" in str(by_key["daily-payments-sample-city-utilities-summary"].data)
    table = by_key["daily-payments-sample-city-utilities-reconciliation"]
    assert table.type == "table" and "TOTAL" in str(table.data) and "DIFFERENCE" not in str(table.data)
    assert '"accounted_amount": "207.16"' in str(table.data)  # exact decimals, not cents


def test_a_failing_in_flow_step_fails_the_run_and_names_the_step(
    prefect_harness, fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, monkeypatch
):
    """A step without a task run of its own (route-payments) that raises: the run ends
    Failed with the error, its log names the step, and nothing was posted."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from caselle_ic import failpoints

    monkeypatch.setattr(failpoints, "_hits", {})
    monkeypatch.setenv(failpoints.ENV, "raise:step.route-payments")
    rows = [dp(i, tag="red") for i in range(3)]
    state = _run_daily(rows, fifty_toml, tmp_path)
    assert state.is_failed() and "fail point step.route-payments" in str(state.message)
    assert not {r["payment_guid"] for r in rows} & {r["confirmation_number"] for r in fifty_emu.receipts()}

    run_id = state.state_details.flow_run_id
    assert run_id is not None
    run, tasks, _ = asyncio.run(_read(run_id))
    assert run.state is not None and run.state.is_failed()
    assert [t.name.rsplit("-", 1)[0] for t in tasks] == ["read-export"]  # the step before it

    async def logs() -> list[str]:
        async with get_client() as client:
            found = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            )
        return [entry.message for entry in found]

    deadline = time.monotonic() + 120  # logs reach the server in batches: wait for them
    while not any("step route-payments failed: FailpointError" in m for m in asyncio.run(logs())):
        assert time.monotonic() < deadline, asyncio.run(logs())
        time.sleep(0.5)


def test_a_pickup_opens_the_ledger_once(
    prefect_harness, fifty_emu: EmulatorProcess, fifty_toml: Path, caplog
):
    """A payments pickup of two exports (two daily-payments subflows): its claims and both
    pipeline runs use one engine, counted on the real run as connection pools that connected
    (SQLAlchemy's ``first_connect``, once per engine), and the subflows read the biller file
    no more (the pickup reads it twice: its run name, its run); every payment posted once."""
    import logging

    import sqlalchemy as sa

    from caselle_ic.config.model import load_config
    from caselle_ic.flows.ops import payments_inbox

    cfg = load_config(fifty_toml)
    rows = {name: [dp(i, tag=name) for i in range(4)] for name in ("first", "second")}
    for name, batch in rows.items():
        write_export(cfg.paths.inbox / "payments" / f"{name}-payments.csv", batch)
    engines: list[str] = []

    def connected(dbapi_conn, record) -> None:
        engines.append(str(dbapi_conn))

    sa.event.listen(sa.pool.Pool, "first_connect", connected)
    try:
        with caplog.at_level(logging.DEBUG, logger="caselle_ic.config.model"):
            state = payments_inbox(config=str(fifty_toml), settle_seconds=0, return_state=True)
    finally:
        sa.event.remove(sa.pool.Pool, "first_connect", connected)
    loads = [r for r in caplog.records if r.getMessage().startswith("loaded the biller file")]
    assert len(loads) == 2, [r.getMessage() for r in loads]
    summary = state.result()
    assert state.is_completed() and [i["status"] for i in summary["files"]] == ["processed", "processed"]
    assert len(engines) == 1, engines
    assert_exactly_once(fifty_emu, rows["first"] + rows["second"], [], cfg.paths.outbox)
