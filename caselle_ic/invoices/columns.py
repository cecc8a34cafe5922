"""The statement extract's columns by level, and the Arrow column helpers the checks and
the record assembly share (no per-row Python objects)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.schemas.invoices import ExtractColumn, extract_columns, extract_names

SPEC: dict[str, ExtractColumn] = {c.name: c for c in extract_columns()}
STATEMENT_COLUMNS = extract_names("statement")
LINE_COLUMNS = extract_names("line")


def constant_strings(value: str, n: int) -> pa.ChunkedArray:
    """``n`` copies of one string, built from buffers (no per-row objects)."""
    raw = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int64) * len(raw)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))
    return pa.chunked_array([arr])


def as_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as a numpy array (copied only when Arrow cannot share it)."""
    return np.asarray(values.to_numpy(zero_copy_only=False))


def take(values: pa.ChunkedArray | pa.Array, idx: np.ndarray) -> pa.ChunkedArray:
    """``values[idx]``. A column of many chunks (the CSV reader's blocks) is combined
    first: Arrow's take over many chunks costs several times the copy."""
    if isinstance(values, pa.ChunkedArray) and values.num_chunks > 1:
        values = values.combine_chunks()
    out = pc.take(values, pa.array(idx, type=pa.int64()))
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


def large_strings(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """A string column as one chunked ``large_string`` column (the records' type)."""
    out = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return out if out.type == pa.large_string() else out.cast(pa.large_string())


def scatter(base: pa.ChunkedArray | pa.Array, idx: np.ndarray, values: pa.Array) -> pa.ChunkedArray:
    """``base`` with positions ``idx`` replaced by ``values`` (one take, no Python objects)."""
    n = len(base)
    where = np.arange(n, dtype=np.int64)
    where[idx] = n + np.arange(len(idx), dtype=np.int64)
    both = pa.chunked_array([*large_strings(base).chunks, values.cast(pa.large_string())])
    return take(both, where)
