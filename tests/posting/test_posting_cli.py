"""``caselle-ic payments`` as a process: the sample export end to end, a run killed at
every crash point (and at random moments) then rerun, and two runs started at once.

Each test ends with the emulator holding exactly one receipt per DataPump payment and the
lockbox files holding each File payment once (postkit.assert_exactly_once).
"""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.failpoints import ENV as FAILPOINT
from caselle_ic.store.ledger import open_ledger
from caselle_ic.store.tables import payments
from tests.conftest import SAMPLES, run_cli
from tests.posting.postkit import assert_exactly_once, dp, lb, reversal, start_cli, write_export

SAMPLE_NOW = "2026-11-02T07:00:00"
NOW = "2026-11-03T07:00:00"
SLOW = {"CASELLE_IC_POST_BATCH": "10", "CASELLE_IC_POST_WORKERS": "2", "CASELLE_IC_SETTLE_GRACE": "1"}


def payments_cli(
    export: Path, cfg: Path, out: Path, ledger: str, now: str = NOW, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "payments",
        str(export),
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--now",
        now,
        "--ledger",
        ledger,
        env=env,
    )


def test_sample_export_end_to_end(fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path):
    """The sample: 23 receipts, the golden lockbox file, 2 voids, 1 manual reversal, 7 bad
    lines; the rerun changes nothing in Caselle or on disk."""
    out = tmp_path / "out"
    args = ("payments", str(SAMPLES / "payments.csv"), "--config", str(fifty_toml), "--out", str(out))
    r = run_cli(*args, "--now", SAMPLE_NOW)
    assert r.returncode == 1, r.stderr
    assert "posted 23, voided 2, filed 7, manual 1" in r.stderr and "8 record(s) quarantined" in r.stderr
    assert (out / "300_PYMT_20261102.TXT").read_bytes() == (
        SAMPLES / "expected" / "300_PYMT_20261102.TXT"
    ).read_bytes()
    receipts = fifty_emu.receipts()
    assert len(receipts) == 23 and sum(r["voided"] for r in receipts) == 2
    assert (fifty_toml.parent / "state" / "ledger.db").is_file()  # the default ledger: [paths].state
    with (out / "payments.reconciliation.csv").open(newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    total = table[-1]
    assert total["transaction_type"] == "TOTAL" and total["check"] == "ok"
    assert (total["export_count"], total["export_amount"]) == ("40", "19034.99")
    assert (total["posted_count"], total["filed_count"], total["quarantined_count"]) == ("23", "7", "7")
    with (out / "rejects" / "payments.rejects.csv").open(newline="", encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh))
    manual = [x for x in rejects if x["reason"].startswith("manual:")]
    assert len(rejects) == 8 and [x["payment_guid"] for x in manual] == [
        "92c18d0d-f217-5c18-bf78-c6537c6df8e3"
    ]
    mutations = fifty_emu.state()["counters"]["mutation_requests"]
    r2 = run_cli(*args, "--now", "2026-11-02T09:30:00")
    assert r2.returncode == 1 and "posted 0" in r2.stderr and "earlier 33" in r2.stderr
    assert fifty_emu.state()["counters"]["mutation_requests"] == mutations
    assert sorted(p.name for p in out.glob("*.TXT")) == ["300_PYMT_20261102.TXT"]


def _export(tmp_path: Path) -> tuple[Path, list[dict[str, str]], list[dict[str, str]]]:
    """60 DataPump payments, 6 File payments, and two reversals of DataPump payments."""
    datapump = [dp(i) for i in range(60)]
    filed = [lb(i) for i in range(6)]
    rows = [*datapump[:30], *filed, *datapump[30:], reversal("REFUND", dp(3)), reversal("ACH_REJECT", dp(40))]
    return write_export(tmp_path / "pay.csv", rows), datapump, filed


def _check_rerun(
    emu: EmulatorProcess, export: Path, cfg: Path, out: Path, ledger: str, datapump, filed
) -> str:
    """Rerun (no faults): exit 0, exactly once, both voids done once, nothing left open.
    Returns the rerun's stderr."""
    r = payments_cli(export, cfg, out, ledger)
    assert r.returncode == 0, r.stderr
    assert_exactly_once(emu, datapump, filed, out)
    voids = {x["confirmation_number"] for x in emu.receipts() if x["voided"]}
    assert voids == {dp(3)["payment_guid"], dp(40)["payment_guid"]}
    assert emu.state()["counters"]["receipts_voided"] == 2  # each void committed once
    with open_ledger(ledger) as led, led.begin() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(payments.c.state.not_in(["posted", "filed", "voided"]))
        )
        assert left.scalar() == 0
    return r.stderr


