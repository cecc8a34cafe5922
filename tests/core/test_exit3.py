"""Exit status 3 (SPEC §11): an unexpected exception in any command is one redacted line on
stderr naming the step and the log file; the redacted traceback is in
``[paths].state/logs/`` (or the fallback when no biller file was loaded); never exit 1.

The faults are real exceptions raised inside the running command by the fail points of
caselle_ic/failpoints.py (``CASELLE_IC_FAILPOINT=raise:NAME``); nothing is mocked. For
payments, the run that broke after Caselle answered leaves the ledger consistent and the
next run finishes the work, exactly once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from caselle_ic.failpoints import ENV as FAILPOINT
from tests.conftest import SAMPLES, run_cli
from tests.fixtures.emulators import write_seed_extract

NOW = "2026-11-01T06:00:00"
LINE = re.compile(
    r"caselle-ic (?P<command>[a-z-]+): internal error in step (?P<step>[a-z-]+)(?: \((?P<where>[^)]*)\))?: "
    r"FailpointError: fail point (?P<point>\S+) \(test fault injected by CASELLE_IC_FAILPOINT\); "
    r"full traceback: (?P<log>/\S+\.log)\n"
)


@pytest.fixture
def biller(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "biller" / "biller.toml"  # [paths] land in tmp_path/data
    path.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / "biller.toml", path)
    return path


def _check(r, command: str, step: str, log_dir: Path, secrets: tuple[str, ...] = ()) -> Path:
    assert r.returncode == 3, r.stderr
    m = LINE.fullmatch(r.stderr)
    assert m, r.stderr  # exactly one line
    assert (m["command"], m["step"]) == (command, step)
    log = Path(m["log"])
    assert log.parent == log_dir and log.is_file()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "FailpointError" in text
    assert f"step: {step}" in text
    for s in secrets:
        assert s not in text and s not in r.stderr
    return log


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("invoices", ["invoices", str(SAMPLES / "statements.csv"), "--out", "{out}"]),
        ("payments", ["payments", str(SAMPLES / "payments.csv"), "--out", "{out}"]),
        ("paperless", ["paperless", str(SAMPLES / "paperless.csv")]),
        ("balance", ["balance", "001001"]),
        ("codes", ["codes", "explain", "--payment-type", "1"]),
        ("inbox", ["inbox"]),
        ("deployments", ["deployments"]),
        ("serve", ["serve"]),
        ("check", ["check"]),
        ("trace", ["trace", "00000000-0000-0000-0000-000000000000"]),
        ("inbox-claims", ["inbox-claims"]),
    ],
)
def test_every_command_with_a_biller_file(
    command: str, args: list[str], biller: Path, tmp_path: Path
) -> None:
    secret = "Secret-Of-The-Biller-0042"
    env = {
        FAILPOINT: f"raise:command.{command}",
        "CASELLE_DP_PASSWORD": secret,
        "CASELLE_RTDR_KEY": secret,
        "CASELLE_CLIENT_SECRET": secret,
    }
    argv = [a.replace("{out}", str(tmp_path / "out")) for a in args] + ["--config", str(biller)]
    r = run_cli(*argv, env=env)
    _check(r, command, command, tmp_path / "data" / "state" / "logs", (secret,))
    assert not (tmp_path / "out").exists()  # nothing was written


@pytest.mark.parametrize(
    ("command", "args"),
    [("codes", ["codes", "template"]), ("emulator", ["emulator", "--port", "1"]), ("demo", ["demo"])],
)
def test_every_command_without_a_biller_file_uses_the_fallback(
    command: str, args: list[str], tmp_path: Path
) -> None:
    env = {FAILPOINT: f"raise:command.{command}", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    _check(run_cli(*args, env=env), command, command, tmp_path / "xdg" / "caselle-ic" / "logs")
    env["CASELLE_IC_LOG_DIR"] = str(tmp_path / "logs")
    _check(run_cli(*args, env=env), command, command, tmp_path / "logs")


def test_json_reports_exit_3_too(biller: Path, tmp_path: Path) -> None:
    import json

    r = run_cli("inbox", "--config", str(biller), "--json", env={FAILPOINT: "raise:command.inbox"})
    assert r.returncode == 3
    doc = json.loads(r.stdout)
    assert doc["exit_status"] == 3 and doc["error"] == r.stderr.rstrip("\n")


def test_invoices_broken_mid_run_write_nothing_and_the_rerun_writes_the_file(
    biller: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [
        "invoices",
        str(SAMPLES / "statements.csv"),
        "--config",
        str(biller),
        "--out",
        str(out),
        "--now",
        NOW,
    ]
    r = run_cli(*args, env={FAILPOINT: "raise:step.build-records"})
    log = _check(r, "invoices", "build-records", tmp_path / "data" / "state" / "logs")
    assert "(invoices/pipeline.py:" in r.stderr and " in run_invoice_file)" in r.stderr
    assert "where: invoices/pipeline.py:" in log.read_text()
    assert not out.exists() or not list(out.glob("*.txt"))
    r = run_cli(*args)
    assert r.returncode == 1, r.stderr
    expected = SAMPLES / "expected" / "INVCLD_CSLSTMT101_20261101060000.txt"
    assert (out / expected.name).read_bytes() == expected.read_bytes()


def test_payments_broken_after_caselle_answered_then_the_next_run_finishes_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``post.sent`` raises after Caselle committed a batch and before the answer is recorded:
    exit 3, the ledger holds that batch as ``unknown`` (sent, outcome to settle) and the run
    as failed; the next run settles it from Caselle's receipts and posts the rest, once."""
    from caselle_ic.emulator.process import EmulatorProcess
    from caselle_ic.store.ledger import open_ledger
    from caselle_ic.store.tables import payments, runs
    from tests.posting.postkit import assert_exactly_once, dp, lb, write_export

    seed = write_seed_extract(tmp_path / "seed.csv")
    with EmulatorProcess(seed=seed) as emu:
        for k, v in emu.env().items():
            monkeypatch.setenv(k, v)
        cfg = emu.write_config(tmp_path / "biller" / "biller.toml")
        datapump, filed = [dp(i) for i in range(30)], [lb(i) for i in range(3)]
        export = write_export(tmp_path / "pay.csv", [*datapump, *filed])
        ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
        out = tmp_path / "out"
        args = ["payments", str(export), "--config", str(cfg), "--out", str(out), "--ledger", ledger]
        args += ["--now", "2026-11-03T07:00:00"]
        slow = {"CASELLE_IC_POST_BATCH": "10", "CASELLE_IC_POST_WORKERS": "1", "CASELLE_IC_SETTLE_GRACE": "1"}
        r = run_cli(*args, env={**slow, FAILPOINT: "raise:post.sent:2"})
        _check(r, "payments", "post-payments", cfg.parent / "state" / "logs")
        assert "(payments/posting/datapump.py:" in r.stderr and " in _post_batch)" in r.stderr
        assert len(emu.receipts()) == 20  # two batches reached Caselle; the second's answer was lost
        with open_ledger(ledger) as led, led.begin() as conn:
            states: dict[str, int] = dict(
                conn.execute(sa.select(payments.c.state, sa.func.count()).group_by(payments.c.state)).all()
            )
            (run_status,) = conn.execute(sa.select(runs.c.status)).scalars().all()
        # the first batch recorded, the lost answer marked to settle, the rest untouched
        assert states == {"posted": 10, "unknown": 10, "pending": 13}, states
        assert run_status == "failed"

        r = run_cli(*args, env=slow)
        assert r.returncode == 0, r.stderr
        assert "settled after a lost answer 10" in r.stderr
        assert_exactly_once(emu, datapump, filed, out)
