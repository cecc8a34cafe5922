"""Statement extract -> checked statements (SPEC §2, §3.5): the first step of the invoice
file. :func:`check_extract` groups the extract's rows into statements and applies every
quarantine rule:

* statements are keyed by the account number exactly as written, in the order of their
  first row; rows of one statement need not be adjacent;
* every statement-level column must repeat the same text on every line of the statement
  (compared on adjacent rows of the grouped order: zero-copy slices, no hashing; the rows
  compared are those :mod:`caselle_ic.invoices.extract` kept, every change of value);
* statement-level values are then parsed and validated once per statement, activity
  lines once per line, both against pandera schemas built from
  ``schemas/statement_extract.csv`` (:mod:`caselle_ic.invoices.parse`); account numbers are
  cleaned to letters and digits, and two accounts that clean to the same AccountNumber are
  both quarantined;
* lines are ordered by line_date (ties in extract order), the running balance (§3.4) is
  a cumulative sum per statement, and a statement whose last running balance is not its
  customer_balance is quarantined.

:func:`quarantined_rows` gives back the input rows of the quarantined statements, as read,
with their reasons (the rejects file).

Money is int64 cents throughout; everything is column-at-a-time (Arrow compute, numpy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from caselle_ic.config.model import BillerConfig
from caselle_ic.invoices.columns import LINE_COLUMNS, STATEMENT_COLUMNS, take
from caselle_ic.invoices.extract import ExtractText, differs_from_previous, group_rows
from caselle_ic.invoices.parse import has_activity, line_frame, statement_frame, usable_cents
from caselle_ic.schemas.invoices import (
    extract_names,
    join_by_id,
    line_schema,
    statement_schema,
    validate,
)
from caselle_ic.tabular.csvin import LINE
from caselle_ic.tabular.memory import release_freed
from caselle_ic.tabular.output import REASON
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.values import format_cents, string_series


class Reasons:
    """Quarantine reasons collected along the way, per statement and per input row."""

    def __init__(self) -> None:
        self._stmt: list[pd.Series] = []
        self._row: list[pd.Series] = []

    def statements(self, ids: np.ndarray | pd.Index, reason: str | np.ndarray | pd.Series) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids):
            values = (
                np.full(len(ids), reason, dtype=object) if isinstance(reason, str) else np.asarray(reason)
            )
            self._stmt.append(pd.Series(values, index=ids, dtype=object))

    def statement_series(self, s: pd.Series) -> None:
        if len(s):
            self.statements(s.index.to_numpy(), s.to_numpy(dtype=object))

    def rows(self, s: pd.Series) -> None:
        if len(s):
            self._row.append(pd.Series(s.to_numpy(dtype=object), index=s.index.to_numpy(dtype=np.int64)))

    @staticmethod
    def _joined(parts: list[pd.Series]) -> pd.Series:
        if not parts:
            return pd.Series([], dtype=object, index=pd.Index([], dtype="int64"))
        allr = pd.concat(parts)
        return join_by_id(allr.index.to_numpy(dtype=np.int64), allr.to_numpy(dtype=object))

    def by_statement(self) -> pd.Series:
        return self._joined(self._stmt)

    def by_row(self) -> pd.Series:
        return self._joined(self._row)


@dataclass
class CheckedExtract:
    """The extract grouped into statements, parsed, validated and reconciled."""

    path: Path
    n_rows: int
    codes: np.ndarray  # statement id of each input row (0.. in order of first appearance)
    lines: np.ndarray  # physical line of each input row
    row_text: Callable[[np.ndarray], pa.Table]  # input rows -> their text as read (rejects)
    statements: pd.DataFrame  # parsed statement-level values, index = statement id
    line_rows: np.ndarray  # input rows that carry activity, in file order of records
    line_frame: pd.DataFrame  # parsed activity lines, index = input row, same order
    line_start: np.ndarray  # per statement: first position in line_rows
    line_count: np.ndarray  # per statement: number of activity lines
    running: np.ndarray  # running balance (cents) of each activity line
    reasons: Reasons
    first_line: np.ndarray  # physical line of each statement's first row
    notes: list[str] = field(default_factory=list)

    @property
    def n_statements(self) -> int:
        return len(self.statements)


def check_extract(extract: ExtractText, cfg: BillerConfig) -> CheckedExtract:
    """Group, parse, validate and reconcile the statements of an extract. Consumes the
    text of an extract read in ranges (``extract.reread``): it is read again for the rejects."""
    n = extract.num_rows
    reasons = Reasons()
    kept_codes, order, sorted_codes, first_kept = group_rows(extract.statements.column("account_number"))
    codes = kept_codes[extract.rep]
    k = len(first_kept)
    statements = _checked_statements(
        _statement_text(extract.statements, order, sorted_codes, first_kept, reasons), k, reasons
    )
    # A file read in ranges gives the rejects their text from the file again: the text
    # read is released as soon as it is parsed (what the parsed values share stays).
    consume = extract.reread is not None
    if consume:
        extract.statements = extract.statements.schema.empty_table()
    lines, line_rows, has = _checked_lines(extract.line_table, reasons)
    if consume:
        extract.line_table = extract.line_table.schema.empty_table()
    lines, line_rows, lc, line_start, line_count = _ordered_lines(codes, lines, line_rows, k)
    running = _running_balance(statements, lines, lc, line_start, line_count, reasons)
    release_freed()  # the parse's temporaries: the record build comes next
    return CheckedExtract(
        path=extract.path,
        n_rows=n,
        codes=codes,
        lines=extract.lines,
        row_text=extract.reread or partial(_kept_text, extract.statements, extract.rep, extract.line_table),
        statements=statements,
        line_rows=line_rows,
        line_frame=lines,
        line_start=line_start,
        line_count=line_count,
        running=running,
        reasons=reasons,
        first_line=extract.lines[extract.origin[first_kept]],
        notes=_orphan_notes(has, codes, lc),
    )


def _statement_text(
    kept: pa.Table,
    order: np.ndarray | None,
    sorted_codes: np.ndarray,
    first_kept: np.ndarray,
    reasons: Reasons,
) -> pa.Table:
    """One row of statement-level text per statement; statements whose lines disagree are
    quarantined (SPEC §3.5). ``kept`` holds every change of value between the lines of a
    statement (:mod:`caselle_ic.invoices.extract`), so comparing its adjacent rows of the
    same account finds exactly the columns that differ anywhere in the statement."""
    same_as_previous = sorted_codes[1:] == sorted_codes[:-1]
    differs = column_map(lambda c: differs_from_previous(kept, order, same_as_previous, c), STATEMENT_COLUMNS)
    for name, d in zip(STATEMENT_COLUMNS, differs, strict=True):
        if d is not None:
            reasons.statements(
                np.unique(sorted_codes[1:][d]), f"{name}: differs between the lines of this statement"
            )
    if len(first_kept) == kept.num_rows:
        return kept  # one row per statement already, in order
    return pa.table(
        column_map(lambda c: take(kept.column(c), first_kept), STATEMENT_COLUMNS), names=STATEMENT_COLUMNS
    )


def _checked_statements(raw_statements: pa.Table, k: int, reasons: Reasons) -> pd.DataFrame:
    """Statement-level values parsed and validated once per statement, not once per row."""
    statements = statement_frame(raw_statements, pd.Index(np.arange(k, dtype=np.int64), copy=False))
    reasons.statement_series(validate(statement_schema(), statements))
    return statements


def _kept_text(statements: pa.Table, rep: np.ndarray, line_table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The text of input ``rows`` as read, from the text the read kept (a file read whole)."""
    columns = {c: take(statements.column(c), rep[rows]) for c in STATEMENT_COLUMNS}
    columns |= {c: take(line_table.column(c), rows) for c in LINE_COLUMNS}
    return pa.table(columns)


