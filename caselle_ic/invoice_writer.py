"""The IC invoice file on disk (SPEC §3): quoted, pipe-delimited records.

* File name ``INVCLD_CSLSTMT101_{YYYYMMDD}{HHMMSS}.txt`` from the run clock.
* Every value is enclosed in double quotes, empty ones too; an embedded ``"`` is doubled.
* Text values: every run of control characters (CR, LF, TAB and the rest of C0/C1, plus
  the Unicode line and paragraph separators) becomes one space, then surrounding spaces
  are trimmed. So ``csv.reader(f, delimiter="|")`` reads back exactly those values.
* Every record ends with the configured line ending (CRLF by default), the last one too.
* UTF-8 without BOM unless the biller configures another encoding.
* Order: ``FH``; then per statement ``IH``, ``CR`` and its ``ID`` records.

Everything is Arrow compute over whole columns: a record type's lines are built with one
element-wise join, the ``ID`` lines of each statement are joined into one string through
a list view (no copy of the offsets), and the file is written a block of statements at a
time straight from the Arrow buffers, so memory stays bounded on a million statements.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.errors import OutputError
from caselle_ic.output import atomic_output
from caselle_ic.values import arrow_strings, lstr
from schemas.invoices import CONTROL_CLASS, FieldSpec, record_fields

FILE_PREFIX = "INVCLD_CSLSTMT101_"
#: Statements per block written (bounds memory; large enough to amortise the calls).
BLOCK = 200_000

_CONTROL_RUN = f"[{CONTROL_CLASS}]+"
_NEEDS_CLEANING = f"[{CONTROL_CLASS}]|^ | $"


def invoice_file_name(now: datetime) -> str:
    """``INVCLD_CSLSTMT101_{YYYYMMDD}{HHMMSS}.txt`` in the run's local time."""
    return f"{FILE_PREFIX}{now:%Y%m%d%H%M%S}.txt"


def _chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    out = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return out if out.type == pa.large_string() else out.cast(pa.large_string())


