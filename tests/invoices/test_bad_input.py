"""Inputs the run cannot use: exit status 2, nothing written, and a message that names
the file, the line or column, and what to fix (SPEC §10). Through the real command."""

from __future__ import annotations

import pytest

from tests.conftest import SAMPLES, run_cli
from tests.invoices.conftest import (
    BILLER,
    COLUMNS,
    NOW,
    SAMPLE_EXTRACT,
    line,
    statement,
    write_config,
    write_extract,
)


def invoices(extract, config, out, *more: str):
    return run_cli("invoices", str(extract), "--config", str(config), "--out", str(out), "--now", NOW, *more)


def assert_nothing_written(out):
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_missing_required_column(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv",
        statement("001001", [line("10/05/2026", "INVOICE", "X", "1.00")]),
        columns=[c for c in COLUMNS if c != "due_date"],
    )
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 2
    assert f"{extract}, line 1, column 'due_date': required column(s) missing: due_date" in proc.stderr
    assert "[extract].columns" in proc.stderr
    assert_nothing_written(tmp_path / "out")


def test_wrong_encoding_names_the_line_and_the_setting(tmp_path):
    extract = tmp_path / "x.csv"
    extract.write_bytes(SAMPLES.joinpath("statements_cp1252.csv").read_bytes())
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 2
    assert f"{extract}, line 2: byte 0xe9 is not valid utf-8" in proc.stderr
    assert '[extract].encoding = "cp1252"' in proc.stderr
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the statement extract file is empty"),
        (b"%PDF-1.4\x00\x01binary", "binary, not CSV"),
        (b"account_number;customer_name;due_date\n001;x;1/1/2026\n", "not comma-delimited CSV"),
    ],
)
def test_not_csv(tmp_path, content, message):
    extract = tmp_path / "x.csv"
    extract.write_bytes(content)
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 2
    assert str(extract) in proc.stderr and message in proc.stderr
    assert_nothing_written(tmp_path / "out")


def test_a_row_with_too_many_fields_is_named(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv", statement("001001", [line("10/05/2026", "INVOICE", "X", "1.00")])
    )
    extract.write_text(extract.read_text() + "001002,Bob,extra" + "," * len(COLUMNS) + "\r\n")
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 2
    assert (
        f"{extract}, line 3: has {len(COLUMNS) + 3} fields where the header has {len(COLUMNS)}" in proc.stderr
    )


def test_an_unbalanced_quote_is_named(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv", statement("001001", [line("10/05/2026", "INVOICE", "X", "1.00")])
    )
    extract.write_text(extract.read_text() + '001002,"Ada\r\n')
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 2
    assert f"{extract}, line 3:" in proc.stderr and "quote" in proc.stderr
    assert_nothing_written(tmp_path / "out")


def test_missing_extract_file(tmp_path):
    proc = invoices(tmp_path / "nope.csv", BILLER, tmp_path / "out")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_header_without_rows_writes_nothing(tmp_path):
    extract = write_extract(tmp_path / "x.csv")
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 2 and "no rows" in proc.stderr
    assert_nothing_written(tmp_path / "out")


def test_bad_config_toml(tmp_path):
    config = tmp_path / "b.toml"
    config.write_text("[biller\nname = 'x'\n", encoding="utf-8")
    proc = invoices(SAMPLE_EXTRACT, config, tmp_path / "out")
    assert proc.returncode == 2
    assert f"{config}: not valid TOML" in proc.stderr
    assert_nothing_written(tmp_path / "out")


def test_config_with_an_unknown_key(tmp_path):
    config = write_config(tmp_path / "b.toml", {"message_field_length = 255": "message_field_lenght = 255"})
    proc = invoices(SAMPLE_EXTRACT, config, tmp_path / "out")
    assert proc.returncode == 2
    assert "[invoice_file.message_field_lenght] unknown key" in proc.stderr


def test_config_with_a_plaintext_password(tmp_path):
    config = write_config(tmp_path / "b.toml", {'13  = "env:CASELLE_DP_PASSWORD"': '13  = "hunter2-secret"'})
    proc = invoices(SAMPLE_EXTRACT, config, tmp_path / "out")
    assert proc.returncode == 2
    assert "setting 13 (payments_password) holds a plain-text password" in proc.stderr
    assert "hunter2-secret" not in proc.stderr + proc.stdout
    assert_nothing_written(tmp_path / "out")


def test_bad_line_ending_and_bad_biller_guid_are_refused(tmp_path):
    config = write_config(
        tmp_path / "b.toml",
        {'line_ending = "CRLF"': 'line_ending = "CR"', 'biller_guid = "5009a105': 'biller_guid = "x5009a105'},
    )
    proc = invoices(SAMPLE_EXTRACT, config, tmp_path / "out")
    assert proc.returncode == 2
    assert "[invoice_file.line_ending]" in proc.stderr and "[biller.biller_guid]" in proc.stderr


def test_bad_now_argument(tmp_path):
    proc = run_cli(
        "invoices",
        str(SAMPLE_EXTRACT),
        "--config",
        str(BILLER),
        "--out",
        str(tmp_path),
        "--now",
        "1 Nov 2026",
    )
    assert proc.returncode == 2 and "--now '1 Nov 2026' is not YYYY-MM-DDTHH:MM:SS" in proc.stderr
    assert_nothing_written(tmp_path)


def test_all_statements_quarantined_exits_2_with_rejects(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv", statement("001001", [line("10/05/2026", "INVOICE", "X", "-2.00")])
    )
    out = tmp_path / "out"
    proc = invoices(extract, BILLER, out)
    assert proc.returncode == 2
    assert "every statement" in proc.stderr and "no invoice file was written" in proc.stderr
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["INVCLD_CSLSTMT101_20261101060000.rejects.csv"]


def test_some_quarantined_exits_1_and_says_where(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv",
        statement("001001", [line("10/05/2026", "INVOICE", "X", "2.00")]),
        statement("001002", [line("10/05/2026", "INVOICE", "Y", "2.00")], customer_balance="9.99"),
    )
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 1
    assert "1 record(s) quarantined ->" in proc.stderr and "rejects" in proc.stderr
    assert (tmp_path / "out" / "INVCLD_CSLSTMT101_20261101060000.txt").exists()


def test_everything_accepted_exits_0(tmp_path):
    extract = write_extract(
        tmp_path / "x.csv", statement("001001", [line("10/05/2026", "INVOICE", "X", "2.00")])
    )
    proc = invoices(extract, BILLER, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "out" / "rejects").exists()
