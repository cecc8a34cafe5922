"""The statement extract read as text, statement-level columns reduced as they are read
(SPEC §2.1): the first step of the invoice file.

The 27 statement-level columns repeat on every line of a statement, so most of a big
extract is the same text again. Each range of the file (:mod:`caselle_ic.tabular.ranges`)
is reduced at once: of the rows of one account, a row is kept only when it is the
account's first in the range or when one of its statement-level values differs from the
account's previous row; every input row keeps the index of the kept row that holds its
values (``rep``). Nothing is lost: the statement-level text of any input row is
``statements[rep[row]]``, and the values that differ between the lines of a statement are
still side by side for :func:`caselle_ic.invoices.checks.check_extract` to find.

The rejects file needs the text of the quarantined rows only, as read. A file read in
ranges keeps where each row starts (``starts``, 8 bytes a row) and reads those rows again
(``reread``), so the run need not hold every row's text until the end; a file read whole
(another encoding, a quoted line break) keeps its text as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.model import BillerConfig
from caselle_ic.invoices.columns import LINE_COLUMNS, SPEC, STATEMENT_COLUMNS, as_numpy, large_strings, take
from caselle_ic.schemas.invoices import extract_names, required_extract_columns
from caselle_ic.tabular.csvin import TextTable
from caselle_ic.tabular.memory import release_freed
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.ranges import read_rows, read_text_ranges


@dataclass
class ExtractText:
    """The extract as read: statement-level text reduced, line-level text per row."""

    path: Path
    statements: pa.Table  # statement-level columns of the kept rows, in file order
    origin: np.ndarray  # input row of each kept row
    rep: np.ndarray  # per input row: the kept row that holds its statement-level text
    line_table: pa.Table  # line-level columns (large_string) of every input row
    lines: np.ndarray  # physical line of each input row
    #: read in ranges: each row's byte offset in the file, then the end of the last row
    starts: np.ndarray | None = None
    #: read in ranges: rows -> their text as read (every column), read again from the file
    reread: Callable[[np.ndarray], pa.Table] | None = None

    @property
    def num_rows(self) -> int:
        return len(self.rep)


def read_extract(path: str | Path, cfg: BillerConfig) -> ExtractText:
    """Read the statement extract as text (SPEC §2): header aliases, encoding, required
    columns. InputError (exit 2) when the file cannot be used at all."""
    pieces = read_text_ranges(
        path,
        reduce_rows,
        encoding=cfg.extract.encoding,
        column_map=cfg.extract.columns,
        required=required_extract_columns(),
        known=extract_names(),
        what="statement extract",
    )
    text = pieces[0] if len(pieces) == 1 else _joined(pieces)
    del pieces
    release_freed()  # the ranges' temporaries
    if text.starts is not None:
        text.reread = partial(
            read_rows,
            path,
            text.starts,
            encoding=cfg.extract.encoding,
            column_map=cfg.extract.columns,
            required=required_extract_columns(),
            known=extract_names(),
        )
    return text


def _joined(pieces: list[ExtractText]) -> ExtractText:
    """The pieces of consecutive ranges as one. A statement cut by a range boundary has its
    first row in the next range kept again; that row is dropped when it repeats the
    values of the row before it (the last of the previous range): then a grouped extract
    keeps one row per statement, and the statements need no copy of their own."""
    tables, origins, reps = [], [], []
    kept = rows = last_rep = 0
    last: dict[str, str] | None = None
    for piece in pieces:
        rep, origin, table = piece.rep + kept, piece.origin + rows, piece.statements
        first = table.slice(0, 1).to_pylist()[0] if table.num_rows else None
        if last is not None and first == last:
            rep = np.where(piece.rep == 0, last_rep, rep - 1)
            origin, table = origin[1:], table.slice(1)
        tables.append(table)
        origins.append(origin)
        reps.append(rep)
        kept += table.num_rows
        rows += piece.num_rows
        if piece.num_rows:
            last = piece.statements.slice(int(piece.rep[-1]), 1).to_pylist()[0]
            last_rep = int(rep[-1])
    return ExtractText(
        path=pieces[0].path,
        statements=pa.concat_tables(tables),
        origin=np.concatenate(origins),
        rep=np.concatenate(reps),
        line_table=pa.concat_tables([p.line_table for p in pieces]),
        lines=np.concatenate([p.lines for p in pieces]),
        starts=_joined_starts(pieces),
    )


def _joined_starts(pieces: list[ExtractText]) -> np.ndarray | None:
    """Each range's row offsets, then the end of the last range (ranges are back to back)."""
    starts = [p.starts for p in pieces if p.starts is not None]
    if len(starts) < len(pieces):
        return None
    return np.concatenate([*(s[:-1] for s in starts), starts[-1][-1:]])


def group_rows(accounts: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
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


def differs_from_previous(
    table: pa.Table, order: np.ndarray | None, same_as_previous: np.ndarray, name: str
) -> np.ndarray | None:
    """Per position of the grouped order after the first: whether column ``name`` differs
    from the previous row of the same account (None: nowhere)."""
    n = table.num_rows
    if n < 2 or not same_as_previous.any():
        return None
    col = table.column(name).combine_chunks()  # aligned slices compare fastest
    grouped = col if order is None else pc.take(col, pa.array(order))
    differs = as_numpy(pc.not_equal(grouped.slice(1), grouped.slice(0, n - 1))) & same_as_previous
    return differs if differs.any() else None


def _as_read(values: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    return values if SPEC[name].kind in ("amount", "date") else large_strings(values)


def reduce_rows(piece: TextTable) -> ExtractText:
    """One range of the extract with its statement-level columns reduced (module docstring)."""
    table = piece.table
    n = table.num_rows
    _codes, order, sorted_codes, _first = group_rows(table.column("account_number"))
    same = sorted_codes[1:] == sorted_codes[:-1]
    keep_sorted = np.ones(n, dtype=bool)
    if n > 1:
        keep_sorted[1:] = ~same
        for differs in column_map(lambda c: differs_from_previous(table, order, same, c), STATEMENT_COLUMNS):
            if differs is not None:
                keep_sorted[1:] |= differs
    if order is None:
        origin = np.flatnonzero(keep_sorted)
        rep = np.cumsum(keep_sorted) - 1
    else:
        origin = np.sort(order[keep_sorted])
        rank = np.zeros(n, dtype=np.int64)
        rank[origin] = np.arange(len(origin))
        # the last kept position at or before each one (an account's first is always kept)
        last_kept = np.maximum.accumulate(np.where(keep_sorted, np.arange(n), 0))
        rep = np.empty(n, dtype=np.int64)
        rep[order] = rank[order[last_kept]]
    # Text columns as large_string: the parsed values then share these buffers (text that
    # needs no cleaning is not copied); amounts and dates stay compact, they are parsed.
    statements = pa.table(
        column_map(
            lambda c: _as_read(take(table.column(c), origin) if len(origin) < n else table.column(c), c),
            STATEMENT_COLUMNS,
        ),
        names=STATEMENT_COLUMNS,
    )
    line_table = pa.table([_as_read(table.column(c), c) for c in LINE_COLUMNS], names=LINE_COLUMNS)
    return ExtractText(
        path=piece.path,
        statements=statements,
        origin=origin.astype(np.int64),
        rep=rep.astype(np.int64),
        line_table=line_table,
        lines=piece.lines,
        starts=piece.starts,
    )
