"""Every output file of the samples read by a second, independent CSV parser (DuckDB's
``read_csv``) and compared cell by cell with Python's ``csv.reader`` (issue 12, item 6):
the invoice file and the adjustments file (pipe-delimited, all quoted), the lockbox file,
the reconciliation report and the rejects files."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from caselle_ic.invoices.pipeline import run_invoice_file
from tests.conftest import SAMPLES, run_cli

NOW = "2026-11-01T06:00:00"


def _python(path: Path, delimiter: str) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def _duckdb(path: Path, delimiter: str, width: int) -> list[list[str]]:
    """DuckDB reads with its own parser: every column as text, nothing inferred, no
    header, empty stays empty (not NULL). Record types differ in width, so rows are
    padded (``null_padding``; DuckDB's strict mode refuses ragged rows) and one column
    more than the widest row is asked for: it must stay empty in every row."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select * from read_csv(?, delim=?, quote='\"', escape='\"', header=false, "
            "auto_detect=false, null_padding=true, columns=?, nullstr='\\N', "
            "strict_mode=false, new_line=?)",
            [str(path), delimiter, {f"c{i}": "VARCHAR" for i in range(width)}, _newline(path)],
        ).fetchall()
    finally:
        con.close()
    return [[v if v is not None else "" for v in row] for row in rows]


def _newline(path: Path) -> str:
    return "\\r\\n" if b"\r\n" in path.read_bytes()[:65536] else "\\n"


def _compare(path: Path, delimiter: str) -> int:
    expected = _python(path, delimiter)
    width = max(len(r) for r in expected)
    padded = [r + [""] * (width - len(r)) for r in expected]  # record types differ in width
    got = _duckdb(path, delimiter, width + 1)
    assert len(got) == len(padded), path.name
    assert all(row[-1] == "" for row in got), path.name
    got = [row[:-1] for row in got]
    for i, (a, b) in enumerate(zip(got, padded, strict=True)):
        assert a == b, (path.name, i + 1, a, b)
    return len(got) * width


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> list[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("out")
    files: list[tuple[Path, str]] = []
    inv = run_invoice_file(SAMPLES / "statements.csv", SAMPLES / "biller.toml", out / "inv", now=NOW)
    adj = run_invoice_file(
        SAMPLES / "statements.csv", SAMPLES / "biller.toml", out / "adj", now=NOW, adjustments=True
    )
    for result in (inv, adj):
        files += [(p, "|") for p in result.outputs]
        if result.rejects_path:
            files.append((result.rejects_path, ","))
    return files


def test_invoice_and_adjustment_files_and_rejects(outputs):
    assert {p.suffix for p, _ in outputs} == {".txt", ".csv"}
    assert sum(_compare(p, d) for p, d in outputs) > 1000


def test_payment_run_outputs(sample_toml, tmp_path):
    out = tmp_path / "out"
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    proc = run_cli(
        "payments",
        str(SAMPLES / "payments.csv"),
        "--config",
        str(sample_toml),
        "--out",
        str(out),
        "--now",
        "2026-11-02T07:00:00",
        "--ledger",
        ledger,
    )
    assert proc.returncode in (0, 1), proc.stderr
    lockbox = sorted(out.glob("*_PYMT_*.TXT"))
    reconciliation = sorted(out.glob("*.reconciliation.csv"))
    rejects = sorted((out / "rejects").glob("*.csv")) if (out / "rejects").exists() else []
    assert lockbox and reconciliation
    for path in lockbox + reconciliation + rejects:
        assert _compare(path, ",") > 0
    # the samples' expected files too (the golden bytes)
    for path in [*SAMPLES.glob("expected/*.TXT"), *SAMPLES.glob("expected/rejects/*.csv")]:
        assert _compare(path, ",") > 0
    assert _compare(next(SAMPLES.glob("expected/INVCLD_*.txt")), "|") > 0
