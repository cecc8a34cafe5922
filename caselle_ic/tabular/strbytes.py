"""Arrow string columns seen as their UTF-8 bytes, with numpy.

Many checks of an export only need a value's length, its first and last byte, or, for
fixed-width forms (GUIDs, ``YYYY-MM-DDTHH:MM:SS``), its bytes as one row of a matrix.
numpy answers those over the offsets and data buffers of the Arrow column at memory
speed, where a regular expression or a per-value kernel pays per value; the exact kernel
stays the fallback for what these tests cannot decide (non-ASCII text, odd widths).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    return [c.cast(pa.large_string()) if c.type != pa.large_string() else c for c in chunks]


def _parts(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of one ``large_string`` chunk, offsets already sliced to the chunk."""
    bufs = chunk.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def value_bytes(values: pa.Array | pa.ChunkedArray) -> Iterator[np.ndarray]:
    """The data buffer of each non-empty chunk as uint8 (no copy; a buffer may hold bytes
    outside the chunk's slice, so a test over it may only err towards "maybe")."""
    for chunk in _chunks(values):
        data = chunk.buffers()[2] if len(chunk) else None
        if data is not None and data.size:
            yield np.frombuffer(data, dtype=np.uint8)


def byte_lengths(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Bytes of each value (a null counts 0). One Arrow kernel over every chunk (the
    reader hands over a column in ~100 chunks: a Python step per chunk costs more)."""
    lengths = pc.binary_length(values)
    if lengths.null_count:
        lengths = pc.fill_null(lengths, 0)
    out = lengths.to_numpy() if len(lengths) else np.zeros(0, dtype=np.int64)
    return np.asarray(out, dtype=np.int64)


def fixed_width_rows(values: pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the values exactly ``width`` bytes long, their bytes as a ``(k, width)``
    uint8 matrix in row order). A column where every value has that width is a view."""
    masks, mats = [], []
    for chunk in _chunks(values):
        if len(chunk) == 0:
            continue
        offsets, data = _parts(chunk)
        lengths = np.diff(offsets)
        mask = lengths == width
        if chunk.null_count:
            mask &= chunk.is_valid().to_numpy(zero_copy_only=False)
        masks.append(mask)
        if mask.all() and offsets[-1] - offsets[0] == width * len(chunk):
            mats.append(data[offsets[0] : offsets[-1]].reshape(len(chunk), width))
        else:
            starts = offsets[:-1][mask]
            mats.append(data[starts[:, None] + np.arange(width)])
    if not masks:
        return np.zeros(0, dtype=bool), np.zeros((0, width), dtype=np.uint8)
    if len(mats) == 1:
        return masks[0], mats[0]
    return np.concatenate(masks), np.concatenate(mats)


#: Rows per block where a test makes per-row temporaries (bounded memory at any size).
_BLOCK = 1 << 16


def _spelled(spelled: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Rows of ``spelled`` (an (n, width) byte matrix) equal to ``pattern``, in blocks."""
    out = np.empty(len(spelled), dtype=bool)
    for lo in range(0, len(spelled), _BLOCK):
        out[lo : lo + _BLOCK] = (spelled[lo : lo + _BLOCK] == pattern).all(axis=1)
    return out


def form_matches(values: pa.Array | pa.ChunkedArray, classes: bytes, form: bytes) -> np.ndarray:
    """Per value: its bytes, mapped through ``classes`` (a ``bytes.translate`` table),
    spell ``form``. A chunk whose values all have the form's width is tested with one
    ``translate`` of its data and one comparison (the usual GUID column); others row by
    row."""
    width = len(form)
    pattern = np.frombuffer(form, dtype=np.uint8)
    parts = []
    for chunk in _chunks(values):
        if len(chunk) == 0:
            continue
        offsets, data = _parts(chunk)
        sized = np.diff(offsets) == width
        if chunk.null_count:
            sized &= chunk.is_valid().to_numpy(zero_copy_only=False)
        if sized.all():  # every value has the width: the data is the (n, width) matrix
            spelled_all = data[offsets[0] : offsets[-1]].tobytes().translate(classes)
            if spelled_all != form * len(chunk):
                sized = _spelled(np.frombuffer(spelled_all, dtype=np.uint8).reshape(-1, width), pattern)
            parts.append(sized)
            continue
        # row by row, a block at a time: an (n, width) int64 gather index for a whole
        # 5M-row column was 640 MB, the invoice run's peak
        picked = np.flatnonzero(sized)
        for lo in range(0, len(picked), _BLOCK):
            at = picked[lo : lo + _BLOCK]
            rows = data[offsets[at][:, None] + np.arange(width)]
            spelled = np.frombuffer(rows.tobytes().translate(classes), dtype=np.uint8).reshape(-1, width)
            sized[at] = _spelled(spelled, pattern)
        parts.append(sized)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def edge_bytes(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The first and the last byte of every non-empty value (two uint8 arrays)."""
    firsts, lasts = [], []
    for chunk in _chunks(values):
        if len(chunk) == 0:
            continue
        offsets, data = _parts(chunk)
        starts, ends = offsets[:-1], offsets[1:]
        filled = ends > starts
        if chunk.null_count:
            filled &= chunk.is_valid().to_numpy(zero_copy_only=False)
        if not filled.all():  # only then select (a required column has no empty value)
            starts, ends = starts[filled], ends[filled]
        firsts.append(data[starts])
        lasts.append(data[ends - 1])
    if not firsts:
        return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.uint8)
    return np.concatenate(firsts), np.concatenate(lasts)


def any_byte_between(values: pa.Array | pa.ChunkedArray, lo: int, hi: int) -> bool:
    """Whether any byte of the column's data lies in ``lo..hi`` (may say yes for bytes
    outside the chunks' slices, never no for one inside)."""
    span = np.uint8(hi - lo)
    return any(bool(((raw - np.uint8(lo)) <= span).any()) for raw in value_bytes(values))


def holding_any(values: pa.Array | pa.ChunkedArray, chars: bytes) -> np.ndarray:
    """Per value: whether it holds any of the (ASCII) bytes ``chars``. The bytes are found
    in the data buffer and mapped to their values by the offsets: one pass over the
    data, where a substring kernel per character pays per value."""
    parts = []
    for chunk in _chunks(values):
        if len(chunk) == 0:
            continue
        offsets, data = _parts(chunk)
        span = data[int(offsets[0]) : int(offsets[-1])]
        hit = np.zeros(len(span), dtype=bool)
        for c in chars:
            hit |= span == c
        rows = np.searchsorted(offsets, np.flatnonzero(hit) + offsets[0], side="right") - 1
        found = np.zeros(len(chunk), dtype=bool)
        found[rows] = True
        parts.append(found)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of a uint8 matrix (equal rows, equal hashes)."""
    k, width = rows.shape
    padded = np.zeros((k, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = rows
    words = padded.view(np.uint64)
    h = words[:, 0].copy()
    for j in range(1, words.shape[1]):
        h *= np.uint64(0x100000001B3)
        h ^= words[:, j]
    return h


def may_repeat(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether some non-empty value may occur twice. ``False`` is certain; ``True`` asks
    for the exact count. The values of the most common width (a GUID column: all) are
    compared by a hash of their bytes, sorted (no hash table of a million strings); the
    few others are counted exactly."""
    lengths = byte_lengths(values)
    if len(lengths) < 2:
        return False
    width = int(np.argmax(np.bincount(lengths[lengths > 0]))) if (lengths > 0).any() else 0
    if width:
        _, rows = fixed_width_rows(values, width)
        hashes = np.sort(_row_hashes(rows))
        if (hashes[1:] == hashes[:-1]).any():
            return True
    others = (lengths > 0) & (lengths != width)
    if others.sum() < 2:
        return False
    flat = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    counts = pc.value_counts(pc.filter(flat, pa.array(others))).field("counts")
    return bool(pc.max(counts).as_py() > 1)


__all__ = [
    "any_byte_between",
    "byte_lengths",
    "edge_bytes",
    "fixed_width_rows",
    "form_matches",
    "holding_any",
    "may_repeat",
    "value_bytes",
]
