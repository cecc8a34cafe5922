"""A pipeline run as a subflow of a pickup (``Kind.run(via_flow=True)`` inside a flow run)
starts no heartbeat thread of its own: Prefect joins a flow run's heartbeat thread when
the run ends, which waits out its 1 s sleep, and the parent in the same process already
sends heartbeats (caselle_ic.flows.unattended.subflow_without_heartbeat). Read back from
the events a real Prefect server stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from caselle_ic import kinds
from tests.invoices.conftest import BILLER, NOW, SAMPLE_EXTRACT

pytestmark = pytest.mark.prefect

HEARTBEAT = "prefect.flow-run.heartbeat"
MARKER = "caselle-ic.test.subflow-returned"


def _events(names: list[str], resource_ids: list[str]) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                occurred=EventOccurredFilter(),  # until now
                event=EventNameFilter(name=names),
                resource=EventResourceFilter(id=resource_ids),
            ),
            limit=50,
        )
    return list(page.events)


def test_a_pipeline_subflow_sends_no_heartbeat_its_parent_does(prefect_harness: None, tmp_path: Path) -> None:
    from prefect import flow
    from prefect.context import FlowRunContext
    from prefect.events import emit_event
    from prefect.settings import get_current_settings

    seen: dict[str, Any] = {}
    outside = get_current_settings().flows.heartbeat_frequency

    @flow(name="test-pickup-with-a-subflow")
    def pickup() -> str:
        ctx = FlowRunContext.get()
        assert ctx is not None and ctx.flow_run is not None
        seen["parent"] = str(ctx.flow_run.id)
        result = kinds.get("invoices").run(SAMPLE_EXTRACT, BILLER, via_flow=True, out_dir=tmp_path, now=NOW)
        seen["after"] = get_current_settings().flows.heartbeat_frequency
        # after the subflow's would-be heartbeat, on the same events connection
        emit_event(MARKER, resource={"prefect.resource.id": f"prefect.flow-run.{seen['parent']}"})
        return str(result.outputs[0])

    state = pickup(return_state=True)
    assert state.is_completed(), state
    assert seen["after"] == outside and outside is not None  # the parent's setting is back

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        (sub,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[seen["parent"]])
            )
        )
    assert sub.name.startswith("invoice-file/") and sub.state is not None and sub.state.is_completed()

    parent_id, sub_id = f"prefect.flow-run.{seen['parent']}", f"prefect.flow-run.{sub.id}"
    deadline = time.monotonic() + 120  # events are stored asynchronously: wait for the marker
    while not _events([MARKER], [parent_id]):
        assert time.monotonic() < deadline, "the marker event never arrived"
        time.sleep(0.5)
    beats = _events([HEARTBEAT], [parent_id, sub_id])
    assert {e.resource.id for e in beats} == {parent_id}, [e.resource.id for e in beats]
