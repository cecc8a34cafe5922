"""CSV injection and markdown escaping (issue 13, item 13): every CSV analysts open guards
OWASP's formula triggers (= + - @, and tab, CR, LF before them), the Prefect quarantine
table too, and every value placed in a markdown artifact stays inert text."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from caselle_ic.flows.artifacts import summary_markdown, table_rows
from caselle_ic.payments.reconcile import write_reconciliation_csv
from caselle_ic.result import RunResult
from caselle_ic.tabular.output import write_rejects
from caselle_ic.tabular.values import spreadsheet_safe

GUARDED = ["=1+1", "+1+1", "-x", "@SUM(A1)", "\t=1+1", "\r=1", "\n+1", "\t-2+3", "\r\n@x", "\t", "\n"]
AS_IS = ["-12.00", "+1", "12", ".5", "plain", "a=b", " x", ""]


@pytest.mark.parametrize("value", GUARDED, ids=repr)
def test_owasp_triggers_get_an_apostrophe(value):
    assert spreadsheet_safe(pd.Series([value])).iloc[0] == "'" + value


@pytest.mark.parametrize("value", AS_IS, ids=repr)
def test_numbers_and_plain_text_are_written_as_read(value):
    assert spreadsheet_safe(pd.Series([value])).iloc[0] == value


def test_rejects_file_guards_tab_and_line_break_formulas(tmp_path):
    frame = pd.DataFrame({"customer_name": ['\t=HYPERLINK("http://x")', "\r\n+1+1"], "reason": ["r", "r"]})
    path = write_rejects(frame, tmp_path, "x")
    assert path is not None
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    assert [r[0] for r in rows[1:]] == ['\'\t=HYPERLINK("http://x")', "'\r\n+1+1"]


def test_reconciliation_csv_guards_text_columns(tmp_path):
    table = pd.DataFrame(
        {
            "transaction_type": ["\t=cmd|' /C calc'!A0", "TOTAL"],
            "export_cents": [1200, -1200],
            "check": ["ok", "ok"],
        }
    )
    path = write_reconciliation_csv(table, tmp_path, "p")
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert rows[0]["transaction_type"] == "'\t=cmd|' /C calc'!A0"
    assert [r["export_amount"] for r in rows] == ["12.00", "-12.00"]


def test_prefect_quarantine_table_guards_formulas():
    frame = pd.DataFrame({"customer_name": ["=1+1", "\t@x", "Smith"], "amount": ["-5.00", "1", "2"]})
    rows = table_rows(frame)
    assert [r["customer_name"] for r in rows] == ["'=1+1", "'\t@x", "Smith"]
    assert [r["amount"] for r in rows] == ["-5.00", "1", "2"]


def _render(md: str) -> str:
    html: str = MarkdownIt("commonmark").enable("table").render(md)  # render() is typed Any
    return html


def test_backtick_in_a_file_name_stays_in_its_code_span(tmp_path):
    evil = tmp_path / "x` <img src=x onerror=alert(1)> `y.csv"
    result = RunResult(
        kind="payments",
        biller="<b>Town</b> *bold* [link](http://x)",
        inputs=[evil],
        outputs=[tmp_path / "``two``.txt"],
        counts={"rows_in": 3},
        notes=["# heading <script>alert(1)</script>", "a | b"],
    )
    html = _render(summary_markdown(result))
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert "<a " not in html and "<em>" not in html and "<h2" not in html
    # each path is one code span holding exactly the path
    assert f"<code>{str(evil).replace('<', '&lt;').replace('>', '&gt;')}</code>" in html
    assert f"<code>{tmp_path / '``two``.txt'}</code>" in html
    assert "&lt;b&gt;Town&lt;/b&gt; *bold* [link](http://x)" in html
    assert "# heading &lt;script&gt;" in html and "a | b" in html


def test_plain_summary_still_reads_plainly(tmp_path):
    result = RunResult(kind="invoice-file", biller="Town", inputs=[Path("in.csv")], counts={"rows_in": 3})
    md = summary_markdown(result)
    assert "- `in.csv`" in md and "| rows_in | 3 |" in md
