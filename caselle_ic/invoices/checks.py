"""Statement extract -> checked statements (SPEC §2, §3.5): the first step of the invoice
file. :func:`check_extract` groups the extract's rows into statements and applies every
quarantine rule:

* statements are keyed by the account number exactly as written, in the order of their
  first row; rows of one statement need not be adjacent;
* every statement-level column must repeat the same text on every line of the statement
  (compared on adjacent rows of the grouped order: zero-copy slices, no hashing);
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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.model import BillerConfig
from caselle_ic.invoices.columns import LINE_COLUMNS, STATEMENT_COLUMNS, as_numpy, take
from caselle_ic.invoices.parse import has_activity, line_frame, statement_frame, usable_cents
from caselle_ic.schemas.invoices import (
    extract_names,
    join_by_id,
    line_schema,
    required_extract_columns,
    statement_schema,
    validate,
)
from caselle_ic.tabular.csvin import LINE, TextTable, read_text_table
from caselle_ic.tabular.output import REASON
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.values import format_cents, string_series


def read_extract(path: str | Path, cfg: BillerConfig) -> TextTable:
    """Read the statement extract as text (SPEC §2): header aliases, encoding, required
    columns. InputError (exit 2) when the file cannot be used at all."""
    return read_text_table(
        path,
        encoding=cfg.extract.encoding,
        column_map=cfg.extract.columns,
        required=required_extract_columns(),
        known=extract_names(),
        what="statement extract",
    )


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
    raw_statements: pa.Table  # statement-level text as read, one row per statement
    statements: pd.DataFrame  # parsed statement-level values, index = statement id
    line_raw: pa.Table  # line-level text as read, every input row
    line_rows: np.ndarray  # input rows that carry activity, in file order of records
    line_frame: pd.DataFrame  # parsed activity lines, index = input row, same order
    line_start: np.ndarray  # per statement: first position in line_rows
    line_count: np.ndarray  # per statement: number of activity lines
    running: np.ndarray  # running balance (cents) of each activity line
    reasons: Reasons
    conflict_rows: pd.DataFrame  # raw rows of statements whose lines disagree
    first_line: np.ndarray  # physical line of each statement's first row
    notes: list[str] = field(default_factory=list)

    @property
    def n_statements(self) -> int:
        return len(self.statements)


def _group(accounts: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """codes per row, grouping order (None = rows already grouped), sorted codes, first rows."""
    encoded = pc.dictionary_encode(accounts.combine_chunks())
    codes = as_numpy(encoded.indices).astype(np.int64)
    n = len(codes)
    grouped = n < 2 or bool(np.all(codes[1:] >= codes[:-1]))
    order = None if grouped else np.argsort(codes, kind="stable")
    sorted_codes = codes if order is None else codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if n else np.zeros(0, int)
    first_row = starts if order is None else order[starts]
    return codes, order, sorted_codes, first_row


def check_extract(extract: TextTable, cfg: BillerConfig) -> CheckedExtract:
    """Group, parse, validate and reconcile the statements of an extract.

    Consumes the statement-level columns of ``extract`` (they are dropped once reduced to
    one row per statement) so a million-statement file is held once, not twice."""
    n = extract.table.num_rows
    reasons = Reasons()
    codes, order, sorted_codes, first_row = _group(extract.table.column("account_number"))
    k = len(first_row)
    raw_statements, conflict_rows = _statement_text(extract, codes, order, sorted_codes, first_row, reasons)
    statements = _checked_statements(raw_statements, k, reasons)
    line_raw, lines, line_rows, has = _checked_lines(extract, reasons)
    lines, line_rows, lc, line_start, line_count = _ordered_lines(codes, lines, line_rows, k)
    running = _running_balance(statements, lines, lc, line_start, line_count, reasons)
    return CheckedExtract(
        path=extract.path,
        n_rows=n,
        codes=codes,
        lines=extract.lines,
        raw_statements=raw_statements,
        statements=statements,
        line_raw=line_raw,
        line_rows=line_rows,
        line_frame=lines,
        line_start=line_start,
        line_count=line_count,
        running=running,
        reasons=reasons,
        conflict_rows=conflict_rows,
        first_line=extract.lines[first_row],
        notes=_orphan_notes(has, codes, lc),
    )


def _statement_text(
    extract: TextTable,
    codes: np.ndarray,
    order: np.ndarray | None,
    sorted_codes: np.ndarray,
    first_row: np.ndarray,
    reasons: Reasons,
) -> tuple[pa.Table, pd.DataFrame]:
    """One row of statement-level text per statement, and the raw rows of statements whose
    lines disagree (quarantined, SPEC §3.5); then drops the per-row copies from ``extract``."""
    table = extract.table
    n = table.num_rows
    # Statement-level values must repeat on every line of the statement (SPEC §3.5).
    same_as_previous = sorted_codes[1:] == sorted_codes[:-1]

    def compare(name: str) -> tuple[np.ndarray | None, pa.ChunkedArray]:
        col = table.column(name).combine_chunks()  # aligned slices compare fastest
        grouped = col if order is None else pc.take(col, pa.array(order))
        ids = None
        if n > 1 and same_as_previous.any():
            differs = as_numpy(pc.not_equal(grouped.slice(1), grouped.slice(0, n - 1))) & same_as_previous
            if differs.any():
                ids = np.unique(sorted_codes[1:][differs])
        return ids, take(col, first_row)

    compared = column_map(compare, STATEMENT_COLUMNS)
    conflict_parts = [
        (ids, f"{name}: differs between the lines of this statement")
        for name, (ids, _) in zip(STATEMENT_COLUMNS, compared, strict=True)
        if ids is not None
    ]
    firsts = {name: first for name, (_, first) in zip(STATEMENT_COLUMNS, compared, strict=True)}
    conflict_ids = np.unique(np.concatenate([ids for ids, _ in conflict_parts])) if conflict_parts else None
    for ids, reason in conflict_parts:
        reasons.statements(ids, reason)
    if conflict_ids is not None:
        rows = np.flatnonzero(np.isin(codes, conflict_ids))
        conflict_rows = table.take(pa.array(rows)).to_pandas(types_mapper=pd.ArrowDtype)
        conflict_rows = conflict_rows.astype("string").set_axis(pd.Index(rows), axis=0)
        conflict_rows[LINE] = extract.lines[rows]
    else:
        conflict_rows = pd.DataFrame()
    raw_statements = pa.table([firsts[c] for c in STATEMENT_COLUMNS], names=STATEMENT_COLUMNS)
    extract.drop(STATEMENT_COLUMNS)  # release the 5-rows-per-statement copies
    return raw_statements, conflict_rows


def _checked_statements(raw_statements: pa.Table, k: int, reasons: Reasons) -> pd.DataFrame:
    """Statement-level values parsed and validated once per statement, not once per row."""
    statements = statement_frame(raw_statements, pd.Index(np.arange(k, dtype=np.int64)))
    reasons.statement_series(validate(statement_schema(), statements))
    return statements


def _checked_lines(
    extract: TextTable, reasons: Reasons
) -> tuple[pa.Table, pd.DataFrame, np.ndarray, np.ndarray]:
    """Activity lines parsed and validated: only the rows that carry any line column make
    an ID record. Returns the line text, the parsed lines, their rows, and which rows have one."""
    n = extract.table.num_rows
    line_raw = extract.table.select(LINE_COLUMNS)
    lines = line_frame(line_raw, pd.Index(np.arange(n, dtype=np.int64)))
    has = has_activity(lines)
    all_rows = bool(has.all())
    line_rows = np.arange(n, dtype=np.int64) if all_rows else np.flatnonzero(has)
    if not all_rows:
        lines = lines.iloc[line_rows]
    reasons.rows(validate(line_schema(), lines))
    return line_raw, lines, line_rows, has


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
    stmt_cols = {c: string_series(take(checked.raw_statements.column(c), codes)) for c in STATEMENT_COLUMNS}
    line_cols = {c: string_series(take(checked.line_raw.column(c), rows)) for c in LINE_COLUMNS}
    frame = pd.DataFrame({c: (stmt_cols | line_cols)[c] for c in columns})
    frame.index = pd.Index(rows)
    if len(checked.conflict_rows):
        conflict = checked.conflict_rows[[c for c in columns if c in checked.conflict_rows.columns]]
        frame.loc[conflict.index, conflict.columns] = conflict
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
