"""The Prefect flows ``invoice-file`` and ``adjustments-file`` run for real (a Prefect test
server), and what an analyst sees in the UI is read back through Prefect's client."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from uuid import UUID

import pytest

from caselle_ic.errors import NothingToWriteError
from caselle_ic.flows.invoices import adjustments_file, invoice_file
from tests.conftest import run_cli
from tests.invoices.conftest import (
    BILLER,
    EXPECTED,
    NOW,
    SAMPLE_EXTRACT,
    STAMP,
    line,
    statement,
    write_extract,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import Artifact

pytestmark = pytest.mark.prefect


def _client() -> SyncPrefectClient:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def artifacts_of(flow_run_id: UUID) -> dict[str | None, Artifact]:  # an artifact's key is optional
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client() as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def data_of(artifact: Artifact) -> str:
    """A markdown or table artifact's data (Prefect types it loosely: a result's is a dict)."""
    assert isinstance(artifact.data, str), artifact
    return artifact.data


def task_names(flow_run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with _client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(r.name.rsplit("-", 1)[0] for r in runs)


def flow_run_name(flow_run_id: UUID) -> str:
    with _client() as client:
        return client.read_flow_run(flow_run_id).name


def test_invoice_flow_writes_the_golden_file_and_publishes_masked_artifacts(prefect_harness, tmp_path):
    state = invoice_file(
        extract=str(SAMPLE_EXTRACT), config=str(BILLER), out_dir=str(tmp_path), now=NOW, return_state=True
    )
    assert state.is_completed()
    result = state.result()
    assert result.outputs[0].read_bytes() == (EXPECTED / f"{STAMP}.txt").read_bytes()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    assert flow_run_name(run_id) == "invoice-file/sample-city-utilities/2026-11"
    assert task_names(run_id) == [
        "build-records",
        "check-extract",
        "load-config",
        "read-extract",
        "write-invoice-file",
        "write-rejects",
    ]

    found = artifacts_of(run_id)
    assert set(found) == {
        "invoice-file-sample-city-utilities-summary",
        "invoice-file-sample-city-utilities-quarantined",
    }
    summary = data_of(found["invoice-file-sample-city-utilities-summary"])
    assert "| statements_in | 51 |" in summary and "| statements_written | 44 |" in summary
    assert "| statements_quarantined | 7 |" in summary
    assert "| TotalInvoiceAmount | 5142.22 |" in summary
    assert f"{tmp_path}/{STAMP}.txt" in summary and f"rejects/{STAMP}.rejects.csv" in summary
    # markdown escapes the mask's asterisks (issue 13.13); a reader sees ****1008
    assert "truncated" in summary and "****1008" in summary.replace("\\*", "*")

    table = json.loads(data_of(found["invoice-file-sample-city-utilities-quarantined"]))
    assert len(table) == 28
    assert {row["account_number"] for row in table} == {
        "****1040",
        "****1041",
        "****1042",
        "****1043",
        "****1044",
        "****0-44",
        "****1045",
    }
    for row in table:
        assert not {"email", "phone", "address1", "address2"} & set(row)
        assert row["reason"]
    text = data_of(found["invoice-file-sample-city-utilities-quarantined"]) + summary
    for full in ("001040", "001041", "001044", "0010-44", "@example.com", "555-10"):
        assert full not in text


def test_adjustments_flow_has_its_own_name_and_keys(prefect_harness, tmp_path):
    extract = write_extract(
        tmp_path / "adj.csv", statement("001001", [line("10/05/2026", "ADJUSTMENT", "A1", credit="2.00")])
    )
    state = adjustments_file(
        extract=str(extract), config=str(BILLER), out_dir=str(tmp_path / "out"), now=NOW, return_state=True
    )
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    assert flow_run_name(run_id) == "adjustments-file/sample-city-utilities/2026-11"
    found = artifacts_of(run_id)
    assert set(found) == {"adjustments-file-sample-city-utilities-summary"}  # nothing quarantined: no table
    assert "| statements_written | 1 |" in data_of(found["adjustments-file-sample-city-utilities-summary"])
    assert state.result().kind == "adjustments-file"


def test_flow_that_quarantines_everything_fails_but_still_shows_why(prefect_harness, tmp_path):
    extract = write_extract(
        tmp_path / "x.csv", statement("001077", [line("10/05/2026", "INVOICE", "X", "-1.00")])
    )
    state = invoice_file(
        extract=str(extract), config=str(BILLER), out_dir=str(tmp_path / "out"), now=NOW, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(NothingToWriteError):
        state.result()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    found = artifacts_of(run_id)
    assert "nothing was written" in data_of(found["invoice-file-sample-city-utilities-summary"])
    rows = json.loads(data_of(found["invoice-file-sample-city-utilities-quarantined"]))
    assert rows[0]["account_number"] == "****1077"
    assert rows[0]["reason"] == "charge_amount: must not be negative"


def test_cli_runs_the_flow_when_a_prefect_api_is_configured(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    proc = run_cli(
        "invoices",
        str(SAMPLE_EXTRACT),
        "--config",
        str(BILLER),
        "--out",
        str(tmp_path),
        "--now",
        NOW,
        env={"PREFECT_API_URL": str(PREFECT_API_URL.value())},
        timeout=180,
    )
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / f"{STAMP}.txt").read_bytes() == (EXPECTED / f"{STAMP}.txt").read_bytes()
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with _client() as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=["invoice-file/sample-city-utilities/2026-11"])
            )
        )
    assert any(r.state and r.state.is_completed() for r in runs)
