"""SPEC §11 "Every command": --version, --json, --log-level/--log-format, help on every
argument with the exit statuses, a progress display only on a terminal, and bad flags
-> exit 2 naming the argument. The installed console script runs as a user runs it."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from caselle_ic.cli import COMMANDS, build_parser
from tests.conftest import SAMPLES, VENV_BIN, run_cli
from tests.invoices.conftest import line, statement, write_extract

NOW = "2026-11-01T06:00:00"
VERSION = "caselle-ic 0.1.0"


@pytest.fixture
def biller(tmp_path: Path) -> Path:
    """The sample biller; its [paths] (``../../data/...``) land in ``tmp_path/data``."""
    path = tmp_path / "etc" / "biller" / "biller.toml"
    path.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / "biller.toml", path)
    return path


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                found[name] = sp
                found.update({f"{name} {k}": v for k, v in _subparsers(sp).items()})
    return found


def test_every_argument_has_help_and_every_help_lists_the_exit_statuses() -> None:
    subs = _subparsers(build_parser())
    assert set(COMMANDS) <= set(subs)
    for name, sp in subs.items():
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
    for name in COMMANDS:
        text = subs[name].format_help()
        assert "exit status:" in text and "  3    internal error" in text, name
    assert "  130  interrupted" in build_parser().format_help()


@pytest.mark.parametrize(
    "args", [["--version"], ["payments", "--version"], ["codes", "template", "--version"]]
)
def test_version(args: list[str]) -> None:
    r = run_cli(*args)
    assert (r.returncode, r.stdout, r.stderr) == (0, VERSION + "\n", "")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["invoices", "x.csv", "--config", "b.toml", "--out", "o", "--log-format", "xml"], "--log-format"),
        (["invoices", "x.csv", "--config", "b.toml", "--out", "o", "--log-level", "loud"], "--log-level"),
        (["payments", "x.csv", "--out", "o"], "--config"),
        (["inbox", "--config", "b.toml", "--kind", "receipts"], "--kind"),
        (["inbox", "--config", "b.toml", "--settle", "soon"], "--settle"),
        (["emulator", "--port", "eighty"], "--port"),
        (["balance", "--config", "b.toml"], "ACCOUNT"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(args: list[str], named: str) -> None:
    r = run_cli(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert f"argument {named}" in r.stderr or f"arguments are required: {named}" in r.stderr, r.stderr


def test_bad_now_exits_2_naming_it(biller: Path, tmp_path: Path) -> None:
    r = run_cli(
        "invoices",
        str(SAMPLES / "statements.csv"),
        "--config",
        str(biller),
        "--out",
        str(tmp_path),
        "--now",
        "soon",
    )
    assert r.returncode == 2
    why = "--now 'soon' is not YYYY-MM-DDTHH:MM:SS (optionally with +HH:MM or Z)"
    assert r.stderr == f"caselle-ic invoices: error: {why}\n"


def _invoices(biller: Path, out: Path, *extra: str, extract: Path = SAMPLES / "statements.csv", **env: str):
    return run_cli(
        "invoices", str(extract), "--config", str(biller), "--out", str(out), "--now", NOW, *extra, env=env
    )


def test_json_is_one_object_with_exact_totals_and_the_same_exit_status(biller: Path, tmp_path: Path) -> None:
    plain = _invoices(biller, tmp_path / "plain")
    r = _invoices(biller, tmp_path / "json", "--json")
    assert r.returncode == plain.returncode == 1
    assert r.stderr == ""  # the summary is the JSON object, not also the text
    doc = json.loads(r.stdout)  # one object, one line
    assert r.stdout.count("\n") == 1
    assert (
        doc["kind"] == "invoice-file" and doc["exit_status"] == 1 and doc["biller"] == "Sample City Utilities"
    )
    assert doc["outputs"] == [str(tmp_path / "json" / "INVCLD_CSLSTMT101_20261101060000.txt")]
    assert doc["rejects"] == str(
        tmp_path / "json" / "rejects" / "INVCLD_CSLSTMT101_20261101060000.rejects.csv"
    )
    assert isinstance(doc["totals"]["TotalInvoiceAmount"], str)
    assert re.fullmatch(r"-?\d+\.\d\d", doc["totals"]["TotalInvoiceAmount"])
    assert f"total TotalInvoiceAmount: {doc['totals']['TotalInvoiceAmount']}" in plain.stderr
    for key, n in doc["counts"].items():
        assert f"{key} {n}" in plain.stderr
    assert doc["quarantined"] > 0 and doc["retry_later"] is False and doc["error"] is None


def test_json_when_nothing_is_written(biller: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    write_extract(bad, statement("001001", [line("10/05/2026", "INVOICE", "X", "-2.00")]))
    plain = _invoices(biller, tmp_path / "o1", extract=bad)
    r = _invoices(biller, tmp_path / "o2", "--json", extract=bad)
    assert plain.returncode == r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["exit_status"] == 2 and doc["command"] == "invoices"
    assert r.stderr == f"caselle-ic invoices: error: {doc['error']}\n"
    assert plain.stderr == r.stderr.replace(str(tmp_path / "o2"), str(tmp_path / "o1"))
    assert doc["error"].startswith(f"every statement of {bad} was quarantined")
    assert doc["outputs"] == [] and doc["rejects"].endswith(".rejects.csv")


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["codes", "template"], "setting_131"),
        (["deployments"], "prefect_yaml"),
        (["inbox", "--settle", "0"], "pickups"),
    ],
)
def test_json_on_the_other_commands(args: list[str], key: str, biller: Path) -> None:
    plain = run_cli(*args, *([] if args[0] == "codes" else ["--config", str(biller)]))
    r = run_cli(*args, *([] if args[0] == "codes" else ["--config", str(biller)]), "--json")
    assert r.returncode == plain.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["exit_status"] == 0 and key in doc
    if args[0] == "deployments":
        assert doc["prefect_yaml"] == plain.stdout
    if args[0] == "inbox":
        assert [p["kind"] for p in doc["pickups"]] == ["invoices", "adjustments", "payments", "paperless"]
        assert r.stderr == ""


def test_log_level_shows_info_lines_with_time_level_and_logger(biller: Path, tmp_path: Path) -> None:
    quiet = run_cli("inbox", "--config", str(biller), "--kind", "payments")
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr
    r = run_cli("inbox", "--config", str(biller), "--kind", "payments", "--log-level", "info")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "no payments file waiting" in ln)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO caselle_ic\.ops\.inbox: "
        r"inbox .* no payments file waiting",
        line,
    ), line


def test_log_format_json_and_redaction(biller: Path, tmp_path: Path) -> None:
    """JSON log lines; a secret of the biller file that reaches a log line is redacted."""
    secret = "s3cr3t-Value-Never-Shown-42"
    inbox = tmp_path / "data" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / f"notes-{secret}.txt").write_text("not an input")  # logged as not recognised
    env = {
        "CASELLE_DP_PASSWORD": secret,
        "CASELLE_RTDR_KEY": "rtdr-key-1234",
        "CASELLE_CLIENT_SECRET": "client-5678",
    }
    args = ["inbox", "--config", str(biller), "--kind", "payments", "--settle", "0"]
    r = run_cli(*args, "--log-format", "json", "--log-level", "DEBUG", env=env)
    assert r.returncode == 0, r.stderr
    records = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith("{")]
    assert {rec["level"] for rec in records} >= {"INFO", "WARNING"}, r.stderr
    for rec in records:
        assert set(rec) >= {"time", "level", "logger", "message"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", rec["time"])
    warning = next(rec for rec in records if "not recognised" in rec["message"])
    assert warning["logger"] == "caselle_ic.ops.inbox"
    assert warning["message"].endswith(": notes-[REDACTED].txt")
    # (the summary line lists file names as they are: it is not a log line)
    assert not [rec for rec in records if secret in json.dumps(rec)]


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run with stderr on a pseudo-terminal (stdout a pipe); returns status, stdout, stderr."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(VENV_BIN / "caselle-ic"), *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}, **env},
    )
    os.close(follower)
    err = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read() if proc.stdout else b""
    os.close(leader)
    return proc.wait(timeout=60), out, err


def test_progress_only_on_a_terminal(biller: Path, tmp_path: Path) -> None:
    args = ["invoices", str(SAMPLES / "statements.csv"), "--config", str(biller), "--now", NOW]
    env = {"COLUMNS": "100", "TERM": "xterm"}
    status, _, err = _run_on_a_terminal([*args, "--out", str(tmp_path / "tty")], env)
    assert status == 1
    assert b"build-records" in err and b"\x1b[" in err  # the step shown, drawn with escapes
    piped = _invoices(biller, tmp_path / "pipe")
    assert piped.returncode == 1
    assert "\x1b" not in piped.stderr and "build-records" not in piped.stderr
    assert piped.stderr.startswith("invoice-file for Sample City Utilities: ")
