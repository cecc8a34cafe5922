"""Running unattended, the fast part (SPEC §11): the settings, the automations we would
create, the deadline deployment, and the inbox's handling of red runs and interrupted runs.
The same behaviour against a real Prefect server: ``test_alerts.py``."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.errors import ConfigError, RunFailedError
from caselle_ic.ops.alerts import automation_name, planned
from caselle_ic.ops.deploy import plan, render_prefect_yaml
from caselle_ic.ops.inbox import inbox_files, process_inbox
from caselle_ic.result import RunResult
from caselle_ic.store.inbox_claims import default_ledger_url

from .conftest import ROOT


def with_sections(biller_toml: Path, text: str) -> Path:
    biller_toml.write_text(biller_toml.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")
    return biller_toml


def test_defaults_are_the_spec_s(biller_toml: Path) -> None:
    cfg = load_config(biller_toml)
    assert (cfg.schedule.timeout, cfg.schedule.retries, cfg.schedule.retry_delay) == (7200, 3, 600)
    assert (cfg.alerts.notify, cfg.alerts.expect) == ("", {})


def test_overrides_and_bad_values_name_the_setting(biller_toml: Path) -> None:
    text = biller_toml.read_text(encoding="utf-8")
    cfg = load_config(
        with_sections(
            biller_toml,
            '[schedule]\ntimeout = 900\nretries = 0\n[alerts]\nnotify = "slack-webhook/ops"\n'
            'expect = { payments = "0  9 * * 1-5" }\n',
        )
    )
    assert (cfg.schedule.timeout, cfg.schedule.retries) == (900, 0)
    assert cfg.alerts.expect == {"payments": "0 9 * * 1-5"}
    for bad, match in [
        ("[schedule]\ntimeout = 5\n", r"\[schedule.timeout\]"),
        ('[alerts]\nexpect = { lockbox = "0 9 * * *" }\n', "'lockbox' is not an input kind"),
        ('[alerts]\nexpect = { payments = "9am" }\n', "expect.payments = '9am' is not a 5-field cron"),
        ('[alerts]\nnotfiy = "x"\n', r"\[alerts.notfiy\] unknown key"),
    ]:
        biller_toml.write_text(text + "\n" + bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=match):
            load_config(biller_toml)


def test_the_automations_of_a_biller(biller_toml: Path) -> None:
    cfg = load_config(with_sections(biller_toml, '[alerts]\nnotify = "ops"\n'))
    block = uuid4()
    autos = {a.name: a for a in planned(cfg, block)}
    slug = "sample-city-utilities"
    assert sorted(autos) == [
        automation_name(slug, a) for a in ("audit", "input-missing", "not-started", "run-failed")
    ]
    failed = autos[f"caselle-ic/{slug}/run-failed"]
    assert failed.trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.TimedOut",
    }
    related = [r.root for r in failed.trigger.match_related]
    assert {"prefect.resource.role": "deployment", "prefect.resource.name": slug} in related
    (action,) = failed.actions
    assert action.block_document_id == block
    for needle in (
        "biller: Sample City Utilities (sample-city-utilities)",
        "{{ flow.name }}",
        "{{ flow_run.name }}",
    ):
        assert needle in action.body
    missing = autos[f"caselle-ic/{slug}/input-missing"].trigger
    assert missing.expect == {"caselle-ic.input.missing"}
    assert missing.match.root == {"prefect.resource.id": f"caselle-ic.biller.{slug}"}
    audit = autos[f"caselle-ic/{slug}/audit"].trigger
    assert audit.expect == {"caselle-ic.audit.discrepancies"}
    not_started = autos[f"caselle-ic/{slug}/not-started"].trigger
    assert not_started.expect == {"caselle-ic.run.not-started"}
    assert not_started.match.root == {"prefect.resource.id": f"caselle-ic.biller.{slug}"}


def test_expect_adds_the_input_deadline_deployment(biller_toml: Path) -> None:
    with_sections(biller_toml, '[alerts]\nexpect = { payments = "0 9 * * 1-5", invoices = "0 12 2 * *" }\n')
    specs = {s.full_name: s for s in plan([biller_toml])}
    spec = specs["input-deadline/sample-city-utilities"]
    assert spec.entrypoint == "caselle_ic.flows.deadline.input_deadline"
    assert spec.cron_schedules() == [
        ("0 12 2 * *", {"kind": "invoices"}),
        ("0 9 * * 1-5", {"kind": "payments"}),
    ]
    text = render_prefect_yaml([biller_toml], root=ROOT)
    assert "parameters:\n      kind: payments" in text


def test_previous_deadline_is_the_cron_time_before() -> None:
    from caselle_ic.flows.deadline import previous_deadline

    tz = ZoneInfo("America/Denver")
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=tz)
    assert previous_deadline("0 9 * * 1-5", monday, tz) == datetime(2026, 12, 4, 9, 0, tzinfo=tz)


# -- the inbox and red runs ------------------------------------------------------------------
def _drop(cfg: BillerConfig, name: str = "payments.csv") -> Path:
    path = cfg.paths.inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n", encoding="utf-8")
    old = time.time() - 120
    os.utime(path, (old, old))
    return path


def _claims(cfg: BillerConfig) -> list[dict[str, Any]]:
    engine = sa.create_engine(default_ledger_url(cfg))
    with engine.connect() as conn:
        out = [dict(r) for r in conn.execute(sa.select(inbox_files)).mappings()]
    engine.dispose()
    return out


def test_a_red_run_with_work_left_keeps_its_input(biller_toml: Path) -> None:
    """The flow ends Failed (RunFailedError) but its result says a rerun sends the rest:
    Kind.run hands the inbox the result, and the export stays in the inbox."""
    import dataclasses

    from caselle_ic import kinds

    cfg = load_config(biller_toml)
    path = _drop(cfg)

    def red_flow(**kwargs: object) -> RunResult:  # stands in for the Prefect flow's call
        result = RunResult("daily-payments", cfg.name, [path], outputs=[path], error="Caselle unreachable")
        result.keep_for_retry(3)
        raise RunFailedError("Caselle Connect could not be reached", result=result)

    kind = dataclasses.replace(kinds.get("payments"), flow=lambda: red_flow)
    via_flow = lambda p, o: kind.run(p, cfg, via_flow=True, out_dir=o)  # noqa: E731
    report = process_inbox(cfg, "payments", via_flow, settle_seconds=0)
    (item,) = report.items
    assert item.status == "retry" and path.exists()
    assert item.result is not None and item.result.exit_status == 2
    assert _claims(cfg)[0]["status"] == "failed"  # the next run takes it over

    def red_for_good(**kwargs: object) -> RunResult:
        raise RunFailedError("nothing written", result=RunResult("daily-payments", cfg.name, [], error="bad"))

    kind = dataclasses.replace(kind, flow=lambda: red_for_good)
    report = process_inbox(cfg, "payments", lambda p, o: kind.run(p, cfg, via_flow=True), settle_seconds=0)
    assert report.items[0].status == "failed" and not path.exists()
    assert (cfg.paths.error / "payments.csv").exists()


def test_an_interrupted_run_releases_its_claim(biller_toml: Path) -> None:
    """A timeout (a BaseException from Prefect's cancel scope) mid-file: the file stays, the
    claim is released, and the next run processes it at once."""
    import asyncio

    cfg = load_config(biller_toml)
    path = _drop(cfg)

    def hangs(p: Path, outbox: Path) -> RunResult:
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        process_inbox(cfg, "payments", hangs, settle_seconds=0)
    assert path.exists()
    (claim,) = _claims(cfg)
    assert claim["status"] == "failed" and claim["detail"].startswith("interrupted (CancelledError)")

    done = process_inbox(
        cfg, "payments", lambda p, o: RunResult("daily-payments", cfg.name, [p]), settle_seconds=0
    )
    assert [i.status for i in done.items] == ["processed"]
    assert _claims(cfg)[0]["attempts"] == 2
