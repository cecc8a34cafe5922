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
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.errors import OutputError
from caselle_ic.schemas.invoices import FieldSpec, record_fields
from caselle_ic.tabular.output import atomic_output
from caselle_ic.tabular.text import clean_text  # the one rule shared with the lockbox file
from caselle_ic.tabular.values import arrow_strings, lstr

FILE_PREFIX = "INVCLD_CSLSTMT101_"
#: Statements per block written (bounds memory: three blocks are in flight while one is
#: written; large enough to amortise the calls).
BLOCK = 50_000


def invoice_file_name(now: datetime) -> str:
    """``INVCLD_CSLSTMT101_{YYYYMMDD}{HHMMSS}.txt`` in the run's local time."""
    return f"{FILE_PREFIX}{now:%Y%m%d%H%M%S}.txt"


def _chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    out = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return out if out.type == pa.large_string() else out.cast(pa.large_string())


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


def _record_parts(
    frame: pd.DataFrame, fields: Sequence[FieldSpec], newline: str, clean: bool
) -> list[pa.ChunkedArray | str]:
    """The pieces of one record per row: constants as text, values as arrays."""
    parts: list[pa.ChunkedArray | str] = ['"']
    for i, f in enumerate(fields):
        if i:
            parts.append('"|"')
        if f.const is not None:
            parts.append(f.const.replace('"', '""'))
            continue
        values = arrow_strings(frame[f.ic_field])
        # Validated records: only text can hold a quote or a control character.
        if clean or f.format == "text":
            values = _quoted_body(clean_text(values) if clean else values)
        parts.append(values)
    parts.append('"' + newline)
    return parts


def _join(parts: list[pa.ChunkedArray | str], n: int) -> pa.Array:
    """One element-wise join; adjacent constant pieces are merged first (fewer inputs per
    value is what makes the join fast)."""
    merged: list[pa.ChunkedArray | pa.Scalar] = []
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
            continue
        if text:
            merged.append(lstr(text))
            text = ""
        merged.append(part)
    if text:
        merged.append(lstr(text))
    if n == 0:
        return pa.array([], pa.large_string())
    if not any(isinstance(p, pa.ChunkedArray) for p in merged):
        raise OutputError("a record made only of constants cannot be rendered")
    return _chunked(pc.binary_join_element_wise(*merged, lstr(""))).combine_chunks()


def render_lines(
    frame: pd.DataFrame, fields: Sequence[FieldSpec], newline: str, *, clean: bool = True
) -> pa.Array:
    """One complete record line (with its line ending) per frame row, as one Arrow array.

    Constant fields are written from a scalar; text fields are cleaned (unless the
    records are marked clean) and their quotes doubled; one join per record type."""
    return _join(_record_parts(frame, fields, newline, clean), len(frame))


def _buffer_bytes(arr: pa.Array) -> memoryview:
    """The UTF-8 bytes of a string array's values, back to back (no copy)."""
    if len(arr) == 0:
        return memoryview(b"")
    offsets = _offsets(arr)
    data = arr.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])] if data is not None else memoryview(b"")


def _offsets(arr: pa.Array) -> np.ndarray:
    """The ``len + 1`` value offsets of a (large_)string array, slice applied."""
    dtype = np.int64 if arr.type == pa.large_string() else np.int32
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr) + 1].astype(
        np.int64
    )


