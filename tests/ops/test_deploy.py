"""Deployments per biller: the plan, the committed prefect.yaml, registration and runs.

* the plan for the sample biller (names, cron, time zone, parameters);
* ``prefect.yaml`` is exactly what ``caselle-ic deployments`` generates;
* on the Prefect test server: deployments applied, read back through the client, one run
  executed the way a worker executes it (``prefect flow-run execute`` in a subprocess), and
  the ``all-billers`` fan-out started once per biller and period (idempotency keys).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from caselle_ic.config.model import load_config
from caselle_ic.errors import ConfigError
from caselle_ic.ops.deploy import fleet_plan, plan, render_prefect_yaml, runner_deployments

from .conftest import ROOT, SAMPLES

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Artifact, FlowRun

SLUG = "sample-city-utilities"


def test_plan_for_the_sample_biller() -> None:
    specs = plan([SAMPLES / "biller.toml"], relative_to=ROOT)
    got = {s.full_name: (s.cron, s.timezone, s.parameters, s.concurrency_limit) for s in specs}
    cfg = {"config": "data/samples/biller.toml"}
    assert got == {
        f"invoice-inbox/{SLUG}": ("0 6 1 * *", "America/Denver", cfg, 1),
        f"adjustments-inbox/{SLUG}": (None, None, cfg, 1),
        f"payments-inbox/{SLUG}": ("0 7 * * *", "America/Denver", cfg, 1),
        f"paperless-inbox/{SLUG}": ("0 6 * * *", "America/Denver", cfg, 1),
        f"adjustments-file/{SLUG}": (None, None, {**cfg, "out_dir": "data/outbox"}, None),
        f"balance-refresh/{SLUG}": (None, None, {**cfg, "out_dir": "data/outbox"}, None),
        f"daily-audit/{SLUG}": ("0 8 * * *", "America/Denver", cfg, 1),  # an hour after payments
        "all-billers/invoices": (None, None, {"kind": "invoices"}, None),
        "all-billers/adjustments": (None, None, {"kind": "adjustments"}, None),
        "all-billers/payments": (None, None, {"kind": "payments"}, None),
        "all-billers/paperless": (None, None, {"kind": "paperless"}, None),
    }
    entry = {s.full_name: s.entrypoint for s in specs}
    # module entrypoints: the worker imports them from the installed package (issue 9 item 8)
    assert entry[f"payments-inbox/{SLUG}"] == "caselle_ic.flows.ops.payments_inbox"
    assert entry[f"balance-refresh/{SLUG}"] == "caselle_ic.flows.balance.balance_refresh"


def _with_schedule(biller_toml: Path, schedule: str, name: str | None = None) -> Path:
    text = biller_toml.read_text(encoding="utf-8")
    if name:
        text = text.replace('name = "Sample City Utilities"', f'name = "{name}"')
    out = biller_toml.with_name(f"{(name or 'b').replace(' ', '_')}.toml")
    out.write_text(text + "\n[schedule]\n" + schedule, encoding="utf-8")
    return out


def test_schedule_is_configurable_and_checked(biller_toml: Path) -> None:
    custom = _with_schedule(
        biller_toml,
        'invoices = "30 5 15 * *"\npayments = "*/15 6-18 * * 1-5"\npaperless = ""\n',
        "Town Of Ely",
    )
    got = {s.full_name: s.cron for s in plan([custom])}
    assert got["invoice-inbox/town-of-ely"] == "30 5 15 * *"
    assert got["payments-inbox/town-of-ely"] == "*/15 6-18 * * 1-5"
    assert got["paperless-inbox/town-of-ely"] is None  # "" = on demand
    bad = _with_schedule(biller_toml, 'invoices = "0 25 1 * *"\n', "Bad Hour")
    with pytest.raises(ConfigError, match=r"\[schedule\]\.invoices = '0 25 1 \* \*'"):
        plan([bad])
    with pytest.raises(ConfigError, match="5-field cron"):
        load_config(_with_schedule(biller_toml, 'payments = "daily"\n', "Not Cron"))
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(_with_schedule(biller_toml, 'balances = "0 6 * * *"\n', "Typo"))


def test_two_billers_with_one_slug_are_refused(biller_toml: Path) -> None:
    twin = biller_toml.with_name("twin.toml")
    twin.write_text(biller_toml.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match="same deployment name 'sample-city-utilities'"):
        plan([biller_toml, twin])


def test_committed_prefect_yaml_is_the_generated_one() -> None:
    committed = (ROOT / "prefect.yaml").read_text(encoding="utf-8")
    assert committed == render_prefect_yaml(["data/samples/biller.toml"], root=ROOT)
    doc = yaml.safe_load(committed)
    assert doc["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $CASELLE_IC_HOME }}"}},
        {
            "prefect.deployments.steps.run_shell_script": {
                "id": "install-project",
                "script": "uv sync --locked",
                "directory": "{{ $CASELLE_IC_HOME }}",
                "stream_output": False,
            }
        },
    ]
    by_entry = {d["entrypoint"]: d for d in doc["deployments"]}
    pay = by_entry["caselle_ic.flows.ops.payments_inbox"]
    assert pay["name"] == SLUG
    assert pay["schedules"] == [{"cron": "0 7 * * *", "timezone": "America/Denver", "active": True}]
    assert pay["work_pool"] == {"name": "caselle-ic", "work_queue_name": "default"}
    assert by_entry["caselle_ic.flows.invoices.adjustments_file"]["schedules"] == []
    from prefect.flows import Flow, load_flow_from_entrypoint

    for d in doc["deployments"]:  # every entrypoint resolves from the installed package
        assert isinstance(load_flow_from_entrypoint(d["entrypoint"], use_placeholder_flow=False), Flow)


def test_cli_prints_the_same_yaml() -> None:
    from tests.conftest import run_cli  # the installed console script

    out = run_cli("deployments", "--config", "data/samples/biller.toml", "--root", str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (ROOT / "prefect.yaml").read_text(encoding="utf-8")


def test_runner_deployments_carry_cron_in_the_biller_time_zone() -> None:
    specs = plan([SAMPLES / "biller.toml"])
    runners = {f"{d.flow_name}/{d.name}": d for d in runner_deployments(specs, skip_missing=True)}
    pay = runners[f"payments-inbox/{SLUG}"]
    (sched,) = pay.schedules
    assert sched.schedule.cron == "0 7 * * *" and sched.schedule.timezone == "America/Denver"
    assert pay.parameters == {"config": str((SAMPLES / "biller.toml").resolve())}
    assert pay.concurrency_limit == 1
    assert runners[f"adjustments-inbox/{SLUG}"].schedules in (None, [])
    assert "all-billers/payments" in runners


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness sets PREFECT_API_URL"
    return str(url)


@pytest.mark.prefect
def test_apply_and_run_an_inbox_deployment(prefect_harness: None, biller_toml: Path) -> None:
    """Register the biller's deployments, run one as a worker would, read the result back."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule

    cfg = load_config(biller_toml)
    cfg.paths.inbox.mkdir(parents=True)
    (cfg.paths.inbox / "readme.txt").write_text("not an input")  # listed as unrecognised
    inbox = "caselle_ic.flows.ops."  # module entrypoints of the inbox flows
    specs = [s for s in plan([biller_toml]) if s.entrypoint.startswith(inbox) and s.name == SLUG]
    ids = {f"{d.flow_name}/{d.name}": d.apply() for d in runner_deployments(specs)}
    assert set(ids) == {f"{k}-inbox/{SLUG}" for k in ("invoice", "adjustments", "payments", "paperless")}

    async def check_and_start() -> tuple[str, object]:
        async with get_client() as client:
            dep = await client.read_deployment_by_name(f"payments-inbox/{SLUG}")
            (sched,) = dep.schedules
            assert isinstance(sched.schedule, CronSchedule)
            assert (sched.schedule.cron, sched.schedule.timezone) == ("0 7 * * *", "America/Denver")
            assert dep.parameters == {"config": str(biller_toml.resolve())}
            assert set(dep.tags) == {"caselle-ic", SLUG, "payments"}
            inv = await client.read_deployment_by_name(f"invoice-inbox/{SLUG}")
            assert isinstance(inv.schedules[0].schedule, CronSchedule)
            assert inv.schedules[0].schedule.cron == "0 6 1 * *"
            run = await client.create_flow_run_from_deployment(dep.id)
            return str(run.id), dep.id

    run_id, _ = asyncio.run(check_and_start())
    env = {**os.environ, "PREFECT_API_URL": _api_url()}
    out = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "execute", run_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    async def result() -> tuple[FlowRun, list[Artifact]]:
        async with get_client() as client:
            run = await client.read_flow_run(uuid.UUID(run_id))
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]))
            )
            return run, arts

    run, arts = asyncio.run(result())
    assert run.state is not None
    assert run.state.is_completed(), run.state
    assert run.name.startswith(f"payments-inbox/{SLUG}/")
    (art,) = [a for a in arts if a.key == f"inbox-payments-{SLUG}"]
    assert art.type == "markdown" and isinstance(art.data, str)
    assert "readme.txt" in art.data and "(nothing waiting)" in art.data
    assert (cfg.paths.inbox / "readme.txt").exists()  # unrecognised files stay


