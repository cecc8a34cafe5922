"""Reading a big CSV file a byte range at a time, so memory stays bounded (SPEC §2).

A whole-file Arrow read holds every value of every column at once (about 1.4x the file
with the offsets). When every record sits on its own line, the file can instead be cut
at line breaks into ranges of :data:`RANGE_BYTES`, each read with the same multi-threaded
Arrow reader and handed to a ``reduce`` function (which keeps what the caller needs of it)
before the next range is read.

Each range carries the same proof as the whole-file fast read of :mod:`csvin`: no value
holds CR or LF, every CR is part of CR+LF, as many line feeds as records, no blank line.
Anything else -- another encoding than UTF-8, a quoted header, a value with a line
break, a blank line, an unreadable range, a NUL byte, a header that does not map --
gives ``None``, and the caller reads the whole file with :func:`read_text_table`,
which explains every failure (file, line, column) exactly as before.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa

from caselle_ic.errors import InputError, file_problem
from caselle_ic.tabular.breaks import break_counts
from caselle_ic.tabular.csvin import (
    TextTable,
    canonical_columns,
    has_empty_records,
    normalize_header,
    one_line_per_record,
    read_arrow,
    read_text_table,
    scan_values,
    text_table,
)

T = TypeVar("T")

#: Bytes per range (cut at the next line break before it). Large enough that Arrow's
#: parallel read of a range runs at full speed, small beside a million-statement file.
RANGE_BYTES = 1 << 26


def read_text_ranges(
    path: str | Path,
    reduce: Callable[[TextTable], T],
    *,
    encoding: str = "utf-8",
    column_map: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    known: Iterable[str] | None = None,
    what: str = "input",
) -> list[T]:
    """``reduce`` of each range of the file as a TextTable (canonical columns, physical
    lines), in file order; ``[reduce(whole file)]`` when the file is small or not one
    record per line (see the module docstring)."""
    p = Path(path)
    pieces = _ranged(p, reduce, encoding, column_map, required, known)
    if pieces is not None:
        return pieces
    whole = read_text_table(
        p, encoding=encoding, column_map=column_map, required=required, known=known, what=what
    )
    return [reduce(whole)]


def _header(p: Path, encoding: str) -> tuple[list[str], int] | None:
    """The header's names and its length in bytes (line break included), when the file
    is UTF-8, starts with a plain one-line header and is bigger than one range."""
    if file_problem(p) is not None:
        return None
    try:
        if codecs.lookup(encoding).name != "utf-8":
            return None
    except LookupError:
        return None
    with p.open("rb") as fh:
        head = fh.read(64 * 1024)
        size = fh.seek(0, 2)
    end = head.find(b"\n")
    if end < 0 or b"\x00" in head or b'"' in head[:end] or size - (end + 1) <= RANGE_BYTES:
        return None
    try:
        text = head[:end].decode("utf-8-sig").removesuffix("\r")
    except UnicodeDecodeError:
        return None
    names = next(csv.reader([text]), [])
    return (names, end + 1) if len(names) >= 2 and "\r" not in text else None


def _ranged(
    p: Path,
    reduce: Callable[[TextTable], T],
    encoding: str,
    column_map: Mapping[str, str] | None,
    required: Iterable[str],
    known: Iterable[str] | None,
) -> list[T] | None:
    found = _header(p, encoding)
    if found is None:
        return None
    names, pos = found
    aliases = {normalize_header(k): v.strip().lower() for k, v in (column_map or {}).items()}
    try:
        keep, source = canonical_columns(p, names, aliases, required, known)
    except InputError:
        return None
    pieces: list[T] = []
    row = 0
    # the next range's bytes are read on a thread while this one is parsed and reduced:
    # serially the reads were a fifth of the step's wall (1.6 of 7.3 s at 1M statements)
    with p.open("rb", buffering=0) as fh, ThreadPoolExecutor(1) as io:
        size = fh.seek(0, 2)
        ahead = io.submit(os.pread, fh.fileno(), RANGE_BYTES, pos)
        while pos < size:
            data = ahead.result()
            cut = len(data) if pos + len(data) >= size else data.rfind(b"\n") + 1
            if cut <= 0:  # a line longer than a range
                return None
            if pos + cut < size:
                ahead = io.submit(os.pread, fh.fileno(), RANGE_BYTES, pos + cut)
            raw = np.frombuffer(data, dtype=np.uint8, count=cut)
            feeds: list[np.ndarray] = []
            table = _read_range(p, pa.py_buffer(data).slice(0, cut), raw, names, encoding, feeds)
            ends_in_feed = bool(raw[-1] == 10)
            del raw, data
            if table is None:
                return None
            lines = np.arange(row + 2, row + 2 + table.num_rows, dtype=np.int64)
            try:
                scan_values(table, lines, p)
            except InputError:
                return None
            piece = text_table(p, table, lines, keep, source)
            # where each record starts, and where the range ends: the rejects are read again
            # from these bytes instead of the run holding every row's text (read_rows)
            piece.starts = np.concatenate([[pos], pos + 1 + np.concatenate(feeds)]).astype(np.int64)
            if not ends_in_feed:
                piece.starts = np.append(piece.starts, pos + cut)
            pieces.append(reduce(piece))
            del table, piece
            pos += cut
            row += len(lines)
    return pieces


def _read_range(
    p: Path, data: pa.Buffer, raw: np.ndarray, names: list[str], encoding: str, feeds: list[np.ndarray]
) -> pa.Table | None:
    """One range read as text, or None unless it is provably one record per line;
    ``feeds`` collects where its line feeds are."""
    try:
        table = _lines_as_read(data, names, encoding)
    except pa.ArrowInvalid:
        return None
    counts = break_counts(raw, feeds_at=feeds)
    record_line_feeds = counts[0] + (0 if len(raw) and raw[-1] == 10 else 1)  # the last may lack one
    if has_empty_records(table) or not one_line_per_record(table, counts, record_line_feeds):
        return None
    return table


def read_rows(
    path: str | Path,
    starts: np.ndarray,
    rows: np.ndarray,
    *,
    encoding: str = "utf-8",
    column_map: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    known: Iterable[str] | None = None,
) -> pa.Table:
    """The records ``rows`` (increasing) of a file :func:`read_text_ranges` read, read again
    from their bytes (``starts``: the ``TextTable.starts`` of the whole file) with the same
    reader: the same text, canonical columns. For the few rows a run sends back (the
    rejects) without holding every row's text until then. InputError when the file is not
    the one read any more."""
    p = Path(path)
    found = _header(p, encoding)
    if found is None or p.stat().st_size != int(starts[-1]):
        raise InputError("the file changed while it was being processed; run again", file=p)
    names = found[0]
    aliases = {normalize_header(k): v.strip().lower() for k, v in (column_map or {}).items()}
    keep, source = canonical_columns(p, names, aliases, required, known)
    rows = np.asarray(rows, dtype=np.int64)
    # runs of adjacent rows are read with one call; at most a range's bytes parsed at once
    run_at = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1] + 1]) if len(rows) else rows
    first, last = rows[run_at], rows[np.r_[run_at[1:], len(rows)] - 1] if len(rows) else rows
    tables = [pa.table({n: pa.array([], pa.string()) for n in names})]
    with p.open("rb", buffering=0) as fh:
        batch: list[bytes] = []
        size = wanted = 0
        for a, b in zip(first.tolist(), last.tolist(), strict=True):
            batch.append(os.pread(fh.fileno(), int(starts[b + 1] - starts[a]), int(starts[a])))
            size, wanted = size + len(batch[-1]), wanted + b - a + 1
            if size >= RANGE_BYTES or b == last[-1]:
                tables.append(_reread(p, b"".join(batch), names, encoding, wanted))
                batch, size, wanted = [], 0, 0
    lines = np.zeros(len(rows), dtype=np.int64)  # not used: the caller has the lines
    return text_table(p, pa.concat_tables(tables), lines, keep, source).table


def _lines_as_read(data: pa.Buffer | bytes, names: list[str], encoding: str) -> pa.Table:
    """Lines known to hold one record each (a range, rejected rows read again), as text."""
    return read_arrow(
        pa.BufferReader(data),
        encoding,
        names,
        keep_blank_lines=True,
        check_utf8=True,
        newlines_in_values=False,
        header_given=True,
    )


def _reread(p: Path, data: bytes, names: list[str], encoding: str, wanted: int) -> pa.Table:
    table = _lines_as_read(data, names, encoding)
    if table.num_rows != wanted:
        raise InputError("the file changed while it was being processed; run again", file=p)
    return table
