"""No secret or token in logs, stderr, exceptions or files (SPEC §9)."""

from __future__ import annotations

import base64
import csv
import logging
import traceback
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from caselle_ic.config.model import load_config
from caselle_ic.connect.client import CaselleClient, ReceiptInput
from caselle_ic.emulator.process import EmulatorProcess, free_port
from caselle_ic.errors import CaselleAPIError
from caselle_ic.sync.paperless import run_paperless_sync
from tests.conftest import run_cli


def test_no_secret_or_token_anywhere(
    awkward_emu: EmulatorProcess, awkward_env, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch
):
    caplog.set_level(logging.DEBUG)  # gql, urllib3 and our own debug logs included
    for name in ("urllib3", "gql", "caselle_ic"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    texts: list[str] = []  # everything a person or a log collector could see
    tokens: set[str] = set()
    wrong_secret = "wrong-" + awkward_emu.secret[::-1]

    def seen(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    dead = f"http://127.0.0.1:{free_port()}/tp/api/cr0/graphql"
    cfg_path = awkward_emu.write_config(
        tmp_path / "biller" / "biller.toml", settings={"8": dead, "88": awkward_emu.graphql_url}
    )
    cfg = load_config(cfg_path)
    texts += [repr(cfg), repr(cfg.endpoint("rtdr")), repr(awkward_emu)]
    with CaselleClient.for_purpose(cfg, "rtdr", backoff=0.01) as rtdr:
        rtdr.customer(1001)  # failover + token
        tokens.add(rtdr.oauth[-1].token())
        awkward_emu.expire_tokens()
        rtdr.customer(1002)  # refresh on 401
        tokens.add(rtdr.oauth[-1].token())
        texts += [repr(rtdr), repr(rtdr.oauth[0])]
        with pytest.raises(CaselleAPIError) as nf:
            rtdr.customer(9999)
        seen(nf.value)
    with CaselleClient.for_purpose(cfg, "payments", backoff=0.01) as pay:
        awkward_emu.faults(drop_after_commit=1)
        outcome = pay.create_receipts(
            [ReceiptInput(date(2025, 6, 1), 101, 99, Decimal("1.00"), "001001", "leak-1")]
        )[0]
        assert outcome.error is not None
        seen(outcome.error)
        tokens.add(pay.oauth[0].token())
        awkward_emu.faults(fail_next=1)
        with pytest.raises(CaselleAPIError) as lost:
            pay.void_receipt(100001, date(2025, 6, 2))
        seen(lost.value)

    monkeypatch.setenv("CASELLE_CLIENT_SECRET", wrong_secret)
    monkeypatch.setenv("CASELLE_RTDR_KEY", wrong_secret)
    bad_cfg = load_config(cfg_path)
    with (
        CaselleClient.for_purpose(bad_cfg, "rtdr", backoff=0.01) as bad,
        pytest.raises(CaselleAPIError) as refused,
    ):
        bad.customer(1001)
    seen(refused.value)
    basic_path = awkward_emu.write_config(tmp_path / "basic" / "biller.toml", oauth=False)
    r = run_cli("balance", "001001", "--config", str(basic_path), env={"CASELLE_RTDR_KEY": wrong_secret})
    assert r.returncode == 2
    texts += [r.stdout, r.stderr]
    monkeypatch.setenv("CASELLE_CLIENT_SECRET", awkward_emu.secret)
    monkeypatch.setenv("CASELLE_RTDR_KEY", awkward_emu.secret)

    log = tmp_path / "log.csv"
    with log.open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [
                ["account_number", "paperless", "changed_at"],
                ["001001", "true", "2025-06-01"],
                ["X1", "true", "2025-06-01"],
            ]
        )
    result = run_paperless_sync(log, cfg_path, out_dir=tmp_path / "out")
    texts += result.summary_lines()
    for args in (
        ("paperless", str(log), "--config", str(cfg_path), "--out", str(tmp_path / "out")),
        ("balance", "001002", "--config", str(cfg_path)),
        ("balance", "009999", "--config", str(cfg_path)),
    ):
        r = run_cli(*args, env=awkward_emu.env())
        texts += [r.stdout, r.stderr]

    texts += [rec.getMessage() for rec in caplog.records]
    files = [p for p in tmp_path.rglob("*") if p.is_file()] + [awkward_emu.log_path]
    assert any(p.name == "ledger.db" for p in files) and any(p.suffix == ".csv" for p in files)
    blobs = [p.read_bytes() for p in files]

    assert len(tokens) >= 2 and all(len(t) > 20 for t in tokens)
    needles = {awkward_emu.secret, wrong_secret, *tokens}
    needles |= {
        base64.b64encode(f"sample-city:{s}".encode()).decode() for s in (awkward_emu.secret, wrong_secret)
    }
    assert len(caplog.records) > 20  # the debug logs really were captured
    for needle in needles:
        for text in texts:
            assert needle not in text
        for blob in blobs:
            assert needle.encode() not in blob