def _interleave(heads: pa.Array, ids: pa.Array, groups: np.ndarray, keep: np.ndarray) -> pa.Array:
    """``head_k`` then the ID lines of statement ``k``, for every kept ``k``, as one string
    array whose data buffer is the file's bytes in order.

    Built as a string *view* array (each value points into the head or the ID buffer:
    no copy) cast to ``large_string`` (one gather copy), instead of joining strings."""
    head_off = _offsets(heads)
    id_off = _offsets(ids)
    k = np.flatnonzero(keep)
    n = 2 * len(k)
    views = np.zeros((n, 4), dtype=np.int32)
    head_len = (head_off[k + 1] - head_off[k]).astype(np.int32)
    grp_start = id_off[groups[k]]
    grp_len = (id_off[groups[k + 1]] - grp_start).astype(np.int32)
    if len(k) and (head_len.min() <= 12 or ((grp_len > 0).any() and grp_len[grp_len > 0].min() <= 12)):
        raise OutputError("a record shorter than 13 bytes cannot be interleaved")  # never: >= 31
    raw_head = np.frombuffer(heads.buffers()[2], dtype=np.uint8)
    raw_ids = np.frombuffer(ids.buffers()[2], dtype=np.uint8) if ids.buffers()[2] is not None else None
    views[0::2, 0] = head_len
    views[0::2, 1] = _prefix(raw_head, head_off[k])
    views[0::2, 2] = 0
    views[0::2, 3] = head_off[k].astype(np.int32)
    has = grp_len > 0
    views[1::2, 0] = grp_len
    if raw_ids is not None and has.any():
        rows = np.flatnonzero(has) * 2 + 1
        views[rows, 1] = _prefix(raw_ids, grp_start[has])
        views[rows, 2] = 1
        views[rows, 3] = grp_start[has].astype(np.int32)
    buffers = [None, pa.py_buffer(views), heads.buffers()[2], ids.buffers()[2] or pa.py_buffer(b"")]
    view = pa.Array.from_buffers(pa.string_view(), n, buffers)
    return view.cast(pa.large_string())


def _prefix(raw: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The first 4 bytes at each start, as the little-endian int32 a string view stores."""
    b = [raw[starts + i].astype(np.uint32) for i in range(4)]
    out: np.ndarray = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)).view(np.int32)
    return out


def _statement_blocks(records: RecordSet) -> list[tuple[int, int, int, int]]:
    """(first, end) statement and (first, end) ID row of each block."""
    n = len(records.ih)
    starts = np.concatenate([[0], np.cumsum(records.lines_per_statement)])
    ends = [min(a + BLOCK, n) for a in range(0, n, BLOCK)]
    return [(a, b, int(starts[a]), int(starts[b])) for a, b in zip(range(0, n, BLOCK), ends, strict=True)]


def render_file_blocks(records: RecordSet, newline: str = "\r\n") -> Iterator[memoryview]:
    """Yield the file's bytes (UTF-8) a block of statements at a time, in order.

    Per block: IH and CR of each statement are rendered together (one join: the
    statement's two header lines), the ID lines with another join, and the two are
    interleaved by :func:`_interleave`; quarantined statements are simply not picked.
    Blocks are rendered ahead on worker threads (Arrow kernels release the GIL) while
    the caller writes the previous one."""
    yield _buffer_bytes(render_lines(records.fh, record_fields("FH"), newline))
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="invoice-render") as pool:
        pending: deque[Future[pa.Array | None]] = deque()
        for block in _statement_blocks(records):
            pending.append(pool.submit(_render_block, records, block, newline))
            if len(pending) > workers:
                done = pending.popleft().result()
                if done is not None:
                    yield _buffer_bytes(done)
        while pending:
            done = pending.popleft().result()
            if done is not None:
                yield _buffer_bytes(done)


def _render_block(records: RecordSet, block: tuple[int, int, int, int], newline: str) -> pa.Array | None:
    a, b, la, lb = block
    keep = np.ones(b - a, dtype=bool) if records.keep is None else np.asarray(records.keep[a:b])
    if not keep.any():
        return None
    clean = not records.clean
    heads = _join(
        _record_parts(records.ih.iloc[a:b], record_fields("IH"), newline, clean)
        + _record_parts(records.cr.iloc[a:b], record_fields("CR"), newline, clean),
        b - a,
    )
    ids = render_lines(records.id.iloc[la:lb], record_fields("ID"), newline, clean=clean)
    counts = np.asarray(records.lines_per_statement[a:b], dtype=np.int64)
    groups = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return _interleave(heads, ids, groups, keep)


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
