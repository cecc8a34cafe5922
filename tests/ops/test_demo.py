"""The demo: its work directory rules, and the whole run through a real Prefect server.

The end-to-end test starts a real Prefect server (a free port, a temporary PREFECT_HOME),
runs ``run_demo`` through it — the emulator, the inbox pickups as Prefect flows with the
pipeline flows as subflows, the balance refresh — and then asks Prefect's client whether
the runs completed and left their artifacts.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from caselle_ic.errors import OutputError
from caselle_ic.ops.demo import MARKER, prepare_workdir, stage_inputs

from .conftest import SAMPLES

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun


def test_workdir_is_made_cleared_and_foreign_dirs_are_refused(tmp_path: Path) -> None:
    wd = prepare_workdir(tmp_path / "demo")
    assert (wd / MARKER).exists()
    (wd / "outbox").mkdir()
    (wd / "outbox" / "old.txt").write_text("from the last demo")
    (wd / "emulator.db").write_text("x")
    assert prepare_workdir(wd) == wd
    assert sorted(p.name for p in wd.iterdir()) == [MARKER]  # a fresh start every time
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not made by the demo"):
        prepare_workdir(foreign)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_samples_are_staged_under_names_the_inbox_routes(tmp_path: Path) -> None:
    from caselle_ic.ops.inbox_scan import classify

    staged = stage_inputs(tmp_path / "inbox")
    for kind, path in staged.items():
        assert classify(path.name) == kind
        assert path.read_bytes() == (SAMPLES / path.name).read_bytes()


@pytest.mark.slow
def test_demo_end_to_end_through_a_real_prefect_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from caselle_ic.ops.demo import run_demo
    from caselle_ic.ops.prefect_server import ensure_server, stop_server

    from .test_prefect_server import free_port

    server = ensure_server(port=free_port(), home=tmp_path / "home", use_env=False)
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        status = run_demo(workdir=tmp_path / "demo", prefect=True)
        out = capsys.readouterr().out
        assert status == 0, out
        assert "already running" in out  # it found our server instead of starting another

        async def read() -> tuple[dict[str, FlowRun], dict[str, Any]]:
            async with PrefectClient(api=server.api_url) as client:
                runs = await client.read_flow_runs()
                arts = await client.read_artifacts()
                children = {}
                for r in runs:
                    if r.name.startswith(("invoice-inbox/", "payments-inbox/", "paperless-inbox/")):
                        children[r.name.split("/")[0]] = await client.read_flow_runs(
                            flow_run_filter=FlowRunFilter(
                                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[r.id])
                            )
                        )
                return {r.name: r for r in runs}, {"arts": arts, "children": children}

        runs, extra = asyncio.run(read())
        for prefix in ("invoice-inbox/", "payments-inbox/", "paperless-inbox/"):
            (run,) = [r for n, r in runs.items() if n.startswith(prefix)]
            assert run.state is not None and run.state.is_completed(), (run.name, run.state)
        (audit,) = [r for n, r in runs.items() if n.startswith("daily-audit/")]
        assert audit.state is not None
        assert audit.state.is_completed() and "[ok] audit" in out  # it found the demo's hand-void
        assert "voided_without_reversal 1" in out
        for parent, kids in extra["children"].items():
            assert kids, f"{parent} ran no pipeline subflow"
            assert all(k.state.is_completed() for k in kids), [(k.name, k.state) for k in kids]
        keys = {a.key for a in extra["arts"] if a.key}
        for kind in ("invoices", "payments", "paperless"):
            assert f"inbox-{kind}-sample-city-utilities" in keys
        # every pipeline subflow left at least one artifact for the analyst
        kid_ids = {k.id for kids in extra["children"].values() for k in kids}
        assert kid_ids <= {a.flow_run_id for a in extra["arts"]}
        # nothing sensitive in any artifact
        secrets = [v for k, v in os.environ.items() if k in ("CASELLE_CLIENT_SECRET", "CASELLE_DP_PASSWORD")]
        for a in extra["arts"]:
            text = str(a.data)
            assert not any(s and s in text for s in secrets)
            assert "001017" not in text  # accounts masked to the last 4
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved
        stop_server(server)