@pytest.mark.prefect
def test_all_billers_fans_out_once_per_biller_and_period(prefect_harness: None, biller_toml: Path) -> None:
    from prefect.client.orchestration import get_client

    from caselle_ic.flows.ops import all_billers

    configs = [_with_schedule(biller_toml, "", f"Fanout Town {i}") for i in range(3)]
    specs = [s for s in plan(configs) if s.flow_name == "paperless-inbox"]
    for d in runner_deployments(specs):
        d.apply()
    rows = asyncio.run(all_billers(kind="paperless", period="2025-02-03"))
    # every paperless-inbox deployment on the server is a target; ours are among them
    assert {"fanout-town-0", "fanout-town-1", "fanout-town-2"} <= {r["biller"] for r in rows}
    mine = {r["biller"]: r for r in rows if r["biller"].startswith("fanout-town-")}
    again = {r["biller"]: r for r in asyncio.run(all_billers(kind="paperless", period="2025-02-03"))}
    for biller, row in mine.items():
        assert again[biller]["flow_run_id"] == row["flow_run_id"]  # same period: same run
    later = {
        r["biller"]: r
        for r in asyncio.run(all_billers(kind="paperless", period="2025-02-04", billers=["fanout-town-1"]))
    }
    assert (
        set(later) == {"fanout-town-1"}
        and later["fanout-town-1"]["flow_run_id"] != mine["fanout-town-1"]["flow_run_id"]
    )

    async def runs() -> list[FlowRun]:
        async with get_client() as client:
            return [await client.read_flow_run(uuid.UUID(r["flow_run_id"])) for r in mine.values()]

    for fr in asyncio.run(runs()):
        assert fr.idempotency_key is not None and fr.state is not None
        assert fr.idempotency_key.startswith("fanout-town-") and fr.idempotency_key.endswith(
            "/paperless/2025-02-03"
        )
        assert fr.state.is_scheduled()
    assert len(fleet_plan()) == 4


