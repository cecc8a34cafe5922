"""The documented multi-machine path, for real: a Prefect server, a process work pool, the
generated prefect.yaml deployed with ``prefect deploy``, and ``prefect worker start`` — started
in a directory that is not the checkout — running the scheduled inbox flow: the pull steps
enter ``$CASELLE_IC_HOME`` and run ``uv sync --locked`` there, and the module entrypoint
(``caselle_ic.flows.ops.payments_inbox``) is imported from the installed package.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from caselle_ic.config.model import load_config
from caselle_ic.ops.deploy import render_prefect_yaml
from caselle_ic.ops.prefect_server import ensure_server, stop_server

from .conftest import ROOT
from .test_prefect_server import free_port

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Artifact, FlowRun

pytestmark = pytest.mark.slow
SLUG = "sample-city-utilities"


def test_prefect_yaml_deploys_and_a_worker_runs_it(tmp_path: Path, biller_toml: Path) -> None:
    cfg = load_config(biller_toml)
    cfg.paths.inbox.mkdir(parents=True)
    (cfg.paths.inbox / "notes.txt").write_text("x")
    # a loaded machine may take minutes to start the server: a wait, not a timed assertion
    server = ensure_server(port=free_port(), home=tmp_path / "home", use_env=False, timeout=300)
    try:
        env = {
            **os.environ,
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(tmp_path / "home"),
            "CASELLE_IC_HOME": str(ROOT),
        }

        def prefect(*args: str, cwd: Path = ROOT, timeout: float = 180) -> str:
            out = subprocess.run(
                [sys.executable, "-m", "prefect", "--no-prompt", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            assert out.returncode == 0, (
                f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
            return out.stdout

        yaml_path = tmp_path / "prefect.yaml"
        # only the payments pickup, deployed with --all: Prefect 3.9 cannot match
        # `--name <flow>/<deployment>` against a module entrypoint (it reads flow names from files)
        import yaml

        doc = yaml.safe_load(render_prefect_yaml([biller_toml], root=ROOT))
        doc["deployments"] = [
            d for d in doc["deployments"] if d["entrypoint"] == "caselle_ic.flows.ops.payments_inbox"
        ]
        yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        t0 = time.monotonic()
        prefect("work-pool", "create", "caselle-ic", "--type", "process")
        prefect("deploy", "--prefect-file", str(yaml_path), "--all")
        t_deploy = time.monotonic() - t0
        prefect("deployment", "run", f"payments-inbox/{SLUG}")
        t1 = time.monotonic()
        # the worker runs in another directory: the pull step must take it to $CASELLE_IC_HOME
        prefect("worker", "start", "--pool", "caselle-ic", "--run-once", cwd=tmp_path, timeout=300)
        print(
            f"server {server.startup_seconds:.1f} s, pool+deploy {t_deploy:.1f} s, "
            f"worker run {time.monotonic() - t1:.1f} s"
        )

        async def read() -> tuple[list[FlowRun], list[Artifact]]:
            from prefect.client.orchestration import PrefectClient
            from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

            async with PrefectClient(api=server.api_url) as client:
                runs = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[SLUG]))
                )
                arts = await client.read_artifacts()
                return runs, arts

        runs, arts = asyncio.run(read())

        async def logs(run_id: uuid.UUID) -> str:
            from prefect.client.orchestration import PrefectClient
            from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

            async with PrefectClient(api=server.api_url) as client:
                found = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
                return "\n".join(entry.message for entry in found)

        # the schedule (07:00 America/Denver) also put future runs on the server: still Scheduled
        scheduled = [r for r in runs if r.state is not None and r.state.is_scheduled()]
        assert scheduled and all(
            r.expected_start_time is not None and r.expected_start_time.hour in (13, 14) for r in scheduled
        )  # 07:00 MST/MDT
        (run,) = [r for r in runs if r not in scheduled]
        assert run.state is not None and run.state.is_completed(), run.state
        assert run.name.startswith(f"payments-inbox/{SLUG}/")
        (art,) = [a for a in arts if a.key == f"inbox-payments-{SLUG}" and a.flow_run_id == run.id]
        assert "notes.txt" in str(art.data)
        text = asyncio.run(logs(run.id))
        assert "Running 2 deployment pull step(s)" in text  # into the checkout, then uv sync --locked
        assert isinstance(run.id, uuid.UUID)
    finally:
        assert stop_server(server)
