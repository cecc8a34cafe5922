"""Run artifacts without a Prefect server, and the same bytes with and without threads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from caselle_ic.flows.artifacts import MAX_TABLE_ROWS, artifact_key, summary_markdown, table_rows
from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.result import RunResult
from tests.invoices.conftest import BILLER, NOW, SAMPLE_EXTRACT


def test_artifact_keys_follow_prefect_rules():
    assert artifact_key("invoice-file", "summary") == "invoice-file-summary"
    assert artifact_key("Daily Payments", "Totals by Code") == "daily-payments-totals-by-code"
    assert artifact_key("a__b", "") == "a-b"


def test_tables_are_masked_and_bounded():
    frame = pd.DataFrame(
        {
            "account_number": ["001040"] * (MAX_TABLE_ROWS + 5),
            "email": ["x@example.com"] * (MAX_TABLE_ROWS + 5),
            "phone": ["(801) 555-0101"] * (MAX_TABLE_ROWS + 5),
            "amount": [None] * (MAX_TABLE_ROWS + 5),
        }
    )
    rows = table_rows(frame)
    assert len(rows) == MAX_TABLE_ROWS
    assert rows[0] == {"account_number": "****1040", "amount": ""}


def test_summary_lists_counts_totals_outputs_and_escapes_pipes(tmp_path):
    result = RunResult(
        kind="invoice-file",
        biller="A | B Utilities",
        inputs=[Path("in.csv")],
        outputs=[tmp_path / "f.txt"],
        counts={"rows_in": 3},
        totals={"TotalInvoiceAmount": "1.00"},
        notes=["n|1"],
        period="2026-11",
    )
    md = summary_markdown(result)
    assert md.startswith("# invoice-file: A \\| B Utilities (2026-11)")
    assert "| rows_in | 3 |" in md and "| TotalInvoiceAmount | 1.00 |" in md
    assert f"`{tmp_path / 'f.txt'}`" in md and "- n\\|1" in md


def test_threads_do_not_change_a_byte(tmp_path, monkeypatch):
    one = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path / "default", now=NOW)
    monkeypatch.setenv("CASELLE_IC_THREADS", "1")
    single = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path / "single", now=NOW)
    monkeypatch.setenv("CASELLE_IC_THREADS", "4")
    four = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path / "four", now=NOW)
    data = one.outputs[0].read_bytes()
    assert single.outputs[0].read_bytes() == data == four.outputs[0].read_bytes()
    assert single.rejects_path is not None and one.rejects_path is not None
    assert single.rejects_path.read_bytes() == one.rejects_path.read_bytes()


def test_lean_memory_does_not_change_a_byte(tmp_path, monkeypatch):
    # lean_memory only changes when the allocators give memory back (tabular/memory.py)
    one = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path / "default", now=NOW)
    monkeypatch.setenv("CASELLE_IC_LEAN_MEMORY", "1")
    lean = run_invoice_file(SAMPLE_EXTRACT, BILLER, tmp_path / "lean", now=NOW)
    assert lean.outputs[0].read_bytes() == one.outputs[0].read_bytes()
    assert lean.rejects_path is not None and one.rejects_path is not None
    assert lean.rejects_path.read_bytes() == one.rejects_path.read_bytes()