def _checked_lines(line_raw: pa.Table, reasons: Reasons) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Activity lines parsed and validated: only the rows that carry any line column make
    an ID record. Returns the parsed lines, their rows, and which rows have one."""
    n = line_raw.num_rows
    lines = line_frame(line_raw, pd.Index(np.arange(n, dtype=np.int64), copy=False))
    has = has_activity(lines)
    all_rows = bool(has.all())
    line_rows = np.arange(n, dtype=np.int64) if all_rows else np.flatnonzero(has)
    if not all_rows:
        lines = lines.iloc[line_rows]
    reasons.rows(validate(line_schema(), lines))
    return lines, line_rows, has


def _ordered_lines(
    codes: np.ndarray, lines: pd.DataFrame, line_rows: np.ndarray, k: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines by statement, then line_date, ties in extract order (stable), as the ID records
    are written. Returns lines, their rows, their statement, and each statement's start and count."""
    lc = codes[line_rows]
    ld = lines["line_date"].to_numpy(dtype="datetime64[s]").view(np.int64)
    in_order = len(lc) < 2 or bool(np.all((lc[1:] > lc[:-1]) | ((lc[1:] == lc[:-1]) & (ld[1:] >= ld[:-1]))))
    if not in_order:
        perm = np.lexsort((ld, lc))
        line_rows, lc = line_rows[perm], lc[perm]
        lines = lines.iloc[perm]
    line_start = np.searchsorted(lc, np.arange(k))
    line_count = np.diff(np.r_[line_start, len(lc)]).astype(np.int64)
    return lines, line_rows, lc, line_start, line_count