#: crash point -> what the rerun must have found and said (stderr summary)
RECOVERY = {
    "post.claimed": "lost posts not committed (sent again) ",
    "post.sent:3": "settled after a lost answer ",
    "post.sent:2": "settled after a lost answer ",
    "file.planned": "lockbox names abandoned 1",
    "file.written": "lockbox files recovered 1",
    "void.claimed": "lost voids not done (sent again) 2",
    "void.sent": "lost voids settled 1",
}


@pytest.mark.parametrize(
    "point", ["post.claimed", "post.sent:3", "file.planned", "file.written", "void.claimed", "void.sent"]
)
def test_killed_at_a_crash_point_then_rerun(
    point: str, fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    export, datapump, filed = _export(tmp_path)
    out = tmp_path / "out"
    r = payments_cli(export, fifty_toml, out, sqlite_ledger, **SLOW, **{FAILPOINT: point})
    assert r.returncode == -signal.SIGKILL, r.stderr
    stderr = _check_rerun(fifty_emu, export, fifty_toml, out, sqlite_ledger, datapump, filed)
    assert RECOVERY[point] in stderr and f"{RECOVERY[point]}0," not in stderr, stderr


def test_a_rerun_right_after_a_crash_waits_out_the_grace_period(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, sqlite_ledger: str
):
    """A run killed while sending: Caselle may still commit what was on its way, so the
    rerun started at once trusts "no receipt" only after the grace period, then resends."""
    export = write_export(tmp_path / "pay.csv", [dp(i) for i in range(10)])
    out = tmp_path / "out"
    # the rerun must start inside the window: 8 s leaves room for a start-up on a loaded
    # machine (4 s did not, at load 10)
    grace = {"CASELLE_IC_SETTLE_GRACE": "8", "CASELLE_IC_POST_BATCH": "10"}
    r = payments_cli(export, fifty_toml, out, sqlite_ledger, **grace, **{FAILPOINT: "post.claimed"})
    assert r.returncode == -signal.SIGKILL
    r = payments_cli(export, fifty_toml, out, sqlite_ledger, **grace)
    assert r.returncode == 0, r.stderr
    assert "10 post(s) or void(s) that may still have been on their way were asked again" in r.stderr
    assert "lost posts not committed (sent again) 10" in r.stderr
    assert_exactly_once(fifty_emu, [dp(i) for i in range(10)], [], out)


@pytest.mark.postgres
@pytest.mark.parametrize("point", ["post.sent:2", "file.written"])
def test_killed_at_a_crash_point_then_rerun_postgresql(
    point: str, fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, pg_url: str
):
    from tests.fixtures.ledgers import drop_schema, pg_schema_url

    schema, url = pg_schema_url(pg_url)
    try:
        export, datapump, filed = _export(tmp_path)
        out = tmp_path / "out"
        r = payments_cli(export, fifty_toml, out, url, **SLOW, **{FAILPOINT: point})
        assert r.returncode == -signal.SIGKILL, r.stderr
        stderr = _check_rerun(fifty_emu, export, fifty_toml, out, url, datapump, filed)
        assert RECOVERY[point] in stderr and f"{RECOVERY[point]}0," not in stderr, stderr
    finally:
        drop_schema(pg_url, schema)


@pytest.mark.parametrize(
    ("db", "after_receipts"),
    [
        ("sqlite", 1),
        ("sqlite", 25),
        ("sqlite", 55),
        pytest.param("postgresql", 25, marks=pytest.mark.postgres),
    ],
)
def test_sigkill_at_random_moments_then_rerun(
    db: str, after_receipts: int, fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, request
):
    """SIGKILL from outside once Caselle holds ``after_receipts`` receipts, plus a random
    few milliseconds: with 80 ms of latency per request the kill lands anywhere between
    claims, sends and ledger updates."""
    if db == "sqlite":
        ledger_url = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    else:
        from tests.fixtures.ledgers import drop_schema, pg_schema_url

        pg_url = request.getfixturevalue("pg_url")
        schema, ledger_url = pg_schema_url(pg_url)
        request.addfinalizer(lambda: drop_schema(pg_url, schema))
    export, datapump, filed = _export(tmp_path)
    out = tmp_path / "out"
    fifty_emu.faults(latency_ms=80)
    proc = start_cli(
        "payments",
        str(export),
        "--config",
        str(fifty_toml),
        "--out",
        str(out),
        "--now",
        NOW,
        "--ledger",
        ledger_url,
        **SLOW,
    )
    deadline = time.monotonic() + 60
    while fifty_emu.state()["counters"].get("receipts_created", 0) < after_receipts and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never posted"
        time.sleep(0.005)
    time.sleep(random.uniform(0, 0.06))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err}"
    fifty_emu.reset_faults()
    _check_rerun(fifty_emu, export, fifty_toml, out, ledger_url, datapump, filed)


