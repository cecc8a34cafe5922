"""The general message spread over Custom8-12 (SPEC §3.3): split at the last space that
fits, once per distinct overflowing message (a cycle repeats a few notices)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.invoices.columns import as_numpy, constant_strings, large_strings, scatter, take

MESSAGE_FIELDS = 5


def split_message(text: str, width: int, fields: int = MESSAGE_FIELDS) -> tuple[list[str], bool]:
    """SPEC §3.3: fill up to ``fields`` parts of at most ``width`` characters, splitting at
    the last space that fits (the space is dropped); a word longer than a field is cut at
    the limit. Returns the parts (always ``fields`` of them) and whether text was lost."""
    parts: list[str] = []
    rest = text.strip(" ")
    while rest and len(parts) < fields:
        if len(rest) <= width:
            parts.append(rest)
            rest = ""
            break
        cut = rest.rfind(" ", 0, width + 1)
        if cut > 0:
            parts.append(rest[:cut].rstrip(" "))
            rest = rest[cut + 1 :].lstrip(" ")
        else:
            parts.append(rest[:width])
            rest = rest[width:].lstrip(" ")
    return parts + [""] * (fields - len(parts)), bool(rest)


def message_parts(messages: pa.ChunkedArray, width: int) -> tuple[list[pa.ChunkedArray], np.ndarray]:
    """The five message fields of every statement, and which were truncated.

    Messages that fit in one field go to Custom8 as they are (one vectorised length test);
    the rest are split once per distinct message, as a cycle repeats a few notices."""
    n = len(messages)
    long = as_numpy(pc.greater(pc.utf8_length(messages), width)) if n else np.zeros(0, bool)
    empty = constant_strings("", n)
    parts = [large_strings(messages)] + [empty] * (MESSAGE_FIELDS - 1)
    truncated = np.zeros(n, dtype=bool)
    if long.any():
        idx = np.flatnonzero(long)
        encoded = pc.dictionary_encode(take(messages, idx).combine_chunks())
        split = [split_message(m, width) for m in encoded.dictionary.to_pylist()]
        codes = pa.array(as_numpy(encoded.indices).astype(np.int64))
        truncated[idx] = np.array([s[1] for s in split], dtype=bool)[codes.to_numpy()]
        for i in range(MESSAGE_FIELDS):
            distinct = pa.array([s[0][i] for s in split], pa.large_string())
            parts[i] = scatter(parts[i], idx, pc.take(distinct, codes))
    return [p if isinstance(p, pa.ChunkedArray) else pa.chunked_array([p]) for p in parts], truncated