def test_shared_ledger_goes_to_the_inbox_deployments_without_a_password() -> None:
    url = "postgresql+psycopg://caselle@db.example/caselle"
    specs = {
        s.full_name: s.parameters for s in plan([SAMPLES / "biller.toml"], relative_to=ROOT, ledger_url=url)
    }
    for kind in ("invoice", "adjustments", "payments", "paperless"):
        assert specs[f"{kind}-inbox/{SLUG}"]["ledger_url"] == url
    assert "ledger_url" not in specs[f"balance-refresh/{SLUG}"]
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        plan([SAMPLES / "biller.toml"], ledger_url="postgresql+psycopg://caselle:s3cret@db/caselle")


@pytest.mark.prefect
@pytest.mark.slow
def test_caselle_ic_serve_registers_every_deployment(prefect_harness: None, biller_toml: Path) -> None:
    """`caselle-ic serve` as a user runs it, against the test server; stopped with SIGTERM."""
    import signal
    import time

    from prefect.client.orchestration import get_client

    env = {**os.environ, "PREFECT_API_URL": _api_url()}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "caselle-ic"), "serve", "--config", str(biller_toml)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    want = {
        f"{f}/{SLUG}" for f in ("invoice-inbox", "adjustments-inbox", "payments-inbox", "paperless-inbox")
    }
    want |= {f"adjustments-file/{SLUG}", f"balance-refresh/{SLUG}", f"daily-audit/{SLUG}"}

    async def registered() -> set[str]:
        async with get_client() as client:
            found = set()
            for name in want:
                try:
                    dep = await client.read_deployment_by_name(name)
                except Exception:
                    continue
                if dep.parameters.get("config") == str(biller_toml.resolve()):
                    found.add(name)
            return found

    try:
        deadline = time.monotonic() + 120
        found: set[str] = set()
        while time.monotonic() < deadline and found != want and proc.poll() is None:
            time.sleep(1)
            found = asyncio.run(registered())
        assert found == want, (found, proc.poll())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert "serving 11 deployments for 1 biller(s)" in out, out[-2000:]  # 7 + 4 all-billers
