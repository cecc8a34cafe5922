"""Prefect artifacts an analyst reads in the UI after a run (SPEC §10).

:func:`publish_run_artifacts` turns any flow's :class:`~caselle_ic.result.RunResult`
into:

* ``<kind>-<biller>-summary`` (markdown): inputs, counts in/out/quarantined, totals, outputs,
  where the rejects went, and the run's notes;
* ``<kind>-<biller>-quarantined`` (table): the quarantined records through
  :func:`~caselle_ic.result.analyst_view` (account numbers masked to their last 4
  characters, no e-mail, phone or street address), at most :data:`MAX_TABLE_ROWS` rows;
* ``<kind>-<biller>-<table>`` (table) for each entry of ``result.tables``, through the same view.

Keys are lowercase letters, digits and dashes, as Prefect requires; the same key on
every run makes the UI show each artifact's history. Must be called inside a flow or
task run.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pandas as pd

from caselle_ic.result import RunResult, analyst_view
from caselle_ic.tabular.output import spreadsheet_frame

#: The quarantined-records table shows at most this many rows (the rejects file has all).
MAX_TABLE_ROWS = 500


def artifact_key(*parts: str) -> str:
    """``"invoice-file", "summary"`` -> ``invoice-file-summary`` (Prefect key rules)."""
    key = "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts if p)
    return re.sub(r"-{2,}", "-", key).strip("-") or "run"


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


#: Markdown characters active anywhere in a line (emphasis, links, code spans, table cells,
#: escapes); the ones active only at the start of a block are escaped there (_MD_LEADING).
#: (an underscore inside a word, as in rows_in, cannot open emphasis: left as is)
_MD_INLINE = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_MD_LEADING = re.compile(r"^(\s*)(>|(?:[#+\-=]+|\d+[.)])(?=\s|$))")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")


def _md(value: Any) -> str:
    """A value as inert markdown text: line breaks -> space, HTML characters as entities,
    markdown punctuation backslash-escaped (a file name or a note cannot inject HTML, a
    link, a heading or a table cell)."""
    text = _BREAKS.sub(" ", _cell(value))
    text = _MD_LEADING.sub(r"\1\\\2", _MD_INLINE.sub(r"\\\1", text))
    return "".join(_HTML.get(ch, ch) for ch in text) if any(ch in text for ch in _HTML) else text


def _code(value: Any) -> str:
    """A value as a markdown code span that it cannot leave: the fence is one back-tick
    longer than the longest run inside (CommonMark), padded when the value starts or ends
    with one; inside a code span HTML is shown as text, never rendered."""
    text = _BREAKS.sub(" ", _cell(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip(" ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"  # (only in list items: a pipe cannot end a cell)


def table_rows(frame: pd.DataFrame, limit: int = MAX_TABLE_ROWS) -> list[dict[str, str]]:
    """A frame as JSON-safe rows of text (no NaN), analyst view applied."""
    view = analyst_view(frame)
    if view is None or view.empty:
        return []
    # shown in the UI and downloadable: formulas guarded as in every CSV analysts open
    view = spreadsheet_frame(view.head(limit))
    return [
        {str(c): _cell(v) for c, v in zip(view.columns, row, strict=True)}
        for row in view.itertuples(index=False)
    ]


def failure_reason(result: RunResult) -> str:
    """Why a run would exit 2 or more, masked: its error, else its last note."""
    from caselle_ic.logsafe import mask_accounts, redact

    why = str(getattr(result, "error", "") or (result.notes[-1] if result.notes else ""))
    return mask_accounts(redact(why or f"the run would exit {result.exit_status}"))


def summary_markdown(result: RunResult) -> str:
    period = f" ({_md(result.period)})" if result.period else ""
    lines = [f"# {_md(result.kind)}: {_md(result.biller)}{period}", ""]
    if result.exit_status >= 2:  # red means red: the first thing an analyst reads is why
        lines += [f"**Run failed** (exit status {result.exit_status}): {_md(failure_reason(result))}", ""]
    lines.append("**Inputs**")
    lines += [f"- {_code(p)}" for p in result.inputs] or ["- (none)"]
    lines += ["", "| count | value |", "| --- | ---: |"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in result.counts.items()]
    if result.totals:
        lines += ["", "| total | amount |", "| --- | ---: |"]
        lines += [f"| {_md(k)} | {_md(v)} |" for k, v in result.totals.items()]
    lines += ["", "**Outputs**"]
    lines += [f"- {_code(p)}" for p in result.outputs] or ["- nothing was written"]
    if result.n_quarantined:
        lines += [
            "",
            f"**Quarantined**: {result.n_quarantined} record(s), with the reason for each, in "
            f"{_code(result.rejects_path)}",
        ]
    if result.notes:
        lines += ["", "**Notes**"] + [f"- {_md(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"


def publish_run_artifacts(
    result: RunResult, tables: dict[str, pd.DataFrame] | None = None
) -> dict[str, UUID]:
    """Create the run's artifacts in the current flow run. Returns ``{key: artifact id}``.

    ``tables`` replaces ``result.tables`` for display (e.g. a formatted reconciliation).
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    created: dict[str, Any] = {}
    key = artifact_key(result.kind, result.biller, "summary")
    created[key] = create_markdown_artifact(
        summary_markdown(result), key=key, description=f"{result.kind} run summary"
    )
    if result.n_quarantined:
        key = artifact_key(result.kind, result.biller, "quarantined")
        shown = min(result.n_quarantined, MAX_TABLE_ROWS)
        created[key] = create_table_artifact(
            table_rows(result.quarantined),
            key=key,
            description=(
                f"{result.n_quarantined} quarantined record(s)"
                + (f", first {shown} shown" if shown < result.n_quarantined else "")
                + "; account numbers masked, no e-mail, phone or street address"
            ),
        )
    for name, frame in (result.tables if tables is None else tables).items():
        key = artifact_key(result.kind, result.biller, name)
        created[key] = create_table_artifact(table_rows(frame), key=key, description=name)
    return created