def test_two_runs_at_once(fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, ledger_url: str):
    """Two processes on the same export and ledger: they share the work, never a payment."""
    export, datapump, filed = _export(tmp_path)
    out = tmp_path / "out"
    fifty_emu.faults(latency_ms=100)
    args = (
        "payments",
        str(export),
        "--config",
        str(fifty_toml),
        "--out",
        str(out),
        "--now",
        NOW,
        "--ledger",
        ledger_url,
    )
    env = {"CASELLE_IC_POST_BATCH": "5", "CASELLE_IC_POST_WORKERS": "2", "CASELLE_IC_SETTLE_GRACE": "1"}
    procs = [start_cli(*args, **env) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in results]
    assert_exactly_once(fifty_emu, datapump, filed, out)
    assert fifty_emu.state()["counters"]["receipts_voided"] == 2
    with open_ledger(ledger_url) as led, led.begin() as conn:
        runs = set(
            conn.execute(sa.select(payments.c.last_run_id).where(payments.c.state == "posted")).scalars()
        )
    assert len(runs) == 2, "one run did all the work: the test did not overlap them"


def test_caselle_unreachable_exits_2_and_the_rerun_posts(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path
):
    export = write_export(tmp_path / "pay.csv", [dp(0), dp(1)])
    fifty_emu.stop()
    r = run_cli(
        "payments", str(export), "--config", str(fifty_toml), "--out", str(tmp_path / "out"), "--now", NOW
    )
    assert r.returncode == 2, r.stderr
    assert "Caselle Connect could not be reached" in r.stderr and "pending 2" in r.stderr
    fifty_emu.start()
    r = run_cli(
        "payments", str(export), "--config", str(fifty_toml), "--out", str(tmp_path / "out"), "--now", NOW
    )
    assert r.returncode == 0 and "posted 2" in r.stderr
    assert_exactly_once(fifty_emu, [dp(0), dp(1)], [], tmp_path / "out")


def test_bad_ledger_url_is_exit_2(fifty_toml: Path, tmp_path: Path):
    export = write_export(tmp_path / "pay.csv", [dp(0)])
    r = payments_cli(export, fifty_toml, tmp_path / "out", "not a url")
    assert r.returncode == 2 and "--ledger is not a database URL" in r.stderr
    assert not subprocess.run(["ls", str(tmp_path / "out")], capture_output=True).stdout


@pytest.mark.parametrize("kind", ["dangling symlink", "regular file", "rejects is a file", "read-only"])
def test_unwritable_output_exits_2_before_anything_is_posted(
    fifty_emu: EmulatorProcess, fifty_toml: Path, tmp_path: Path, kind: str
):
    """Issue 13.6: every output location is checked before the first request to Caselle."""
    import os

    export = write_export(tmp_path / "d.csv", [dp(0), dp(1), lb(0)])
    out = tmp_path / "out"
    if kind == "dangling symlink":
        out.symlink_to(tmp_path / "nowhere")
        expect = f"{out} is a symbolic link to {tmp_path / 'nowhere'}, which does not exist"
    elif kind == "regular file":
        out.write_text("x")
        expect = f"{out} is not a directory"
    elif kind == "rejects is a file":
        (out).mkdir()
        (out / "rejects").write_text("x")
        expect = f"{out / 'rejects'} is not a directory"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        out.mkdir(mode=0o500)
        expect = f"{out} is not writable"
    r = payments_cli(export, fifty_toml, out, f"sqlite:///{tmp_path / 'ledger.db'}")
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr
    assert fifty_emu.receipts() == [] and fifty_emu.state()["counters"]["mutation_requests"] == 0
    assert not (tmp_path / "nowhere").exists()