def _running_balance(
    statements: pd.DataFrame,
    lines: pd.DataFrame,
    lc: np.ndarray,
    line_start: np.ndarray,
    line_count: np.ndarray,
    reasons: Reasons,
) -> np.ndarray:
    """The running balance of each line (SPEC §3.4: balance forward + charges - credits,
    cumulative), quarantining statements whose last one is not their customer_balance."""
    charge, charge_ok = usable_cents(lines["charge_amount"])
    credit, credit_ok = usable_cents(lines["credit_amount"])
    cum = np.cumsum(charge - credit)
    base = np.r_[0, cum][line_start]
    bfwd, bfwd_ok = usable_cents(statements["last_statement_balance"])
    running = bfwd[lc] + cum - base[lc] if len(lc) else np.zeros(0, dtype=np.int64)
    last = bfwd + np.r_[0, cum][line_start + line_count] - base
    balance, balance_ok = usable_cents(statements["customer_balance"])
    usable = (
        bfwd_ok
        & balance_ok
        & statements["last_statement_balance"].notna().to_numpy()
        & statements["customer_balance"].notna().to_numpy()
    )
    bad_line_stmts = np.unique(lc[~(charge_ok & credit_ok)])
    usable[bad_line_stmts] = False
    off = np.flatnonzero(usable & (last != balance))
    if len(off):
        texts = [
            f"customer_balance: running balance {format_cents(a)} does not reconcile to "
            f"customer balance {format_cents(b)}"
            for a, b in zip(last[off], balance[off], strict=True)
        ]
        reasons.statements(off, np.asarray(texts, dtype=object))
    return running


def _orphan_notes(has: np.ndarray, codes: np.ndarray, lc: np.ndarray) -> list[str]:
    """A note for rows without activity inside statements that have some: they add nothing."""
    notes = []
    orphan = (~has) & np.isin(codes, lc) if not bool(has.all()) else np.zeros(0, dtype=bool)
    if orphan.any():
        notes.append(
            f"{int(orphan.sum())} row(s) without activity belong to statements that have activity "
            "lines; they add no ID record (their statement-level values were checked)"
        )
    return notes


def quarantined_rows(checked: CheckedExtract, bad_statements: np.ndarray) -> pd.DataFrame:
    """The input rows of the quarantined statements, as read, with a reason each."""
    columns = extract_names()
    if not len(bad_statements):
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in [*columns, LINE, REASON]})
    rows = np.flatnonzero(np.isin(checked.codes, bad_statements))
    codes = checked.codes[rows]
    text = checked.row_text(rows)  # each row's own text, as read
    frame = pd.DataFrame({c: string_series(text.column(c)) for c in columns})
    frame.index = pd.Index(rows)
    frame[LINE] = checked.lines[rows]

    stmt_reasons = checked.reasons.by_statement()
    row_reasons = checked.reasons.by_row()
    own = pd.Series(row_reasons.reindex(rows).to_numpy(dtype=object), index=rows)
    shared = pd.Series(stmt_reasons.reindex(codes).to_numpy(dtype=object), index=rows)
    sep = np.where(shared.notna() & own.notna(), "; ", "")
    reason = shared.fillna("").astype(str) + sep + own.fillna("").astype(str)
    # Rows that are fine themselves: name the lines that sank their statement.
    silent = reason == ""
    if silent.any():
        with_reason = pd.Series(checked.lines[rows], index=rows)[own.notna()]
        by_stmt = with_reason.groupby(checked.codes[with_reason.index.to_numpy()]).agg(
            lambda s: ", ".join(str(x) for x in s)
        )
        named = pd.Series(codes, index=rows)[silent].map(by_stmt)
        reason[silent] = "statement quarantined because of line(s) " + named.astype(str)
    frame[REASON] = reason.astype("string")
    return frame.reset_index(drop=True)
