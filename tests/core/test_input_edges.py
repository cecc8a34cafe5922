"""Bad input gets exit 2 and a clear message, never a traceback (issue 13 items 7, 9, 10;
issue 12 item 5): not-a-file paths, NUL bytes anywhere, runaway fields, hostile config."""

from __future__ import annotations

import os
import time

import pytest

from caselle_ic.config.model import load_config
from caselle_ic.errors import ConfigError, InputError
from caselle_ic.payments.codes import load_payment_codes
from caselle_ic.payments.export import read_payment_export
from caselle_ic.tabular.csvin import MAX_FIELD_BYTES, read_text_csv
from tests.conftest import SAMPLES, run_cli
from tests.invoices.conftest import BILLER, NOW, SAMPLE_EXTRACT, write_config

PAYMENTS = SAMPLES / "payments.csv"


def invoices(extract, config, out):
    return run_cli("invoices", str(extract), "--config", str(config), "--out", str(out), "--now", NOW)


# -- not a regular file ------------------------------------------------------------------


def test_a_directory_as_the_extract_is_named_a_directory(tmp_path):
    proc = invoices(tmp_path, BILLER, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert f"{tmp_path}: the statement extract file is a directory, not a file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_fifo_extract_and_a_fifo_config_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is not a regular file"):
        read_text_csv(fifo, what="payment export")
    start = time.monotonic()
    proc = run_cli(
        "invoices", str(SAMPLE_EXTRACT), "--config", str(fifo), "--out", str(tmp_path / "o"), timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{fifo}: cannot read the configuration file: it is not a regular file" in proc.stderr
    assert time.monotonic() - start < 60  # (the timeout above is the real guard)


@pytest.mark.parametrize("what", ["a directory", "missing"])
def test_config_that_is_not_a_file(tmp_path, what):
    path = tmp_path if what == "a directory" else tmp_path / "nope.toml"
    expected = "is a directory, not a file" if what == "a directory" else "does not exist"
    with pytest.raises(ConfigError, match=f"the configuration file: it {expected}"):
        load_config(path)


def test_a_directory_as_the_payment_export(tmp_path, monkeypatch):
    cfg = load_config(SAMPLES / "biller.toml", resolve_secrets=False)
    with pytest.raises(InputError, match="is a directory, not a file"):
        read_payment_export(tmp_path, cfg)


# -- NUL bytes anywhere, runaway fields ------------------------------------------------------


def test_a_nul_after_the_first_64_kib_is_refused_naming_line_and_column(tmp_path):
    lines = PAYMENTS.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    filler = rows * (70_000 // len("".join(rows)) + 1)
    bad = rows[1].replace("BAKER HARDWARE", "BAKER\x00HARDWARE")  # in customer_name
    export = tmp_path / "p.csv"
    export.write_text(header + "".join(filler) + bad, encoding="utf-8")
    assert export.stat().st_size > 64 * 1024
    cfg = load_config(SAMPLES / "biller.toml", resolve_secrets=False)
    with pytest.raises(InputError, match="holds a NUL byte") as err:
        read_payment_export(export, cfg)
    assert (err.value.line, err.value.column) == (len(filler) + 2, "customer_name")


def test_a_50_mb_field_is_named_too_long_not_invalid_csv(tmp_path):
    extract = tmp_path / "x.csv"
    with extract.open("w", encoding="utf-8") as fh:
        fh.write("a,b\n1,2\n3,")
        fh.write("x" * (50 << 20))
        fh.write("\n")
    with pytest.raises(InputError, match="a field is too long") as err:
        read_text_csv(extract)
    assert err.value.line == 3 and "not valid CSV" not in str(err.value)


def test_a_field_over_the_limit_inside_one_block_is_too_long_too(tmp_path):
    extract = tmp_path / "x.csv"
    extract.write_text("a,b\n1,2\n3," + "y" * (MAX_FIELD_BYTES + 1) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="a field is too long") as err:
        read_text_csv(extract)
    assert (err.value.line, err.value.column) == (3, "b")


def test_a_quoted_field_with_a_line_break_longer_than_128_kib_reads(tmp_path):
    extract = tmp_path / "x.csv"
    long = "z" * 200_000 + "\n" + "z"
    extract.write_text(f'a,b\n1,"{long}"\n2,3\n', encoding="utf-8")
    frame = read_text_csv(extract)
    assert frame["b"].iloc[0] == long and list(frame["_line"]) == [2, 4]


# -- hostile configuration -------------------------------------------------------------------


def _cfg(tmp_path, replace=None, append="", prepend=""):
    path = write_config(tmp_path / "b.toml", replace, append)
    if prepend:
        path.write_text(prepend + path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_a_toml_array_nested_thousands_deep_is_refused_exit_2(tmp_path):
    config = _cfg(tmp_path, prepend="x = " + "[" * 5000 + "]" * 5000 + "\n")
    proc = invoices(SAMPLE_EXTRACT, config, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "not valid TOML: arrays or tables nested too deeply" in proc.stderr


def test_setting_131_nested_thousands_deep_falls_back_with_a_warning(tmp_path):
    text = BILLER.read_text(encoding="utf-8")
    start = text.index("131 = '''")
    end = text.index("'''", start + 9)
    config = _cfg(tmp_path, {text[start : end + 3]: "131 = '''" + "[" * 5000 + "]" * 5000 + "'''"})
    codes = load_payment_codes(load_config(config, resolve_secrets=False))
    assert codes.json_state == "invalid" and codes.entries == ()
    assert any("nested too deeply" in w for w in codes.warnings)


def test_a_nul_in_a_paths_value_is_refused_exit_2(tmp_path):
    config = _cfg(tmp_path, {'state = "../../data/state"': 'state = "a\\u0000b"'})
    proc = run_cli("payments", str(PAYMENTS), "--config", str(config), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "[paths.state]" in proc.stderr and "NUL" in proc.stderr and "Traceback" not in proc.stderr


def test_a_non_numeric_port_in_ledger_is_exit_2(tmp_path):
    proc = run_cli(
        "payments",
        str(PAYMENTS),
        "--config",
        str(BILLER),
        "--out",
        str(tmp_path / "o"),
        "--ledger",
        "postgresql+psycopg://postgres@127.0.0.1:abc/x",
    )
    assert proc.returncode == 2, proc.stderr
    assert "--ledger is not a database URL" in proc.stderr and "internal error" not in proc.stderr


def test_two_keys_meaning_one_setting_are_refused_naming_both(tmp_path):
    config = _cfg(tmp_path, {"\n11  =": '\n"11 " = "x"\n"011" ='})
    with pytest.raises(ConfigError, match="keys '11 ' and '011' both mean setting 11; keep one"):
        load_config(config, resolve_secrets=False)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "UTF-32", "utf_16"])
def test_an_ascii_incompatible_encoding_is_refused_in_the_config(tmp_path, encoding):
    config = _cfg(tmp_path, {'[extract]\nencoding = "utf-8"': f'[extract]\nencoding = "{encoding}"'})
    with pytest.raises(ConfigError, match=f"'{encoding}' is not supported"):
        load_config(config, resolve_secrets=False)


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8-sig"])
def test_ascii_compatible_encodings_stay_accepted(tmp_path, encoding):
    config = _cfg(tmp_path, {'[extract]\nencoding = "utf-8"': f'[extract]\nencoding = "{encoding}"'})
    assert load_config(config, resolve_secrets=False).extract.encoding == encoding