def clean_text(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Runs of control characters -> one space; surrounding spaces trimmed.

    Returns the input unchanged (no copy) when no value needs it, which is the usual
    case: one scan instead of two rewrites."""
    arr = _chunked(values)
    if len(arr) == 0 or not pc.any(pc.match_substring_regex(arr, _NEEDS_CLEANING)).as_py():
        return arr
    spaced = pc.replace_substring_regex(arr, _CONTROL_RUN, " ")
    return _chunked(pc.utf8_trim(spaced, " "))


def _quoted_body(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Double every embedded quote (only when there is one)."""
    if len(values) and pc.any(pc.match_substring(values, '"')).as_py():
        return _chunked(pc.replace_substring(values, '"', '""'))
    return values


@dataclass
class RecordSet:
    """The four record types, ready to write. Frame columns are the IC field names in
    field-map order; ``lines_per_statement[k]`` is how many ``ID`` rows statement ``k``
    (row ``k`` of IH and CR) has, the ID frame being sorted by statement."""

    fh: pd.DataFrame
    ih: pd.DataFrame
    cr: pd.DataFrame
    id: pd.DataFrame
    lines_per_statement: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: Statements to write (None = all); the others are quarantined and left out.
    keep: np.ndarray | None = None
    #: Text values already cleaned (the builder cleans them at the source), so the
    #: writer need not scan them again.
    clean: bool = False

    def __post_init__(self) -> None:
        if len(self.lines_per_statement) != len(self.ih) or len(self.cr) != len(self.ih):
            raise OutputError("invoice records are inconsistent: IH, CR and lines_per_statement differ")
        if int(np.sum(self.lines_per_statement)) != len(self.id):
            raise OutputError("invoice records are inconsistent: lines_per_statement does not add up to ID")
        if self.keep is not None and len(self.keep) != len(self.ih):
            raise OutputError("invoice records are inconsistent: keep does not match IH")

    @property
    def n_records(self) -> int:
        if self.keep is None:
            return len(self.fh) + len(self.ih) + len(self.cr) + len(self.id)
        kept = int(self.keep.sum())
        return len(self.fh) + 2 * kept + int(np.asarray(self.lines_per_statement)[self.keep].sum())


def render_lines(
    frame: pd.DataFrame, fields: Sequence[FieldSpec], newline: str, *, clean: bool = True
) -> pa.ChunkedArray:
    """One complete record line (with its line ending) per frame row.

    Constant fields are written from a scalar; text fields are cleaned (no-op scan when
    the builder already did it); quotes doubled; one join per record type."""
    parts: list[pa.ChunkedArray | pa.Scalar] = [lstr('"')]
    for i, f in enumerate(fields):
        if i:
            parts.append(lstr('"|"'))
        if f.const is not None:
            parts.append(lstr(f.const.replace('"', '""')))
            continue
        values = arrow_strings(frame[f.ic_field])
        # Validated records: only text can hold a quote or a control character.
        if clean or f.format == "text":
            values = _quoted_body(clean_text(values) if clean else values)
        parts.append(values)
    parts.append(lstr('"' + newline))
    if len(frame) == 0:
        return pa.chunked_array([], pa.large_string())
    if not any(isinstance(p, pa.ChunkedArray) for p in parts):
        raise OutputError("a record type made only of constants cannot be rendered")
    return _chunked(pc.binary_join_element_wise(*parts, lstr("")))


def _buffer_bytes(arr: pa.Array) -> memoryview:
    """The UTF-8 bytes of a string array's values, back to back (no copy)."""
    if len(arr) == 0:
        return memoryview(b"")
    if arr.type == pa.large_string():
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    else:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    data = arr.buffers()[2]
    return memoryview(data)[start:end] if data is not None else memoryview(b"")


def _statement_blocks(records: RecordSet) -> list[tuple[int, int, int, int]]:
    """(first, end) statement and (first, end) ID row of each block."""
    n = len(records.ih)
    starts = np.concatenate([[0], np.cumsum(records.lines_per_statement)])
    ends = [min(a + BLOCK, n) for a in range(0, n, BLOCK)]
    return [(a, b, int(starts[a]), int(starts[b])) for a, b in zip(range(0, n, BLOCK), ends, strict=True)]


def render_file_blocks(records: RecordSet, newline: str = "\r\n") -> Iterator[memoryview]:
    """Yield the file's bytes (UTF-8) a block of statements at a time."""
    fh = render_lines(records.fh, record_fields("FH"), newline)
    for chunk in fh.chunks:
        yield _buffer_bytes(chunk)
    ih_fields, cr_fields, id_fields = record_fields("IH"), record_fields("CR"), record_fields("ID")
    counts = np.asarray(records.lines_per_statement, dtype=np.int64)
    clean = not records.clean
    for a, b, la, lb in _statement_blocks(records):
        ih = render_lines(records.ih.iloc[a:b], ih_fields, newline, clean=clean)
        cr = render_lines(records.cr.iloc[a:b], cr_fields, newline, clean=clean)
        ids = render_lines(records.id.iloc[la:lb], id_fields, newline, clean=clean)
        block_counts = counts[a:b]
        if records.keep is not None and not records.keep[a:b].all():
            keep = records.keep[a:b]
            ih, cr = _chunked(pc.filter(ih, pa.array(keep))), _chunked(pc.filter(cr, pa.array(keep)))
            ids = _chunked(pc.filter(ids, pa.array(np.repeat(keep, block_counts))))
            block_counts = block_counts[keep]
        if len(ih) == 0:
            continue
        ids = ids.combine_chunks()
        offsets = np.concatenate([[0], np.cumsum(block_counts)]).astype(np.int64)
        grouped = pa.LargeListArray.from_arrays(pa.array(offsets), ids)
        id_text = pc.binary_join(grouped, lstr(""))
        block = pc.binary_join_element_wise(ih, cr, id_text, lstr(""))
        for chunk in _chunked(block).chunks:
            yield _buffer_bytes(chunk)


def write_invoice_file(
    records: RecordSet,
    out_dir: str | Path,
    now: datetime,
    *,
    line_ending: str = "CRLF",
    encoding: str = "utf-8",
) -> Path:
    """Write the invoice file atomically (aside, fsync, rename). Returns its path."""
    newline = "\r\n" if line_ending == "CRLF" else "\n"
    path = Path(out_dir) / invoice_file_name(now)
    passthrough = codecs.lookup(encoding).name == "utf-8"  # utf-8-sig is another codec
    encoder = codecs.getincrementalencoder(encoding)()  # a BOM, if any, once
    try:
        with atomic_output(path, "wb") as fh:
            for block in render_file_blocks(records, newline):
                fh.write(block if passthrough else encoder.encode(str(block, "utf-8")))
            if not passthrough:
                fh.write(encoder.encode("", final=True))
    except UnicodeEncodeError as exc:
        raise OutputError(
            f"a value cannot be written in {encoding} ({exc.reason}); the record checks should have "
            "quarantined it: this is a bug"
        ) from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    return path
