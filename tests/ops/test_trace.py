"""``caselle-ic trace``: the sample payments posted through the real CLI against a real
emulator process, then traced: a posted payment, a voided one, an ACH reject, a lockbox
one, a payment seen in two exports whose post answer was lost, the JSON shape, bad input."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from caselle_ic import cli
from caselle_ic.emulator.process import EmulatorProcess
from tests.conftest import SAMPLES, run_cli
from tests.posting.postkit import dp, write_export

POSTED = "88111342-bde8-571c-a4a8-4be52c92741f"  # CC VISA 42, account 001001, 84.17
REFUND = "8c413efd-5128-5c1c-a55b-bdfd3f73ee4d"  # refunds POSTED
ACH = "6409c595-6728-5852-bcc0-a91ce98cab1a"  # ACH 42, account 001007, 98.76
ACH_REJECT = "25900891-1969-5eaf-aa52-2ee46fa73828"  # rejects ACH
FILED = "44359f29-98af-526f-9ba5-dd61c4e7d96b"  # invoice type 300: lockbox, account 001016


@dataclass
class Run:
    emu: EmulatorProcess
    cfg: Path
    out: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("trace")
    with EmulatorProcess(seed=SAMPLES / "statements.csv") as emu:
        env = {**os.environ, **emu.env()}
        cfg = emu.write_config(tmp / "biller" / "biller.toml")
        out = tmp / "out"
        done = run_cli(
            "payments", str(SAMPLES / "payments.csv"), "--config", str(cfg), "--out", str(out),
            "--now", "2026-11-02T07:00:00", env=env,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr  # the sample has quarantined lines
        yield Run(emu, cfg, out, env)


def trace(capsys: pytest.CaptureFixture[str], run: Run, guid: str, *extra: str) -> tuple[int, str, str]:
    status = cli.main(["trace", guid, "--config", str(run.cfg), *extra])
    out, err = capsys.readouterr()
    return status, out, err


def receipt_of(run: Run, guid: str) -> dict[str, Any]:
    (receipt,) = [r for r in run.emu.receipts() if r["confirmation_number"] == guid]
    return receipt


def history(out: str) -> list[str]:
    """The History lines without their time and run (which vary)."""
    lines = out.split("History:\n", 1)[1].splitlines()
    return [" ".join(line.split("  ", 3)[-1].split()) for line in lines if line.startswith("  20")]


def test_posted_payment(sample_run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = trace(capsys, sample_run, POSTED)
    assert status == 0, err
    number = receipt_of(sample_run, POSTED)["receipt_number"]
    lines = out.splitlines()
    assert lines[1] == "  PAYMENT 84.17 on 2026-10-30T08:12:44, account ****1001, invoice 261001"
    assert lines[2] == "  payment type 1 (CC), VISA, invoice type 42"
    assert lines[4].startswith("  payments.csv line 2  (run ")
    assert "Codes: entry 1 -> distribution 111, payment 4, GL activity 0, DataPump" in lines
    assert '    Winner: entry 1 {"PaymentTypeID": 1, "PaymentCode": 4, "InvoiceTypeID": 42, ' in out
    outcome = next(line for line in lines if line.startswith("Outcome: "))
    assert outcome.startswith(
        f"Outcome: posted, receipt {number} (Caselle: amount 84.17, distribution 111, payment 4), done 20"
    )
    assert f"Reversed by: REFUND {REFUND}: voided (receipt {number}, done 20" in out
    assert history(out) == [
        "exported payments.csv line 2",
        "state sending (attempt 1)",
        f"state posted receipt {number}",
    ]
    assert "(daily-payments)" in out
    assert "001001" not in out and "ALVAREZ" not in out  # masked account, no name


def test_voided_refund_and_ach_reject(sample_run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    number = receipt_of(sample_run, POSTED)["receipt_number"]
    status, out, _ = trace(capsys, sample_run, REFUND)
    assert status == 0
    assert f"  reverses {POSTED}" in out
    assert "Codes: none (a reversal voids the receipt of its original)" in out
    assert f"Outcome: voided, voided receipt {number}, done 20" in out
    assert f"Original: PAYMENT {POSTED}: posted, receipt {number}" in out
    assert history(out) == [
        "exported payments.csv line 32",
        f"state void_sending receipt {number}",
        f"state voided receipt {number}",
    ]
    ach_number = receipt_of(sample_run, ACH)["receipt_number"]
    assert receipt_of(sample_run, ACH)["voided"]
    status, out, _ = trace(capsys, sample_run, ACH)
    assert f"Reversed by: ACH_REJECT {ACH_REJECT}: voided (receipt {ach_number}, done 20" in out
    assert "Codes: entry 5 -> distribution 555, payment 777, GL activity 0, DataPump" in out


def test_lockbox_payment_names_its_file_and_line(sample_run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = trace(capsys, sample_run, FILED)
    assert status == 0
    outcome = next(line for line in out.splitlines() if line.startswith("Outcome: "))
    prefix = "Outcome: filed, lockbox file 300_PYMT_20261102.TXT line "
    assert outcome.startswith(prefix)
    line_no = int(outcome[len(prefix) :].split()[0])
    assert f" in {sample_run.out} (written, written 20" in outcome
    written = (sample_run.out / "300_PYMT_20261102.TXT").read_text().splitlines()
    assert written[line_no - 1] == "10/31/2026,300,97,250.00,001016,PATEL ANJALI"
    assert history(out) == [
        "exported payments.csv line 17",
        "state filing (attempt 1)",
        f"lockbox 300_PYMT_20261102.TXT line {line_no}",
        "state filed",
    ]
    # its refund cannot be voided through the Data Pump: handled by hand
    assert "Reversed by: REFUND 92c18d0d-f217-5c18-bf78-c6537c6df8e3: manual (no receipt" in out


def test_two_exports_and_a_lost_answer(
    sample_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same payment in two exports, its first post answered by a dropped connection:
    trace lists both lines and the settle that found the receipt."""
    row = dp(7, day="2026-11-03", tag="trace")
    first = write_export(tmp_path / "payments-a.csv", [row])
    second = write_export(tmp_path / "payments-b.csv", [dp(8, day="2026-11-03", tag="trace"), row])
    sample_run.emu.faults(drop_after_commit=1)
    try:
        done = run_cli(
            "payments", str(first), "--config", str(sample_run.cfg), "--out", str(tmp_path / "o1"),
            env=sample_run.env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        sample_run.emu.reset_faults()
    done = run_cli(
        "payments",
        str(second),
        "--config",
        str(sample_run.cfg),
        "--out",
        str(tmp_path / "o2"),
        env=sample_run.env,
    )
    assert done.returncode == 0, done.stderr
    number = receipt_of(sample_run, row["payment_guid"])["receipt_number"]
    status, out, _ = trace(capsys, sample_run, row["payment_guid"].upper())  # IC may send upper case
    assert status == 0
    came_in = out.split("Came in:\n")[1].split("Codes:")[0].splitlines()
    assert [c.split("  (")[0].strip() for c in came_in] == ["payments-a.csv line 2", "payments-b.csv line 3"]
    assert history(out) == [
        "exported payments-a.csv line 2",
        "state sending (attempt 1)",
        f"state posted receipt {number} - settled: the receipt was found after the answer was lost",
        "exported payments-b.csv line 3",
    ]


def test_json_shape(sample_run: Run) -> None:
    done = run_cli("trace", POSTED, "--config", str(sample_run.cfg), "--json", env=sample_run.env)
    assert done.returncode == 0, done.stderr
    t = json.loads(done.stdout)
    assert set(t) == {
        "command", "payment_guid", "biller", "ledger", "payment", "came_in", "codes", "outcome",
        "reversals", "original", "events", "runs", "notes", "exit_status",
    }  # fmt: skip
    assert t["payment"]["amount"] == "84.17" and t["payment"]["account"] == "****1001"
    assert t["came_in"][0]["export"] == "payments.csv" and t["came_in"][0]["line"] == 2
    assert t["codes"]["code_rule"] == "entry 1" and t["codes"]["posting_method"] == "DataPump"
    assert t["outcome"]["state"] == "posted"
    assert t["outcome"]["receipt"]["amount"] == "84.17"
    assert [e["state"] for e in t["events"]] == [None, "sending", "posted"]
    assert set(t["events"][0]) == {"at", "run_id", "run_kind", "event", "state", "detail"}
    assert t["events"][0]["detail"] == {"export": "payments.csv", "line": 2}
    run = t["runs"][t["events"][0]["run_id"]]
    assert run["kind"] == "daily-payments" and run["input_name"] == "payments.csv"
    assert t["reversals"][0]["payment_guid"] == REFUND and t["reversals"][0]["state"] == "voided"
    assert "001001" not in done.stdout


def test_unknown_guid_and_missing_ledger(
    sample_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = trace(capsys, sample_run, "00000000-0000-0000-0000-000000000000")
    assert status == 2 and out == ""
    assert err.startswith(
        "caselle-ic trace: error: payment 00000000-0000-0000-0000-000000000000 is not in the ledger "
    )
    status, out, err = trace(capsys, sample_run, POSTED, "--ledger", f"sqlite:///{tmp_path / 'none.db'}")
    assert status == 2
    assert f"no ledger at {tmp_path / 'none.db'}: check --ledger" in err
    assert not (tmp_path / "none.db").exists()


@pytest.mark.postgres
def test_trace_on_postgresql(
    pg_url: str, biller_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same history on a PostgreSQL ledger: recorded by the payment book, read by trace."""
    from caselle_ic.config.model import load_config
    from caselle_ic.store.ledger import biller_key, open_ledger
    from caselle_ic.store.payment_rows import PaymentState, RowUpdate
    from caselle_ic.store.payments import PaymentBook
    from tests.fixtures.ledgers import drop_schema, pg_schema_url
    from tests.posting.test_payment_ledger import frame

    schema, url = pg_schema_url(pg_url)
    try:
        export = tmp_path / "pay.csv"
        export.write_text("x\n")
        with open_ledger(url) as led:
            run_id = led.start_run(biller_key(load_config(biller_toml)), "daily-payments", export)
            book = PaymentBook(led, biller_key(load_config(biller_toml)), run_id)
            book.intake(frame(2), "pay.csv")
            (row, _) = book.claim_posts(5)
            refused = "Caselle refused: no customer 001001 (code=NOT_FOUND)"
            book.apply(
                [RowUpdate(row["payment_guid"], PaymentState.REJECTED, reason=refused, claim_owner=None)]
            )
            led.finish_run(run_id, "quarantined")
        status = cli.main(["trace", row["payment_guid"], "--config", str(biller_toml), "--ledger", url])
        out, err = capsys.readouterr()
        assert status == 0, err
        assert "Outcome: rejected" in out
        assert "  reason: Caselle refused: no customer ****1001 (code=NOT_FOUND)" in out
        assert history(out) == [
            "exported pay.csv line 2",
            "state sending (attempt 1)",
            "state rejected - Caselle refused: no customer ****1001 (code=NOT_FOUND)",
        ]
    finally:
        drop_schema(pg_url, schema)


def test_payment_picked_up_from_the_inbox_names_the_archived_export(
    sample_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = sample_run.emu.write_config(tmp_path / "inboxed" / "biller.toml")
    row = dp(9, day="2026-11-04", tag="trace-inbox")
    bad = {**dp(10, day="2026-11-04", tag="trace-inbox"), "amount": "12.3x"}
    write_export(tmp_path / "inboxed" / "inbox" / "payments-c.csv", [row, bad])
    done = run_cli("inbox", "--config", str(cfg), "--kind", "payments", "--settle", "0", env=sample_run.env)
    assert done.returncode == 1, done.stderr  # written, one line quarantined
    status = cli.main(["trace", row["payment_guid"], "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert status == 0, err
    came_in = out.split("Came in:\n")[1].splitlines()[0]
    assert came_in.startswith("  payments-c.csv line 2  (run ")
    assert came_in.endswith(f"; archived as {tmp_path / 'inboxed' / 'archive' / 'payments-c.csv'})")
    # the quarantined line never reached the ledger: exit 2, naming where it was set aside
    status = cli.main(["trace", bad["payment_guid"], "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    rejects = tmp_path / "inboxed" / "outbox" / "rejects"
    assert "is not in the ledger " in err and f"; its export line 3 was quarantined ({rejects}/" in err
    assert "amount" in err.split("was quarantined")[1]
