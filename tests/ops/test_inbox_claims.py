"""``caselle-ic inbox-claims``: list the claims of the inbox table, release one.

End to end with the real ``caselle-ic inbox`` command (invoices: no Caselle needed): a
processed extract dropped again is a duplicate; once its claim is released it is processed
again. Claims of a live and of a dead run are made with InboxStore's own methods."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from caselle_ic import cli
from caselle_ic.config.model import load_config
from caselle_ic.ops.inbox_scan import sha256_file
from caselle_ic.store.inbox_claims import InboxStore, default_ledger_url
from caselle_ic.store.ledger import biller_key
from tests.conftest import SAMPLES, run_cli


def claims(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str, str]:
    status = cli.main(["inbox-claims", "--config", str(cfg), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_release_lets_a_processed_file_be_processed_again(
    biller_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(biller_toml)
    cfg.paths.inbox.mkdir(parents=True)
    extract = SAMPLES / "statements.csv"
    sha = sha256_file(extract)
    shutil.copy(extract, cfg.paths.inbox / "statements.csv")
    done = run_cli("inbox", "--config", str(biller_toml), "--kind", "invoices", "--settle", "0")
    assert done.returncode == 1, done.stderr  # written; the sample has quarantined statements

    status, out, _ = claims(capsys, biller_toml)
    assert status == 0
    assert out.splitlines()[1:] == ["  none", "  (1 done claim(s) not shown: --all)"]
    status, out, _ = claims(capsys, biller_toml, "--all")
    row = out.splitlines()[2]
    assert row.startswith("  done       invoices    20")
    assert f"{sha[:12]}  statements.csv -> {cfg.paths.archive}" in row

    # dropped again: a duplicate, not processed
    shutil.copy(extract, cfg.paths.inbox / "statements-again.csv")
    done = run_cli("inbox", "--config", str(biller_toml), "--kind", "invoices", "--settle", "0")
    assert "duplicate" in done.stderr and "processed 0" in done.stderr, done.stderr

    # released by FILE (its content), dropped again: processed
    status, out, _ = claims(capsys, biller_toml, "--release", str(extract))
    assert status == 0
    assert out.splitlines()[0] == (
        f"released the done claim of statements.csv (sha256 {sha[:12]}…, invoices): the same content is "
        "processed again when it is next in the inbox"
    )
    shutil.copy(extract, cfg.paths.inbox / "statements-third.csv")
    done = run_cli("inbox", "--config", str(biller_toml), "--kind", "invoices", "--settle", "0")
    assert done.returncode == 1 and "processed 1" in done.stderr, done.stderr


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_processing_claims_live_and_dead(biller_toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(biller_toml)
    store = InboxStore(default_ledger_url(cfg))
    key = biller_key(cfg)
    live_sha, dead_sha = "a" * 64, "b" * 64
    try:
        assert store.claim(
            biller=key, biller_name=cfg.name, sha256=live_sha, kind="payments", name="live.csv", size=1
        )
        store.worker = f"{socket.gethostname()}:{_dead_pid()}"
        store.claim(
            biller=key, biller_name=cfg.name, sha256=dead_sha, kind="payments", name="dead.csv", size=1
        )
    finally:
        store.close()

    status, out, _ = claims(capsys, biller_toml, "--json")
    listed = {c["name"]: c for c in json.loads(out)["claims"]}
    assert listed["live.csv"]["holder_alive"] is True and listed["live.csv"]["stale"] is False
    assert listed["dead.csv"]["holder_alive"] is False and listed["dead.csv"]["stale"] is True

    # a live run's claim is refused without --force, naming the argument
    status, out, err = claims(capsys, biller_toml, "--release", live_sha)
    assert status == 2 and out == ""
    assert f"error: --release {live_sha}: live.csv is being processed by " in err
    assert "which is running" in err and "add --force if that run is hung" in err
    # a dead run's claim by file name; the live one with --force
    status, out, _ = claims(capsys, biller_toml, "--release", "dead.csv")
    assert status == 0 and out.startswith("released the processing claim of dead.csv")
    status, out, _ = claims(capsys, biller_toml, "--release", live_sha.upper(), "--force", "--json")
    result = json.loads(out)
    assert result["released"]["name"] == "live.csv" and result["claims"] == []

    status, _, err = claims(capsys, biller_toml, "--release", "nothing-like-this.csv")
    assert status == 2
    assert (
        "--release nothing-like-this.csv: no inbox claim of this biller has that SHA-256 or file name" in err
    )
