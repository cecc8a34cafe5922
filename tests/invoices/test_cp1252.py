"""A Windows (cp1252) extract: accented names read right when the biller says so."""

from __future__ import annotations

from caselle_ic.invoices.pipeline import run_invoice_file
from tests.conftest import SAMPLES, run_cli
from tests.invoices.conftest import NOW, by_type, read_records, write_config

CP1252_EXTRACT = SAMPLES / "statements_cp1252.csv"
CP1252 = {'encoding = "utf-8"\ncolumns': 'encoding = "cp1252"\ncolumns'}


def test_cp1252_extract_is_read_with_the_configured_encoding(tmp_path):
    assert "José Peña".encode("cp1252") in CP1252_EXTRACT.read_bytes()
    config = write_config(tmp_path / "b.toml", CP1252)
    result = run_invoice_file(CP1252_EXTRACT, config, tmp_path / "out", now=NOW)
    assert result.exit_status == 0 and result.counts["statements_written"] == 4
    records = read_records(result.outputs[0])  # written as UTF-8 (the [invoice_file] default)
    assert [r[2] for r in by_type(records, "CR")] == [
        "José Peña",
        "Zoë Müller",
        "François Lefèvre",
        "Ångström Åsa",
    ]
    assert {r[3] for r in by_type(records, "CR")} == {f"{100 + i} Calle Año Nuevo" for i in range(21, 25)}
    assert {r[14] for r in by_type(records, "IH")} == {"Café hours: 8–5 (closed Nov 26)."}


def test_cp1252_extract_through_the_command(tmp_path):
    config = write_config(tmp_path / "b.toml", CP1252)
    proc = run_cli(
        "invoices", str(CP1252_EXTRACT), "--config", str(config), "--out", str(tmp_path), "--now", NOW
    )
    assert proc.returncode == 0, proc.stderr
    data = (tmp_path / "INVCLD_CSLSTMT101_20261101060000.txt").read_bytes()
    assert "Zoë Müller".encode() in data
